//! The rules sluice wants, as data: per address family, the tables, sluice's own chains with
//! their rules, and the jumps from the built-in chains into them. Pure: config in, rules out.
//!
//! In each table, `SLUICE_INBOUND` is sluice's part of PREROUTING and `SLUICE_OUTPUT` its part of
//! OUTPUT; the other chains are targets. The nat table (both modes):
//!
//! - `SLUICE_INBOUND`: decides whether an inbound connection is captured (interface, port
//!   exclusions, the proxy's own ports), then jumps to `SLUICE_IN_REDIRECT`.
//! - `SLUICE_IN_REDIRECT`: REDIRECT to the inbound port.
//! - `SLUICE_OUTPUT`: decides whether a locally started connection is captured: the proxy's own
//!   traffic and loopback traffic are not, except that the proxy calling its own pod (over lo) is
//!   sent through `SLUICE_INBOUND`, like any inbound connection.
//! - `SLUICE_REDIRECT`: REDIRECT to the outbound port.
//!
//! In tproxy mode PREROUTING jumps to the mangle table's chains instead (see [`crate::tproxy`]);
//! the nat `SLUICE_INBOUND` then only serves the proxy's calls to its own pod.

use ipnet::IpNet;

use crate::config::{Capture, CaptureConfig, Mode};
use crate::tproxy;

/// Sluice's chains are named with this prefix, and nothing else is.
pub const CHAIN_PREFIX: &str = "SLUICE_";
pub const INBOUND: &str = "SLUICE_INBOUND";
pub const IN_REDIRECT: &str = "SLUICE_IN_REDIRECT";
pub const OUTPUT: &str = "SLUICE_OUTPUT";
pub const REDIRECT: &str = "SLUICE_REDIRECT";

/// `-m multiport` takes at most 15 ports.
const MULTIPORT_MAX: usize = 15;

/// An address family: iptables or ip6tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// "IPv4" or "IPv6".
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// "iptables" or "ip6tables": the prefix of the family's programs.
    pub fn iptables(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    /// Whether a CIDR belongs to this family.
    pub fn contains(self, net: &IpNet) -> bool {
        matches!(
            (self, net),
            (Family::V4, IpNet::V4(_)) | (Family::V6, IpNet::V6(_))
        )
    }

    /// The loopback network.
    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }

    /// The source address the proxy uses when it forwards inbound connections to the app over
    /// lo (Istio's inbound passthrough address): such connections are never captured.
    fn passthrough_source(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.6/32",
            Family::V6 => "::6/128",
        }
    }
}

/// All rules of one family, table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub tables: Vec<Table>,
}

/// Sluice's part of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// `nat` or `mangle`.
    pub name: &'static str,
    /// Sluice's chains, in the order they are declared and filled.
    pub chains: Vec<Chain>,
    /// The jumps from built-in chains into sluice's chains, as complete `-A` lines written
    /// exactly as `iptables-save` prints them, so that existing ones are recognised.
    pub jumps: Vec<String>,
}

/// One of sluice's chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: &'static str,
    /// Rule specifications, without the `-A CHAIN` in front.
    pub rules: Vec<String>,
}

impl RuleSet {
    /// No rules at all: what `--cleanup` wants.
    pub fn empty() -> Self {
        Self::default()
    }
}

/// The rules for `config` in `family`.
pub fn ruleset(config: &CaptureConfig, family: Family) -> RuleSet {
    let tables = [nat(config, family), tproxy::mangle(config)];
    RuleSet {
        tables: tables.into_iter().flatten().collect(),
    }
}

/// The jump from a built-in chain into one of sluice's, for TCP only.
pub(crate) fn jump(builtin: &str, chain: &str) -> String {
    format!("-A {builtin} -p tcp -j {chain}")
}

/// Whether inbound traffic is captured at all.
pub(crate) fn captures_inbound(config: &CaptureConfig) -> bool {
    config.inbound_ports != Capture::None
}

fn nat(config: &CaptureConfig, family: Family) -> Option<Table> {
    let inbound = captures_inbound(config);
    let outbound = outbound_destinations(config, family);
    if !inbound && outbound.is_empty() {
        return None;
    }
    let mut chains = vec![];
    let mut jumps = vec![];
    if inbound {
        chains.push(Chain {
            name: INBOUND,
            rules: inbound_filter(config, IN_REDIRECT),
        });
        chains.push(Chain {
            name: IN_REDIRECT,
            rules: vec![format!(
                "-p tcp -j REDIRECT --to-ports {}",
                config.ports.inbound
            )],
        });
        if config.mode == Mode::Redirect {
            jumps.push(jump("PREROUTING", INBOUND));
        }
    }
    chains.push(Chain {
        name: OUTPUT,
        rules: output_rules(config, family, inbound, &outbound),
    });
    jumps.push(jump("OUTPUT", OUTPUT));
    if !outbound.is_empty() {
        chains.push(Chain {
            name: REDIRECT,
            rules: vec![format!(
                "-p tcp -j REDIRECT --to-ports {}",
                config.ports.outbound
            )],
        });
    }
    Some(Table {
        name: "nat",
        chains,
        jumps,
    })
}

/// The destination matches of captured outbound traffic in this family: `""` for all,
/// `"-d CIDR "` per listed CIDR; empty for no outbound capture.
fn outbound_destinations(config: &CaptureConfig, family: Family) -> Vec<String> {
    match &config.outbound_cidrs {
        Capture::None => vec![],
        Capture::All => vec![String::new()],
        Capture::Only(cidrs) => cidrs
            .iter()
            .filter(|cidr| family.contains(cidr))
            .map(|cidr| format!("-d {cidr} "))
            .collect(),
    }
}

/// The rules of an inbound chain (nat `SLUICE_INBOUND`, or mangle's in tproxy mode): returns for
/// what is never captured, then sends the captured ports to `target`.
pub(crate) fn inbound_filter(config: &CaptureConfig, target: &str) -> Vec<String> {
    let mut rules = vec![];
    for interface in &config.exclude_interfaces {
        rules.push(format!("-i {interface} -j RETURN"));
    }
    // The proxy's own listeners are reached directly: capturing them would loop.
    rules.extend(multiport(&config.ports.all(), "", "-j RETURN"));
    rules.extend(multiport(&config.exclude_inbound_ports, "", "-j RETURN"));
    match &config.inbound_ports {
        Capture::None => {}
        Capture::All => rules.push(format!("-p tcp -j {target}")),
        Capture::Only(ports) => rules.extend(multiport(ports, "", &format!("-j {target}"))),
    }
    rules
}

/// nat `SLUICE_OUTPUT`: locally started connections. Order matters; each rule says why.
fn output_rules(
    config: &CaptureConfig,
    family: Family,
    inbound: bool,
    outbound: &[String],
) -> Vec<String> {
    let (uid, gid) = (config.proxy_uid, config.proxy_gid);
    let mut rules = vec![];
    for interface in &config.exclude_interfaces {
        rules.push(format!("-o {interface} -j RETURN"));
    }
    if config.mode == Mode::Tproxy && inbound {
        // The proxy's transparent connections to the app (bound to the client's address) carry
        // the tproxy mark; they are the end of an inbound capture, not a new one.
        rules.push(format!("-m mark --mark {} -j RETURN", tproxy::mark(config)));
    }
    // Excluded ports are never touched, not even the proxy's calls to its own pod on them.
    rules.extend(multiport(&config.exclude_outbound_ports, "", "-j RETURN"));
    if inbound {
        // The proxy forwarding an inbound connection to the app from the passthrough address:
        // delivered as is (the proxy may instead use 127.0.0.1, which the uid rules cover).
        rules.push(format!(
            "-s {} -o lo -j RETURN",
            family.passthrough_source()
        ));
        // The proxy calling its own pod's address (an app calling its own service VIP comes
        // back this way: app -> outbound proxy -> pod IP over lo): that is inbound traffic for
        // the pod, so it gets the inbound treatment (the proxy's inbound side, with its policy)
        // rather than going straight to the app. Ports excluded from inbound capture come back
        // here and are let through by the proxy rules below.
        for owner in [format!("--uid-owner {uid}"), format!("--gid-owner {gid}")] {
            rules.push(format!(
                "! -d {} -o lo -m owner {owner} -j {INBOUND}",
                family.loopback()
            ));
        }
    }
    // The proxy's own connections go out as they are: capturing them would loop.
    rules.push(format!("-m owner --uid-owner {uid} -j RETURN"));
    rules.push(format!("-m owner --gid-owner {gid} -j RETURN"));
    // Everything else over lo stays local: loopback destinations (127.0.0.0/8, ::1 only ever
    // route via lo) and the app calling its own pod IP, which must reach the app and not loop
    // through the proxy.
    rules.push("-o lo -j RETURN".to_owned());
    if outbound.is_empty() {
        return rules;
    }
    for cidr in config
        .exclude_outbound_cidrs
        .iter()
        .filter(|cidr| family.contains(cidr))
    {
        rules.push(format!("-d {cidr} -j RETURN"));
    }
    let redirect = format!("-j {REDIRECT}");
    for destination in outbound {
        if config.include_outbound_ports.is_empty() {
            rules.push(format!("{destination}{redirect}"));
        } else {
            rules.extend(multiport(
                &config.include_outbound_ports,
                destination,
                &redirect,
            ));
        }
    }
    rules
}

/// `{prefix}-p tcp -m multiport --dports P1,P2,... {action}`, split into rules of at most 15
/// ports; nothing for no ports.
fn multiport(ports: &[u16], prefix: &str, action: &str) -> Vec<String> {
    ports
        .chunks(MULTIPORT_MAX)
        .map(|chunk| {
            let list: Vec<String> = chunk.iter().map(u16::to_string).collect();
            format!(
                "{prefix}-p tcp -m multiport --dports {} {action}",
                list.join(",")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;

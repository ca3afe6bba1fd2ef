//! tproxy mode: inbound connections reach the proxy by mangle TPROXY instead of NAT, so nothing
//! about them is rewritten. Needs a firewall mark and a routing table that delivers marked
//! packets locally (`ip rule` + `ip route ... table`), which this module also manages.
//!
//! mangle `SLUICE_INBOUND` (from PREROUTING) keeps the mark of the proxy's transparent
//! connections to the app in conntrack, leaves loopback traffic to the nat rules and packets of
//! known connections to the normal lookup, filters like nat's inbound chain, and sends new
//! connections on captured ports to `SLUICE_TPROXY`, which hands the connection
//! to the inbound port and marks it. mangle `SLUICE_OUTPUT` (from OUTPUT) puts that mark back on
//! the app's replies, so the routing table sends them to the proxy's transparent socket over lo
//! instead of out to the client's address.

use crate::config::{CaptureConfig, Mode, TproxyConfig};
use crate::error::{Error, Result};
use crate::exec;
use crate::rules::{self, Chain, Family, Table};

pub const INBOUND: &str = rules::INBOUND;
pub const TPROXY: &str = "SLUICE_TPROXY";
pub const OUTPUT: &str = rules::OUTPUT;

/// The tproxy mark as iptables prints it (hex).
pub(crate) fn mark(config: &CaptureConfig) -> String {
    format!("{:#x}", config.tproxy.mark)
}

/// The mangle table's rules in tproxy mode with inbound capture; `None` otherwise.
pub fn mangle(config: &CaptureConfig) -> Option<Table> {
    if config.mode != Mode::Tproxy || !rules::captures_inbound(config) {
        return None;
    }
    let mark = mark(config);
    let mut inbound = vec![
        // Packets of the proxy's transparent connections to the app (SO_MARK = mark) arrive
        // here over lo: remember the mark on the connection for the app's replies.
        format!("-p tcp -m mark --mark {mark} -j CONNMARK --save-mark"),
        // Loopback traffic was decided in nat OUTPUT (the proxy calling its own pod is
        // REDIRECTed there); TPROXY here would capture the app calling itself.
        "-i lo -j RETURN".to_owned(),
        // Only new connections are handed over. Later packets of a captured one are addressed
        // to the pod and find the proxy's socket by the normal lookup; replies to the pod's own
        // outbound connections must reach the app, and TPROXY would drop them (their socket is
        // not transparent).
        "-p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN".to_owned(),
    ];
    inbound.extend(rules::inbound_filter(config, TPROXY));
    Some(Table {
        name: "mangle",
        chains: vec![
            Chain {
                name: INBOUND,
                rules: inbound,
            },
            Chain {
                name: TPROXY,
                rules: vec![format!(
                    "-p tcp -j TPROXY --on-port {} --tproxy-mark {mark}/0xffffffff",
                    config.ports.inbound
                )],
            },
            Chain {
                name: OUTPUT,
                rules: vec![format!(
                    "-p tcp -m connmark --mark {mark} -j CONNMARK --restore-mark"
                )],
            },
        ],
        jumps: vec![
            rules::jump("PREROUTING", INBOUND),
            rules::jump("OUTPUT", OUTPUT),
        ],
    })
}

/// One `ip` invocation (its arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpCommand(pub Vec<String>);

impl std::fmt::Display for IpCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ip {}", self.0.join(" "))
    }
}

impl IpCommand {
    fn new(args: &[&str]) -> Self {
        IpCommand(args.iter().map(|arg| (*arg).to_owned()).collect())
    }

    /// Whether it adds something (rather than removing it).
    pub fn adds(&self) -> bool {
        self.0.get(2).is_some_and(|verb| verb == "add")
    }

    /// Runs it.
    pub fn run(&self) -> Result<()> {
        let args: Vec<&str> = self.0.iter().map(String::as_str).collect();
        exec::run("ip", &args, None).map(drop)
    }
}

/// The policy routing of tproxy mode in the namespace now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Routing {
    /// `ip rule ... fwmark MARK lookup TABLE` exists.
    pub rule: bool,
    /// `local default dev lo` exists in TABLE.
    pub route: bool,
}

/// Reads which of the rule and route exist, for `family`.
pub fn read_routing(tproxy: TproxyConfig, family: Family) -> Result<Routing> {
    let (fam, mark, table) = args(tproxy, family);
    let rules = exec::run(
        "ip",
        &[fam, "rule", "show", "fwmark", &mark, "lookup", &table],
        None,
    )?;
    let routes = match exec::run("ip", &[fam, "route", "show", "table", &table], None) {
        Err(Error::Command { stderr, .. }) if stderr.contains("does not exist") => String::new(),
        routes => routes?,
    };
    Ok(Routing {
        rule: !rules.trim().is_empty(),
        route: routes
            .lines()
            .any(|line| line.starts_with("local default dev lo")),
    })
}

/// The `ip` commands that take `current` to the wanted routing: present (`wanted`) or absent.
pub fn plan_routing(
    tproxy: TproxyConfig,
    family: Family,
    current: Routing,
    wanted: bool,
) -> Vec<IpCommand> {
    let (fam, mark, table) = args(tproxy, family);
    let rule = |verb| IpCommand::new(&[fam, "rule", verb, "fwmark", &mark, "lookup", &table]);
    let route = |verb| {
        IpCommand::new(&[
            fam, "route", verb, "local", "default", "dev", "lo", "table", &table,
        ])
    };
    // The route before the rule that points at it; removal the other way round.
    let commands = if wanted {
        [
            (!current.route).then(|| route("add")),
            (!current.rule).then(|| rule("add")),
        ]
    } else {
        [
            current.rule.then(|| rule("del")),
            current.route.then(|| route("del")),
        ]
    };
    commands.into_iter().flatten().collect()
}

fn args(tproxy: TproxyConfig, family: Family) -> (&'static str, String, String) {
    let fam = match family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    };
    (fam, format!("{:#x}", tproxy.mark), tproxy.table.to_string())
}

#[cfg(test)]
mod tests;

//! Flags and environment variables → a validated [`Invocation`]; every bad value is reported at
//! once, naming the flag and the value.

mod args;

use std::collections::BTreeSet;

use ipnet::IpNet;

pub use args::Args;

use crate::error::{Error, FlagError, Result};

/// Which traffic of a kind is captured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Capture<T> {
    /// None of it (the flag was empty).
    #[default]
    None,
    /// All of it (`*`).
    All,
    /// Only traffic matching one of these.
    Only(Vec<T>),
}

/// How inbound traffic is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// NAT REDIRECT to the inbound port.
    #[default]
    Redirect,
    /// mangle TPROXY to the inbound port, keeping the packet's addresses.
    Tproxy,
}

/// Whether to program ip6tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv6 {
    /// When the namespace has IPv6.
    #[default]
    Auto,
    On,
    Off,
}

/// The iptables backend asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Detect (see `--help`).
    #[default]
    Auto,
    Legacy,
    Nft,
}

/// The proxy's listening ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyPorts {
    pub outbound: u16,
    pub inbound: u16,
    pub admin: u16,
    pub health: u16,
    pub metrics: u16,
}

impl ProxyPorts {
    /// All of them, without duplicates: never captured inbound.
    pub fn all(&self) -> Vec<u16> {
        let mut ports = vec![];
        for port in [
            self.outbound,
            self.inbound,
            self.admin,
            self.health,
            self.metrics,
        ] {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        ports
    }
}

impl Default for ProxyPorts {
    fn default() -> Self {
        Self {
            outbound: 15001,
            inbound: 15006,
            admin: 15000,
            health: 15021,
            metrics: 15090,
        }
    }
}

/// tproxy mode's mark and routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TproxyConfig {
    pub mark: u32,
    pub table: u32,
}

impl Default for TproxyConfig {
    fn default() -> Self {
        Self {
            mark: 1337,
            table: 133,
        }
    }
}

/// What to capture and how: everything the rules are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    pub ports: ProxyPorts,
    pub inbound_ports: Capture<u16>,
    pub exclude_inbound_ports: Vec<u16>,
    pub outbound_cidrs: Capture<IpNet>,
    pub exclude_outbound_cidrs: Vec<IpNet>,
    pub exclude_outbound_ports: Vec<u16>,
    /// Empty: all ports.
    pub include_outbound_ports: Vec<u16>,
    pub exclude_interfaces: Vec<String>,
    pub mode: Mode,
    pub ipv6: Ipv6,
    pub backend: BackendChoice,
    pub tproxy: TproxyConfig,
}

/// What to do with the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Install (or refresh) the rules; with `validate`, check them afterwards.
    #[default]
    Apply,
    /// Remove them.
    Cleanup,
}

/// One run of sluice-init: the capture config and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub config: CaptureConfig,
    pub action: Action,
    pub dry_run: bool,
    pub validate: bool,
}

impl Invocation {
    /// Validates the flags. `interface_exists` tells whether a network interface of that name
    /// exists (see [`interface_exists`]). All bad values are reported together.
    pub fn from_args(args: &Args, interface_exists: impl Fn(&str) -> bool) -> Result<Invocation> {
        let mut check = Checker::default();
        let ports = ProxyPorts {
            outbound: check.take(port("--outbound-port", &args.outbound_port)),
            inbound: check.take(port("--inbound-port", &args.inbound_port)),
            admin: check.take(port("--admin-port", &args.admin_port)),
            health: check.take(port("--health-port", &args.health_port)),
            metrics: check.take(port("--metrics-port", &args.metrics_port)),
        };
        let config = CaptureConfig {
            proxy_uid: check.take(id("--proxy-uid", &args.proxy_uid)),
            proxy_gid: check.take(id("--proxy-gid", &args.proxy_gid)),
            ports,
            inbound_ports: check.take(capture("--inbound-ports", &args.inbound_ports, parse_port)),
            exclude_inbound_ports: check.take(ports_list(
                "--exclude-inbound-ports",
                &args.exclude_inbound_ports,
            )),
            outbound_cidrs: check.take(capture(
                "--outbound-cidrs",
                &args.outbound_cidrs,
                parse_cidr,
            )),
            exclude_outbound_cidrs: check.take(list(
                "--exclude-outbound-cidrs",
                &args.exclude_outbound_cidrs,
                parse_cidr,
            )),
            exclude_outbound_ports: check.take(ports_list(
                "--exclude-outbound-ports",
                &args.exclude_outbound_ports,
            )),
            include_outbound_ports: check.take(ports_list(
                "--include-outbound-ports",
                &args.include_outbound_ports,
            )),
            exclude_interfaces: check.take(list(
                "--exclude-interfaces",
                &args.exclude_interfaces,
                |name| parse_interface(name, &interface_exists),
            )),
            mode: check.take(choice(
                "--mode",
                &args.mode,
                &[("redirect", Mode::Redirect), ("tproxy", Mode::Tproxy)],
            )),
            ipv6: check.take(choice(
                "--ipv6",
                &args.ipv6,
                &[("auto", Ipv6::Auto), ("on", Ipv6::On), ("off", Ipv6::Off)],
            )),
            backend: check.take(choice(
                "--backend",
                &args.backend,
                &[
                    ("auto", BackendChoice::Auto),
                    ("legacy", BackendChoice::Legacy),
                    ("nft", BackendChoice::Nft),
                ],
            )),
            tproxy: TproxyConfig {
                mark: check.take(mark("--tproxy-mark", &args.tproxy_mark)),
                table: check.take(route_table("--tproxy-table", &args.tproxy_table)),
            },
        };
        let invocation = Invocation {
            config,
            action: if args.cleanup {
                Action::Cleanup
            } else {
                Action::Apply
            },
            dry_run: args.dry_run,
            validate: args.validate,
        };
        check.combinations(args, &invocation);
        check.finish(invocation)
    }
}

/// Whether a network interface of this name exists in the current network namespace (asks the
/// kernel, so it is right whatever /sys shows).
pub fn interface_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// Collects flag errors so that all of them are reported at once.
#[derive(Default)]
struct Checker {
    errors: Vec<FlagError>,
}

impl Checker {
    /// The value, or a default standing in for it while its error is recorded.
    fn take<T: Default>(&mut self, result: Result<T, FlagError>) -> T {
        result.unwrap_or_else(|err| {
            self.errors.push(err);
            T::default()
        })
    }

    fn reject(&mut self, flag: &'static str, value: Option<&str>, problem: impl Into<String>) {
        self.errors.push(FlagError {
            flag,
            value: value.map(str::to_owned),
            problem: problem.into(),
        });
    }

    /// Checks between flags, once each flag's own value is known to be good.
    fn combinations(&mut self, args: &Args, invocation: &Invocation) {
        let config = &invocation.config;
        // A port that failed to parse stands in as 0, which no good port equals.
        if config.ports.outbound != 0 && config.ports.outbound == config.ports.inbound {
            self.reject(
                "--inbound-port",
                Some(&args.inbound_port),
                "must differ from --outbound-port",
            );
        }
        if invocation.validate {
            let flag = "--validate";
            if invocation.action == Action::Cleanup {
                self.reject(flag, None, "cannot be combined with --cleanup; drop one");
            } else if invocation.dry_run {
                self.reject(flag, None, "needs rules in place; drop --dry-run");
            } else if config.outbound_cidrs == Capture::None {
                self.reject(
                    flag,
                    None,
                    "nothing to validate: --outbound-cidrs is empty (no outbound capture)",
                );
            }
        }
    }

    fn finish(self, invocation: Invocation) -> Result<Invocation> {
        if self.errors.is_empty() {
            Ok(invocation)
        } else {
            Err(Error::Config(self.errors))
        }
    }
}

fn error(flag: &'static str, value: &str, problem: impl Into<String>) -> FlagError {
    FlagError {
        flag,
        value: Some(value.to_owned()),
        problem: problem.into(),
    }
}

/// Parses a list item; the error says what the item should be.
type ItemParser<T> = fn(&str) -> Result<T, String>;

fn parse_port(item: &str) -> Result<u16, String> {
    match item.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(format!("{item:?} is not a port; use 1-65535")),
    }
}

fn parse_cidr(item: &str) -> Result<IpNet, String> {
    item.parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("{item:?} is not a CIDR or an address; use e.g. 10.96.0.0/12 or fd00::/108")
        })
}

/// Interface names as the kernel allows them (at most 15 bytes, no '/', ':' or whitespace), or a
/// `prefix+` wildcard, which iptables matches against every interface starting with `prefix`.
fn parse_interface(item: &str, exists: &impl Fn(&str) -> bool) -> Result<String, String> {
    let name = item.strip_suffix('+').unwrap_or(item);
    let valid = !name.is_empty()
        && item.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '+' || c.is_whitespace() || c.is_control());
    if !valid {
        return Err(format!(
            "{item:?} is not an interface name (at most 15 characters, no '/', ':' or spaces; \
             `prefix+` matches a prefix)"
        ));
    }
    if !item.ends_with('+') && !exists(item) {
        return Err(format!(
            "no interface {item:?} in this network namespace; check `ip link`, or use `{item}+` \
             for interfaces that appear later"
        ));
    }
    Ok(item.to_owned())
}

fn id(flag: &'static str, value: &str) -> Result<u32, FlagError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| error(flag, value, "not a numeric id; use 0-4294967295"))
}

fn port(flag: &'static str, value: &str) -> Result<u16, FlagError> {
    parse_port(value.trim()).map_err(|problem| error(flag, value, problem))
}

fn mark(flag: &'static str, value: &str) -> Result<u32, FlagError> {
    let trimmed = value.trim();
    let parsed = match trimmed.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => trimmed.parse::<u32>(),
    };
    match parsed {
        Ok(mark) if mark != 0 => Ok(mark),
        _ => Err(error(
            flag,
            value,
            "not a firewall mark; use 1-4294967295, decimal or 0x hex",
        )),
    }
}

fn route_table(flag: &'static str, value: &str) -> Result<u32, FlagError> {
    match value.trim().parse::<u32>() {
        Ok(253..=255) => Err(error(
            flag,
            value,
            "253-255 are the kernel's default, main and local tables; pick another id",
        )),
        Ok(table) if table != 0 => Ok(table),
        _ => Err(error(
            flag,
            value,
            "not a routing table id; use 1-252 or 256-4294967295",
        )),
    }
}

fn choice<T: Copy>(flag: &'static str, value: &str, choices: &[(&str, T)]) -> Result<T, FlagError> {
    let wanted = value.trim().to_ascii_lowercase();
    choices
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, choice)| *choice)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            error(flag, value, format!("use one of: {}", names.join(", ")))
        })
}

/// A comma-separated list; empty items are ignored, duplicates dropped. All bad items are named.
fn list<T: Ord + Clone>(
    flag: &'static str,
    value: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, FlagError> {
    let mut items = vec![];
    let mut seen = BTreeSet::new();
    let mut problems = vec![];
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        match parse(item) {
            Ok(parsed) if seen.insert(parsed.clone()) => items.push(parsed),
            Ok(_) => {}
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(error(flag, value, problems.join("; ")))
    }
}

fn ports_list(flag: &'static str, value: &str) -> Result<Vec<u16>, FlagError> {
    list(flag, value, parse_port)
}

/// `*`, a list, or empty.
fn capture<T: Ord + Clone>(
    flag: &'static str,
    value: &str,
    parse: ItemParser<T>,
) -> Result<Capture<T>, FlagError> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect();
    if items.contains(&"*") {
        return if items.len() == 1 {
            Ok(Capture::All)
        } else {
            Err(error(
                flag,
                value,
                "`*` (everything) cannot be combined with other entries",
            ))
        };
    }
    let parsed = list(flag, value, parse)?;
    Ok(if parsed.is_empty() {
        Capture::None
    } else {
        Capture::Only(parsed)
    })
}

#[cfg(test)]
mod tests;

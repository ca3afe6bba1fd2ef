//! The command line and environment of sluice-init, with the help text that documents them.

use clap::Parser;

const ABOUT: &str = "Programs the pod's network namespace (iptables) so its TCP traffic goes \
through sluice-proxy, then exits.";

const LONG_ABOUT: &str = "\
Programs the pod's network namespace (iptables) so its TCP traffic goes through sluice-proxy, \
then exits. Runs as the pod's init container, as root with NET_ADMIN and NET_RAW.

Outbound TCP is redirected to --outbound-port, except traffic of --proxy-uid/--proxy-gid, \
loopback traffic, and excluded CIDRs and ports. Inbound TCP on captured ports is redirected to \
--inbound-port; the proxy's own ports (outbound, inbound, admin, health, metrics) never are. \
The proxy reads the original destination with SO_ORIGINAL_DST (IP6T_SO_ORIGINAL_DST for IPv6).

Rules live in chains of their own (SLUICE_*) and are applied atomically with \
`iptables-restore --noflush`; running again leaves the same rules, --cleanup removes exactly what \
was added. Every flag can also be set by the environment variable shown with it. Lists are \
comma-separated.";

const AFTER_LONG_HELP: &str = "\
The proxy's side of the contract:
  - it runs as --proxy-uid/--proxy-gid, so its own connections are not captured;
  - it forwards inbound connections to the app at 127.0.0.1 (::1), or from the source address \
    127.0.0.6 (::6, if assigned to lo): such connections are never captured;
  - in tproxy mode it listens on --inbound-port with IP_TRANSPARENT; to keep the client's \
    address towards the app it binds to it (IP_TRANSPARENT) and sets SO_MARK to --tproxy-mark, \
    which routes the app's replies back to it.

Exit status: 0 on success, 1 on any error (the message names the flag and value, or the command \
that failed, and the fix).";

/// The command line and environment of sluice-init, as given (validated by [`Invocation::from_args`]).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "sluice-init",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    max_term_width = 100,
    allow_negative_numbers = true
)]
pub struct Args {
    /// User id of the proxy: its traffic is never captured.
    #[arg(
        long,
        env = "SLUICE_PROXY_UID",
        default_value = "1337",
        value_name = "UID"
    )]
    pub proxy_uid: String,

    /// Group id of the proxy: its traffic is never captured.
    #[arg(
        long,
        env = "SLUICE_PROXY_GID",
        default_value = "1337",
        value_name = "GID"
    )]
    pub proxy_gid: String,

    /// Port the proxy listens on for captured outbound traffic.
    #[arg(
        long,
        env = "SLUICE_OUTBOUND_PORT",
        default_value = "15001",
        value_name = "PORT"
    )]
    pub outbound_port: String,

    /// Port the proxy listens on for captured inbound traffic.
    #[arg(
        long,
        env = "SLUICE_INBOUND_PORT",
        default_value = "15006",
        value_name = "PORT"
    )]
    pub inbound_port: String,

    /// The proxy's admin port: never captured inbound.
    #[arg(
        long,
        env = "SLUICE_ADMIN_PORT",
        default_value = "15000",
        value_name = "PORT"
    )]
    pub admin_port: String,

    /// The proxy's health port (/healthz/ready): never captured inbound.
    #[arg(
        long,
        env = "SLUICE_HEALTH_PORT",
        default_value = "15021",
        value_name = "PORT"
    )]
    pub health_port: String,

    /// The proxy's Prometheus metrics port: never captured inbound.
    #[arg(
        long,
        env = "SLUICE_METRICS_PORT",
        default_value = "15090",
        value_name = "PORT"
    )]
    pub metrics_port: String,

    /// Inbound destination ports to capture: `*` for all, a list (`8080,9090`), or empty for no
    /// inbound capture.
    #[arg(
        long,
        env = "SLUICE_INBOUND_PORTS",
        default_value = "*",
        value_name = "PORTS"
    )]
    pub inbound_ports: String,

    /// Inbound destination ports never to capture (wins over --inbound-ports).
    #[arg(
        long,
        env = "SLUICE_EXCLUDE_INBOUND_PORTS",
        default_value = "",
        value_name = "PORTS"
    )]
    pub exclude_inbound_ports: String,

    /// Outbound destinations to capture: `*` for all, a list of CIDRs or addresses
    /// (`10.96.0.0/12,fd00::/108`), or empty for no outbound capture. IPv4 entries apply to
    /// iptables, IPv6 entries to ip6tables.
    #[arg(
        long,
        env = "SLUICE_OUTBOUND_CIDRS",
        default_value = "*",
        value_name = "CIDRS"
    )]
    pub outbound_cidrs: String,

    /// Outbound destinations (CIDRs or addresses) never to capture.
    #[arg(
        long,
        env = "SLUICE_EXCLUDE_OUTBOUND_CIDRS",
        default_value = "",
        value_name = "CIDRS"
    )]
    pub exclude_outbound_cidrs: String,

    /// Outbound destination ports never to capture.
    #[arg(
        long,
        env = "SLUICE_EXCLUDE_OUTBOUND_PORTS",
        default_value = "",
        value_name = "PORTS"
    )]
    pub exclude_outbound_ports: String,

    /// If given, capture outbound traffic only to these destination ports (still subject to the
    /// exclusions); empty means all ports.
    #[arg(
        long,
        env = "SLUICE_INCLUDE_OUTBOUND_PORTS",
        default_value = "",
        value_name = "PORTS"
    )]
    pub include_outbound_ports: String,

    /// Network interfaces whose traffic is never captured, in or out (`name` or a `prefix+`
    /// wildcard). Named interfaces must exist in the namespace.
    #[arg(
        long,
        env = "SLUICE_EXCLUDE_INTERFACES",
        default_value = "",
        value_name = "IFACES"
    )]
    pub exclude_interfaces: String,

    /// How inbound traffic reaches the proxy: `redirect` (NAT REDIRECT; the proxy sees the
    /// client's address, the app sees the proxy's) or `tproxy` (mangle TPROXY, no NAT; the proxy
    /// listens with IP_TRANSPARENT and can connect to the app with the client's address).
    /// Outbound is always NAT REDIRECT.
    #[arg(
        long,
        env = "SLUICE_MODE",
        default_value = "redirect",
        value_name = "redirect|tproxy"
    )]
    pub mode: String,

    /// Program ip6tables too: `on`, `off`, or `auto` (on when the namespace has IPv6, i.e.
    /// /proc/net/if_inet6 lists an address).
    #[arg(
        long,
        env = "SLUICE_IPV6",
        default_value = "auto",
        value_name = "auto|on|off"
    )]
    pub ipv6: String,

    /// iptables backend: `legacy` (iptables-legacy-*), `nft` (iptables-nft-*), or `auto`.
    ///
    /// `auto` keeps all of the namespace's rules in one backend, and creates nothing to find
    /// out. Only backends that are installed and work count. (1) One that already holds sluice's
    /// chains wins, so re-runs and --cleanup act where the rules are. (2) Else the one holding
    /// rules (rules or user chains: empty tables do not count), or the one with more if both do.
    /// Legacy is read only through the tables /proc/net/ip_tables_names and
    /// /proc/net/ip6_tables_names list, since asking for a missing legacy table creates it (how
    /// probes prime their own answer); nft through iptables-nft-save, which creates nothing.
    /// (3) Else, if the kernel has no legacy iptables loaded (no /proc/net/ip_tables_names),
    /// nft. (4) Else the image's default, as `iptables --version` reports it ("(nf_tables)" or
    /// "(legacy)"), or nft if there is no `iptables`. The choice and the reason are logged on
    /// stderr.
    #[arg(
        long,
        env = "SLUICE_BACKEND",
        default_value = "auto",
        value_name = "auto|legacy|nft"
    )]
    pub backend: String,

    /// tproxy mode: firewall mark of captured inbound packets, and of the proxy's transparent
    /// connections to the app (decimal or 0x hex, not 0).
    #[arg(
        long,
        env = "SLUICE_TPROXY_MARK",
        default_value = "1337",
        value_name = "MARK"
    )]
    pub tproxy_mark: String,

    /// tproxy mode: routing table (id) that delivers marked packets locally
    /// (`ip rule add fwmark MARK lookup TABLE`, `ip route add local default dev lo table TABLE`).
    #[arg(
        long,
        env = "SLUICE_TPROXY_TABLE",
        default_value = "133",
        value_name = "TABLE"
    )]
    pub tproxy_table: String,

    /// Print the exact iptables-restore input (and `ip` commands) that would be applied, and
    /// change nothing.
    #[arg(long, env = "SLUICE_DRY_RUN")]
    pub dry_run: bool,

    /// Remove everything sluice-init added (its chains, the jumps to them, the tproxy route and
    /// rule for --tproxy-mark/--tproxy-table), and nothing else.
    #[arg(long, env = "SLUICE_CLEANUP")]
    pub cleanup: bool,

    /// After applying, check that a connection to a captured test address (192.0.2.1,
    /// 2001:db8::1, or the first --outbound-cidrs entry) really arrives at --outbound-port with
    /// the right original destination, listening there briefly itself. Needs a route to it.
    #[arg(long, env = "SLUICE_VALIDATE")]
    pub validate: bool,
}

use super::*;
use clap::Parser as _;

/// Parses a command line (after `sluice-init`), with every interface but `eth0` and `lo`
/// unknown.
fn parse(line: &[&str]) -> Result<Invocation> {
    let args = Args::try_parse_from(std::iter::once("sluice-init").chain(line.iter().copied()))
        .expect("clap accepts it");
    Invocation::from_args(&args, |name| name == "eth0" || name == "lo")
}

fn flag_errors(line: &[&str]) -> Vec<FlagError> {
    match parse(line) {
        Err(Error::Config(errors)) => errors,
        other => panic!("{line:?}: expected flag errors, got {other:?}"),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn defaults_capture_everything_with_the_proxy_ports_of_the_design() {
    let invocation = parse(&[]).unwrap();
    assert_eq!(invocation.action, Action::Apply);
    assert!(!invocation.dry_run && !invocation.validate);
    let config = invocation.config;
    assert_eq!((config.proxy_uid, config.proxy_gid), (1337, 1337));
    assert_eq!(config.ports, ProxyPorts::default());
    assert_eq!(config.ports.all(), [15001, 15006, 15000, 15021, 15090]);
    assert_eq!(config.inbound_ports, Capture::All);
    assert_eq!(config.outbound_cidrs, Capture::All);
    assert!(config.exclude_inbound_ports.is_empty());
    assert!(config.exclude_outbound_cidrs.is_empty());
    assert!(config.exclude_outbound_ports.is_empty());
    assert!(config.include_outbound_ports.is_empty());
    assert!(config.exclude_interfaces.is_empty());
    assert_eq!(config.mode, Mode::Redirect);
    assert_eq!(config.ipv6, Ipv6::Auto);
    assert_eq!(config.backend, BackendChoice::Auto);
    assert_eq!(
        config.tproxy,
        TproxyConfig {
            mark: 1337,
            table: 133
        }
    );
}

/// A property of the parsed invocation.
type Holds = fn(&Invocation) -> bool;

#[test]
fn good_values() {
    let cases: &[(&[&str], Holds)] = &[
        (&["--proxy-uid", "1000"], |i| i.config.proxy_uid == 1000),
        (&["--proxy-gid", " 7 "], |i| i.config.proxy_gid == 7),
        (&["--outbound-port", "1"], |i| i.config.ports.outbound == 1),
        (&["--inbound-port", "65535"], |i| {
            i.config.ports.inbound == 65535
        }),
        (&["--admin-port", "9000"], |i| i.config.ports.admin == 9000),
        (&["--health-port", "9001"], |i| {
            i.config.ports.health == 9001
        }),
        (&["--metrics-port", "9002"], |i| {
            i.config.ports.metrics == 9002
        }),
        (&["--inbound-ports", ""], |i| {
            i.config.inbound_ports == Capture::None
        }),
        (&["--inbound-ports", " , "], |i| {
            i.config.inbound_ports == Capture::None
        }),
        (&["--inbound-ports", "*"], |i| {
            i.config.inbound_ports == Capture::All
        }),
        (&["--inbound-ports", "80, 443,80,"], |i| {
            i.config.inbound_ports == Capture::Only(vec![80, 443])
        }),
        (&["--exclude-inbound-ports", "22,9000"], |i| {
            i.config.exclude_inbound_ports == [22, 9000]
        }),
        (&["--outbound-cidrs", ""], |i| {
            i.config.outbound_cidrs == Capture::None
        }),
        (&["--outbound-cidrs", "10.96.0.0/12,fd00::/108"], |i| {
            i.config.outbound_cidrs == Capture::Only(vec![net("10.96.0.0/12"), net("fd00::/108")])
        }),
        // Addresses become host CIDRs; host bits are cleared as iptables would.
        (
            &["--exclude-outbound-cidrs", "169.254.169.254,10.1.2.3/8,::1"],
            |i| {
                i.config.exclude_outbound_cidrs
                    == [net("169.254.169.254/32"), net("10.0.0.0/8"), net("::1/128")]
            },
        ),
        (&["--exclude-outbound-ports", "25"], |i| {
            i.config.exclude_outbound_ports == [25]
        }),
        (&["--include-outbound-ports", "80,8080"], |i| {
            i.config.include_outbound_ports == [80, 8080]
        }),
        (&["--exclude-interfaces", "eth0,veth+"], |i| {
            i.config.exclude_interfaces == ["eth0", "veth+"]
        }),
        (&["--mode", "tproxy"], |i| i.config.mode == Mode::Tproxy),
        (&["--mode", "REDIRECT"], |i| i.config.mode == Mode::Redirect),
        (&["--ipv6", "on"], |i| i.config.ipv6 == Ipv6::On),
        (&["--ipv6", "off"], |i| i.config.ipv6 == Ipv6::Off),
        (&["--backend", "legacy"], |i| {
            i.config.backend == BackendChoice::Legacy
        }),
        (&["--backend", "nft"], |i| {
            i.config.backend == BackendChoice::Nft
        }),
        (&["--tproxy-mark", "0x100"], |i| i.config.tproxy.mark == 256),
        (&["--tproxy-table", "100"], |i| i.config.tproxy.table == 100),
        (&["--dry-run"], |i| i.dry_run),
        (&["--cleanup"], |i| i.action == Action::Cleanup),
        (&["--cleanup", "--dry-run"], |i| {
            i.action == Action::Cleanup && i.dry_run
        }),
        (&["--validate"], |i| i.validate),
    ];
    for (line, holds) in cases {
        let invocation = parse(line).unwrap_or_else(|err| panic!("{line:?}: {err}"));
        assert!(holds(&invocation), "{line:?} gave {invocation:#?}");
    }
}

#[test]
fn bad_values_name_the_flag_the_value_and_the_fix() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--proxy-uid", "proxy"], "--proxy-uid", "not a numeric id"),
        (&["--proxy-gid", "-1"], "--proxy-gid", "not a numeric id"),
        (
            &["--outbound-port", "70000"],
            "--outbound-port",
            "\"70000\" is not a port; use 1-65535",
        ),
        (&["--inbound-port", "0"], "--inbound-port", "is not a port"),
        (&["--admin-port", "x"], "--admin-port", "is not a port"),
        (&["--health-port", ""], "--health-port", "is not a port"),
        (
            &["--metrics-port", "1e3"],
            "--metrics-port",
            "is not a port",
        ),
        (
            &["--inbound-ports", "80,http"],
            "--inbound-ports",
            "\"http\" is not a port",
        ),
        (
            &["--inbound-ports", "*,80"],
            "--inbound-ports",
            "cannot be combined",
        ),
        (
            &["--exclude-inbound-ports", "65536"],
            "--exclude-inbound-ports",
            "is not a port",
        ),
        (
            &["--outbound-cidrs", "10.0.0.0/33"],
            "--outbound-cidrs",
            "is not a CIDR",
        ),
        (
            &["--outbound-cidrs", "*,10.0.0.0/8"],
            "--outbound-cidrs",
            "cannot be combined",
        ),
        (
            &["--exclude-outbound-cidrs", "10.0.0/8"],
            "--exclude-outbound-cidrs",
            "is not a CIDR",
        ),
        (
            &["--exclude-outbound-ports", "-5"],
            "--exclude-outbound-ports",
            "is not a port",
        ),
        (
            &["--include-outbound-ports", "8o"],
            "--include-outbound-ports",
            "is not a port",
        ),
        (
            &["--exclude-interfaces", "eth9"],
            "--exclude-interfaces",
            "no interface \"eth9\"",
        ),
        (
            &["--exclude-interfaces", "a/b"],
            "--exclude-interfaces",
            "is not an interface name",
        ),
        (
            &["--exclude-interfaces", "abcdefghijklmnop"],
            "--exclude-interfaces",
            "at most 15",
        ),
        (
            &["--exclude-interfaces", "+"],
            "--exclude-interfaces",
            "is not an interface name",
        ),
        (&["--mode", "nat"], "--mode", "use one of: redirect, tproxy"),
        (&["--ipv6", "yes"], "--ipv6", "use one of: auto, on, off"),
        (
            &["--backend", "iptables"],
            "--backend",
            "use one of: auto, legacy, nft",
        ),
        (
            &["--tproxy-mark", "0"],
            "--tproxy-mark",
            "not a firewall mark",
        ),
        (
            &["--tproxy-mark", "0xZ"],
            "--tproxy-mark",
            "not a firewall mark",
        ),
        (
            &["--tproxy-table", "254"],
            "--tproxy-table",
            "main and local tables",
        ),
        (
            &["--tproxy-table", "0"],
            "--tproxy-table",
            "not a routing table id",
        ),
        (
            &["--inbound-port", "15001"],
            "--inbound-port",
            "must differ from --outbound-port",
        ),
        (
            &["--validate", "--cleanup"],
            "--validate",
            "cannot be combined with --cleanup",
        ),
        (&["--validate", "--dry-run"], "--validate", "drop --dry-run"),
        (
            &["--validate", "--outbound-cidrs="],
            "--validate",
            "nothing to validate",
        ),
    ];
    for (line, flag, problem) in cases {
        let errors = flag_errors(line);
        assert_eq!(errors.len(), 1, "{line:?}: {errors:?}");
        let message = Error::Config(errors.clone()).to_string();
        assert_eq!(errors[0].flag, *flag, "{line:?}");
        assert!(message.contains(flag), "{line:?}: {message}");
        assert!(message.contains(problem), "{line:?}: {message}");
        if let Some(value) = &errors[0].value {
            assert!(
                message.contains(&format!("{value:?}")),
                "{line:?}: {message}"
            );
            assert!(line.contains(&value.as_str()), "{line:?}: {message}");
        }
    }
}

#[test]
fn every_bad_value_is_reported_at_once() {
    let errors = flag_errors(&[
        "--outbound-port",
        "99999",
        "--inbound-ports",
        "1,2,x,y",
        "--exclude-outbound-cidrs",
        "nope",
        "--mode",
        "magic",
    ]);
    let flags: Vec<&str> = errors.iter().map(|e| e.flag).collect();
    assert_eq!(
        flags,
        [
            "--outbound-port",
            "--inbound-ports",
            "--exclude-outbound-cidrs",
            "--mode"
        ]
    );
    // Both bad items of one list are named.
    assert!(errors[1].problem.contains("\"x\"") && errors[1].problem.contains("\"y\""));
}

#[test]
fn every_flag_has_help_and_an_environment_variable() {
    use clap::CommandFactory as _;
    let command = Args::command();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let long = arg.get_long().expect("every flag is long");
        let env = arg
            .get_env()
            .unwrap_or_else(|| panic!("--{long} has no env"));
        let expected = format!("SLUICE_{}", long.to_uppercase().replace('-', "_"));
        assert_eq!(env.to_str(), Some(expected.as_str()), "--{long}");
        assert!(arg.get_help().is_some(), "--{long} has no help");
    }
    let help = Args::command().render_long_help().to_string();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "/proc/net/ip_tables_names",
        "iptables --version",
        "SLUICE_PROXY_UID",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

use super::*;
use crate::config::{Args, Invocation};
use clap::Parser as _;

/// The config of a command line (after `sluice-init`); every interface exists.
fn config(line: &[&str]) -> CaptureConfig {
    let args =
        Args::try_parse_from(std::iter::once("sluice-init").chain(line.iter().copied())).unwrap();
    Invocation::from_args(&args, |_| true).unwrap().config
}

/// Every rule as `table: -A CHAIN spec`, jumps included.
fn lines(rules: &RuleSet) -> Vec<String> {
    let mut lines = vec![];
    for table in &rules.tables {
        for chain in &table.chains {
            for rule in &chain.rules {
                lines.push(format!("{}: -A {} {rule}", table.name, chain.name));
            }
        }
        for jump in &table.jumps {
            lines.push(format!("{}: {jump}", table.name));
        }
    }
    lines
}

#[test]
fn defaults_ipv4() {
    let expected = [
        "nat: -A SLUICE_INBOUND -p tcp -m multiport --dports 15001,15006,15000,15021,15090 -j RETURN",
        "nat: -A SLUICE_INBOUND -p tcp -j SLUICE_IN_REDIRECT",
        "nat: -A SLUICE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "nat: -A SLUICE_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN",
        "nat: -A SLUICE_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner --uid-owner 1337 -j SLUICE_INBOUND",
        "nat: -A SLUICE_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner --gid-owner 1337 -j SLUICE_INBOUND",
        "nat: -A SLUICE_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "nat: -A SLUICE_OUTPUT -m owner --gid-owner 1337 -j RETURN",
        "nat: -A SLUICE_OUTPUT -o lo -j RETURN",
        "nat: -A SLUICE_OUTPUT -j SLUICE_REDIRECT",
        "nat: -A SLUICE_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "nat: -A PREROUTING -p tcp -j SLUICE_INBOUND",
        "nat: -A OUTPUT -p tcp -j SLUICE_OUTPUT",
    ];
    assert_eq!(lines(&ruleset(&config(&[]), Family::V4)), expected);
}

#[test]
fn ipv6_mirrors_ipv4_with_its_own_addresses() {
    let v4 = lines(&ruleset(&config(&[]), Family::V4));
    let v6 = lines(&ruleset(&config(&[]), Family::V6));
    let translated: Vec<String> = v4
        .iter()
        .map(|l| {
            l.replace("127.0.0.6/32", "::6/128")
                .replace("127.0.0.0/8", "::1/128")
        })
        .collect();
    assert_eq!(v6, translated);
}

/// For a command line and a family: lines that must be there, and substrings no line may have.
struct Case {
    line: &'static [&'static str],
    family: Family,
    present: &'static [&'static str],
    absent: &'static [&'static str],
}

#[test]
fn flags_shape_the_rules() {
    use Family::{V4, V6};
    let cases = [
        Case {
            line: &["--proxy-uid", "1000", "--proxy-gid", "2000"],
            family: V4,
            present: &[
                "nat: -A SLUICE_OUTPUT -m owner --uid-owner 1000 -j RETURN",
                "nat: -A SLUICE_OUTPUT -m owner --gid-owner 2000 -j RETURN",
                "nat: -A SLUICE_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner --uid-owner 1000 -j SLUICE_INBOUND",
            ],
            absent: &["1337"],
        },
        Case {
            line: &[
                "--outbound-port",
                "7001",
                "--inbound-port",
                "7006",
                "--admin-port",
                "7000",
            ],
            family: V4,
            present: &[
                "nat: -A SLUICE_REDIRECT -p tcp -j REDIRECT --to-ports 7001",
                "nat: -A SLUICE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 7006",
                "nat: -A SLUICE_INBOUND -p tcp -m multiport --dports 7001,7006,7000,15021,15090 -j RETURN",
            ],
            absent: &["15001", "15006"],
        },
        Case {
            line: &[
                "--inbound-ports",
                "8080,9090",
                "--exclude-inbound-ports",
                "22",
            ],
            family: V4,
            present: &[
                "nat: -A SLUICE_INBOUND -p tcp -m multiport --dports 22 -j RETURN",
                "nat: -A SLUICE_INBOUND -p tcp -m multiport --dports 8080,9090 -j SLUICE_IN_REDIRECT",
            ],
            absent: &["-A SLUICE_INBOUND -p tcp -j SLUICE_IN_REDIRECT"],
        },
        Case {
            // No inbound capture: no inbound chains, no PREROUTING jump, no lo redirect.
            line: &["--inbound-ports", ""],
            family: V4,
            present: &[
                "nat: -A SLUICE_OUTPUT -j SLUICE_REDIRECT",
                "nat: -A OUTPUT -p tcp -j SLUICE_OUTPUT",
            ],
            absent: &[
                "SLUICE_INBOUND",
                "SLUICE_IN_REDIRECT",
                "PREROUTING",
                "127.0.0.6",
            ],
        },
        Case {
            // No outbound capture: the proxy's calls to its own pod still go inbound.
            line: &["--outbound-cidrs", ""],
            family: V4,
            present: &[
                "nat: -A SLUICE_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner --uid-owner 1337 -j SLUICE_INBOUND",
                "nat: -A PREROUTING -p tcp -j SLUICE_INBOUND",
            ],
            absent: &["SLUICE_REDIRECT", "15001 -j", "--to-ports 15001"],
        },
        Case {
            line: &[
                "--outbound-cidrs",
                "10.96.0.0/12,fd00::/108",
                "--exclude-outbound-cidrs",
                "10.96.0.10,fd00::10",
            ],
            family: V4,
            present: &[
                "nat: -A SLUICE_OUTPUT -d 10.96.0.10/32 -j RETURN",
                "nat: -A SLUICE_OUTPUT -d 10.96.0.0/12 -j SLUICE_REDIRECT",
            ],
            absent: &["fd00", "-A SLUICE_OUTPUT -j SLUICE_REDIRECT"],
        },
        Case {
            line: &[
                "--outbound-cidrs",
                "10.96.0.0/12,fd00::/108",
                "--exclude-outbound-cidrs",
                "10.96.0.10,fd00::10",
            ],
            family: V6,
            present: &[
                "nat: -A SLUICE_OUTPUT -d fd00::10/128 -j RETURN",
                "nat: -A SLUICE_OUTPUT -d fd00::/108 -j SLUICE_REDIRECT",
            ],
            absent: &["10.96"],
        },
        Case {
            // Only IPv4 CIDRs listed: IPv6 keeps inbound capture, but nothing outbound.
            line: &["--outbound-cidrs", "10.0.0.0/8"],
            family: V6,
            present: &["nat: -A PREROUTING -p tcp -j SLUICE_INBOUND"],
            absent: &["SLUICE_REDIRECT"],
        },
        Case {
            line: &[
                "--exclude-outbound-ports",
                "25,465",
                "--include-outbound-ports",
                "80,443",
            ],
            family: V4,
            present: &[
                "nat: -A SLUICE_OUTPUT -p tcp -m multiport --dports 25,465 -j RETURN",
                "nat: -A SLUICE_OUTPUT -p tcp -m multiport --dports 80,443 -j SLUICE_REDIRECT",
            ],
            absent: &["-A SLUICE_OUTPUT -j SLUICE_REDIRECT"],
        },
        Case {
            line: &[
                "--outbound-cidrs",
                "10.0.0.0/8,192.168.0.0/16",
                "--include-outbound-ports",
                "80",
            ],
            family: V4,
            present: &[
                "nat: -A SLUICE_OUTPUT -d 10.0.0.0/8 -p tcp -m multiport --dports 80 -j SLUICE_REDIRECT",
                "nat: -A SLUICE_OUTPUT -d 192.168.0.0/16 -p tcp -m multiport --dports 80 -j SLUICE_REDIRECT",
            ],
            absent: &[],
        },
        Case {
            line: &["--exclude-interfaces", "eth1,veth+"],
            family: V4,
            present: &[
                "nat: -A SLUICE_INBOUND -i eth1 -j RETURN",
                "nat: -A SLUICE_INBOUND -i veth+ -j RETURN",
                "nat: -A SLUICE_OUTPUT -o eth1 -j RETURN",
                "nat: -A SLUICE_OUTPUT -o veth+ -j RETURN",
            ],
            absent: &[],
        },
        Case {
            line: &["--inbound-ports", "", "--outbound-cidrs", ""],
            family: V4,
            present: &[],
            absent: &["nat"],
        },
        Case {
            // tproxy: PREROUTING goes to mangle; nat keeps the lo path and lets marked
            // (transparent) connections of the proxy through.
            line: &["--mode", "tproxy"],
            family: V4,
            present: &[
                "nat: -A SLUICE_OUTPUT -m mark --mark 0x539 -j RETURN",
                "nat: -A SLUICE_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner --uid-owner 1337 -j SLUICE_INBOUND",
                "mangle: -A SLUICE_INBOUND -p tcp -m mark --mark 0x539 -j CONNMARK --save-mark",
                "mangle: -A SLUICE_INBOUND -i lo -j RETURN",
                "mangle: -A SLUICE_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
                "mangle: -A SLUICE_INBOUND -p tcp -m multiport --dports 15001,15006,15000,15021,15090 -j RETURN",
                "mangle: -A SLUICE_INBOUND -p tcp -j SLUICE_TPROXY",
                "mangle: -A SLUICE_TPROXY -p tcp -j TPROXY --on-port 15006 --tproxy-mark 0x539/0xffffffff",
                "mangle: -A SLUICE_OUTPUT -p tcp -m connmark --mark 0x539 -j CONNMARK --restore-mark",
                "mangle: -A PREROUTING -p tcp -j SLUICE_INBOUND",
                "mangle: -A OUTPUT -p tcp -j SLUICE_OUTPUT",
            ],
            absent: &["nat: -A PREROUTING"],
        },
        Case {
            line: &[
                "--mode",
                "tproxy",
                "--tproxy-mark",
                "0x100",
                "--inbound-ports",
                "8080",
            ],
            family: V6,
            present: &[
                "mangle: -A SLUICE_INBOUND -p tcp -m multiport --dports 8080 -j SLUICE_TPROXY",
                "mangle: -A SLUICE_TPROXY -p tcp -j TPROXY --on-port 15006 --tproxy-mark 0x100/0xffffffff",
            ],
            absent: &["0x539"],
        },
        Case {
            line: &["--mode", "tproxy", "--inbound-ports", ""],
            family: V4,
            present: &[],
            absent: &["mangle", "--mark"],
        },
    ];
    for case in cases {
        let lines = lines(&ruleset(&config(case.line), case.family));
        for wanted in case.present {
            assert!(
                lines.iter().any(|l| l == wanted),
                "{:?} {:?}: missing {wanted}\n{lines:#?}",
                case.line,
                case.family
            );
        }
        for unwanted in case.absent {
            assert!(
                !lines.iter().any(|l| l.contains(unwanted)),
                "{:?} {:?}: has {unwanted}\n{lines:#?}",
                case.line,
                case.family
            );
        }
    }
}

#[test]
fn the_order_of_the_output_chain_is_what_makes_it_right() {
    let lines = lines(&ruleset(
        &config(&[
            "--exclude-outbound-ports",
            "25",
            "--exclude-outbound-cidrs",
            "10.0.0.0/8",
        ]),
        Family::V4,
    ));
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle}"))
    };
    // Excluded ports win over everything, even the proxy calling its own pod.
    assert!(position("--dports 25 -j RETURN") < position("--uid-owner 1337 -j SLUICE_INBOUND"));
    // The passthrough source is let through before the proxy's lo traffic goes inbound.
    assert!(position("-s 127.0.0.6/32") < position("--uid-owner 1337 -j SLUICE_INBOUND"));
    // The proxy's own lo traffic goes inbound before the proxy's traffic is let through.
    assert!(
        position("--gid-owner 1337 -j SLUICE_INBOUND") < position("--uid-owner 1337 -j RETURN")
    );
    // Loopback and exclusions come before the capture.
    assert!(position("-o lo -j RETURN") < position("-j SLUICE_REDIRECT"));
    assert!(position("-d 10.0.0.0/8 -j RETURN") < position("-j SLUICE_REDIRECT"));
}

#[test]
fn long_port_lists_are_split_for_multiport() {
    let ports: Vec<String> = (1000..1020).map(|p| p.to_string()).collect();
    let list = ports.join(",");
    let lines = lines(&ruleset(
        &config(&["--exclude-inbound-ports", &list]),
        Family::V4,
    ));
    let chunks: Vec<&String> = lines.iter().filter(|l| l.contains("--dports 10")).collect();
    assert_eq!(chunks.len(), 2, "{chunks:#?}");
    assert!(chunks[0].contains("1000,1001,") && chunks[0].contains(",1014 "));
    assert!(chunks[1].contains("--dports 1015,1016,1017,1018,1019 -j RETURN"));
}

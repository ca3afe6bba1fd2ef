use super::*;

fn commands(current: Routing, wanted: bool, family: Family) -> Vec<String> {
    plan_routing(
        TproxyConfig {
            mark: 1337,
            table: 133,
        },
        family,
        current,
        wanted,
    )
    .iter()
    .map(ToString::to_string)
    .collect()
}

#[test]
fn routing_is_added_and_removed_only_as_needed() {
    let none = Routing {
        rule: false,
        route: false,
    };
    let both = Routing {
        rule: true,
        route: true,
    };
    let rule_only = Routing {
        rule: true,
        route: false,
    };
    let cases: &[(Routing, bool, Family, &[&str])] = &[
        (
            none,
            true,
            Family::V4,
            &[
                "ip -4 route add local default dev lo table 133",
                "ip -4 rule add fwmark 0x539 lookup 133",
            ],
        ),
        (both, true, Family::V4, &[]),
        (
            rule_only,
            true,
            Family::V6,
            &["ip -6 route add local default dev lo table 133"],
        ),
        (
            both,
            false,
            Family::V6,
            &[
                "ip -6 rule del fwmark 0x539 lookup 133",
                "ip -6 route del local default dev lo table 133",
            ],
        ),
        (
            rule_only,
            false,
            Family::V4,
            &["ip -4 rule del fwmark 0x539 lookup 133"],
        ),
        (none, false, Family::V4, &[]),
    ];
    for (current, wanted, family, expected) in cases {
        assert_eq!(
            commands(*current, *wanted, *family),
            *expected,
            "{current:?} {wanted}"
        );
    }
}

#[test]
fn adds_tells_additions_from_removals() {
    let add = plan_routing(
        TproxyConfig::default(),
        Family::V4,
        Routing::default(),
        true,
    );
    assert!(add.iter().all(IpCommand::adds));
    let del = plan_routing(
        TproxyConfig::default(),
        Family::V4,
        Routing {
            rule: true,
            route: true,
        },
        false,
    );
    assert!(!del.iter().any(IpCommand::adds));
}

use super::*;

#[test]
fn rule_count_ignores_empty_tables_and_comments() {
    let cases: &[(&str, RuleCount)] = &[
        ("", RuleCount::default()),
        (
            "# Warning: iptables-legacy tables present\n*nat\n:PREROUTING ACCEPT [0:0]\n\
             :OUTPUT ACCEPT [3:180]\nCOMMIT\n",
            RuleCount::default(),
        ),
        (
            "*filter\n:INPUT DROP [0:0]\n:KUBE - [0:0]\n-A INPUT -j KUBE\nCOMMIT\n",
            RuleCount {
                rules: 2,
                sluice: false,
            },
        ),
        (
            "*nat\n:SLUICE_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j SLUICE_OUTPUT\nCOMMIT\n",
            RuleCount {
                rules: 2,
                sluice: true,
            },
        ),
    ];
    for (save, expected) in cases {
        assert_eq!(RuleCount::of(save), *expected, "{save}");
    }
}

fn rules(rules: usize) -> Result<RuleCount, String> {
    Ok(RuleCount {
        rules,
        sluice: false,
    })
}

fn sluice(rules: usize) -> Result<RuleCount, String> {
    Ok(RuleCount {
        rules,
        sluice: true,
    })
}

fn unusable() -> Result<RuleCount, String> {
    Err("iptables-legacy-save not found".to_owned())
}

#[test]
fn auto_detection_decides_in_order() {
    use Backend::{Legacy, Nft};
    let nft_default = Some((Nft, "iptables v1.8.9 (nf_tables)".to_owned()));
    let legacy_default = Some((Legacy, "iptables v1.8.9 (legacy)".to_owned()));
    let facts = |legacy, nft, legacy_in_kernel, image_default: &Option<(Backend, String)>| Facts {
        legacy,
        nft,
        legacy_in_kernel,
        image_default: image_default.clone(),
    };
    let cases: &[(&str, Facts, Backend, &str)] = &[
        (
            "only legacy installed",
            facts(rules(0), unusable(), true, &nft_default),
            Legacy,
            "nft is not usable",
        ),
        (
            "only nft installed",
            facts(unusable(), rules(0), true, &legacy_default),
            Nft,
            "legacy is not usable",
        ),
        (
            "sluice's chains in legacy",
            facts(sluice(3), rules(50), true, &nft_default),
            Legacy,
            "sluice's chains",
        ),
        (
            "sluice's chains in nft",
            facts(rules(50), sluice(3), true, &legacy_default),
            Nft,
            "sluice's chains",
        ),
        (
            "rules in legacy only",
            facts(rules(4), rules(0), true, &nft_default),
            Legacy,
            "4 legacy and 0 nft",
        ),
        (
            "rules in nft only",
            facts(rules(0), rules(4), true, &legacy_default),
            Nft,
            "0 legacy and 4 nft",
        ),
        (
            "rules in both, more in legacy",
            facts(rules(9), rules(2), true, &nft_default),
            Legacy,
            "rules are there",
        ),
        (
            "rules in both, more in nft",
            facts(rules(2), rules(9), true, &legacy_default),
            Nft,
            "rules are there",
        ),
        (
            "nothing, no legacy in the kernel",
            facts(rules(0), rules(0), false, &legacy_default),
            Nft,
            "no legacy iptables loaded",
        ),
        (
            "nothing: the image's default, nft",
            facts(rules(0), rules(0), true, &nft_default),
            Nft,
            "(nf_tables)",
        ),
        (
            "nothing: the image's default, legacy",
            facts(rules(0), rules(0), true, &legacy_default),
            Legacy,
            "(legacy)",
        ),
        (
            "nothing, no iptables command",
            facts(rules(0), rules(0), true, &None),
            Nft,
            "no `iptables`",
        ),
    ];
    for (what, facts, backend, reason) in cases {
        let (chosen, why) = decide(facts).unwrap();
        assert_eq!(chosen, *backend, "{what}: {why}");
        assert!(why.contains(reason), "{what}: {why}");
    }
    let err = decide(&facts(unusable(), unusable(), true, &nft_default)).unwrap_err();
    assert!(
        err.to_string().contains("no usable iptables backend"),
        "{err}"
    );
}

#[test]
fn programs_per_backend_and_family() {
    assert_eq!(
        Backend::Legacy.save_program(Family::V4),
        "iptables-legacy-save"
    );
    assert_eq!(Backend::Nft.save_program(Family::V6), "ip6tables-nft-save");
    assert_eq!(
        Backend::Legacy.restore_program(Family::V6),
        "ip6tables-legacy-restore"
    );
    assert_eq!(
        Backend::Nft.restore_program(Family::V4),
        "iptables-nft-restore"
    );
}

#[test]
fn a_failed_restore_quotes_the_failing_line() {
    let err = Error::Command {
        command: "iptables-nft-restore --noflush".to_owned(),
        status: "exit status: 1".to_owned(),
        stderr: "iptables-nft-restore: line 3 failed".to_owned(),
    };
    let err = with_failed_line(
        err,
        "*nat\n:SLUICE_OUTPUT - [0:0]\n-A SLUICE_OUTPUT -j NOPE\nCOMMIT\n",
    );
    assert!(
        err.to_string()
            .contains("(the line: `-A SLUICE_OUTPUT -j NOPE`)"),
        "{err}"
    );
}

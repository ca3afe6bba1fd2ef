//! Merging a delegate's rules into its root rule, case by case.

use super::*;

fn string(yaml: &str) -> StringMatch {
    serde_norway::from_str(yaml).unwrap()
}

fn block(yaml: &str) -> HttpMatchRequest {
    serde_norway::from_str(yaml).unwrap()
}

#[test]
fn a_delegate_match_must_fit_inside_the_root_match() {
    // (root, leaf, conflict)
    let cases = [
        ("{prefix: /api}", "{prefix: /api/v1}", false),
        ("{prefix: /api}", "{exact: /api/items}", false),
        ("{prefix: /api}", "{prefix: /web}", true),
        ("{prefix: /api}", "{exact: /web}", true),
        ("{exact: /api}", "{exact: /api}", false),
        ("{exact: /api}", "{exact: /api/x}", true),
        ("{exact: /api}", "{prefix: /api}", true),
        ("{regex: /a.*}", "{prefix: /a}", true),
        ("{prefix: /a}", "{regex: /a.*}", true),
    ];
    for (root, leaf, conflict) in cases {
        assert_eq!(
            string_conflict(Some(&string(root)), Some(&string(leaf))),
            conflict,
            "{root} vs {leaf}"
        );
    }
    assert!(!string_conflict(None, Some(&string("{regex: .*}"))));
    assert!(!string_conflict(Some(&string("{exact: x}")), None));
}

#[test]
fn blocks_conflict_on_any_field_and_merge_the_rest_from_the_root() {
    let root = block(
        "{uri: {prefix: /api}, headers: {x-team: {exact: a}}, port: 80, sourceLabels: {app: web}}",
    );
    for leaf in [
        "{headers: {x-team: {exact: b}}}",
        "{port: 81}",
        "{sourceLabels: {app: other}}",
        "{ignoreUriCase: true}",
    ] {
        assert!(conflicts(&root, &block(leaf)), "{leaf}");
    }
    let leaf = block("{uri: {prefix: /api/v2}, headers: {x-user: {exact: u}}}");
    assert!(!conflicts(&root, &leaf));
    let merged = merge_match(&root, &leaf);
    assert_eq!(merged.uri, Some(string("{prefix: /api/v2}")));
    assert_eq!(merged.port, Some(80));
    assert_eq!(
        merged.headers.keys().collect::<Vec<_>>(),
        ["x-team", "x-user"]
    );
    assert_eq!(merged.source_labels["app"], "web");
}

#[test]
fn a_delegate_rule_takes_the_root_rules_settings_it_leaves_out() {
    let root: HttpRoute = serde_norway::from_str(
        "{name: root, match: [{uri: {prefix: /api}}], delegate: {name: api}, timeout: 3s, headers: {request: {set: {x-from: root}}}}",
    )
    .unwrap();
    let leaf: HttpRoute = serde_norway::from_str(
        "{name: v2, match: [{uri: {prefix: /api/v2}}], route: [{destination: {host: api-v2}}], timeout: 1s}",
    )
    .unwrap();
    let merged = merge_route(&root, &leaf).expect("fits");
    assert_eq!(merged.name.as_deref(), Some("root-v2"));
    assert_eq!(
        merged.timeout, leaf.timeout,
        "the delegate's own setting wins"
    );
    assert_eq!(merged.headers, root.headers, "the root's fills the gap");
    assert_eq!(merged.route, leaf.route);
    assert!(merged.delegate.is_none());
    let outside: HttpRoute = serde_norway::from_str(
        "{match: [{uri: {prefix: /web}}], route: [{destination: {host: web}}]}",
    )
    .unwrap();
    assert!(
        merge_route(&root, &outside).is_none(),
        "dropped: outside the root's prefix"
    );
    let catch_all: HttpRoute =
        serde_norway::from_str("{route: [{destination: {host: api}}]}").unwrap();
    assert_eq!(
        merge_route(&root, &catch_all).unwrap().matches,
        root.matches,
        "a delegate rule without matches takes the root's"
    );
}

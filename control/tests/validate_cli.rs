//! `sluice validate` as a user runs it: output lines and exit codes.

use std::path::Path;
use std::process::Command;

fn sluice(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn seed(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seeds");
    dir.join(name).display().to_string()
}

#[test]
fn valid_config_prints_ok_and_exits_0() {
    let (code, out) = sluice(&["validate", &seed("001-05-reviews-destination-rule.yaml")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("ok DestinationRule default/reviews\n"),
        "{out}"
    );
}

#[test]
fn invalid_config_names_the_field_and_exits_1() {
    let (code, out) = sluice(&[
        "validate",
        &seed("000-05-jsonplaceholder-service-entry.yaml"),
        &seed("001-05-reviews-destination-rule.yaml"),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ok DestinationRule default/reviews"), "{out}");
    assert!(
        out.contains("(ServiceEntry default/jsonplaceholder): spec.ports[0].resolution: unknown field \"resolution\""),
        "{out}"
    );
    assert!(
        out.contains("belongs beside \"ports\": spec.resolution"),
        "{out}"
    );
}

#[test]
fn unusable_arguments_exit_2() {
    assert_eq!(sluice(&["validate"]).0, 2);
    let (code, out) = sluice(&["validate", "/no/such/file.yaml"]);
    assert_eq!(code, 2);
    assert!(
        out.contains("/no/such/file.yaml: no such file or directory"),
        "{out}"
    );
}

#[test]
fn reads_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["validate", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok Gateway default/gw\n"
    );
}

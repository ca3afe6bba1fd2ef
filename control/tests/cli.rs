//! The `sluice inject` / `sluice uninject` commands and the `sluice-control` binary, run as
//! processes.

#[path = "support/tls.rs"]
mod tls;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sluice(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The command may exit before reading (bad arguments): a broken pipe is fine.
    let _ = input.write_all(stdin.unwrap_or_default().as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx\n";
const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";

#[test]
fn inject_reads_files_directories_and_stdin_in_order() {
    let dir = dir("inputs");
    std::fs::create_dir(dir.join("more")).unwrap();
    std::fs::write(dir.join("pod.yaml"), POD).unwrap();
    std::fs::write(dir.join("more/b-service.yaml"), SERVICE).unwrap();
    std::fs::write(dir.join("more/a-pod.json"), r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"j","image":"j"}]}}"#).unwrap();
    std::fs::write(dir.join("more/notes.txt"), "not a manifest").unwrap();
    let pod = dir.join("pod.yaml").display().to_string();
    let more = dir.join("more").display().to_string();
    let out = sluice(
        &["inject", "-f", &pod, "-f", &more, "-f", "-"],
        Some(SERVICE),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let docs: Vec<&str> = stdout.split("---\n").collect();
    assert_eq!(docs.len(), 4, "{stdout}");
    assert!(docs[0].contains("name: sluice-proxy") && docs[0].contains("name: web"));
    assert!(docs[1].contains("name: sluice-proxy") && docs[1].contains("name: j"));
    assert_eq!(docs[2], SERVICE);
    assert_eq!(docs[3], SERVICE);

    let output = dir.join("out.yaml");
    let out = sluice(
        &[
            "inject",
            "-f",
            &pod,
            "-o",
            &output.display().to_string(),
            "--native-sidecar",
            "false",
        ],
        None,
    );
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.contains("postStart"), "classic mode: {written}");

    let back = sluice(&["uninject", "-f", &output.display().to_string()], None);
    assert!(back.status.success(), "{}", text(&back.stderr));
    let back: serde_json::Value = serde_norway::from_str(&text(&back.stdout)).unwrap();
    assert_eq!(
        back,
        serde_norway::from_str::<serde_json::Value>(POD).unwrap()
    );
}

#[test]
fn a_bad_document_fails_the_run_naming_it_and_nothing_is_written() {
    let dir = dir("bad");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        format!("{POD}---\n{SERVICE}---\nkind: Pod\nspec: [\n"),
    )
    .unwrap();
    let output = dir.join("out.yaml");
    let out = sluice(
        &[
            "inject",
            "-f",
            &bad.display().to_string(),
            "-o",
            &output.display().to_string(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: doc 3: not valid YAML", bad.display())),
        "{stderr}"
    );
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert!(!output.exists(), "no half-done output");

    let out = sluice(&["inject", "-f", &bad.display().to_string()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        text(&out.stdout)
    );

    let out = sluice(&["uninject", "-f", "-"], Some("a: [\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("-: doc 1: not valid YAML"),
        "{}",
        text(&out.stderr)
    );

    let out = sluice(
        &[
            "inject",
            "-f",
            &dir.join("missing.yaml").display().to_string(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_file_and_its_errors() {
    let dir = dir("config");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "images:\n  proxy: example.com/proxy:9\nnativeSidecar: false\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let out = sluice(&["inject", "--config", &config, "-f", "-"], Some(POD));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("image: example.com/proxy:9"), "{stdout}");
    let out = sluice(
        &[
            "inject",
            "--config",
            &config,
            "--native-sidecar",
            "true",
            "-f",
            "-",
        ],
        Some(POD),
    );
    assert!(text(&out.stdout).contains("restartPolicy: Always"));

    std::fs::write(&config, "proxy:\n  ports:\n    health: 0\n").unwrap();
    let out = sluice(&["inject", "--config", &config, "-f", "-"], Some(POD));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("proxy.ports.health: must not be 0"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn skips_are_reported_on_stderr() {
    let host = POD.replace("spec:\n", "spec:\n  hostNetwork: true\n");
    let out = sluice(&["inject", "-f", "-"], Some(&host));
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), host);
    assert!(text(&out.stderr).contains("-: doc 1 (Pod web): skipped: the pod uses hostNetwork"));
}

#[test]
fn injector_binary_serves_over_tls() {
    let dir = dir("binary");
    let pki = tls::Pki::new();
    let (cert, key) = pki.leaf("binary");
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-control"))
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_TLS_CERT", dir.join("tls.crt"))
        .env("SLUICE_TLS_KEY", dir.join("tls.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let result = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut client) = tls::Client::connect(addr, &pki.ca_pem(), false).await {
                return client.request("GET", "/healthz", Vec::new()).await;
            }
            if Instant::now() > deadline {
                return Err(anyhow::anyhow!("sluice-control did not come up on {addr}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    let (status, body) = result.unwrap();
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));

    let out = Command::new(env!("CARGO_BIN_EXE_sluice-control"))
        .args([
            "--tls-cert",
            "/nonexistent.crt",
            "--tls-key",
            "/nonexistent.key",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent.crt"),
        "{}",
        text(&out.stderr)
    );
}

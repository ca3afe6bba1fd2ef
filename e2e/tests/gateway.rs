//! The ingress gateway end to end: sluice-proxy `--mode gateway` in a pod of its own (uid 1337
//! on ports 80 and 443, with `net.ipv4.ip_unprivileged_port_start=0` as the chart sets it),
//! myapp v1 and v2 in pods behind it, and a client pod with curl (`--resolve`, `--cacert`) and
//! hyper (HTTP/1.1 keep-alive and HTTP/2). One set-up walks the five stages of seed 002
//! (`examples/gateway/stage-*.yaml`) as live changes under a load that sees no failed
//! request, then host filtering, a VirtualService bound to two Gateways, httpsRedirect, SIMPLE
//! TLS for two hosts on one port, PASSTHROUGH, the edge headers, a malformed change, and a
//! ReleasePolicy's protected gray headers (a forged `x-gray-tag` reaches v1; a shared token or
//! a JWT with the claim lets it reach v2), and sticky users by the client address the
//! gateway sees.

mod proxy_support;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context as _, ensure};
use proxy_support::{
    App, CurlReply, TIMEOUT, curl, h1_connect, h1_get, h2_connect, h2_get, http_app,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sluice_e2e::{Node, Pod, Process, binary, eventually};

const MYAPP: &str = "myapp.example.com";

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/gateway")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

const STAGES: [&str; 5] = [
    "stage-1-internal-gray.yaml",
    "stage-2-external-gray.yaml",
    "stage-3-weighted-90-10.yaml",
    "stage-4-full-release.yaml",
    "stage-5-emergency-rollback.yaml",
];

/// A CA, and certificates for `a.example.com` and `b.example.com` (gateway) and
/// `secure.example.com` (the passthrough backend), as PEM files in `dir`.
fn certificates(dir: &Path) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "gateway e2e CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for name in ["a.example.com", "b.example.com", "secure.example.com"] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    }
}

/// An ES256 signing key, its JWKS written to `dir/jwks.json` (kid `k1`).
fn jwt_key(dir: &Path) -> jsonwebtoken::EncodingKey {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let pair = KeyPair::generate().unwrap();
    let raw = pair.public_key_raw();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
    }]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der())
}

/// A bearer token for `groups`, signed by `key`, valid for ten minutes.
fn bearer(key: &jsonwebtoken::EncodingKey, groups: &[&str]) -> String {
    let mut head = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    head.kid = Some("k1".into());
    let claims = serde_json::json!({
        "iss": "https://issuer.example",
        "exp": jsonwebtoken::get_current_timestamp() + 600,
        "groups": groups,
    });
    let jwt = jsonwebtoken::encode(&head, &claims, key).unwrap();
    format!("Bearer {jwt}")
}

/// A route by `x-gray-tag: v2` to v2 (else v1), and a ReleasePolicy protecting the gray
/// headers at the seed's gateway: a token from `dir/token`, or a JWT of group gray-testers.
fn protected(dir: &Path) -> String {
    let f = |n: &str| dir.join(n).display().to_string();
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: myapp, namespace: production}}
spec:
  hosts: [myapp.example.com]
  gateways: [istio-system/istio-ingressgateway]
  http:
  - match: [{{headers: {{x-gray-tag: {{exact: v2}}}}}}]
    route: [{{destination: {{host: myapp.production.svc.cluster.local, subset: v2}}}}]
  - route: [{{destination: {{host: myapp.production.svc.cluster.local, subset: v1}}}}]
---
apiVersion: sluice.dev/v1alpha1
kind: ReleasePolicy
metadata: {{name: myapp, namespace: production}}
spec:
  host: myapp.production.svc.cluster.local
  protectedHeaders:
    gateways: [istio-system/istio-ingressgateway]
    token: {{header: x-gray-auth, secretFile: {token}}}
    jwt:
      jwksFile: {jwks}
      issuer: https://issuer.example
      claim: groups
      values: [gray-testers]
"#,
        token = f("token"),
        jwks = f("jwks.json"),
    )
}

/// A 50/50 route at the gateway and a ReleasePolicy keeping each client address on its
/// version.
const BY_CLIENT_ADDRESS: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: myapp, namespace: production}
spec:
  hosts: [myapp.example.com]
  gateways: [istio-system/istio-ingressgateway]
  http:
  - route:
    - {destination: {host: myapp.production.svc.cluster.local, subset: v1}, weight: 50}
    - {destination: {host: myapp.production.svc.cluster.local, subset: v2}, weight: 50}
---
apiVersion: sluice.dev/v1alpha1
kind: ReleasePolicy
metadata: {name: myapp, namespace: production}
spec:
  host: myapp.production.svc.cluster.local
  sticky: {clientAddress: true}
"#;

/// The Gateways and VirtualServices besides the stages: `production/public` (a `*` server on
/// 8080, an httpsRedirect server on 8081, SIMPLE TLS for a and b on 443, PASSTHROUGH on 8443),
/// `www.example.com` bound to both Gateways, and `secure.example.com` passed through.
fn extras(certs: &Path, secure: IpAddr) -> String {
    let c = |f: &str| certs.join(f).display().to_string();
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: public, namespace: production}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8080, name: http-any, protocol: HTTP}}
    hosts: ["*"]
  - port: {{number: 8081, name: http-redirect, protocol: HTTP}}
    hosts: ["*"]
    tls: {{httpsRedirect: true}}
  - port: {{number: 443, name: https-a, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {a}, privateKey: {a_key}}}
  - port: {{number: 443, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {b}, privateKey: {b_key}}}
  - port: {{number: 8443, name: tls-secure, protocol: TLS}}
    hosts: [secure.example.com]
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: www, namespace: production}}
spec:
  hosts: [www.example.com, a.example.com, b.example.com]
  gateways: [public, istio-system/istio-ingressgateway]
  http: [{{route: [{{destination: {{host: myapp.production.svc.cluster.local, subset: v1}}}}]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure, namespace: production}}
spec:
  hosts: [secure.production.svc.cluster.local]
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  resolution: STATIC
  endpoints: [{{address: {secure}, ports: {{tls: 9443}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure, namespace: production}}
spec:
  hosts: [secure.example.com]
  gateways: [public]
  tls:
  - match: [{{sniHosts: [secure.example.com]}}]
    route: [{{destination: {{host: secure.production.svc.cluster.local}}}}]
"#,
        a = c("a.example.com.pem"),
        a_key = c("a.example.com-key.pem"),
        b = c("b.example.com.pem"),
        b_key = c("b.example.com-key.pem"),
    )
}

/// A directory of its own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("sluice-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// myapp's ServiceEntry: v1 and v2 pods, the app on 8080.
fn myapp(v1: IpAddr, v2: IpAddr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: myapp, namespace: production}}
spec:
  hosts: [myapp.production.svc.cluster.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
  - {{address: {v1}, ports: {{http: 8080}}, labels: {{version: v1}}}}
  - {{address: {v2}, ports: {{http: 8080}}, labels: {{version: v2}}}}
"#
    )
}

/// The gateway pod and its proxy.
struct Gateway {
    pod: Pod,
    config: Dir,
    proxy: Process,
}

impl Gateway {
    fn local(&self, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
        let out = self
            .pod
            .command("curl")
            .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()?;
        let text = String::from_utf8(out.stdout)?;
        let (body, code) = text.rsplit_once('\n').context("no status")?;
        Ok((code.parse()?, body.to_string()))
    }

    fn status(&self) -> anyhow::Result<serde_json::Value> {
        let (_, body) = self.local(15000, "/config_dump")?;
        Ok(serde_json::from_str::<serde_json::Value>(&body)?["status"].clone())
    }

    /// Writes `file` and waits until the gateway has taken it (a new version or an error).
    fn apply(&self, file: &str, yaml: &str) -> anyhow::Result<serde_json::Value> {
        let before = self.status()?;
        let tmp = self.config.0.join(format!(".{file}"));
        std::fs::write(&tmp, yaml)?;
        std::fs::rename(&tmp, self.config.0.join(file))?;
        eventually(&format!("the gateway to take {file}"), TIMEOUT, || {
            let now = self.status()?;
            ensure!(now != before, "status unchanged");
            Ok(now)
        })
    }
}

struct Curl<'a> {
    client: &'a Pod,
    gateway: IpAddr,
}

impl Curl<'_> {
    /// curl to `host:port` at the gateway, with `extra` flags; the answering app.
    fn get(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        path: &str,
        extra: &[&str],
    ) -> anyhow::Result<CurlReply> {
        let resolve = format!("{host}:{port}:{}", self.gateway);
        let args = [&["--resolve", resolve.as_str()][..], extra].concat();
        curl(
            self.client,
            &format!("{scheme}://{host}:{port}{path}"),
            &args,
        )
    }

    fn app(&self, headers: &[(&str, &str)]) -> anyhow::Result<String> {
        let flags: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let mut args = Vec::new();
        for f in &flags {
            args.extend(["-H", f.as_str()]);
        }
        let reply = self.get("http", MYAPP, 80, "/", &args)?;
        ensure!(reply.status == 200, "{reply:?}");
        Ok(reply.app)
    }
}

/// Requests on an HTTP/1.1 keep-alive and an HTTP/2 connection until stopped: the number sent
/// and the failures.
fn load(
    runtime: &tokio::runtime::Runtime,
    gateway: SocketAddr,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<anyhow::Result<usize>> {
    runtime.spawn(async move {
        let mut h1 = h1_connect(gateway).await?;
        let mut h2 = h2_connect(gateway).await?;
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            let (s1, _) = h1_get(&mut h1, MYAPP, "/load").await?;
            let (s2, _) = h2_get(&mut h2, &format!("http://{MYAPP}/load")).await?;
            if s1 != 200 || s2 != 200 {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            sent += 2;
        }
        Ok(sent)
    })
}

#[test]
fn the_five_stages_of_seed_002_and_the_edge_on_real_clients() -> anyhow::Result<()> {
    let node = Node::new("gateway")?;
    let v1: App = http_app(&node, "v1", "myapp", "v1", 8080)?;
    let v2: App = http_app(&node, "v2", "myapp", "v2", 8080)?;
    let secure = node.pod("secure")?;
    let gw = node.pod("gateway")?;
    let client = node.pod("client")?;
    let certs = Dir::new("gateway-certs");
    certificates(&certs.0);

    // The passthrough backend terminates TLS itself (openssl's test server).
    let mut backend = secure.command("openssl");
    backend
        .args(["s_server", "-quiet", "-accept", "9443", "-www", "-cert"])
        .arg(certs.0.join("secure.example.com.pem"))
        .arg("-key")
        .arg(certs.0.join("secure.example.com-key.pem"));
    let _backend = secure.spawn(backend)?;

    let config = Dir::new("gateway-config");
    let base = [
        example("gateway.yaml"),
        example("destination-rule.yaml"),
        myapp(v1.pod.ipv4.into(), v2.pod.ipv4.into()),
    ]
    .join("\n---\n");
    std::fs::write(config.0.join("base.yaml"), base)?;
    std::fs::write(
        config.0.join("extras.yaml"),
        extras(&certs.0, secure.ipv4.into()),
    )?;
    std::fs::write(config.0.join("vs.yaml"), example(STAGES[0]))?;

    // As the chart's gateway pods: uid 1337, low ports opened by the sysctl.
    let sysctl = gw
        .command("sysctl")
        .args(["-qw", "net.ipv4.ip_unprivileged_port_start=0"])
        .status()?;
    ensure!(sysctl.success(), "sysctl: {sysctl}");
    let mut cmd = gw.command_as(1337, 1337, binary("sluice-proxy"));
    cmd.args([
        "--mode",
        "gateway",
        "--namespace",
        "istio-system",
        "--labels",
        "istio=ingressgateway,app=istio-ingressgateway",
        "--log-level",
        "info,sluice_proxy=debug",
        "--config",
    ])
    .arg(&config.0);
    let proxy = gw.spawn(cmd)?;
    let gateway = Gateway {
        pod: gw,
        config,
        proxy,
    };
    eventually("the gateway to listen on 80", TIMEOUT, || {
        let reply = curl(
            &client,
            &format!("http://{}:80/", gateway.pod.ipv4),
            &["-H", "host: myapp.example.com"],
        )?;
        ensure!(reply.status == 200, "{reply:?}");
        Ok(())
    })
    .with_context(|| format!("gateway log:\n{}", gateway.proxy.stderr()))?;
    let c = Curl {
        client: &client,
        gateway: gateway.pod.ipv4.into(),
    };

    // The five stages, each a live change under load on keep-alive HTTP/1.1 and HTTP/2.
    let runtime = client.runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let at = SocketAddr::new(gateway.pod.ipv4.into(), 80);
    let background = load(&runtime, at, stop.clone(), failures.clone());
    let internal = [
        ("x-gray-tag", "internal-test"),
        ("x-gray-token", "secret-token-12345"),
    ];

    // 1: internal gray by two headers.
    assert_eq!(c.app(&internal)?, "myapp-v2");
    assert_eq!(
        c.app(&internal[..1])?,
        "myapp-v1",
        "one header is not enough"
    );
    assert_eq!(c.app(&[])?, "myapp-v1");
    // 2: external gray: user id ending in 0, region, iOS 3.x.
    gateway.apply("vs.yaml", &example(STAGES[1]))?;
    assert_eq!(c.app(&[("x-user-id", "1230")])?, "myapp-v2");
    assert_eq!(c.app(&[("x-user-id", "1231")])?, "myapp-v1");
    assert_eq!(c.app(&[("x-user-region", "beijing")])?, "myapp-v2");
    assert_eq!(
        c.app(&[("x-app-platform", "ios"), ("x-app-version", "3.2.1")])?,
        "myapp-v2"
    );
    assert_eq!(
        c.app(&[("x-app-platform", "ios"), ("x-app-version", "2.9")])?,
        "myapp-v1"
    );
    assert_eq!(c.app(&internal)?, "myapp-v2");
    // 3: 90/10 (1,000 requests: 100 ± 47 to v2, five standard deviations).
    gateway.apply("vs.yaml", &example(STAGES[2]))?;
    // Spawned, so that its sockets are made in the client pod.
    let to_v2 = runtime
        .block_on(runtime.spawn(async move {
            let mut conn = h1_connect(at).await?;
            let mut to_v2 = 0;
            for _ in 0..1000 {
                let (status, app) = h1_get(&mut conn, MYAPP, "/split").await?;
                ensure!(status == 200, "status {status}");
                to_v2 += usize::from(app == "myapp-v2");
            }
            anyhow::Ok(to_v2)
        }))?
        .with_context(|| format!("gateway log:\n{}", gateway.proxy.stderr()))?;
    assert!(
        (53..=147).contains(&to_v2),
        "90/10 gave {to_v2} of 1000 to v2"
    );
    assert_eq!(c.app(&internal)?, "myapp-v2");
    // 4: full release with the ops-only rollback entry.
    gateway.apply("vs.yaml", &example(STAGES[3]))?;
    assert_eq!(c.app(&[])?, "myapp-v2");
    assert_eq!(
        c.app(&[("x-rollback", "v1"), ("x-ops-token", "ops-secret-token")])?,
        "myapp-v1"
    );
    assert_eq!(
        c.app(&[("x-rollback", "v1")])?,
        "myapp-v2",
        "the token is needed"
    );
    // 5: emergency rollback.
    gateway.apply("vs.yaml", &example(STAGES[4]))?;
    for _ in 0..5 {
        assert_eq!(c.app(&internal)?, "myapp-v1");
    }
    // A malformed change is rejected; stage 5 keeps serving.
    let status = gateway.apply("vs.yaml", "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: myapp, namespace: production}\nspec:\n  hosts: [myapp.example.com]\n  gateways: [istio-system/istio-ingressgateway]\n  http:\n  - route:\n    - destination: {host: myapp.production.svc.cluster.local, subset: v2}\n      weight: 100\n      wieght: 5\n")?;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("vs.yaml"),
        "{status}"
    );
    assert_eq!(c.app(&[])?, "myapp-v1");
    stop.store(true, Ordering::Relaxed);
    let sent = runtime.block_on(background)??;
    assert!(sent > 0);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed requests under the live changes"
    );

    // Host filtering: a server host admits its hosts only; unknown hosts get a short 404.
    let r = c.get("http", "unknown.example.com", 80, "/", &[])?;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "no route for this host\n")
    );
    let r = c.get("http", "www.example.com", 80, "/", &[])?;
    assert_eq!(
        r.status, 404,
        "bound to this Gateway, but its server does not list the host"
    );
    // The same VirtualService through its other Gateway's `*` server, over h2c too.
    assert_eq!(
        c.get("http", "www.example.com", 8080, "/", &[])?.app,
        "myapp-v1"
    );
    let r = c.get(
        "http",
        "www.example.com",
        8080,
        "/",
        &["--http2-prior-knowledge"],
    )?;
    assert!(r.head.starts_with("HTTP/2 200"), "{}", r.head);
    assert_eq!(
        c.get("http", "nothing.example.com", 8080, "/", &[])?.status,
        404
    );
    // httpsRedirect.
    let r = c.get("http", "www.example.com", 8081, "/path?q=1", &[])?;
    assert_eq!(r.status, 301);
    assert!(
        r.head
            .contains("location: https://www.example.com/path?q=1"),
        "{}",
        r.head
    );
    // SIMPLE TLS for two hosts on one port: curl checks each certificate against its host.
    let ca = certs.0.join("ca.pem").display().to_string();
    for host in ["a.example.com", "b.example.com"] {
        let r = c.get("https", host, 443, "/", &["--cacert", &ca])?;
        assert_eq!((r.status, r.app.as_str()), (200, "myapp-v1"), "{host}");
        assert_eq!(r.seen().headers["x-forwarded-proto"], "https");
        let r = c.get("https", host, 443, "/", &["--cacert", &ca, "--http2"])?;
        assert!(
            r.head.starts_with("HTTP/2 200"),
            "ALPN h2 for {host}: {}",
            r.head
        );
    }
    // PASSTHROUGH: curl reaches openssl's server through the gateway, on its certificate.
    let r = c.get("https", "secure.example.com", 8443, "/", &["--cacert", &ca])?;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("s_server"), "{}", r.body);
    // Edge headers: the client appended to x-forwarded-for; request ids made or kept.
    let seen = c
        .get(
            "http",
            MYAPP,
            80,
            "/",
            &["-H", "x-forwarded-for: 198.51.100.7"],
        )?
        .seen();
    assert_eq!(
        seen.headers["x-forwarded-for"],
        format!("198.51.100.7, {}", client.ipv4)
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-request-id"].len(), 36);
    let seen = c
        .get("http", MYAPP, 80, "/", &["-H", "x-request-id: given-id"])?
        .seen();
    assert_eq!(seen.headers["x-request-id"], "given-id");

    // Protected gray headers: an outside request cannot route itself by x-gray-tag; the
    // shared token (never forwarded) or a JWT with the claim can.
    std::fs::write(certs.0.join("token"), "gray-secret-42\n")?;
    let signer = jwt_key(&certs.0);
    gateway.apply("vs.yaml", &protected(&certs.0))?;
    let forged = [("x-gray-tag", "v2")];
    assert_eq!(c.app(&forged)?, "myapp-v1", "a forged x-gray-tag");
    let token = [("x-gray-tag", "v2"), ("x-gray-auth", "gray-secret-42")];
    assert_eq!(c.app(&token)?, "myapp-v2", "the shared token");
    let seen = c
        .get(
            "http",
            MYAPP,
            80,
            "/",
            &["-H", "x-gray-tag: v2", "-H", "x-gray-auth: gray-secret-42"],
        )?
        .seen();
    assert_eq!(seen.headers["x-gray-tag"], "v2");
    assert!(
        !seen.headers.contains_key("x-gray-auth"),
        "the token is not forwarded"
    );
    let wrong = [("x-gray-tag", "v2"), ("x-gray-auth", "gray-secret-43")];
    assert_eq!(c.app(&wrong)?, "myapp-v1", "a wrong token");
    let jwt = bearer(&signer, &["gray-testers"]);
    assert_eq!(
        c.app(&[("x-gray-tag", "v2"), ("authorization", &jwt)])?,
        "myapp-v2",
        "a JWT"
    );
    let other = bearer(&signer, &["staff"]);
    assert_eq!(
        c.app(&[("x-gray-tag", "v2"), ("authorization", &other)])?,
        "myapp-v1",
        "a JWT without the claim value"
    );

    // Sticky by client address at the gateway: the address the gateway sees (the client
    // pod; no trusted proxies), not a forged x-forwarded-for, keeps one version at 50/50.
    gateway.apply("vs.yaml", BY_CLIENT_ADDRESS)?;
    let first = c.app(&[])?;
    for i in 0..20 {
        let forged = format!("198.51.100.{i}");
        assert_eq!(
            c.app(&[("x-forwarded-for", &forged)])?,
            first,
            "request {i}"
        );
    }
    Ok(())
}

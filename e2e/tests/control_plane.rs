//! The mesh end to end against a Kubernetes API: the API stand-in and the real
//! `sluice-control` (plaintext) in a pod of their own, catalog v1 and v2 in pods behind the
//! Service `catalog` and its EndpointSlice, and a client pod captured by sluice-init whose
//! sluice-proxy takes its config from the discovery stream. Changes made through the API
//! reach the proxy; it keeps routing while the control plane is down and catches up when
//! it is back; a bad VirtualService is left out and listed, the rest keeps working; a
//! MeshConfig in the mesh root namespace (REGISTRY_ONLY) applies to the whole mesh, and a
//! ReleasePolicy's fallback applies in the proxy it is streamed to; the watches relist after
//! `410 Expired` and what changed meanwhile reaches the proxy; a VirtualService of another
//! namespace applies only when exported to the proxy's; and a cluster serving the Istio kinds
//! only at `v1alpha3` routes as well.

mod proxy_support;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use proxy_support::*;
use sluice_e2e::{Node, Pod, Process, binary, eventually};
use sluice_kube_stub::{Catalog, IstioVersion, Options, StubServer};

const CATALOG: &str = "http://catalog";
/// Discovery reconnects with up to 10 s of backoff: room for that and a resync.
const RECONNECT: Duration = Duration::from_secs(40);

fn catalog_objects(v1: Ipv4Addr, v2: Ipv4Addr) -> String {
    format!(
        "
apiVersion: v1
kind: Service
metadata: {{name: catalog, namespace: default}}
spec:
  clusterIP: {CATALOG_VIP}
  clusterIPs: [{CATALOG_VIP}]
  selector: {{app: catalog}}
  ports: [{{name: http, port: 80, targetPort: 8080, protocol: TCP}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: catalog-v1, namespace: default, labels: {{app: catalog, version: v1}}}}
spec: {{containers: [{{name: app, image: catalog:1}}]}}
status: {{podIP: {v1}, phase: Running}}
---
apiVersion: v1
kind: Pod
metadata: {{name: catalog-v2, namespace: default, labels: {{app: catalog, version: v2}}}}
spec: {{containers: [{{name: app, image: catalog:2}}]}}
status: {{podIP: {v2}, phase: Running}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: catalog, namespace: default}}
spec:
  host: catalog
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
"
    )
}

/// The slice of `catalog` with the endpoints of these pods (name, address).
fn slice(endpoints: &[(&str, Ipv4Addr)]) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|(pod, ip)| {
            format!(
                "- addresses: [{ip}]\n  conditions: {{ready: true}}\n  targetRef: {{kind: Pod, name: {pod}, namespace: default}}\n"
            )
        })
        .collect();
    format!(
        "
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: catalog-abcde
  namespace: default
  labels: {{kubernetes.io/service-name: catalog}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
{endpoints}"
    )
}

/// The VirtualService of `catalog` sending everything to `subset` (none: the whole Service).
fn route_to(subset: Option<&str>) -> String {
    let subset = subset.map_or(String::new(), |s| format!(", subset: {s}"));
    format!(
        "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: default}}
spec:
  hosts: [catalog]
  http: [{{route: [{{destination: {{host: catalog{subset}}}}}]}}]
"
    )
}

const BAD_VIRTUAL_SERVICE: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: default}
spec:
  hosts: [catalog]
  http:
  - match: [{uri: {regex: '(unclosed'}}]
    route: [{destination: {host: catalog, subset: v1}}]
";

/// The control plane's pod: the API stand-in on its runtime, sluice-control beside it.
struct ControlPlane {
    pod: Pod,
    stub: StubServer,
    kubeconfig: PathBuf,
    process: Option<Process>,
    /// What the stopped sluice-control printed.
    stopped_log: String,
    _runtime: tokio::runtime::Runtime,
}

impl ControlPlane {
    fn start(node: &Node) -> anyhow::Result<ControlPlane> {
        let pod = node.pod("control")?;
        let runtime = pod.runtime()?;
        let stub = runtime.block_on(runtime.spawn(StubServer::start(stub_options(None))))??;
        let kubeconfig = std::env::temp_dir().join(format!("{}.kubeconfig", pod.netns));
        stub.write_kubeconfig(&kubeconfig)?;
        let mut control = ControlPlane {
            pod,
            stub,
            kubeconfig,
            process: None,
            stopped_log: String::new(),
            _runtime: runtime,
        };
        control.run()?;
        Ok(control)
    }

    /// Replaces the API server with a new one serving the Istio kinds at `istio` only,
    /// holding nothing yet; sluice-control must be stopped.
    fn new_cluster(&mut self, istio: IstioVersion) -> anyhow::Result<()> {
        let start = StubServer::start(stub_options(Some(istio)));
        self.stub = self._runtime.block_on(self._runtime.spawn(start))??;
        self.stub.write_kubeconfig(&self.kubeconfig)?;
        Ok(())
    }

    /// How many lists of `path` the API server has answered.
    fn lists(&self, path: &str) -> usize {
        let requests = self.stub.requests();
        requests.iter().filter(|r| r.is_list_of(path)).count()
    }

    /// The discovery stream's URL, for the proxies.
    fn url(&self) -> String {
        format!("http://{}:15012", self.pod.ipv4)
    }

    /// Starts sluice-control (again).
    fn run(&mut self) -> anyhow::Result<()> {
        let mut cmd = self.pod.command(binary("sluice-control"));
        cmd.args(["--listen", "0.0.0.0:9443"])
            .args(["--discovery-listen", "0.0.0.0:15012"])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--log-level", "info,sluice_control=debug"]);
        self.process = Some(self.pod.spawn(cmd)?);
        eventually("sluice-control to sync", TIMEOUT, || {
            let (status, body) = self.get("/healthz/ready")?;
            ensure!(status == 200, "{status} {body}");
            Ok(())
        })
        .with_context(|| format!("sluice-control log:\n{}", self.log()))
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(process) = self.process.take() {
            let output = process.kill()?;
            self.stopped_log = String::from_utf8_lossy(&output.stderr).into_owned();
        }
        Ok(())
    }

    fn log(&self) -> String {
        let running = self.process.as_ref().map_or(String::new(), Process::stderr);
        format!("{}{running}", self.stopped_log)
    }

    /// GET on the discovery port, from inside the pod.
    fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let reply = curl(&self.pod, &format!("http://127.0.0.1:15012{path}"), &[])?;
        Ok((reply.status, reply.body))
    }

    fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        self.stub.apply_yaml(yaml)?;
        Ok(())
    }
}

/// The API server: bookmarks far apart, so a watch's resourceVersion moves only with its
/// kind's events; the Istio kinds at `istio` only, else at every version.
fn stub_options(istio: Option<IstioVersion>) -> Options {
    let catalog = match istio {
        Some(version) => Catalog::kubernetes()
            .with_istio(&[version])
            .with_meshconfig()
            .with_release_policy(),
        None => Catalog::default(),
    };
    Options {
        catalog,
        bookmark_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

/// `what` with the logs of the proxy and the control plane, for a failure.
fn context(mesh: &Mesh, control: &ControlPlane, what: &str) -> String {
    format!(
        "{what}\nproxy log:\n{}\ncontrol log:\n{}",
        mesh.proxy.stderr(),
        control.log()
    )
}

/// Waits until ten requests in a row are answered by `app`.
fn until_all(mesh: &Mesh, app: &str, timeout: Duration) -> anyhow::Result<()> {
    eventually(&format!("every request to go to {app}"), timeout, || {
        all(mesh, app)
    })
}

/// Ten requests, each answered by `app`.
fn all(mesh: &Mesh, app: &str) -> anyhow::Result<()> {
    for _ in 0..10 {
        let reply = mesh.curl(CATALOG, &[])?;
        ensure!(
            reply.status == 200 && reply.app == app,
            "{} from {:?}",
            reply.status,
            reply.app
        );
    }
    Ok(())
}

#[test]
fn the_mesh_follows_the_kubernetes_api_and_survives_the_control_plane() -> anyhow::Result<()> {
    let node = Node::new("control_plane")?;
    let mut control = ControlPlane::start(&node)?;
    let v1 = http_app(&node, "catalog-v1", "catalog", "v1", 8080)?;
    let v2 = http_app(&node, "catalog-v2", "catalog", "v2", 8080)?;
    let (ip1, ip2) = (v1.pod.ipv4, v2.pod.ipv4);
    control.apply(&catalog_objects(ip1, ip2))?;
    control.apply(&slice(&[("catalog-v1", ip1), ("catalog-v2", ip2)]))?;
    control.apply(&route_to(Some("v1")))?;
    let mesh = Mesh::start_discovery(&node, &control.url(), &[(CATALOG_VIP.into(), "catalog")])?;

    // (a) The initial sync.
    until_all(&mesh, "catalog-v1", TIMEOUT)
        .with_context(|| context(&mesh, &control, "initial sync"))?;

    // (b) A VirtualService change.
    control.apply(&route_to(Some("v2")))?;
    until_all(&mesh, "catalog-v2", TIMEOUT)
        .with_context(|| context(&mesh, &control, "route to v2"))?;

    // (c) An endpoint removed from the slice: only the other one answers.
    control.apply(&route_to(None))?;
    eventually("both versions to answer", TIMEOUT, || {
        let apps: Vec<String> = (0..10)
            .map(|_| mesh.curl(CATALOG, &[]).map(|r| r.app))
            .collect::<anyhow::Result<_>>()?;
        ensure!(
            apps.iter().any(|a| a == "catalog-v1") && apps.iter().any(|a| a == "catalog-v2"),
            "{apps:?}"
        );
        Ok(())
    })
    .with_context(|| context(&mesh, &control, "route to the Service"))?;
    control.apply(&slice(&[("catalog-v2", ip2)]))?;
    until_all(&mesh, "catalog-v2", TIMEOUT)
        .with_context(|| context(&mesh, &control, "v1 removed"))?;

    // (d) The control plane down: the proxy keeps routing; a change made meanwhile
    // arrives once it is back.
    control.stop()?;
    all(&mesh, "catalog-v2").with_context(|| context(&mesh, &control, "control plane down"))?;
    control.apply(&slice(&[("catalog-v1", ip1)]))?;
    all(&mesh, "catalog-v2").with_context(|| context(&mesh, &control, "a change while down"))?;
    control.run()?;
    until_all(&mesh, "catalog-v1", RECONNECT)
        .with_context(|| context(&mesh, &control, "control plane back"))?;

    // (e) A bad VirtualService is left out and listed; the rest keeps working.
    control.apply(BAD_VIRTUAL_SERVICE)?;
    eventually("the bad VirtualService to be rejected", TIMEOUT, || {
        let (status, body) = control.get("/v1/rejected")?;
        ensure!(status == 200, "{status} {body}");
        ensure!(body.contains("VirtualService default/broken"), "{body}");
        Ok(())
    })
    .with_context(|| context(&mesh, &control, "bad VirtualService"))?;
    all(&mesh, "catalog-v1")
        .with_context(|| context(&mesh, &control, "after the bad VirtualService"))?;
    let (_, proxies) = control.get("/v1/proxies")?;
    ensure!(
        proxies.contains("\"client\""),
        "the proxy is listed: {proxies}"
    );

    // (f) A MeshConfig in the mesh root namespace applies mesh-wide: REGISTRY_ONLY refuses
    // a destination the registry does not know (catalog-v2 is no endpoint since (d)),
    // which ALLOW_ANY passed through.
    let outside = format!("http://{ip2}:8080/");
    let through = mesh.curl(&outside, &[])?;
    ensure!(
        (through.status, through.app.as_str()) == (200, "catalog-v2"),
        "ALLOW_ANY passes through: {} from {:?}",
        through.status,
        through.app
    );
    control.apply(REGISTRY_ONLY)?;
    eventually(
        "REGISTRY_ONLY to refuse the unknown destination",
        TIMEOUT,
        || {
            let reply = mesh.curl(&outside, &[])?;
            ensure!(reply.status == 502, "{} from {:?}", reply.status, reply.app);
            Ok(())
        },
    )
    .with_context(|| context(&mesh, &control, "REGISTRY_ONLY from sluice-system"))?;
    all(&mesh, "catalog-v1").with_context(|| context(&mesh, &control, "known destinations"))?;

    // (g) A ReleasePolicy streamed to the proxy applies: v2 has no endpoint since (d), so
    // a route to it falls back to v1, marked.
    control.apply(&(route_to(Some("v2")) + "---" + FALLBACK))?;
    eventually("the ReleasePolicy's fallback", TIMEOUT, || {
        let reply = mesh.curl(CATALOG, &[])?;
        ensure!(
            reply.app == "catalog-v1",
            "{} from {:?}",
            reply.status,
            reply.app
        );
        ensure!(
            reply.head.contains("x-sluice-fallback: v2->v1"),
            "{}",
            reply.head
        );
        Ok(())
    })
    .with_context(|| context(&mesh, &control, "ReleasePolicy fallback"))?;

    // (h) Relist after 410 Expired: v2 gets its endpoint back, another object moves the
    // resourceVersion on, the history is compacted and every watch ends, so the watches
    // resume from resourceVersions the API server no longer has and list again; the
    // routing follows what changed meanwhile.
    let slices = "/apis/discovery.k8s.io/v1/endpointslices";
    let listed = control.lists(slices);
    control.apply(&slice(&[("catalog-v1", ip1), ("catalog-v2", ip2)]))?;
    control.apply(UNRELATED)?;
    control.stub.compact();
    control.stub.end_watches();
    eventually("the EndpointSlices to be listed again", TIMEOUT, || {
        ensure!(control.lists(slices) > listed, "no relist yet");
        Ok(())
    })
    .with_context(|| context(&mesh, &control, "relist after 410"))?;
    until_all(&mesh, "catalog-v2", TIMEOUT)
        .with_context(|| context(&mesh, &control, "the change made before the relist"))?;

    // (i) exportTo: a VirtualService of namespace `other` exported to `.` does not apply to
    // this proxy (namespace default): once default's own VirtualService is gone, both
    // versions answer, unmarked; exported to `*`, it does.
    control.apply(&exported("."))?;
    control.stub.delete(
        "networking.istio.io/v1",
        "VirtualService",
        "default",
        "catalog",
    )?;
    eventually(
        "default's VirtualService gone, other's not applied",
        TIMEOUT,
        || {
            let replies: Vec<CurlReply> = (0..10)
                .map(|_| mesh.curl(CATALOG, &[]))
                .collect::<anyhow::Result<_>>()?;
            let apps: Vec<&str> = replies.iter().map(|r| r.app.as_str()).collect();
            ensure!(
                apps.contains(&"catalog-v1") && apps.contains(&"catalog-v2"),
                "{apps:?}"
            );
            ensure!(
                !replies.iter().any(|r| r.head.contains("x-exported")),
                "a VirtualService exported to its own namespace applied elsewhere"
            );
            Ok(())
        },
    )
    .with_context(|| context(&mesh, &control, "exportTo ."))?;
    control.apply(&exported("*"))?;
    eventually(
        "the VirtualService exported to every namespace",
        TIMEOUT,
        || {
            all(&mesh, "catalog-v1")?;
            let reply = mesh.curl(CATALOG, &[])?;
            ensure!(reply.head.contains("x-exported: other"), "{}", reply.head);
            Ok(())
        },
    )
    .with_context(|| context(&mesh, &control, "exportTo *"))?;

    // (j) A cluster serving the Istio kinds at v1alpha3 only: the control plane finds that
    // version and the proxy routes by its objects.
    control.stop()?;
    control.new_cluster(IstioVersion::V1alpha3)?;
    let alpha3 =
        |yaml: String| yaml.replace("networking.istio.io/v1\n", "networking.istio.io/v1alpha3\n");
    control.apply(&alpha3(catalog_objects(ip1, ip2)))?;
    control.apply(&slice(&[("catalog-v1", ip1), ("catalog-v2", ip2)]))?;
    control.apply(&alpha3(route_to(Some("v2"))))?;
    control.run()?;
    until_all(&mesh, "catalog-v2", RECONNECT)
        .with_context(|| context(&mesh, &control, "Istio at v1alpha3 only"))?;
    ensure!(
        control
            .log()
            .contains("networking.istio.io/v1alpha3 VirtualService"),
        "the control plane watches v1alpha3:\n{}",
        control.log()
    );
    Ok(())
}

/// An object no watch of sluice-control follows.
const UNRELATED: &str = "
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated, namespace: default}
data: {a: b}
";

/// A VirtualService of namespace `other` for catalog, exported to `export_to`: all to v1,
/// marked with a response header.
fn exported(export_to: &str) -> String {
    format!(
        "
apiVersion: v1
kind: Namespace
metadata: {{name: other}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: other}}
spec:
  hosts: [catalog.default.svc.cluster.local]
  exportTo: ['{export_to}']
  http:
  - route: [{{destination: {{host: catalog.default.svc.cluster.local, subset: v1}}}}]
    headers: {{response: {{set: {{x-exported: other}}}}}}
"
    )
}

/// catalog's ReleasePolicy: subset v2 falls back to v1.
const FALLBACK: &str = "
apiVersion: sluice.dev/v1alpha1
kind: ReleasePolicy
metadata: {name: catalog, namespace: default}
spec:
  host: catalog
  fallback: {subsets: [{from: v2, to: v1}]}
";

/// A mesh-wide MeshConfig: it lives in the mesh root namespace.
const REGISTRY_ONLY: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: sluice-system}
---
apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: sluice-system}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
";

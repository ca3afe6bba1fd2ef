//! Where a discovery-mode proxy's memory goes, per Service: builds the full state the
//! control plane sends for `bench/control/run`'s Services (one JSON line), then each
//! structure the proxy keeps, counting the bytes allocated and still live after each step.
//! Run by hand: `cargo run --release -p sluice-proxy --example memory_per_service [N]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use sluice_api::Spec;
use sluice_api::istio::service_entry::SharedMaps;
use sluice_api::model::{Model, Role, Workload};
use sluice_proxy::balance::Balancers;
use sluice_proxy::cluster::{Breakers, Clusters};
use sluice_proxy::config::discovery::wire::Update;

/// The system allocator, counting live and peak bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The ServiceEntry the control plane makes of bench Service `i`: two ports, five ready
/// endpoints with their pods' `app`/`version` labels and a zone, exported to its own
/// namespace and `bench-0`.
fn doc(i: usize) -> serde_json::Value {
    let ns = format!("bench-{}", i % 10);
    let name = format!("svc-{i}");
    let endpoints: Vec<_> = (0..5)
        .map(|j| {
            let n = i * 5 + j;
            json!({"address": format!("10.100.{}.{}", n / 256, n % 256),
                   "ports": {"http": 8080, "grpc": 9090},
                   "labels": {"app": name, "version": if j % 2 == 0 { "v1" } else { "v2" }},
                   "locality": "zone-a"})
        })
        .collect();
    json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hosts": [format!("{name}.{ns}.svc.cluster.local")],
                 "addresses": [format!("10.96.{}.{}", i / 256, i % 256)],
                 "ports": [{"number": 80, "protocol": "HTTP", "name": "http"},
                           {"number": 9090, "protocol": "GRPC", "name": "grpc"}],
                 "location": "MESH_INTERNAL", "resolution": "STATIC",
                 "endpoints": endpoints, "exportTo": [".", "bench-0"]}})
}

/// Prints the live bytes since `base` per Service, and the peak since the last step.
fn step(what: &str, base: usize, services: usize) -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    let peak = PEAK.swap(live, Ordering::Relaxed);
    println!(
        "{what:<44} live {:>8} B/Service   peak {:>8} B/Service",
        live.saturating_sub(base) / services,
        peak.saturating_sub(base) / services
    );
    live
}

fn main() {
    let services: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let workload = Workload {
        namespace: "bench-0".into(),
        ..Workload::default()
    };
    let resources: Vec<_> = (0..services)
        .map(|i| json!({"id": format!("kubernetes Service bench-{}/svc-{i}", i % 10), "doc": doc(i)}))
        .collect();
    let line = json!({"version": 1, "full": true, "resources": resources}).to_string();
    drop(resources);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    println!(
        "{services} Services, full state line {} B/Service",
        line.len() / services
    );
    let update: Update = serde_json::from_slice(line.as_bytes()).expect("an update");
    let at = step("update parsed (docs as JSON text)", base, services);
    // As the proxy holds them: endpoints with equal port or label maps share one.
    let mut shared = SharedMaps::default();
    let held: Vec<_> = update
        .resources
        .iter()
        .map(|e| {
            let mut set = sluice_api::load_str(&e.id, &e.doc);
            let mut resource = set.resources.pop().expect("a resource");
            if let Spec::ServiceEntry(se) = &mut resource.spec {
                shared.share(se);
            }
            resource
        })
        .collect();
    let _ = step("  + loaded Resources (held)", at, services);
    drop(update);
    let held_at = step("held Resources alone (update dropped)", base, services);
    let model = Model::compile_as(&held, &workload, Role::Sidecar);
    let _ = step("  + Model", held_at, services);
    let model_at = step("held + Model", base, services);
    let balancers = Balancers::build(&model);
    let at = step("  + Balancers", model_at, services);
    let breakers = Breakers::default();
    let clusters = Clusters::build(&model, &breakers);
    let _ = step("  + Clusters (and Breakers)", at, services);
    step("everything kept", base, services);
    println!(
        "Model serialized for /config_dump: {} B/Service",
        serde_json::to_string(&model).map_or(0, |s| s.len()) / services
    );
    drop((held, shared, model, balancers, clusters, breakers));
}

//! Compiling the mesh model: 10,000 services with 50,000 endpoints, a
//! DestinationRule and a VirtualService each (compiling, and loading plus
//! validating the YAML); and matching a request.

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_api::model::routes::RequestInfo;
use sluice_api::model::{Model, Workload};
use sluice_api::{load_str, validate};

fn mesh_yaml(services: usize, endpoints_per_service: usize) -> String {
    let mut y = String::new();
    for s in 0..services {
        let (a, b) = (s / 250, s % 250);
        y.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc{s}, namespace: bench}}\nspec:\n  hosts: [svc{s}]\n  addresses: [10.96.{a}.{b}]\n  ports: [{{number: 80, name: http}}]\n  resolution: STATIC\n  endpoints:\n"
        ));
        for e in 0..endpoints_per_service {
            let v = if e % 2 == 0 { "v1" } else { "v2" };
            y.push_str(&format!(
                "  - {{address: 10.{}.{}.{}, labels: {{version: {v}}}}}\n",
                100 + e,
                a,
                b
            ));
        }
        y.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc{s}, namespace: bench}}\nspec:\n  host: svc{s}\n  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]\n"
        ));
        y.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc{s}, namespace: bench}}\nspec:\n  hosts: [svc{s}]\n  http:\n  - match: [{{headers: {{x-canary: {{regex: \"on|yes\"}}}}}}]\n    route: [{{destination: {{host: svc{s}, subset: v2}}}}]\n  - route:\n    - {{destination: {{host: svc{s}, subset: v1}}, weight: 90}}\n    - {{destination: {{host: svc{s}, subset: v2}}, weight: 10}}\n"
        ));
    }
    y
}

fn bench(c: &mut Criterion) {
    let yaml = mesh_yaml(10_000, 5);
    let mut set = load_str("bench.yaml", &yaml);
    validate::validate(&mut set);
    assert!(!set.has_errors());
    assert_eq!(set.resources.len(), 30_000);
    let workload = Workload {
        namespace: "bench".into(),
        ..Workload::default()
    };
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    group.bench_function("compile 10k services / 50k endpoints", |b| {
        b.iter(|| Model::compile(&set.resources, &workload));
    });
    group.bench_function(
        "load + validate 30k resources (10k services / 50k endpoints)",
        |b| {
            b.iter(|| {
                let mut set = load_str("bench.yaml", &yaml);
                validate::validate(&mut set);
                set
            });
        },
    );
    group.finish();

    let model = Model::compile(&set.resources, &workload);
    let headers = http::HeaderMap::new();
    let req = RequestInfo {
        method: "GET",
        scheme: "http",
        authority: "svc1234",
        path: "/items",
        query: "",
        port: 80,
        headers: &headers,
    };
    c.bench_function("route lookup + match + weighted pick", |b| {
        b.iter(|| {
            let vhost = model
                .routes
                .lookup("svc1234.bench.svc.cluster.local")
                .unwrap();
            let rule = vhost.http.iter().find(|r| r.matches(&req)).unwrap();
            match &rule.action {
                sluice_api::model::routes::HttpAction::Route(t) => t.pick().map(|t| t.1),
                _ => None,
            }
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

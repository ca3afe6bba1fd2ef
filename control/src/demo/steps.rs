//! The demo's steps: each one is the config to apply, the traffic to send and
//! what the rule promises. A new mesh feature shows up here as one more entry.

/// Which service a batch of requests goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// `http://catalog/` — the catalog service's VIP, captured by the frontend's proxy.
    Catalog,
    /// `http://jsonplaceholder.typicode.com/` — a host outside the mesh.
    External,
    /// `http://myapp.example.com/` through the ingress gateway (`sluice demo --edge`).
    Gateway,
}

/// What the requests of a batch must show.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Answers by version, exactly or within `slack` requests.
    Versions(&'static [(&'static str, u32)], u32),
    /// Every answer has this status.
    Status(u16),
    /// Like `Versions`, one request per user: request `i` carries `x-user-id: user-i`.
    Users(&'static [(&'static str, u32)], u32),
}

/// A batch of requests and what it must show.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    /// How the batch is described.
    pub label: &'static str,
    /// Number of requests.
    pub requests: u32,
    /// Where they go.
    pub dest: Dest,
    /// Extra request headers.
    pub headers: &'static [(&'static str, &'static str)],
    /// The promise.
    pub expect: Expect,
}

/// One step of the demo.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Name for `--step`.
    pub name: &'static str,
    /// Heading.
    pub title: &'static str,
    /// Where the config comes from and what it does.
    pub about: &'static str,
    /// The config applied on top of the base (ServiceEntry + DestinationRule for catalog).
    pub yaml: &'static str,
    /// The traffic sent once the proxy runs the new config.
    pub traffic: &'static [Traffic],
    /// Mirrored copies a version must receive: (version, count, authority suffix).
    pub mirrored: Option<(&'static str, u32, &'static str)>,
}

/// The registry the frontend's proxy starts with: the catalog service (a VIP
/// and one endpoint per version) and its subsets.
pub const BASE: &str = r#"apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: catalog
spec:
  hosts: [catalog]
  addresses: [CATALOG_VIP]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - {address: CATALOG_V1, labels: {app: catalog, version: v1}}
  - {address: CATALOG_V2, labels: {app: catalog, version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: catalog
spec:
  host: catalog
  subsets:
  - {name: version-v1, labels: {version: v1}}
  - {name: version-v2, labels: {version: v2}}
"#;

const HEADER_ROUTING: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts:
    - catalog
  gateways:
    - mesh
  http:
    - match:
        - headers:
            x-istio-cohort:
              exact: "internal"
      route:
        - destination:
            host: catalog
            subset: version-v2
    - route:
        - destination:
            host: catalog
            subset: version-v1
"#;

const WEIGHTED_90_10: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {host: catalog, subset: version-v1}
      weight: 90
    - destination: {host: catalog, subset: version-v2}
      weight: 10
"#;

const WEIGHTED_50_50: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {host: catalog, subset: version-v1}
      weight: 50
    - destination: {host: catalog, subset: version-v2}
      weight: 50
"#;

const WEIGHTED_100: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {host: catalog, subset: version-v2}
      weight: 100
"#;

const MIRRORING: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts:
    - catalog
  gateways:
    - mesh
  http:
    - route:
        - destination:
            host: catalog
            subset: version-v1
          weight: 100
      mirror:
        host: catalog
        subset: version-v2
"#;

const ALLOW_ANY: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: ALLOW_ANY
"#;

const REGISTRY_ONLY: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
"#;

const REGISTRY_ONLY_WITH_ENTRY: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: jsonplaceholder
spec:
  hosts:
    - jsonplaceholder.typicode.com
  ports:
    - number: 80
      name: http
      protocol: HTTP
  resolution: DNS
  location: MESH_EXTERNAL
"#;

/// A ReleasePolicy keeping each user (`x-user-id`) on the version a 90/10 route gave them.
const STICKY_10: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: ReleasePolicy
metadata:
  name: catalog
spec:
  host: catalog
  sticky: {header: x-user-id}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts: [catalog]
  http:
  - route:
    - {destination: {host: catalog, subset: version-v1}, weight: 90}
    - {destination: {host: catalog, subset: version-v2}, weight: 10}
"#;

/// The same with v2 raised to 30%: v2's users stay, new buckets join them.
const STICKY_30: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: ReleasePolicy
metadata:
  name: catalog
spec:
  host: catalog
  sticky: {header: x-user-id}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts: [catalog]
  http:
  - route:
    - {destination: {host: catalog, subset: version-v1}, weight: 70}
    - {destination: {host: catalog, subset: version-v2}, weight: 30}
"#;

const NO_HEADER: &[(&str, &str)] = &[];

/// The steps, in the order the demo walks through them.
pub const STEPS: &[Step] = &[
    Step {
        name: "header-routing",
        title: "Header routing: x-istio-cohort: internal goes to v2",
        about: "seed 000-02, as written: the internal cohort sees version-v2, everyone else version-v1",
        yaml: HEADER_ROUTING,
        traffic: &[
            Traffic {
                label: "50 requests with x-istio-cohort: internal",
                requests: 50,
                dest: Dest::Catalog,
                headers: &[("x-istio-cohort", "internal")],
                expect: Expect::Versions(&[("v2", 50)], 0),
            },
            Traffic {
                label: "50 requests without the header",
                requests: 50,
                dest: Dest::Catalog,
                headers: NO_HEADER,
                expect: Expect::Versions(&[("v1", 50)], 0),
            },
        ],
        mirrored: None,
    },
    Step {
        name: "canary-90-10",
        title: "Canary: 90% to v1, 10% to v2",
        about: "seed 001-08/003-19 for catalog: weights beside each destination",
        yaml: WEIGHTED_90_10,
        traffic: &[Traffic {
            label: "100 requests",
            requests: 100,
            dest: Dest::Catalog,
            headers: NO_HEADER,
            expect: Expect::Versions(&[("v1", 90), ("v2", 10)], 2),
        }],
        mirrored: None,
    },
    Step {
        name: "canary-50-50",
        title: "Canary: 50/50",
        about: "seed 003-20 for catalog",
        yaml: WEIGHTED_50_50,
        traffic: &[Traffic {
            label: "100 requests",
            requests: 100,
            dest: Dest::Catalog,
            headers: NO_HEADER,
            expect: Expect::Versions(&[("v1", 50), ("v2", 50)], 2),
        }],
        mirrored: None,
    },
    Step {
        name: "canary-100",
        title: "Canary done: 100% to v2",
        about: "seed 003-21 for catalog",
        yaml: WEIGHTED_100,
        traffic: &[Traffic {
            label: "100 requests",
            requests: 100,
            dest: Dest::Catalog,
            headers: NO_HEADER,
            expect: Expect::Versions(&[("v2", 100)], 0),
        }],
        mirrored: None,
    },
    Step {
        name: "sticky-canary-10",
        title: "Sticky canary: 10% of users on v2, each user stays",
        about: "ReleasePolicy sticky.header x-user-id (replaces seed 002-14's Lua): users hash to fixed buckets; the 90/10 weights become bucket ranges",
        yaml: STICKY_10,
        traffic: &[
            Traffic {
                label: "200 users, one request each",
                requests: 200,
                dest: Dest::Catalog,
                headers: NO_HEADER,
                expect: Expect::Users(&[("v1", 180), ("v2", 20)], 10),
            },
            Traffic {
                label: "the same 200 users again",
                requests: 200,
                dest: Dest::Catalog,
                headers: NO_HEADER,
                expect: Expect::Users(&[("v1", 180), ("v2", 20)], 10),
            },
        ],
        mirrored: None,
    },
    Step {
        name: "sticky-canary-30",
        title: "Sticky canary raised to 30%: v2's users stay on v2, new users join",
        about: "the VirtualService weights change to 70/30; the ReleasePolicy stays",
        yaml: STICKY_30,
        traffic: &[Traffic {
            label: "the same 200 users",
            requests: 200,
            dest: Dest::Catalog,
            headers: NO_HEADER,
            expect: Expect::Users(&[("v1", 140), ("v2", 60)], 10),
        }],
        mirrored: None,
    },
    Step {
        name: "mirroring",
        title: "Mirroring: clients see v1, v2 gets a shadow copy of every request",
        about: "seed 000-04 with its one mistake fixed (weight moved beside destination)",
        yaml: MIRRORING,
        traffic: &[Traffic {
            label: "100 requests",
            requests: 100,
            dest: Dest::Catalog,
            headers: NO_HEADER,
            expect: Expect::Versions(&[("v1", 100)], 0),
        }],
        mirrored: Some(("v2", 100, "-shadow")),
    },
    Step {
        name: "egress-allow-any",
        title: "Egress, ALLOW_ANY: a host outside the registry is reachable",
        about: "MeshConfig outboundTrafficPolicy.mode: ALLOW_ANY (the default)",
        yaml: ALLOW_ANY,
        traffic: &[Traffic {
            label: "10 requests to jsonplaceholder.typicode.com",
            requests: 10,
            dest: Dest::External,
            headers: NO_HEADER,
            expect: Expect::Status(200),
        }],
        mirrored: None,
    },
    Step {
        name: "egress-registry-only",
        title: "Egress, REGISTRY_ONLY: the same host is refused",
        about: "MeshConfig outboundTrafficPolicy.mode: REGISTRY_ONLY",
        yaml: REGISTRY_ONLY,
        traffic: &[Traffic {
            label: "10 requests to jsonplaceholder.typicode.com",
            requests: 10,
            dest: Dest::External,
            headers: NO_HEADER,
            expect: Expect::Status(502),
        }],
        mirrored: None,
    },
    Step {
        name: "egress-service-entry",
        title: "Egress, REGISTRY_ONLY + ServiceEntry: the one registered host is allowed",
        about: "seed 000-05 with its one mistake fixed (resolution moved to spec level)",
        yaml: REGISTRY_ONLY_WITH_ENTRY,
        traffic: &[Traffic {
            label: "10 requests to jsonplaceholder.typicode.com",
            requests: 10,
            dest: Dest::External,
            headers: NO_HEADER,
            expect: Expect::Status(200),
        }],
        mirrored: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_validates_on_top_of_the_base() {
        for step in STEPS {
            let base = BASE
                .replace("CATALOG_VIP", "10.96.0.10")
                .replace("CATALOG_V1", "10.44.0.3")
                .replace("CATALOG_V2", "10.44.0.4");
            let mut set = sluice_api::load_str("base.yaml", &base);
            set.extend(sluice_api::load_str("step.yaml", step.yaml));
            sluice_api::validate::validate(&mut set);
            let errors: Vec<String> = set.errors().map(ToString::to_string).collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", step.name);
        }
    }

    #[test]
    fn the_sticky_steps_promise_what_the_users_buckets_give() {
        use sluice_api::model::weighted::bucket;
        let on_v2 = |from: u16| {
            (0..200)
                .filter(|i| bucket(format!("user-{i}").as_bytes()) >= from)
                .count() as u32
        };
        let (at10, at30) = (on_v2(9000), on_v2(7000));
        assert!(
            at10.abs_diff(20) <= 10 && at30.abs_diff(60) <= 10,
            "{at10} {at30}"
        );
    }

    #[test]
    fn step_names_are_unique() {
        let mut names: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STEPS.len());
    }
}

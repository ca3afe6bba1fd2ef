//! Choosing an endpoint of a service or subset with the DestinationRule's
//! load balancer. Built once per config version; the counters live here, not
//! in the immutable model.

mod hash;
mod outlier;

pub use hash::SessionCookie;
pub use outlier::Outliers;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sluice_api::model::policy::{LoadBalancer, Policy};
use sluice_api::model::routes::SubsetRef;
use sluice_api::model::weighted::Schedule;
use sluice_api::model::{Model, Service, ServiceId};

/// The balancers of every service and subset of one model.
#[derive(Debug, Default)]
pub struct Balancers {
    services: Vec<ServiceBalancers>,
}

#[derive(Debug)]
struct ServiceBalancers {
    all: Balancer,
    subsets: Vec<Balancer>,
}

impl Balancers {
    /// One balancer per service (all endpoints) and per subset.
    pub fn build(model: &Model) -> Balancers {
        let services = model
            .registry
            .services
            .iter()
            .map(|svc| ServiceBalancers {
                all: Balancer::new(
                    (0..svc.endpoints.len() as u32).collect(),
                    svc,
                    svc.policy.clone(),
                ),
                subsets: svc
                    .subsets
                    .iter()
                    .map(|s| Balancer::new(s.endpoints.clone(), svc, s.policy.clone()))
                    .collect(),
            })
            .collect();
        Balancers { services }
    }

    /// The balancer for a service's subset; `None` for a missing subset.
    pub fn get(&self, service: ServiceId, subset: SubsetRef) -> Option<&Balancer> {
        let svc = self.services.get(service.0 as usize)?;
        match subset {
            SubsetRef::All => Some(&svc.all),
            SubsetRef::Found(i) => svc.subsets.get(i),
            SubsetRef::Missing => None,
        }
    }
}

/// What consistent hashing may hash.
#[derive(Clone, Copy, Debug, Default)]
pub struct HashInput<'a> {
    /// Request headers.
    pub headers: Option<&'a http::HeaderMap>,
    /// Query string.
    pub query: &'a str,
    /// The client's address.
    pub source: Option<IpAddr>,
    /// The value of a cookie the proxy generated because the request had
    /// none (see [`SessionCookie`]).
    pub generated_cookie: Option<&'a str>,
}

/// What a balancer chose.
#[derive(Debug)]
pub enum Choice {
    /// Index into the service's endpoints; the guard counts the request as outstanding.
    Endpoint(u32, Outstanding),
    /// Forward to the original destination (PASSTHROUGH).
    OriginalDestination,
}

/// Marks a request as outstanding on an endpoint until dropped (for LEAST_REQUEST).
#[derive(Debug)]
pub struct Outstanding(Option<(Arc<[AtomicU32]>, usize)>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        if let Some((counts, i)) = &self.0 {
            counts[*i].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Chooses among a fixed list of endpoints.
#[derive(Debug)]
pub struct Balancer {
    endpoints: Vec<u32>,
    schedule: Option<Schedule>,
    policy: Arc<Policy>,
    outstanding: Arc<[AtomicU32]>,
}

impl Balancer {
    fn new(endpoints: Vec<u32>, svc: &Service, policy: Arc<Policy>) -> Balancer {
        let weights: Vec<u32> = endpoints
            .iter()
            .map(|&i| svc.endpoints[i as usize].weight)
            .collect();
        Balancer {
            schedule: Schedule::new(&weights),
            outstanding: endpoints.iter().map(|_| AtomicU32::new(0)).collect(),
            endpoints,
            policy,
        }
    }

    /// The policy of the service or subset.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Number of endpoints to choose from.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// True when there is nothing to choose from.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoints to choose from (indices into the service's endpoints).
    pub fn endpoints(&self) -> &[u32] {
        &self.endpoints
    }

    /// Chooses the endpoint at `position` of [`Balancer::endpoints`] (to
    /// pass over an ejected one).
    pub fn choose(&self, position: usize) -> Choice {
        self.outstanding[position].fetch_add(1, Ordering::Relaxed);
        let guard = Outstanding(Some((self.outstanding.clone(), position)));
        Choice::Endpoint(self.endpoints[position], guard)
    }

    /// Chooses an endpoint for a request to `port`.
    pub fn pick(&self, port: u16, input: &HashInput<'_>) -> Option<Choice> {
        let n = self.endpoints.len();
        let position = match &self.policy.for_port(port).load_balancer {
            LoadBalancer::Passthrough => return Some(Choice::OriginalDestination),
            _ if n == 0 => return None,
            LoadBalancer::RoundRobin => self.schedule.as_ref().map_or(0, Schedule::pick),
            LoadBalancer::Random => fastrand::usize(..n),
            LoadBalancer::LeastRequest => self.least_of_two(),
            LoadBalancer::ConsistentHash(key) => match hash::hash(key, input) {
                Some(h) => hash::jump_hash(h, n),
                None => fastrand::usize(..n),
            },
        };
        Some(self.choose(position))
    }

    /// Power of two choices: the less loaded of two random endpoints.
    fn least_of_two(&self) -> usize {
        let n = self.endpoints.len();
        let a = fastrand::usize(..n);
        let b = fastrand::usize(..n);
        let load = |i: usize| self.outstanding[i].load(Ordering::Relaxed);
        if load(b) < load(a) { b } else { a }
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::model::Workload;
    use sluice_api::{load_str, validate};

    use super::*;

    fn model(lb: &str) -> Model {
        let yaml = format!(
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc}}
spec:
  hosts: [svc]
  ports: [{{number: 80, name: http}}]
  resolution: STATIC
  endpoints:
  - {{address: 10.0.0.1, labels: {{version: v1}}}}
  - {{address: 10.0.0.2, labels: {{version: v1}}}}
  - {{address: 10.0.0.3, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc}}
spec:
  host: svc
  trafficPolicy: {{loadBalancer: {lb}}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: none, labels: {{version: v9}}}}
"#
        );
        let mut set = load_str("t.yaml", &yaml);
        validate::validate(&mut set);
        assert!(!set.has_errors(), "{:?}", set.diagnostics);
        Model::compile(
            &set.resources,
            &Workload {
                namespace: "default".into(),
                labels: Default::default(),
                cluster_domain: Default::default(),
            },
        )
    }

    fn picks(b: &Balancer, n: usize, input: &HashInput<'_>) -> Vec<u32> {
        (0..n)
            .map(|_| match b.pick(80, input) {
                Some(Choice::Endpoint(i, _)) => i,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn round_robin_cycles_through_the_subset() {
        let m = model("{simple: ROUND_ROBIN}");
        let b = Balancers::build(&m);
        let v1 = b.get(ServiceId(0), SubsetRef::Found(0)).unwrap();
        assert_eq!(picks(v1, 4, &HashInput::default()), vec![0, 1, 0, 1]);
        let all = b.get(ServiceId(0), SubsetRef::All).unwrap();
        assert_eq!(picks(all, 3, &HashInput::default()), vec![0, 1, 2]);
        assert!(
            b.get(ServiceId(0), SubsetRef::Found(1))
                .unwrap()
                .pick(80, &HashInput::default())
                .is_none()
        );
        assert!(b.get(ServiceId(0), SubsetRef::Missing).is_none());
    }

    #[test]
    fn consistent_hash_sticks_to_one_endpoint_per_key() {
        let m = model("{consistentHash: {httpHeaderName: x-user}}");
        let b = Balancers::build(&m);
        let all = b.get(ServiceId(0), SubsetRef::All).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-user", "alice".parse().unwrap());
        let input = HashInput {
            headers: Some(&headers),
            ..HashInput::default()
        };
        let chosen = picks(all, 20, &input);
        assert!(chosen.iter().all(|c| *c == chosen[0]), "{chosen:?}");
    }

    #[test]
    fn passthrough_uses_the_original_destination() {
        let m = model("{simple: PASSTHROUGH}");
        let b = Balancers::build(&m);
        let all = b.get(ServiceId(0), SubsetRef::All).unwrap();
        assert!(matches!(
            all.pick(80, &HashInput::default()),
            Some(Choice::OriginalDestination)
        ));
    }

    #[test]
    fn least_request_avoids_a_busy_endpoint() {
        let m = model("{simple: LEAST_REQUEST}");
        let b = Balancers::build(&m);
        let v1 = b.get(ServiceId(0), SubsetRef::Found(0)).unwrap();
        let held: Vec<Choice> = (0..50)
            .filter_map(|_| v1.pick(80, &HashInput::default()))
            .collect();
        let on_first = held
            .iter()
            .filter(|c| matches!(c, Choice::Endpoint(0, _)))
            .count();
        assert!(
            (10..=40).contains(&on_first),
            "{on_first} of 50 on the first endpoint"
        );
    }
}

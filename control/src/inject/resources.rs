//! Requests and limits of the injected containers: config defaults, and the pod's
//! `proxy.sluice.dev/{cpu,memory,cpu-limit,memory-limit}` annotations, each of which replaces
//! only its own value.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::{InjectError, annotation};
use crate::config::{CpuMemory, Resources};

/// A Kubernetes quantity's value, for comparing requests with limits.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Quantity(f64);

impl Quantity {
    /// Parses `100m`, `0.5`, `64Mi`, `1G`, `1e3`; `None` when not a non-negative quantity.
    pub fn parse(text: &str) -> Option<Quantity> {
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let number = number.strip_prefix('+').unwrap_or(number);
        let digits_ok = !number.is_empty()
            && number.bytes().filter(|b| *b == b'.').count() <= 1
            && number.bytes().any(|b| b.is_ascii_digit())
            && number.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !digits_ok {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let scale = match suffix {
            "" => 1.0,
            "n" => 1e-9,
            "u" => 1e-6,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "P" => 1e15,
            "E" => 1e18,
            "Ki" => 1024f64,
            "Mi" => 1024f64.powi(2),
            "Gi" => 1024f64.powi(3),
            "Ti" => 1024f64.powi(4),
            "Pi" => 1024f64.powi(5),
            "Ei" => 1024f64.powi(6),
            exp => {
                let exp = exp.strip_prefix(['e', 'E'])?;
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                10f64.powi(exp.parse().ok()?)
            }
        };
        Some(Quantity(value * scale))
    }

    /// The value in base units (cores for CPU, bytes for memory).
    pub fn value(self) -> f64 {
        self.0
    }
}

/// Checks a config block: quantities parse and no request exceeds its limit.
pub fn check(resources: &Resources, field: &str) -> Result<(), String> {
    let mut errors = Vec::new();
    for (kind, values) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for (name, value) in [("cpu", &values.cpu), ("memory", &values.memory)] {
            if let Some(value) = value
                && Quantity::parse(value).is_none()
            {
                errors.push(format!(
                    "{field}.{kind}.{name}: {value:?} is not a Kubernetes quantity"
                ));
            }
        }
    }
    for (name, request, limit) in pairs(resources) {
        if exceeds(request, limit) {
            errors.push(format!(
                "{field}.requests.{name}: {request:?} is more than the limit {limit:?}",
                request = request.unwrap_or_default(),
                limit = limit.unwrap_or_default()
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn pairs(resources: &Resources) -> [(&'static str, Option<&str>, Option<&str>); 2] {
    let (r, l) = (&resources.requests, &resources.limits);
    [
        ("cpu", r.cpu.as_deref(), l.cpu.as_deref()),
        ("memory", r.memory.as_deref(), l.memory.as_deref()),
    ]
}

fn exceeds(request: Option<&str>, limit: Option<&str>) -> bool {
    match (
        request.and_then(Quantity::parse),
        limit.and_then(Quantity::parse),
    ) {
        (Some(request), Some(limit)) => request > limit,
        _ => false,
    }
}

/// The proxy's resources: the config's, with each annotation replacing only its own value.
pub fn proxy(
    config: &Resources,
    annotations: &BTreeMap<String, String>,
) -> Result<ResourceRequirements, InjectError> {
    let mut resources = config.clone();
    let slots: [(&str, &mut Option<String>); 4] = [
        (annotation::PROXY_CPU, &mut resources.requests.cpu),
        (annotation::PROXY_MEMORY, &mut resources.requests.memory),
        (annotation::PROXY_CPU_LIMIT, &mut resources.limits.cpu),
        (annotation::PROXY_MEMORY_LIMIT, &mut resources.limits.memory),
    ];
    for (key, slot) in slots {
        if let Some(value) = annotations.get(key) {
            let value = value.trim();
            if Quantity::parse(value).is_none() {
                return Err(InjectError::Annotation {
                    key: key.into(),
                    value: value.into(),
                    reason: "not a Kubernetes quantity (e.g. 200m, 0.5, 128Mi, 1Gi)".into(),
                });
            }
            *slot = Some(value.into());
        }
    }
    for (name, request, limit) in pairs(&resources) {
        if exceeds(request, limit) {
            let (request, limit) = (request.unwrap_or_default(), limit.unwrap_or_default());
            return Err(InjectError::Conflict(format!(
                "the proxy's {name} request {request} would exceed its limit {limit}; \
                 set both with proxy.sluice.dev/{name} and proxy.sluice.dev/{name}-limit"
            )));
        }
    }
    Ok(requirements(&resources))
}

/// A config block as Kubernetes resource requirements.
pub fn requirements(resources: &Resources) -> ResourceRequirements {
    let map = |values: &CpuMemory| {
        let map: BTreeMap<String, K8sQuantity> = [("cpu", &values.cpu), ("memory", &values.memory)]
            .into_iter()
            .filter_map(|(name, v)| Some((name.to_string(), K8sQuantity(v.clone()?))))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    ResourceRequirements {
        requests: map(&resources.requests),
        limits: map(&resources.limits),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let cases = [
            ("100m", Some(0.1)),
            ("0.5", Some(0.5)),
            ("2", Some(2.0)),
            ("64Mi", Some(64.0 * 1024.0 * 1024.0)),
            ("1G", Some(1e9)),
            ("1e3", Some(1000.0)),
            ("+1", Some(1.0)),
            (".5", Some(0.5)),
            ("", None),
            ("abc", None),
            ("1.2.3", None),
            ("-1", None),
            ("10 m", None),
            ("5mi", None),
            ("1e", None),
        ];
        for (text, want) in cases {
            assert_eq!(Quantity::parse(text).map(|q| q.0), want, "{text:?}");
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn one_annotation_replaces_only_its_value() {
        let config = crate::config::ProxyConfig::default().resources;
        let got = proxy(&config, &annotations(&[(annotation::PROXY_CPU, "250m")])).unwrap();
        let requests = got.requests.unwrap();
        assert_eq!(requests["cpu"].0, "250m");
        assert_eq!(requests["memory"].0, "64Mi", "default memory request kept");
        assert_eq!(
            got.limits.unwrap()["memory"].0,
            "256Mi",
            "default limit kept"
        );
    }

    #[test]
    fn bad_and_contradictory_annotations_are_refused() {
        let config = crate::config::ProxyConfig::default().resources;
        let err = proxy(&config, &annotations(&[(annotation::PROXY_MEMORY, "lots")])).unwrap_err();
        assert!(err.to_string().contains("proxy.sluice.dev/memory"), "{err}");
        let err = proxy(&config, &annotations(&[(annotation::PROXY_MEMORY, "1Gi")])).unwrap_err();
        assert!(err.to_string().contains("exceed its limit 256Mi"), "{err}");
        let ok = [
            (annotation::PROXY_MEMORY, "1Gi"),
            (annotation::PROXY_MEMORY_LIMIT, "2Gi"),
        ];
        assert!(proxy(&config, &annotations(&ok)).is_ok());
    }
}

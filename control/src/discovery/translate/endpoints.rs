//! The endpoints of a Service: the ready addresses of its EndpointSlices, each with the
//! labels of its Pod, its locality, and the port number its slice gives each Service port.
//!
//! Readiness follows Istio: an endpoint whose `ready` condition is true or unset is
//! used; one that is not ready is left out, `serving` and `terminating` included: Istio
//! keeps a serving, terminating endpoint only as DRAINING for persistent sessions (no
//! new traffic), which sluice does not have. A Service with `publishNotReadyAddresses`
//! needs nothing special: Kubernetes then marks its endpoints ready itself.
//!
//! Unlike Istio, an endpoint whose Pod is not known yet is kept, without labels: sluice
//! needs no identity from the Pod, and the Service is translated again when it arrives.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use sluice_api::diagnostic::Severity;
use sluice_api::istio::service_entry::{ServicePort, WorkloadEntry};

use super::{Pods, Report, namespace_of};

/// The Pod label Kubernetes' topology names the region with.
const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// The endpoints of the slices, deduplicated by address (the first slice by name that
/// lists an address gives its labels; port numbers are merged). `ports` are the
/// Service's ports; an unnamed one gets the slices' number as `targetPort` when they
/// all agree, since a ServiceEntry endpoint can only name named ports.
pub(super) fn collect(
    ports: &mut [ServicePort],
    slices: &[&EndpointSlice],
    pods: &Pods<'_>,
    report: &mut Report,
) -> Vec<WorkloadEntry> {
    let mut slices = slices.to_vec();
    slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut entries: Vec<WorkloadEntry> = Vec::new();
    let mut by_address: HashMap<IpAddr, usize> = HashMap::new();
    for slice in slices {
        let slice_name = slice.metadata.name.as_deref().unwrap_or("<unnamed>");
        let at = format!("endpointSlices[{slice_name}]");
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            report.push(
                Severity::Note,
                &format!("{at}.addressType"),
                format!(
                    "EndpointSlice of address type {} skipped: only IPv4 and IPv6 slices are read, as in Istio",
                    slice.address_type
                ),
            );
            continue;
        }
        let numbers = port_numbers(ports, slice);
        for (j, endpoint) in slice.endpoints.iter().enumerate() {
            if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            let labels = pod_labels(endpoint, namespace_of(&slice.metadata), pods);
            let locality = locality(endpoint, &labels);
            for (k, address) in endpoint.addresses.iter().enumerate() {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    report.push(
                        Severity::Warning,
                        &format!("{at}.endpoints[{j}].addresses[{k}]"),
                        format!(
                            "\"{address}\" is not an IP address; this endpoint address is left out"
                        ),
                    );
                    continue;
                };
                if let Some(&i) = by_address.get(&ip) {
                    for (name, number) in &numbers {
                        Arc::make_mut(&mut entries[i].ports)
                            .entry(name.clone())
                            .or_insert(*number);
                    }
                    continue;
                }
                by_address.insert(ip, entries.len());
                entries.push(WorkloadEntry {
                    address: ip.to_string(),
                    ports: Arc::new(numbers.clone()),
                    labels: labels.clone(),
                    locality: locality.clone(),
                    ..Default::default()
                });
            }
        }
    }
    hoist_unnamed_port(ports, &mut entries);
    entries
}

/// Service port name (empty for the unnamed port) → the number the slice gives the
/// port of the same name: how a named or numbered `targetPort` is resolved.
fn port_numbers(ports: &[ServicePort], slice: &EndpointSlice) -> BTreeMap<String, u32> {
    let slice_ports = slice.ports.as_deref().unwrap_or_default();
    ports
        .iter()
        .filter_map(|port| {
            let name = port.name.as_deref().unwrap_or_default();
            let number = slice_ports
                .iter()
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .find(|p| p.name.as_deref().unwrap_or_default() == name)?
                .port
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=65535).contains(n))?;
            Some((name.to_string(), number))
        })
        .collect()
}

fn pod_labels(
    endpoint: &Endpoint,
    namespace: &str,
    pods: &Pods<'_>,
) -> Arc<BTreeMap<String, String>> {
    endpoint
        .target_ref
        .as_ref()
        .filter(|r| r.kind.as_deref() == Some("Pod"))
        .and_then(|r| {
            let namespace = r.namespace.as_deref().unwrap_or(namespace);
            pods.labels(namespace, r.name.as_deref()?)
        })
        .map(|labels| Arc::new(labels.clone()))
        .unwrap_or_default()
}

/// `region/zone`: the region from the Pod's topology label, the zone from the
/// endpoint. A zone alone is left out, as a locality starts with its region.
fn locality(endpoint: &Endpoint, labels: &BTreeMap<String, String>) -> Option<String> {
    let region = labels.get(REGION_LABEL).filter(|r| !r.is_empty())?;
    Some(match endpoint.zone.as_deref().filter(|z| !z.is_empty()) {
        Some(zone) => format!("{region}/{zone}"),
        None => region.clone(),
    })
}

/// Moves the unnamed port's per-endpoint number (key `""`) to the port's `targetPort`
/// when every endpoint has the same one; a ServiceEntry endpoint names ports by name.
fn hoist_unnamed_port(ports: &mut [ServicePort], entries: &mut [WorkloadEntry]) {
    let Some(port) = ports.iter_mut().find(|p| p.name.is_none()) else {
        return;
    };
    let mut numbers = entries.iter().map(|e| e.ports.get("").copied());
    let Some(Some(first)) = numbers.next() else {
        return;
    };
    if numbers.all(|n| n == Some(first)) {
        port.target_port = (first != port.number).then_some(first);
        for entry in entries {
            Arc::make_mut(&mut entry.ports).remove("");
        }
    }
}

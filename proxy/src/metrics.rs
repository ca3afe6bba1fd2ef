//! Prometheus metrics, and the one place a finished request or connection is
//! recorded (metrics and the access log line together).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use sluice_api::istio::service_entry::Labels;

use crate::Identity;
use crate::cluster::{Cluster, ClusterName, Limit};

/// `destination_service` of connections and requests to destinations outside the registry
/// passed through (ALLOW_ANY), as Istio names them: one label, whatever the address.
pub const PASSTHROUGH: &str = "PassthroughCluster";
/// `destination_service` of connections and requests to destinations outside the registry
/// refused (REGISTRY_ONLY), or made before any config is loaded.
pub const BLACK_HOLE: &str = "BlackHoleCluster";
/// `destination_service`, `destination_subset` and `destination_version` of request label sets
/// beyond [`MAX_REQUEST_LABEL_SETS`].
pub const OVERFLOW: &str = "other";
/// Most distinct request label sets kept: the handles cached for them and the series they
/// create. Labels come from the config, so a mesh stays far below it; it bounds what traffic
/// could still vary (inbound ports nothing listens on, status codes).
pub const MAX_REQUEST_LABEL_SETS: usize = 4096;
/// Most series kept outside the clusters (unknown destinations, inbound ports); beyond, a
/// request's series is made for it (hashing its labels).
const MAX_CACHED_SERIES: usize = 256;
/// Most (version, status code) handles a series holds; beyond, they are looked up by label.
const MAX_SERIES_HANDLES: usize = 64;

/// The label of a destination outside the registry under `mode`.
pub fn unknown_destination(mode: sluice_api::mesh_config::OutboundMode) -> &'static str {
    match mode {
        sluice_api::mesh_config::OutboundMode::AllowAny => PASSTHROUGH,
        sluice_api::mesh_config::OutboundMode::RegistryOnly => BLACK_HOLE,
    }
}

/// Which way traffic flows through the proxy.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the pod's app to the mesh.
    Outbound,
    /// From the mesh to the pod's app.
    Inbound,
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let name = match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        };
        EncodeLabelValue::encode(&name, encoder)
    }
}

/// Labels of request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet, Serialize)]
pub struct RequestLabels {
    /// Outbound or inbound.
    pub direction: Direction,
    /// The calling workload (`app` label, else `unknown`).
    pub source_workload: String,
    /// The calling workload's namespace.
    pub source_namespace: String,
    /// The destination service host, or the address for unknown destinations.
    pub destination_service: String,
    /// The DestinationRule subset routed to.
    pub destination_subset: String,
    /// The `version` label of the endpoint that answered.
    pub destination_version: String,
    /// The status code sent to the client.
    pub response_code: u16,
}

/// Labels of TCP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpLabels {
    /// Outbound or inbound.
    pub direction: Direction,
    /// The destination service host, or the address for unknown destinations.
    pub destination_service: String,
}

/// Labels of mirror metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MirrorLabels {
    /// The mirror's destination host.
    pub destination_service: String,
}

/// Labels of circuit-breaker overflows.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverflowLabels {
    /// The destination service host.
    pub destination_service: String,
    /// The DestinationRule subset, or empty.
    pub destination_subset: String,
    /// The service port (0: a port the service does not declare).
    pub destination_port: u16,
    /// Which threshold: `max_connections`, `max_pending_requests`, `max_requests`, `max_retries`.
    pub limit: &'static str,
}

/// Labels of subset fallbacks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    /// The destination service host.
    pub destination_service: String,
    /// The subset without healthy endpoints.
    pub from_subset: String,
    /// The subset the request went to.
    pub to_subset: String,
}

/// Labels of refusals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `http` or `tcp`.
    pub protocol: &'static str,
}

/// Config metrics.
#[derive(Clone, Debug, Default)]
pub struct ConfigMetrics {
    /// Version in force.
    pub version: Gauge,
    /// Changes rejected.
    pub reload_errors: Counter,
}

/// What the client-facing limits turned away, and connection tasks that panicked.
#[derive(Clone, Debug, Default)]
pub struct LimitMetrics {
    /// Client connections closed at once: the connection limit was reached, or the process
    /// was out of file descriptors.
    pub connections_refused: Counter,
    /// Client connections open now.
    pub connections_open: Gauge,
    /// Requests answered 503 at once: the limit of requests in flight was reached.
    pub requests_shed: Counter,
    /// Connection tasks that panicked (the task was dropped; the proxy served on).
    pub panics: Counter,
}

/// Every metric of the proxy.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram>,
    tcp_opened: Family<TcpLabels, Counter>,
    tcp_closed: Family<TcpLabels, Counter>,
    tcp_sent: Family<TcpLabels, Counter>,
    tcp_received: Family<TcpLabels, Counter>,
    mirrored: Family<MirrorLabels, Counter>,
    mirror_dropped: Family<MirrorLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
    overflow: Family<OverflowLabels, Counter>,
    fallback: Family<FallbackLabels, Counter>,
    /// The counter and histogram of each label set seen: where a [`RequestSeries`] finds a
    /// handle it does not hold yet, and what bounds the label sets.
    request_handles: RwLock<HashMap<RequestLabels, (Counter, Histogram)>>,
    /// Series of destinations no cluster stands for (unknown destinations, inbound ports),
    /// at most [`MAX_CACHED_SERIES`].
    series_cache: RwLock<Vec<Arc<RequestSeries>>>,
    /// Series of inbound requests by the port they were sent to, at most [`MAX_CACHED_SERIES`].
    inbound_series: RwLock<Vec<(u16, Arc<RequestSeries>)>>,
    /// Config version and reload errors.
    pub config: ConfigMetrics,
    /// Limits and panics.
    pub limits: LimitMetrics,
    /// Tasks alive on the runtime serving the metrics, read when they are encoded.
    tasks: Gauge,
    /// Request bodies that outgrew the retry buffer: sent once, not retried.
    pub retry_buffer_overflows: Counter,
    access_log: bool,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// All metrics, registered under the `sluice` prefix; `access_log` turns on
    /// one JSON line per request on stdout.
    pub fn new(access_log: bool) -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let requests = Family::default();
        let duration = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        let (tcp_opened, tcp_closed, tcp_sent, tcp_received) = (
            Family::default(),
            Family::default(),
            Family::default(),
            Family::default(),
        );
        let (mirrored, mirror_dropped, refused, overflow) = (
            Family::default(),
            Family::default(),
            Family::default(),
            Family::default(),
        );
        let config = ConfigMetrics::default();
        let limits = LimitMetrics::default();
        registry.register(
            "client_connections_refused",
            "Client connections closed at once: the connection limit was reached, or the process was out of file descriptors",
            limits.connections_refused.clone(),
        );
        registry.register(
            "client_connections_open",
            "Client connections open now",
            limits.connections_open.clone(),
        );
        let tasks = Gauge::default();
        registry.register(
            "runtime_alive_tasks",
            "Tasks alive on the proxy's runtime (connections, pools, watchers): a leak shows here",
            tasks.clone(),
        );
        registry.register(
            "requests_shed",
            "Requests answered 503 at once: the limit of requests in flight was reached",
            limits.requests_shed.clone(),
        );
        registry.register(
            "connection_panics",
            "Connection tasks that panicked (dropped; the proxy serves on)",
            limits.panics.clone(),
        );
        registry.register("requests", "HTTP requests answered", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time from request to response end",
            duration.clone(),
        );
        registry.register(
            "tcp_connections_opened",
            "TCP connections opened",
            tcp_opened.clone(),
        );
        registry.register(
            "tcp_connections_closed",
            "TCP connections closed",
            tcp_closed.clone(),
        );
        registry.register(
            "tcp_sent_bytes",
            "Bytes sent to the destination",
            tcp_sent.clone(),
        );
        registry.register(
            "tcp_received_bytes",
            "Bytes received from the destination",
            tcp_received.clone(),
        );
        registry.register(
            "mirrored_requests",
            "Request copies sent to mirrors",
            mirrored.clone(),
        );
        registry.register(
            "mirror_dropped_requests",
            "Request copies dropped (mirror queue full)",
            mirror_dropped.clone(),
        );
        registry.register(
            "unknown_destination_refused",
            "Connections and requests refused under REGISTRY_ONLY",
            refused.clone(),
        );
        registry.register(
            "overflow",
            "Times a circuit-breaker threshold was reached: a request or retry refused, a TCP connection closed, or (max_connections) an HTTP request made to wait for a connection",
            overflow.clone(),
        );
        let fallback = Family::default();
        registry.register(
            "subset_fallback",
            "Requests for a subset without healthy endpoints sent to its ReleasePolicy fallback subset",
            fallback.clone(),
        );
        let retry_buffer_overflows = Counter::default();
        registry.register(
            "retry_buffer_overflows",
            "Request bodies that outgrew the retry buffer (--retry-buffer-bytes): sent once, not retried",
            retry_buffer_overflows.clone(),
        );
        registry.register(
            "config_version",
            "Config version in force",
            config.version.clone(),
        );
        registry.register(
            "config_reload_errors",
            "Config changes rejected",
            config.reload_errors.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            tcp_opened,
            tcp_closed,
            tcp_sent,
            tcp_received,
            mirrored,
            mirror_dropped,
            refused,
            overflow,
            fallback,
            request_handles: RwLock::default(),
            series_cache: RwLock::default(),
            inbound_series: RwLock::default(),
            config,
            limits,
            tasks,
            retry_buffer_overflows,
            access_log,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let alive = runtime.metrics().num_alive_tasks();
            self.tasks.set(i64::try_from(alive).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Request label sets with cached handles (at most [`MAX_REQUEST_LABEL_SETS`] + the
    /// overflow sets).
    pub fn request_label_sets(&self) -> usize {
        self.request_handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when every request gets an access log line.
    pub fn access_log(&self) -> bool {
        self.access_log
    }

    /// Records a finished request: metrics, and the access log line.
    pub fn request(&self, record: &RequestRecord, duration: Duration) {
        let secs = duration.as_secs_f64();
        let series = &record.series;
        let version = record.version();
        let code = record.response_code;
        if !series.observe(version, code, secs) {
            let mut labels = series.labels.clone();
            labels.destination_version = version.to_string();
            labels.response_code = code;
            let (count, histogram) = self.handles(labels);
            count.inc();
            histogram.observe(secs);
            series.remember(version, code, count, histogram);
        }
        if let Some(access) = &record.access {
            access_log(&AccessLine::new(record, access, duration));
        }
    }

    /// The counter and histogram of a label set, from the families: at most
    /// [`MAX_REQUEST_LABEL_SETS`], beyond which a new set counts under [`OVERFLOW`].
    fn handles(&self, labels: RequestLabels) -> (Counter, Histogram) {
        let known = self
            .request_handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&labels)
            .cloned();
        known.unwrap_or_else(|| {
            let mut handles = self
                .request_handles
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut labels = labels;
            if handles.len() >= MAX_REQUEST_LABEL_SETS && !handles.contains_key(&labels) {
                labels.destination_service = OVERFLOW.into();
                labels.destination_subset = OVERFLOW.into();
                labels.destination_version = OVERFLOW.into();
            }
            handles
                .entry(labels)
                .or_insert_with_key(|labels| {
                    (
                        self.requests.get_or_create(labels).clone(),
                        self.duration.get_or_create(labels).clone(),
                    )
                })
                .clone()
        })
    }

    /// The series of requests from `source` (workload, namespace) to `service` and `subset`,
    /// with `version` as the version of answers no endpoint names.
    pub fn series(
        &self,
        direction: Direction,
        source: (&str, &str),
        service: &str,
        subset: &str,
        version: &str,
    ) -> Arc<RequestSeries> {
        Arc::new(RequestSeries {
            owner: self.id(),
            labels: RequestLabels {
                direction,
                source_workload: source.0.to_string(),
                source_namespace: source.1.to_string(),
                destination_service: service.to_string(),
                destination_subset: subset.to_string(),
                destination_version: version.to_string(),
                response_code: 0,
            },
            handles: RwLock::default(),
        })
    }

    /// The series of outbound requests of `identity` to `cluster`'s service and subset: made
    /// once per cluster (each config version has its clusters) and kept in it.
    pub fn outbound(&self, cluster: &Cluster, identity: &Identity) -> Arc<RequestSeries> {
        let made = cluster.series.get_or_init(|| {
            self.series(
                Direction::Outbound,
                (&identity.workload, &identity.namespace),
                &cluster.name.service,
                &cluster.name.subset,
                "",
            )
        });
        // A cluster serves the one proxy whose metrics these are; another's makes its own.
        if made.owner == self.id() {
            made.clone()
        } else {
            self.series(
                Direction::Outbound,
                (&identity.workload, &identity.namespace),
                &cluster.name.service,
                &cluster.name.subset,
                "",
            )
        }
    }

    /// The series of `direction` from `source` to `service` (a fixed label or a port's),
    /// answered as `version`, for destinations no cluster stands for: kept here, up to a bound.
    pub fn cached(
        &self,
        direction: Direction,
        source: (&str, &str),
        service: &str,
        version: &str,
    ) -> Arc<RequestSeries> {
        let matches = |s: &RequestSeries| {
            let l = &s.labels;
            l.direction == direction
                && l.destination_service == service
                && l.source_workload == source.0
                && l.source_namespace == source.1
                && l.destination_version == version
        };
        let cache = self
            .series_cache
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = cache.iter().find(|s| matches(s)) {
            return found.clone();
        }
        let full = cache.len() >= MAX_CACHED_SERIES;
        drop(cache);
        let made = self.series(direction, source, service, "", version);
        if !full {
            self.series_cache
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .push(made.clone());
        }
        made
    }

    /// The series of inbound requests to `identity`'s app on `port` (labelled
    /// `workload:port`), kept by port up to a bound.
    pub fn inbound(&self, identity: &Identity, port: u16) -> Arc<RequestSeries> {
        let cache = self
            .inbound_series
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, found)) = cache.iter().find(|(p, _)| *p == port) {
            return found.clone();
        }
        let full = cache.len() >= MAX_CACHED_SERIES;
        drop(cache);
        let made = self.series(
            Direction::Inbound,
            ("unknown", "unknown"),
            &format!("{}:{port}", identity.workload),
            "",
            &identity.version,
        );
        if !full {
            self.inbound_series
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .push((port, made.clone()));
        }
        made
    }

    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Records an opened TCP connection.
    pub fn tcp_opened(&self, labels: &TcpLabels) {
        self.tcp_opened.get_or_create(labels).inc();
    }

    /// Records a closed TCP connection and its byte counts.
    pub fn tcp_closed(&self, labels: &TcpLabels, sent: u64, received: u64) {
        self.tcp_closed.get_or_create(labels).inc();
        self.tcp_sent.get_or_create(labels).inc_by(sent);
        self.tcp_received.get_or_create(labels).inc_by(received);
    }

    /// Records a mirrored request copy.
    pub fn mirrored(&self, host: &str) {
        self.mirrored
            .get_or_create(&MirrorLabels {
                destination_service: host.to_string(),
            })
            .inc();
    }

    /// Records a request copy dropped because too many are in flight.
    pub fn mirror_dropped(&self, host: &str) {
        self.mirror_dropped
            .get_or_create(&MirrorLabels {
                destination_service: host.to_string(),
            })
            .inc();
    }

    /// Records a circuit-breaker threshold reached by a destination.
    pub fn overflow(&self, cluster: &ClusterName, limit: Limit) {
        self.overflow
            .get_or_create(&OverflowLabels {
                destination_service: cluster.service.clone(),
                destination_subset: cluster.subset.clone(),
                destination_port: cluster.port,
                limit: limit.label(),
            })
            .inc();
    }

    /// Records a request sent to a fallback subset.
    pub fn fallback(&self, labels: FallbackLabels) {
        self.fallback.get_or_create(&labels).inc();
    }

    /// Records a refusal of an unknown destination.
    pub fn refused(&self, protocol: &'static str) {
        self.refused
            .get_or_create(&RefusedLabels { protocol })
            .inc();
    }
}

/// The request metrics of one destination as one proxy sees it (direction, source, service,
/// subset): made once per destination and config version, so that recording a request finds
/// its counter and histogram by the answering endpoint's version and the status code, without
/// hashing or copying strings.
#[derive(Debug)]
pub struct RequestSeries {
    /// The [`Metrics`] it belongs to.
    owner: usize,
    /// The labels, with the default version and no code.
    labels: RequestLabels,
    handles: RwLock<Vec<SeriesHandle>>,
}

#[derive(Debug)]
struct SeriesHandle {
    version: String,
    code: u16,
    count: Counter,
    duration: Histogram,
}

impl RequestSeries {
    /// The destination service label.
    pub fn service(&self) -> &str {
        &self.labels.destination_service
    }

    /// Counts a request answered `code` by an endpoint of `version`, if this series has its
    /// handle.
    fn observe(&self, version: &str, code: u16, secs: f64) -> bool {
        let handles = self.handles.read().unwrap_or_else(PoisonError::into_inner);
        match handles
            .iter()
            .find(|h| h.code == code && h.version == version)
        {
            Some(h) => {
                h.count.inc();
                h.duration.observe(secs);
                true
            }
            None => false,
        }
    }

    fn remember(&self, version: &str, code: u16, count: Counter, duration: Histogram) {
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        if handles.len() < MAX_SERIES_HANDLES {
            handles.push(SeriesHandle {
                version: version.to_string(),
                code,
                count,
                duration,
            });
        }
    }
}

/// A finished request, as metrics and the access log see it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// The series of its destination.
    pub series: Arc<RequestSeries>,
    /// The labels of the endpoint that answered: its `version` label, when it has one, is
    /// the `destination_version` (else the series').
    pub endpoint_labels: Option<Labels>,
    /// The status code sent to the client.
    pub response_code: u16,
    /// What only the access log shows; `None` when it is off, so that
    /// requests do not pay for it.
    pub access: Option<Box<AccessDetails>>,
}

impl RequestRecord {
    /// The record of a request to `series`' destination, not answered yet.
    pub fn new(series: Arc<RequestSeries>, access: Option<Box<AccessDetails>>) -> RequestRecord {
        RequestRecord {
            series,
            endpoint_labels: None,
            response_code: 0,
            access,
        }
    }

    /// The `destination_version` label.
    pub fn version(&self) -> &str {
        self.endpoint_labels
            .as_ref()
            .and_then(|labels| labels.get("version"))
            .map_or(&self.series.labels.destination_version, String::as_str)
    }

    /// Notes the route that matched, for the access log.
    pub fn set_route(&mut self, name: Option<&str>) {
        if let Some(a) = &mut self.access {
            a.route = name.map(str::to_string);
        }
    }

    /// Notes why the proxy answered itself, for the access log.
    pub fn set_error(&mut self, error: &dyn std::fmt::Display) {
        if let Some(a) = &mut self.access {
            a.error = Some(error.to_string());
        }
    }

    /// Notes the release headers a ReleasePolicy asks the access log for.
    pub fn set_release_headers(&mut self, names: &[String], headers: &http::HeaderMap) {
        if let Some(a) = &mut self.access {
            a.request_headers = names
                .iter()
                .filter_map(|n| Some((n.clone(), headers.get(n)?.to_str().ok()?.to_string())))
                .collect();
        }
    }

    /// Notes the endpoint that answered, for the access log.
    pub fn set_upstream(&mut self, addr: SocketAddr) {
        if let Some(a) = &mut self.access {
            a.upstream = Some(addr);
        }
    }
}

/// A request as the access log shows it, besides its labels.
#[derive(Clone, Debug)]
pub struct AccessDetails {
    /// Method.
    pub method: String,
    /// Authority as the client sent it.
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub protocol: String,
    /// The endpoint that answered, if one did.
    pub upstream: Option<SocketAddr>,
    /// The route that matched, if named.
    pub route: Option<String>,
    /// What went wrong, when the proxy answered itself.
    pub error: Option<String>,
    /// When the request arrived.
    pub start: SystemTime,
    /// Request headers a ReleasePolicy logs (name, value), present ones only.
    pub request_headers: Vec<(String, String)>,
}

impl AccessDetails {
    /// The details of a request as it arrived, with `authority` as the client named it.
    pub fn of<B>(req: &http::Request<B>, authority: &str) -> Box<AccessDetails> {
        Box::new(AccessDetails {
            method: req.method().to_string(),
            authority: authority.to_string(),
            path: req
                .uri()
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_string()),
            protocol: format!("{:?}", req.version()),
            upstream: None,
            route: None,
            error: None,
            start: SystemTime::now(),
            request_headers: Vec::new(),
        })
    }
}

#[derive(Serialize)]
struct AccessLine<'a> {
    start_time: String,
    direction: Direction,
    method: &'a str,
    authority: &'a str,
    path: &'a str,
    protocol: &'a str,
    response_code: u16,
    duration_ms: f64,
    upstream_host: Option<SocketAddr>,
    destination_service: &'a str,
    destination_subset: &'a str,
    route_name: Option<&'a str>,
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    request_headers: BTreeMap<&'a str, &'a str>,
}

impl<'a> AccessLine<'a> {
    fn new(record: &'a RequestRecord, r: &'a AccessDetails, duration: Duration) -> Self {
        let labels = &record.series.labels;
        let since = r
            .start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        AccessLine {
            start_time: format!("{}.{:03}", since.as_secs(), since.subsec_millis()),
            direction: labels.direction,
            method: &r.method,
            authority: &r.authority,
            path: &r.path,
            protocol: &r.protocol,
            response_code: record.response_code,
            duration_ms: duration.as_secs_f64() * 1000.0,
            upstream_host: r.upstream,
            destination_service: &labels.destination_service,
            destination_subset: &labels.destination_subset,
            route_name: r.route.as_deref(),
            error: r.error.as_deref(),
            request_headers: r
                .request_headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        }
    }
}

fn access_log(line: &AccessLine<'_>) {
    use std::io::Write as _;
    if let Ok(mut text) = serde_json::to_vec(line) {
        text.push(b'\n');
        // A closed stdout must not disturb the request path.
        let _ = std::io::stdout().lock().write_all(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_scan_cannot_grow_the_request_label_sets() {
        let m = Metrics::new(false);
        let app = Identity {
            workload: "app".into(),
            namespace: "default".into(),
            version: String::new(),
        };
        for port in 0..10_000u16 {
            let series = m.inbound(&app, port);
            let mut record = RequestRecord::new(series, None);
            record.response_code = 503;
            m.request(&record, Duration::from_millis(1));
        }
        assert_eq!(m.request_label_sets(), MAX_REQUEST_LABEL_SETS + 1);
        assert_eq!(m.inbound_series.read().unwrap().len(), MAX_CACHED_SERIES);
        let text = m.encode();
        let overflow = 10_000 - MAX_REQUEST_LABEL_SETS;
        assert!(
            text.contains(&format!(
                r#"destination_service="other",destination_subset="other",destination_version="other",response_code="503"}} {overflow}"#
            )),
            "no overflow series"
        );
    }

    #[test]
    fn a_request_shows_up_with_its_labels() {
        let m = Metrics::new(false);
        let series = m.series(
            Direction::Outbound,
            ("client", "default"),
            "catalog.default.svc.cluster.local",
            "version-v1",
            "",
        );
        let mut record = RequestRecord::new(series.clone(), None);
        record.endpoint_labels = Some(Arc::new([("version".into(), "v1".into())].into()));
        record.response_code = 200;
        m.request(&record, Duration::from_millis(3));
        // The second time the series holds the handle: the same counter, no new label set.
        m.request(&record, Duration::from_millis(3));
        assert_eq!(m.request_label_sets(), 1);
        assert_eq!(series.handles.read().unwrap().len(), 1);
        m.refused("tcp");
        let text = m.encode();
        assert!(
            text.contains(r#"sluice_requests_total{direction="outbound",source_workload="client""#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"destination_subset="version-v1",destination_version="v1",response_code="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains("sluice_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains(r#"sluice_unknown_destination_refused_total{protocol="tcp"} 1"#),
            "{text}"
        );
    }
}

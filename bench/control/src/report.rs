//! The figures of one run and their markdown report: each goal of issue 10 with its ratio.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::cluster::{self, Shape};
use crate::process::{self, Process};

/// Goal: an edit reaches every proxy within this (p99).
const PUSH_GOAL: Duration = Duration::from_secs(1);
/// Goal: one proxy's full resync.
const RESYNC_GOAL: Duration = Duration::from_millis(100);
/// Goal: one real proxy's resident memory, in MB.
const PROXY_RSS_GOAL: f64 = 60.0;

/// One stretch of the run: the control plane's CPU seconds, the benchmark's own (the
/// simulated proxies), and how busy the machine was.
#[derive(Debug)]
pub struct Phase {
    started: Instant,
    control: f64,
    own: f64,
    machine: (f64, f64),
}

/// A finished phase.
#[derive(Debug)]
pub struct PhaseFigures {
    name: String,
    wall: Duration,
    control_cpu: f64,
    own_cpu: f64,
    /// CPU seconds of every other process on the machine.
    others_cpu: f64,
    /// Cores' worth of CPU the machine had.
    machine_total: f64,
}

impl Phase {
    /// Starts measuring.
    pub fn start(control: &Process) -> anyhow::Result<Phase> {
        Ok(Phase {
            started: Instant::now(),
            control: control.cpu()?,
            own: process::cpu_seconds("/proc/self/stat")?,
            machine: process::machine_cpu()?,
        })
    }

    /// The figures since the start.
    pub fn end(self, name: &str, control: &Process) -> anyhow::Result<PhaseFigures> {
        let control_cpu = control.cpu()? - self.control;
        let own_cpu = process::cpu_seconds("/proc/self/stat")? - self.own;
        let (busy, total) = process::machine_cpu()?;
        let busy = busy - self.machine.0;
        Ok(PhaseFigures {
            name: name.into(),
            wall: self.started.elapsed(),
            control_cpu,
            own_cpu,
            others_cpu: (busy - control_cpu - own_cpu).max(0.0),
            machine_total: total - self.machine.1,
        })
    }
}

/// A real proxy's figures.
#[derive(Debug)]
pub struct RealProxy {
    /// From start to `/healthz/ready` 200 (the full state received, loaded, compiled).
    pub ready: Duration,
    /// VmRSS once ready, MB.
    pub rss: f64,
    /// VmHWM, MB.
    pub peak: f64,
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Report {
    shape: Shape,
    clients: usize,
    client_namespaces: usize,
    load_at_start: String,
    /// Objects the stub served.
    pub stub_objects: usize,
    /// From starting the stub to it serving them all.
    pub stub_load: Duration,
    /// From starting sluice-control to its first full sync (readiness).
    pub first_sync: Duration,
    /// From the first stream opened to all holding their full state.
    pub connect_all: Duration,
    /// The size of each client's full state, bytes.
    pub full_sizes: Vec<usize>,
    /// Per VirtualService edit: the latency at each client.
    pub vs_edits: Vec<Vec<Duration>>,
    /// Per endpoint added: the latency at each client.
    pub endpoint_adds: Vec<Vec<Duration>>,
    /// Full resyncs of one proxy: time, line size, resources.
    pub resyncs: Vec<(Duration, usize, usize)>,
    /// The phases.
    pub phases: Vec<PhaseFigures>,
    /// The control plane's VmRSS and VmHWM at the end, MB.
    pub control_rss: (f64, f64),
    /// The control plane's CPU seconds in all.
    pub control_cpu: f64,
    /// Proxies listed at `/v1/proxies` with every client connected.
    pub proxies_listed: usize,
    /// Simulated proxies whose stream had ended by the end.
    pub clients_ended: usize,
    /// Real proxies: namespace, Services seen, figures.
    pub real_proxies: Vec<(String, usize, RealProxy)>,
}

/// The `p` quantile (0..=1) of `values`, nearest rank.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

impl Report {
    /// An empty report of a run on `shape`.
    pub fn new(shape: &Shape, clients: usize, client_namespaces: usize) -> Report {
        Report {
            shape: *shape,
            clients,
            client_namespaces,
            load_at_start: process::load_average(),
            stub_objects: 0,
            stub_load: Duration::ZERO,
            first_sync: Duration::ZERO,
            connect_all: Duration::ZERO,
            full_sizes: Vec::new(),
            vs_edits: Vec::new(),
            endpoint_adds: Vec::new(),
            resyncs: Vec::new(),
            phases: Vec::new(),
            control_rss: (0.0, 0.0),
            control_cpu: 0.0,
            proxies_listed: 0,
            clients_ended: 0,
            real_proxies: Vec::new(),
        }
    }

    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let s = &self.shape;
        let all: Vec<Duration> = self.vs_edits.iter().flatten().copied().collect();
        let adds: Vec<Duration> = self.endpoint_adds.iter().flatten().copied().collect();
        let resync: Vec<Duration> = self.resyncs.iter().map(|r| r.0).collect();
        let _ = writeln!(
            out,
            "## sluice-control: {} Services, {} endpoints, {} simulated proxies\n",
            s.services,
            s.services * s.endpoints_per_service,
            self.clients
        );
        let _ = writeln!(
            out,
            "Cluster: {} objects in {} namespaces (Services, one EndpointSlice each, a Pod per endpoint with a `version` label), loaded by sluice-kube-stub in {:.1} s; sluice-control's first full sync {:.1} s. Load average at start {}; {} rounds of each edit.\n",
            self.stub_objects,
            s.namespaces,
            self.stub_load.as_secs_f64(),
            self.first_sync.as_secs_f64(),
            self.load_at_start,
            self.vs_edits.len()
        );
        let _ = writeln!(
            out,
            "Simulated proxies over {} namespaces; a full state is {:.1}–{:.1} MB; all {} hold theirs {:.1} s after the first connected ({} listed at /v1/proxies, {} streams ended).\n",
            self.client_namespaces,
            self.full_sizes.iter().min().copied().unwrap_or(0) as f64 / 1e6,
            self.full_sizes.iter().max().copied().unwrap_or(0) as f64 / 1e6,
            self.clients,
            self.connect_all.as_secs_f64(),
            self.proxies_listed,
            self.clients_ended
        );
        let _ = writeln!(
            out,
            "| push latency (ms), API write → every proxy | p50 | p90 | p99 | max |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for (name, values) in [("VirtualService edit", &all), ("endpoint added", &adds)] {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} |",
                ms(percentile(values, 0.5)),
                ms(percentile(values, 0.9)),
                ms(percentile(values, 0.99)),
                ms(percentile(values, 1.0))
            );
        }
        let resources = self.resyncs.first().map_or(0, |r| r.2);
        let size = self.resyncs.first().map_or(0, |r| r.1);
        let _ = writeln!(
            out,
            "\nFull resync of one proxy in `{}` (connect → full state received and parsed: {} resources, {:.1} MB), {} times: median {} ms, max {} ms.\n",
            cluster::SEES_ALL,
            resources,
            size as f64 / 1e6,
            self.resyncs.len(),
            ms(percentile(&resync, 0.5)),
            ms(percentile(&resync, 1.0))
        );
        let _ = writeln!(
            out,
            "| phase | wall s | sluice-control CPU s | simulated proxies CPU s | other processes CPU s (of all core-s) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for p in &self.phases {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.2} | {:.2} | {:.2} of {:.1} |",
                p.name,
                p.wall.as_secs_f64(),
                p.control_cpu,
                p.own_cpu,
                p.others_cpu,
                p.machine_total
            );
        }
        let _ = writeln!(
            out,
            "\nsluice-control: {:.1} CPU s in all; RSS {:.0} MB at the end, peak {:.0} MB.\n",
            self.control_cpu, self.control_rss.0, self.control_rss.1
        );
        let _ = writeln!(
            out,
            "| real sluice-proxy --discovery | Services seen | start → ready | RSS MB | peak RSS MB |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for (ns, seen, p) in &self.real_proxies {
            let _ = writeln!(
                out,
                "| namespace {ns} | {seen} | {} ms | {:.1} | {:.1} |",
                ms(p.ready),
                p.rss,
                p.peak
            );
        }
        let p99_vs = percentile(&all, 0.99);
        let p99_add = percentile(&adds, 0.99);
        let resync_median = percentile(&resync, 0.5);
        let rss_all = self.real_proxies.first().map_or(f64::NAN, |p| p.2.rss);
        let _ = writeln!(out, "\n| goal (issue 10) | measured | ratio | result |");
        let _ = writeln!(out, "|---|---|---|---|");
        for (goal, measured, ratio) in [
            (
                "push p99 ≤ 1 s, VirtualService edit",
                format!("{} ms", ms(p99_vs)),
                p99_vs.as_secs_f64() / PUSH_GOAL.as_secs_f64(),
            ),
            (
                "push p99 ≤ 1 s, endpoint added",
                format!("{} ms", ms(p99_add)),
                p99_add.as_secs_f64() / PUSH_GOAL.as_secs_f64(),
            ),
            (
                "full resync of one proxy ≤ 100 ms (median)",
                format!("{} ms", ms(resync_median)),
                resync_median.as_secs_f64() / RESYNC_GOAL.as_secs_f64(),
            ),
            (
                "sluice-proxy RSS ≤ 60 MB (sees every Service)",
                format!("{rss_all:.1} MB"),
                rss_all / PROXY_RSS_GOAL,
            ),
        ] {
            let _ = writeln!(
                out,
                "| {goal} | {measured} | {ratio:.2}× | {} |",
                verdict(ratio <= 1.0)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}

//! `sluice demo`: the whole mesh on one machine. Pods are network namespaces
//! on a bridge; the frontend pod is set up exactly as injection sets it up
//! (sluice-init's rules, sluice-proxy as uid 1337, both with the arguments
//! the injector writes into the pod spec); each step applies a live config
//! change and sends real requests, and checks them against what the rule promises.

mod app;
mod edge;
mod live;
mod mesh;
mod report;
mod request;
mod steps;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mesh::Mesh;
use steps::{STEPS, Step};

/// Run the mesh demo: a frontend calling catalog v1 and v2 through its sidecar, walking
/// through header routing, canary weights, mirroring and egress control, each a live
/// config change checked against real requests. Needs root, ip and iptables.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only this step (see --list).
    #[arg(long, value_name = "NAME")]
    step: Option<String>,
    /// List the steps and exit.
    #[arg(long)]
    list: bool,
    /// Leave the mesh running after the steps and print how to reach it; Ctrl-C cleans up.
    #[arg(long)]
    keep: bool,
    /// Walk seed 002's gray release at an ingress gateway instead (`sluice-proxy --mode
    /// gateway`): internal gray, external gray, 90/10, full release, emergency rollback.
    #[arg(long)]
    edge: bool,
    /// Folder with sluice-proxy and sluice-init (default: the folder of this program).
    #[arg(long, env = "SLUICE_BIN_DIR", value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

/// Set by Ctrl-C or SIGTERM; the demo stops at the next step and cleans up.
static STOP: AtomicBool = AtomicBool::new(false);

/// True once the user asked the demo to stop.
pub(crate) fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Runs `sluice demo`.
pub fn run(args: Args) -> ExitCode {
    let all: &[Step] = if args.edge { &edge::STAGES } else { STEPS };
    if args.list {
        for step in all {
            println!("{:<22} {}", step.name, step.title);
        }
        return ExitCode::SUCCESS;
    }
    let steps: Vec<&Step> = match &args.step {
        None => all.iter().collect(),
        Some(name) => match all.iter().find(|s| s.name == name) {
            Some(step) => vec![step],
            None => {
                let names: Vec<&str> = all.iter().map(|s| s.name).collect();
                eprintln!("sluice demo: no step {name:?}; steps: {}", names.join(", "));
                return ExitCode::from(2);
            }
        },
    };
    let bin_dir = match args.bin_dir.clone().map_or_else(default_bin_dir, Ok) {
        Ok(dir) => dir,
        Err(e) => return fail(&e),
    };
    if let Err(e) = mesh::preflight(&bin_dir) {
        return fail(&e);
    }
    watch_signals();
    if args.edge {
        println!(
            "sluice demo --edge: seed 002's gray release at the ingress gateway; each stage is a live config change.\n"
        );
        return match edge::Edge::start(&bin_dir) {
            Ok(edge) => walk(&edge, &steps, args.keep),
            Err(e) => fail(&format!("{e:#}")),
        };
    }
    report::banner();
    match Mesh::start(&bin_dir) {
        Ok(mesh) => walk(&mesh, &steps, args.keep),
        Err(e) => fail(&format!("{e:#}")),
    }
}

/// What the demo runs its steps on: the sidecar mesh or the edge.
trait Scenario {
    /// Applies one step live and checks it; `Ok(false)` when a promise was broken.
    fn run_step(&self, step: &Step) -> anyhow::Result<bool>;
    /// Prints how to reach what `--keep` leaves running.
    fn show_how_to_reach(&self);
}

impl Scenario for Mesh {
    fn run_step(&self, step: &Step) -> anyhow::Result<bool> {
        Mesh::run_step(self, step)
    }

    fn show_how_to_reach(&self) {
        report::keep(self);
    }
}

impl Scenario for edge::Edge {
    fn run_step(&self, step: &Step) -> anyhow::Result<bool> {
        edge::Edge::run_step(self, step)
    }

    fn show_how_to_reach(&self) {
        println!(
            "the gateway keeps running; try:\n  sudo ip netns exec {} curl -H 'x-user-region: beijing' --resolve myapp.example.com:80:{} http://myapp.example.com/\nCtrl-C cleans up.",
            self.client().netns,
            self.gateway_ip()
        );
    }
}

/// Runs `steps` on `scenario`, reports them, and with `keep` leaves it running until
/// Ctrl-C; the scenario is cleaned up when the caller drops it.
fn walk(scenario: &impl Scenario, steps: &[&Step], keep: bool) -> ExitCode {
    let mut passed = 0;
    for (i, step) in steps.iter().enumerate() {
        if stopping() {
            break;
        }
        report::heading(i + 1, steps.len(), step);
        match scenario.run_step(step) {
            Ok(true) => passed += 1,
            Ok(false) => {}
            Err(e) => report::error(&format!("{e:#}")),
        }
    }
    report::summary(passed, steps.len());
    if keep && !stopping() {
        scenario.show_how_to_reach();
        while !stopping() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if passed == steps.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("sluice demo: {message}");
    ExitCode::FAILURE
}

fn default_bin_dir() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find this program's folder: {e}"))?;
    Ok(exe.parent().map(PathBuf::from).unwrap_or_default())
}

/// Ctrl-C and SIGTERM set [`STOP`]; the main thread notices between steps
/// and while waiting, and dropping the mesh removes every namespace and process.
fn watch_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        eprintln!("\nsluice demo: stopping and cleaning up");
        STOP.store(true, Ordering::Relaxed);
    });
}

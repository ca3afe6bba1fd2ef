//! What the demo prints: headings, the config applied, counts as bar charts,
//! and PASS or FAIL against each promise.

use sluice_netns::Pod;

use super::mesh::{Mesh, Tally};
use super::steps::{Expect, Step, Traffic};

const BAR: usize = 40;

/// The opening lines.
pub fn banner() {
    println!(
        "sluice demo: a frontend calls catalog (v1, v2) through its sidecar; each step is a live config change.\n"
    );
}

/// The pods and their addresses.
pub fn topology(frontend: &Pod, catalog: &[&Pod; 2], external: &Pod) {
    println!("pods (network namespaces on one bridge):");
    println!(
        "  frontend    {:<12} sluice-init + sluice-proxy (uid 1337), as injection sets them up",
        frontend.ipv4
    );
    println!("  catalog-v1  {:<12} catalog version v1", catalog[0].ipv4);
    println!("  catalog-v2  {:<12} catalog version v2", catalog[1].ipv4);
    println!(
        "  external    {:<12} jsonplaceholder.typicode.com, outside the mesh",
        external.ipv4
    );
    println!();
}

/// A step's heading.
pub fn heading(n: usize, of: usize, step: &Step) {
    println!("━━ {n}/{of} {}: {}", step.name, step.title);
}

/// Where the step's config comes from, and the config itself.
pub fn about(step: &Step) {
    println!("   {}", step.about);
    for line in step.yaml.lines() {
        println!("   │ {line}");
    }
}

/// The proxy took the config.
pub fn applied(version: u64) {
    println!("   applied live (config version {version})");
}

/// One batch's answers and whether they keep the promise; returns that.
pub fn tally(traffic: &Traffic, tally: &Tally) -> bool {
    println!("   {}:", traffic.label);
    let total: u32 = tally.statuses.values().sum();
    match traffic.expect {
        Expect::Versions(..) | Expect::Users(..) => {
            for (version, n) in &tally.versions {
                println!("     {version:<9} {} {n}", bar(*n, total));
            }
        }
        Expect::Status(_) => {
            for (status, n) in &tally.statuses {
                println!("     HTTP {status:<4} {} {n}", bar(*n, total));
            }
        }
    }
    let others: u32 = tally
        .statuses
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(_, n)| n)
        .sum();
    if matches!(traffic.expect, Expect::Versions(..) | Expect::Users(..)) && others > 0 {
        println!("     non-200   {} {others}", bar(others, total));
    }
    let ok = tally.keeps(&traffic.expect);
    println!("   {} promised {}", verdict(ok), promise(&traffic.expect));
    ok
}

/// Shadow copies a version received.
pub fn mirrored(version: &str, suffix: &str, want: u32, got: usize) -> bool {
    let ok = got == want as usize;
    println!(
        "   {version} received {got} mirrored requests with the {suffix} authority (clients never saw them)"
    );
    println!(
        "   {} promised {want} shadow copies on {version}",
        verdict(ok)
    );
    ok
}

/// A step that could not run.
pub fn error(message: &str) {
    println!("   FAIL {message}");
}

/// The closing line.
pub fn summary(passed: usize, total: usize) {
    println!("\n{passed}/{total} steps passed");
}

/// How to reach the mesh left running by `--keep`.
pub fn keep(mesh: &Mesh) {
    let ns = &mesh.frontend().netns;
    println!("\nThe mesh keeps running. From the frontend pod:");
    println!("  ip netns exec {ns} curl -s http://catalog/");
    println!("  ip netns exec {ns} curl -s -H 'x-istio-cohort: internal' http://catalog/");
    println!("  ip netns exec {ns} curl -s http://jsonplaceholder.typicode.com/");
    println!("  ip netns exec {ns} curl -s localhost:15090/metrics | grep sluice_");
    println!("  ip netns exec {ns} curl -s localhost:15000/config_dump");
    println!(
        "Config: {} (edit step.yaml: the proxy applies changes live)",
        mesh.config_dir().display()
    );
    println!(
        "Node namespace: {}. Ctrl-C stops everything and cleans up.",
        mesh.node_name()
    );
}

fn bar(n: u32, total: u32) -> String {
    let filled = if total == 0 {
        0
    } else {
        (n as usize * BAR).div_ceil(total as usize)
    };
    format!(
        "{}{}",
        "█".repeat(filled),
        "░".repeat(BAR - filled.min(BAR))
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn promise(expect: &Expect) -> String {
    match expect {
        Expect::Status(code) => format!("every answer HTTP {code}"),
        Expect::Users(want, slack) => {
            format!("users: {}", promise(&Expect::Versions(want, *slack)))
        }
        Expect::Versions(want, slack) => {
            let parts: Vec<String> = want.iter().map(|(v, n)| format!("{v} {n}")).collect();
            if *slack == 0 {
                parts.join(", ")
            } else {
                format!("{} (±{slack})", parts.join(", "))
            }
        }
    }
}

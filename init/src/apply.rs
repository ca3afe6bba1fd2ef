//! Applying and removing sluice's rules, idempotently. From the rules wanted and the rules there
//! comes the iptables-restore input that makes it so: sluice's chains are declared (created, or
//! flushed if they exist) and refilled, jumps into them are added only where missing, and sluice
//! chains or jumps no longer wanted are removed. Applying twice leaves the same rules; wanting no
//! rules (`--cleanup`) removes exactly sluice's chains and jumps. Everything else in the tables
//! is left alone (`--noflush`).

mod snapshot;

use std::fmt::Write as _;

use snapshot::Present;
pub use snapshot::Snapshot;

use crate::backend::{self, Backend};
use crate::config::{Action, Invocation};
use crate::error::Result;
use crate::exec;
use crate::rules::{self, Family, RuleSet, Table};
use crate::tproxy::{self, IpCommand};

/// Everything one run changes, worked out before anything is changed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The backend the rules go to.
    pub backend: Backend,
    /// Why that backend (logged).
    pub reason: String,
    pub families: Vec<FamilyPlan>,
}

/// The changes for one address family.
#[derive(Debug, Clone)]
pub struct FamilyPlan {
    pub family: Family,
    /// Input for `*-restore --noflush`; `None`: nothing to change.
    pub restore: Option<String>,
    /// tproxy's policy routing to add or remove.
    pub routing: Vec<IpCommand>,
}

/// Reads the namespace (without changing it) and works out the changes `invocation` asks for.
pub fn prepare(invocation: &Invocation, families: &[Family]) -> Result<Plan> {
    let config = &invocation.config;
    let selection = backend::select(config.backend, families)?;
    let mut plans = vec![];
    for &family in families {
        let current = Snapshot::parse(selection.saves.get(&family).map_or("", String::as_str));
        let wanted = match invocation.action {
            Action::Apply => rules::ruleset(config, family),
            Action::Cleanup => RuleSet::empty(),
        };
        plans.push(FamilyPlan {
            family,
            restore: restore_input(&wanted, &current),
            routing: routing(invocation, family, &wanted, &current)?,
        });
    }
    Ok(Plan {
        backend: selection.backend,
        reason: selection.reason,
        families: plans,
    })
}

/// The `ip` commands for tproxy's policy routing: wanted with sluice's mangle rules.
fn routing(
    invocation: &Invocation,
    family: Family,
    wanted: &RuleSet,
    current: &Snapshot,
) -> Result<Vec<IpCommand>> {
    let tproxy = invocation.config.tproxy;
    let wants_routing = wanted.tables.iter().any(|t| t.name == "mangle");
    // The routing can only be there if sluice's mangle rules are (or it was removed by hand
    // since: --cleanup looks anyway), and reading it costs two `ip` runs: skip it otherwise.
    let may_be_there = current.has_chains("mangle")
        || (invocation.action == Action::Cleanup && exec::installed("ip"));
    if !wants_routing && !may_be_there {
        return Ok(vec![]);
    }
    let present = tproxy::read_routing(tproxy, family)?;
    Ok(tproxy::plan_routing(tproxy, family, present, wants_routing))
}

impl Plan {
    /// What `--dry-run` prints: per family, the exact restore input, headed by the command it
    /// is given to, then the `ip` commands (as comments, so the whole is valid restore input).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for plan in &self.families {
            let program = self.backend.restore_program(plan.family);
            match &plan.restore {
                Some(input) => {
                    let _ = writeln!(out, "# {}: {program} --noflush", plan.family.name());
                    out.push_str(input);
                }
                None => {
                    let _ = writeln!(out, "# {}: nothing to change", plan.family.name());
                }
            }
            for command in &plan.routing {
                let _ = writeln!(out, "# {}: {command}", plan.family.name());
            }
        }
        out
    }

    /// Makes the changes: per family, one atomic restore; routing is added before it (so
    /// marked packets are routed from the first one) and removed after it.
    pub fn execute(&self) -> Result<()> {
        for plan in &self.families {
            let (adds, removals): (Vec<_>, Vec<_>) =
                plan.routing.iter().partition(|command| command.adds());
            for command in adds {
                command.run()?;
            }
            if let Some(input) = &plan.restore {
                self.backend.restore(plan.family, input)?;
            }
            for command in removals {
                command.run()?;
            }
        }
        Ok(())
    }
}

/// The iptables-restore input (for `--noflush`) that turns `current` into `wanted`; `None` if
/// there is nothing to do (no rules wanted and none there).
pub fn restore_input(wanted: &RuleSet, current: &Snapshot) -> Option<String> {
    let mut names: Vec<&str> = wanted.tables.iter().map(|t| t.name).collect();
    for name in current.tables.keys() {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let mut input = String::new();
    for name in names {
        let table = wanted.tables.iter().find(|t| t.name == name);
        let present = current.tables.get(name).cloned().unwrap_or_default();
        input.push_str(&table_input(name, table, &present));
    }
    (!input.is_empty()).then_some(input)
}

fn table_input(name: &str, wanted: Option<&Table>, present: &Present) -> String {
    let chains = wanted.map(|t| t.chains.as_slice()).unwrap_or_default();
    let wanted_jumps = wanted.map(|t| t.jumps.as_slice()).unwrap_or_default();
    let stale_chains: Vec<&String> = present
        .chains
        .iter()
        .filter(|chain| !chains.iter().any(|c| c.name == chain.as_str()))
        .collect();
    // Each wanted jump is kept once if present; other jumps into sluice's chains go.
    let mut unmatched: Vec<&String> = wanted_jumps.iter().collect();
    let mut deletions = vec![];
    for jump in &present.jumps {
        match unmatched.iter().position(|wanted| *wanted == jump) {
            Some(index) => {
                unmatched.remove(index);
            }
            None => deletions.push(jump.replacen("-A ", "-D ", 1)),
        }
    }
    if chains.is_empty() && stale_chains.is_empty() && deletions.is_empty() {
        return String::new();
    }
    let mut lines = vec![format!("*{name}")];
    // Declaring a chain creates it, or flushes it if it exists (also before deleting it).
    lines.extend(chains.iter().map(|c| format!(":{} - [0:0]", c.name)));
    lines.extend(stale_chains.iter().map(|c| format!(":{c} - [0:0]")));
    lines.extend(deletions);
    for chain in chains {
        lines.extend(chain.rules.iter().map(|r| format!("-A {} {r}", chain.name)));
    }
    lines.extend(unmatched.into_iter().cloned());
    lines.extend(stale_chains.iter().map(|c| format!("-X {c}")));
    lines.push("COMMIT".to_owned());
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests;

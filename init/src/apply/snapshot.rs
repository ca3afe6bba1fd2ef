//! Sluice's part of a namespace's rules, read from `*-save` output: its chains and the jumps
//! into them, table by table.

use std::collections::BTreeMap;

use crate::rules::CHAIN_PREFIX;

/// Sluice's part of a namespace's rules, read from `*-save` output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub(super) tables: BTreeMap<String, Present>,
}

/// Sluice's chains in one table and the jumps into them from other chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Present {
    pub(super) chains: Vec<String>,
    /// `-A` lines, exactly as saved.
    pub(super) jumps: Vec<String>,
}

impl Snapshot {
    /// Reads sluice's chains and the jumps into them from `*-save` output.
    pub fn parse(save: &str) -> Self {
        let mut tables: BTreeMap<String, Present> = BTreeMap::new();
        let mut table = None;
        for line in save.lines().map(str::trim_end) {
            if let Some(name) = line.strip_prefix('*') {
                table = Some(name.to_owned());
                continue;
            }
            let Some(table) = &table else { continue };
            if let Some(chain) = line.strip_prefix(':') {
                let name = chain.split_whitespace().next().unwrap_or_default();
                if name.starts_with(CHAIN_PREFIX) {
                    let present = tables.entry(table.clone()).or_default();
                    present.chains.push(name.to_owned());
                }
            } else if is_jump_into_sluice(line) {
                let present = tables.entry(table.clone()).or_default();
                present.jumps.push(line.to_owned());
            }
        }
        Snapshot { tables }
    }

    /// Whether sluice has chains in `table`.
    pub fn has_chains(&self, table: &str) -> bool {
        self.tables.get(table).is_some_and(|t| !t.chains.is_empty())
    }
}

/// An `-A` line of a chain not sluice's own that jumps (or goes) to one of sluice's chains.
fn is_jump_into_sluice(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["-A", chain, rest @ ..] if !chain.starts_with(CHAIN_PREFIX) => rest
            .windows(2)
            .any(|w| matches!(w[0], "-j" | "-g") && w[1].starts_with(CHAIN_PREFIX)),
        _ => false,
    }
}

//! The iptables backends (legacy and nft): their programs, reading a namespace's rules without
//! changing anything, applying restore input, and choosing one (`--backend auto`).

use std::collections::BTreeMap;
use std::fmt;

use crate::config::BackendChoice;
use crate::error::{Error, Result};
use crate::exec;
use crate::rules::{CHAIN_PREFIX, Family};

/// An iptables backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The x_tables kernel API (iptables-legacy-*).
    Legacy,
    /// nf_tables (iptables-nft-*).
    Nft,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        })
    }
}

impl Backend {
    /// e.g. `ip6tables-nft-save`.
    pub fn save_program(self, family: Family) -> String {
        format!("{}-{self}-save", family.iptables())
    }

    /// e.g. `iptables-legacy-restore`.
    pub fn restore_program(self, family: Family) -> String {
        format!("{}-{self}-restore", family.iptables())
    }

    /// The namespace's rules of this family, as `*-save` prints them, without creating anything:
    /// legacy tables are read only if /proc lists them (asking for a missing legacy table would
    /// create it), nft's save never creates tables.
    pub fn read(self, family: Family) -> Result<String> {
        if self == Backend::Legacy {
            let names = legacy_tables(family)?;
            if names.is_none_or(|names| names.trim().is_empty()) {
                exec::find(&self.save_program(family))?;
                return Ok(String::new());
            }
        }
        exec::run(&self.save_program(family), &[], None)
    }

    /// Applies `input` atomically with `*-restore --noflush` (other rules stay as they are).
    pub fn restore(self, family: Family, input: &str) -> Result<()> {
        let program = self.restore_program(family);
        // Legacy restore takes the xtables lock (one per machine, not per namespace).
        let args: &[&str] = match self {
            Backend::Legacy => &["--noflush", "--wait", "10"],
            Backend::Nft => &["--noflush"],
        };
        exec::run(&program, args, Some(input))
            .map(drop)
            .map_err(|err| with_failed_line(err, input))
    }
}

/// The legacy tables that exist in this namespace (the contents of
/// /proc/net/ip{,6}_tables_names); `None` if the kernel has no legacy iptables loaded.
fn legacy_tables(family: Family) -> Result<Option<String>> {
    let path = match family {
        Family::V4 => "/proc/net/ip_tables_names",
        Family::V6 => "/proc/net/ip6_tables_names",
    };
    match std::fs::read_to_string(path) {
        Ok(names) => Ok(Some(names)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io(format!("reading {path}"), err)),
    }
}

/// iptables-restore names the failing line by number: quote it.
fn with_failed_line(err: Error, input: &str) -> Error {
    let Error::Command {
        command,
        status,
        stderr,
    } = err
    else {
        return err;
    };
    let line = stderr
        .split("line ")
        .nth(1)
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .and_then(|number| input.lines().nth(number.checked_sub(1)?));
    let stderr = match line {
        Some(line) => format!("{stderr} (the line: `{line}`)"),
        None => stderr,
    };
    Error::Command {
        command,
        status,
        stderr,
    }
}

/// The backend chosen, why, and the namespace's current rules in it per family.
#[derive(Debug, Clone)]
pub struct Selection {
    pub backend: Backend,
    pub reason: String,
    pub saves: BTreeMap<Family, String>,
}

/// Chooses the backend for `families` (see `--backend` in `--help` for the order of reasons).
pub fn select(choice: BackendChoice, families: &[Family]) -> Result<Selection> {
    let requested = match choice {
        BackendChoice::Legacy => Some(Backend::Legacy),
        BackendChoice::Nft => Some(Backend::Nft),
        BackendChoice::Auto => None,
    };
    if let Some(backend) = requested {
        return Ok(Selection {
            backend,
            reason: format!("--backend {backend} was given"),
            saves: read_all(backend, families)?,
        });
    }
    let legacy = observe(Backend::Legacy, families)?;
    let nft = observe(Backend::Nft, families)?;
    let facts = Facts {
        legacy: legacy.as_ref().map(|o| o.count).map_err(Clone::clone),
        nft: nft.as_ref().map(|o| o.count).map_err(Clone::clone),
        legacy_in_kernel: std::path::Path::new("/proc/net/ip_tables_names").exists(),
        image_default: image_default(),
    };
    let (backend, reason) = decide(&facts)?;
    let saves = match backend {
        Backend::Legacy => legacy,
        Backend::Nft => nft,
    };
    Ok(Selection {
        backend,
        reason,
        saves: saves.map(|o| o.saves).unwrap_or_default(),
    })
}

fn read_all(backend: Backend, families: &[Family]) -> Result<BTreeMap<Family, String>> {
    families
        .iter()
        .map(|&family| Ok((family, backend.read(family)?)))
        .collect()
}

/// What a usable backend holds over the families.
struct Observed {
    count: RuleCount,
    saves: BTreeMap<Family, String>,
}

/// What one backend holds over `families`, or why it cannot be used (not installed, not
/// supported by the kernel). Only a lack of privileges is an error: it would hit both.
fn observe(backend: Backend, families: &[Family]) -> Result<Result<Observed, String>> {
    match read_all(backend, families) {
        Ok(saves) => {
            let count = saves
                .values()
                .map(|save| RuleCount::of(save))
                .fold(RuleCount::default(), RuleCount::add);
            Ok(Ok(Observed { count, saves }))
        }
        Err(err @ Error::Permission { .. }) => Err(err),
        Err(err) => Ok(Err(err.to_string())),
    }
}

/// What a backend's rules amount to, for choosing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCount {
    /// Rules and user-defined chains: empty tables count nothing.
    pub rules: usize,
    /// Sluice's chains are among them.
    pub sluice: bool,
}

impl RuleCount {
    /// Counts the rules in `*-save` output.
    pub fn of(save: &str) -> Self {
        let mut count = RuleCount::default();
        for line in save.lines() {
            if line.starts_with("-A ") {
                count.rules += 1;
            } else if let Some(chain) = line.strip_prefix(':') {
                let mut words = chain.split_whitespace();
                let name = words.next().unwrap_or_default();
                if words.next() == Some("-") {
                    count.rules += 1;
                    count.sluice |= name.starts_with(CHAIN_PREFIX);
                }
            }
        }
        count
    }

    fn add(self, other: Self) -> Self {
        Self {
            rules: self.rules + other.rules,
            sluice: self.sluice || other.sluice,
        }
    }
}

/// What auto-detection decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The legacy backend's rules, or why it is unusable.
    pub legacy: Result<RuleCount, String>,
    /// The nft backend's rules, or why it is unusable.
    pub nft: Result<RuleCount, String>,
    /// The kernel has legacy iptables loaded (/proc/net/ip_tables_names exists).
    pub legacy_in_kernel: bool,
    /// The image's `iptables` and what `iptables --version` said, if it is installed.
    pub image_default: Option<(Backend, String)>,
}

/// The decision of `--backend auto`, with its reason.
pub fn decide(facts: &Facts) -> Result<(Backend, String)> {
    use Backend::{Legacy, Nft};
    let (legacy, nft) = match (&facts.legacy, &facts.nft) {
        (Err(legacy), Err(nft)) => {
            return Err(Error::Backend(format!("legacy: {legacy}; nft: {nft}")));
        }
        (Ok(_), Err(nft)) => return Ok((Legacy, format!("nft is not usable: {nft}"))),
        (Err(legacy), Ok(_)) => return Ok((Nft, format!("legacy is not usable: {legacy}"))),
        (Ok(legacy), Ok(nft)) => (*legacy, *nft),
    };
    let counts = format!("{} legacy and {} nft rules", legacy.rules, nft.rules);
    if legacy.sluice != nft.sluice {
        let backend = if legacy.sluice { Legacy } else { Nft };
        return Ok((
            backend,
            format!("sluice's chains are already there ({counts})"),
        ));
    }
    match (legacy.rules, nft.rules) {
        (0, 0) => {}
        (l, n) if l > n => {
            return Ok((
                Legacy,
                format!("the namespace's rules are there ({counts})"),
            ));
        }
        (_, _) => return Ok((Nft, format!("the namespace's rules are there ({counts})"))),
    }
    if !facts.legacy_in_kernel {
        return Ok((
            Nft,
            "no rules in either backend, and the kernel has no legacy iptables loaded \
             (no /proc/net/ip_tables_names)"
                .to_owned(),
        ));
    }
    Ok(match &facts.image_default {
        Some((backend, version)) => (
            *backend,
            format!("no rules in either backend; the image's default is `{version}`"),
        ),
        None => (
            Nft,
            "no rules in either backend and no `iptables` to ask for the image's default"
                .to_owned(),
        ),
    })
}

/// The backend behind the image's `iptables` command, from `iptables --version`.
fn image_default() -> Option<(Backend, String)> {
    let version = exec::run("iptables", &["--version"], None).ok()?;
    let version = version.trim().to_owned();
    // "iptables v1.8.9 (nf_tables)", "iptables v1.8.9 (legacy)", or before 1.8 only legacy.
    let backend = if version.contains("nf_tables") {
        Backend::Nft
    } else {
        Backend::Legacy
    };
    Some((backend, version))
}

#[cfg(test)]
mod tests;

//! The errors of sluice-init: each names what was wrong (flag and value, command, address) and
//! how to fix it.

use std::fmt;

/// Everything that can make sluice-init fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more flags have bad values; all of them are listed.
    #[error("invalid flags:\n{}", list(.0))]
    Config(Vec<FlagError>),
    /// A program sluice-init runs is not installed.
    #[error("{program} not found in PATH ({path}): {fix}")]
    MissingProgram {
        program: String,
        path: String,
        fix: &'static str,
    },
    /// No iptables backend can be used.
    #[error("no usable iptables backend: {0}")]
    Backend(String),
    /// The kernel refused: not root, or without CAP_NET_ADMIN / CAP_NET_RAW.
    #[error(
        "permission denied: {what}. sluice-init must run as root with the NET_ADMIN and NET_RAW \
         capabilities (the init container's securityContext)"
    )]
    Permission { what: String },
    /// A program ran but failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// `--validate` found that the rules do not capture traffic.
    #[error("--validate: {0}")]
    Validation(String),
    /// An I/O error outside of running programs (reading /proc, sockets).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// One bad flag value, with the reason and the accepted values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError {
    /// The flag, as `--name`.
    pub flag: &'static str,
    /// The whole value given to the flag; `None` for a switch (`--validate`).
    pub value: Option<String>,
    /// What is wrong with it and what would be accepted.
    pub problem: String,
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} {value:?}: {}", self.flag, self.problem),
            None => write!(f, "{}: {}", self.flag, self.problem),
        }
    }
}

fn list(errors: &[FlagError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    lines.join("\n")
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        let what = what.into();
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            Error::Permission { what }
        } else {
            Error::Io { what, source }
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Errors, warnings and notes about config, each naming where it applies.

use std::fmt;

use serde::Serialize;

use crate::resource::Origin;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config is rejected.
    Error,
    /// The config is accepted but likely not what was meant.
    Warning,
    /// Something was skipped on purpose.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One finding: severity, where (file, document, resource, field path) and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// The file and document, when known.
    pub origin: Option<Origin>,
    /// The file alone, for problems before any document is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `Kind namespace/name` of the resource, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Field path such as `spec.http[0].route[1].weight`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic about a document.
    pub fn new(severity: Severity, origin: &Origin, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            origin: Some(origin.clone()),
            file: None,
            subject: None,
            path: None,
            message: message.into(),
        }
    }

    /// A diagnostic about a whole file (unreadable, not YAML...).
    pub fn file(file: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            origin: None,
            file: Some(file.to_string()),
            subject: None,
            path: None,
            message: message.into(),
        }
    }

    /// Names the resource the diagnostic is about.
    pub fn subject(mut self, subject: impl Into<String>) -> Diagnostic {
        self.subject = Some(subject.into());
        self
    }

    /// Names the field the diagnostic is about.
    pub fn at(mut self, path: impl Into<String>) -> Diagnostic {
        self.path = Some(path.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, &self.file) {
            (Some(origin), _) => write!(f, "{origin}")?,
            (None, Some(file)) => f.write_str(file)?,
            (None, None) => f.write_str("<config>")?,
        }
        if let Some(subject) = &self.subject {
            write!(f, " ({subject})")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

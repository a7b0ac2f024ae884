//! Diagnostics: every problem found in input, with where it is.
//!
//! A diagnostic names the file, line and column where known, the resource id
//! and the field path, so an operator can jump straight to the mistake. The
//! `message` keeps routerd's wording (`<id> spec.mtu must be within
//! 576-9216`) because existing tooling matches on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How serious a diagnostic is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input is rejected.
    #[default]
    Error,
    /// The input is accepted, but probably not what the operator meant.
    Warning,
}

/// One problem in the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// Error or warning.
    #[serde(skip)]
    pub severity: Severity,
    /// Source file, when the resource came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Resource id (`apiVersion/Kind/name`), when the problem belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Field path inside the resource, e.g. `spec.candidates[1].gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Human-readable text, routerd's wording where routerd has one.
    pub message: String,
}

impl Diagnostic {
    /// An error with only a message.
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: None,
            line: None,
            column: None,
            resource: None,
            path: None,
            message: message.into(),
        }
    }

    /// A warning with only a message.
    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    /// Sets the resource id.
    pub fn with_resource(mut self, id: impl Into<String>) -> Self {
        self.resource = Some(id.into());
        self
    }

    /// Sets the field path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let p = path.into();
        self.path = if p.is_empty() { None } else { Some(p) };
        self
    }

    /// Whether this diagnostic rejects the input.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            f.write_str(": ")?;
        }
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)?;
        // routerd's wording leaves the field out of some messages
        // ("<id> references missing Interface \"x\""); name it anyway.
        match &self.path {
            Some(p) if !self.message.contains(p.as_str()) => write!(f, " (at {p})"),
            _ => Ok(()),
        }
    }
}

/// Collects the problems of one resource, prefixing each message with the id
/// the way routerd does.
#[derive(Debug)]
pub struct Problems<'a> {
    id: &'a str,
    out: &'a mut Vec<Diagnostic>,
}

impl<'a> Problems<'a> {
    /// A collector for resource `id` that appends to `out`.
    pub fn new(id: &'a str, out: &'a mut Vec<Diagnostic>) -> Self {
        Problems { id, out }
    }

    /// The resource id this collector reports for.
    pub fn id(&self) -> &str {
        self.id
    }

    /// `<id> <path> <text>`, located at `path`.
    pub fn field(&mut self, path: &str, text: impl fmt::Display) {
        let message = format!("{} {path} {text}", self.id);
        self.push(Severity::Error, path, message);
    }

    /// `<id> <text>`, located at `path` (for messages that do not start with the path).
    pub fn at(&mut self, path: &str, text: impl fmt::Display) {
        let message = format!("{} {text}", self.id);
        self.push(Severity::Error, path, message);
    }

    /// A warning `<id> <text>` located at `path`.
    pub fn warn(&mut self, path: &str, text: impl fmt::Display) {
        let message = format!("{} {text}", self.id);
        self.push(Severity::Warning, path, message);
    }

    fn push(&mut self, severity: Severity, path: &str, message: String) {
        let d = Diagnostic {
            severity,
            ..Diagnostic::error(message)
        }
        .with_resource(self.id)
        .with_path(path);
        self.out.push(d);
    }
}

//! Output formats.

use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;

/// How a command prints its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// Pretty JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Prints `value` as JSON or YAML.
pub fn print_doc<T: Serialize>(value: &T, format: Format) -> Result<()> {
    let text = match format {
        Format::Yaml => serde_yaml::to_string(value)?,
        _ => serde_json::to_string_pretty(value)? + "\n",
    };
    out(&text)
}

/// Writes to standard output. A closed pipe (`routerctl ... | head`) is not
/// an error: the reader has what it wanted.
pub fn out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

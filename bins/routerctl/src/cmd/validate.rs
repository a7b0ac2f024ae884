//! `routerctl validate -f FILE... [-o text|json]`.

use anyhow::Result;
use routerd_model::Diagnostic;
use serde::Serialize;

use crate::exit::{DATA, OK};
use crate::input;
use crate::output::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (`-` for standard input); repeat to combine files.
    #[arg(short = 'f', long = "file", required = true)]
    files: Vec<String>,
    /// What a field no type declares does: `error` rejects the file;
    /// `warn` accepts it with one warning per field, as routerd (which
    /// drops such fields silently) would. A `Router` document's
    /// `spec.unknownFields: warn` does the same for its own resources.
    #[arg(
        long = "unknown-fields",
        value_name = "error|warn",
        default_value = "error"
    )]
    unknown_fields: routerd_model::UnknownFields,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    errors: Vec<&'a Diagnostic>,
    warnings: Vec<&'a Diagnostic>,
}

pub fn run(args: Args) -> Result<i32> {
    let (loaded, mut diags) = input::load_startup_with(&args.files, args.unknown_fields)?;
    diags.extend(input::port_warnings(&loaded));
    let (errors, warnings): (Vec<_>, Vec<_>) = diags.iter().partition(|d| d.is_error());
    let valid = errors.is_empty();
    match args.output {
        Format::Text => {
            for d in &diags {
                eprintln!("{d}");
            }
            if valid {
                crate::output::out("config is valid\n")?;
            } else {
                eprintln!(
                    "config is invalid: {} error{}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
            }
        }
        f => crate::output::print_doc(
            &Report {
                valid,
                errors,
                warnings,
            },
            f,
        )?,
    }
    Ok(if valid { OK } else { DATA })
}

//! `routerctl schema [KIND]`: JSON Schema generated from the types.

use anyhow::Result;
use routerd_model::schema;

use crate::exit::{Exit, OK, USAGE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kind name (for example EgressRoutePolicy); all kinds when omitted.
    kind: Option<String>,
}

pub fn run(args: Args) -> Result<i32> {
    let doc = match args.kind.as_deref() {
        None => schema::all_kinds(),
        Some(k) => schema::for_kind_name(k).ok_or_else(|| {
            Exit::new(
                USAGE,
                format!("unknown kind {k:?}; `routerctl schema` lists every kind"),
            )
        })?,
    };
    crate::output::out(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
    Ok(OK)
}

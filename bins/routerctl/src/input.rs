//! Reading input files (`-` is standard input).

use std::io::Read;

use anyhow::Result;
use routerd_model::validate::Context;
use routerd_model::{Diagnostic, Loaded, UnknownFields};

use crate::exit::{Exit, NO_INPUT};

/// Reads `path`, or standard input for `-`.
pub fn read(path: &str) -> Result<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Exit::new(NO_INPUT, format!("read standard input: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .map_err(|e| Exit::new(NO_INPUT, format!("read {path}: {e}")).into())
}

/// Loads and validates startup files, unknown fields being errors.
pub fn load_startup(files: &[String]) -> Result<(Loaded, Vec<Diagnostic>)> {
    load_startup_with(files, UnknownFields::Error)
}

/// Loads and validates startup files, reporting unknown fields per `mode`.
pub fn load_startup_with(
    files: &[String],
    mode: UnknownFields,
) -> Result<(Loaded, Vec<Diagnostic>)> {
    let mut loaded = Loaded::with_unknown_fields(mode);
    for f in files {
        let text = read(f)?;
        loaded.add_file(if f == "-" { "<stdin>" } else { f }, &text);
    }
    let diags = loaded.validate(Context::Startup);
    Ok((loaded, diags))
}

/// The sockets this host listens on (`/proc/net/{tcp,tcp6,udp,udp6}`;
/// files that cannot be read contribute nothing), for the EgressRouter
/// port-collision warnings.
pub fn host_listeners() -> Vec<routerd_model::spec::egress_router::ListeningSocket> {
    use routerd_model::spec::egress_router::{RedirectProtocol, parse_proc_net};
    let mut out = Vec::new();
    for (file, proto) in [
        ("/proc/net/tcp", RedirectProtocol::Tcp),
        ("/proc/net/tcp6", RedirectProtocol::Tcp),
        ("/proc/net/udp", RedirectProtocol::Udp),
        ("/proc/net/udp6", RedirectProtocol::Udp),
    ] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(parse_proc_net(&text, proto));
        }
    }
    out
}

/// Warnings for EgressRouter redirect ports this host listens on.
pub fn port_warnings(loaded: &Loaded) -> Vec<Diagnostic> {
    if !loaded
        .resources
        .iter()
        .any(|r| r.as_egress_router().is_some())
    {
        return Vec::new();
    }
    routerd_model::spec::egress_router::port_collision_warnings(loaded, &host_listeners())
}

//! Exit codes (sysexits where one fits); the contract is in docs/cli.md.

use std::fmt;

/// Success.
pub const OK: i32 = 0;
/// A domain-level "no" (for example an unhealthy probe).
#[allow(dead_code)]
pub const NO: i32 = 1;
/// Command-line usage error (EX_USAGE).
pub const USAGE: i32 = 64;
/// Invalid configuration or input data (EX_DATAERR).
pub const DATA: i32 = 65;
/// An input file could not be read (EX_NOINPUT).
pub const NO_INPUT: i32 = 66;
/// The daemon is unavailable (EX_UNAVAILABLE).
#[allow(dead_code)]
pub const UNAVAILABLE: i32 = 69;
/// The daemon refused the request for this user (EX_NOPERM): not in the
/// socket's groups, or a change asked with read-only access.
pub const NOPERM: i32 = 77;
/// Try again later: the daemon is busy with the same work (EX_TEMPFAIL).
pub const TEMPFAIL: i32 = 75;

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

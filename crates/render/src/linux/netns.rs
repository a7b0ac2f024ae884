//! Running inside a named network namespace.

use std::fs::File;

use nix::sched::{CloneFlags, setns};

use crate::dataplane::DataplaneError;

/// Moves the **calling thread** into the network namespace `name` (a name
/// under `/run/netns`, as `ip netns add` creates, or an absolute path).
/// Sockets opened and processes spawned by this thread afterwards live in
/// that namespace; other threads are unaffected. Run it on a dedicated
/// thread, never on one that must stay in the host's namespace.
pub fn enter(name: &str) -> Result<(), DataplaneError> {
    let path = if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/run/netns/{name}")
    };
    let f = File::open(&path).map_err(|e| DataplaneError::Io {
        context: format!("open {path}"),
        message: e.to_string(),
    })?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| DataplaneError::Io {
        context: format!("setns {path}"),
        message: e.to_string(),
    })
}

/// The calling thread's network namespace (`net:[inode]`). Backends that
/// spawn processes or open sockets per call record it at creation and
/// refuse to run from a thread in another namespace.
pub fn current() -> Option<std::path::PathBuf> {
    std::fs::read_link("/proc/thread-self/ns/net").ok()
}

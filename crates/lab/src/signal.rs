//! Ctrl-C cleanup for the demo.
//!
//! `Drop` cannot run when SIGINT kills the process, so labs register their namespaces and
//! children here, and a signal thread removes them before exiting. The handler is only
//! installed when a caller asks for it ([`crate::Lab::install_ctrlc_cleanup`]): a library
//! must not take over a process's signals behind its back.
//!
//! tokio's signal support is used because it is already in the workspace and offers a
//! safe API (the workspace denies `unsafe_code`, which rules out raw `sigaction`).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{LabError, Result};
use crate::netns::destroy_namespace;

/// The exit status after a signal-triggered cleanup: 128 + SIGINT, as a shell reports it.
const EXIT_AFTER_SIGNAL: i32 = 130;

#[derive(Default)]
struct Registry {
    namespaces: BTreeSet<String>,
    children: BTreeSet<i32>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn register_namespace(name: &str) {
    registry().namespaces.insert(name.to_owned());
}

pub(crate) fn unregister_namespace(name: &str) {
    registry().namespaces.remove(name);
}

pub(crate) fn register_child(pid: i32) {
    registry().children.insert(pid);
}

pub(crate) fn unregister_child(pid: i32) {
    registry().children.remove(&pid);
}

/// Starts the signal thread once per process; later calls are no-ops.
pub(crate) fn install() -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let outcome = INSTALLED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        // Register the handlers before returning, so a Ctrl-C right after the call is
        // already caught.
        let (interrupt, terminate) = runtime
            .block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                Ok::<_, std::io::Error>((
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::terminate())?,
                ))
            })
            .map_err(|e| e.to_string())?;
        thread::Builder::new()
            .name("routerd-lab-signals".to_owned())
            .spawn(move || {
                let (mut interrupt, mut terminate) = (interrupt, terminate);
                runtime.block_on(async {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                });
                eprintln!("routerd-lab: interrupted, removing the lab's namespaces");
                cleanup_registered();
                std::process::exit(EXIT_AFTER_SIGNAL);
            })
            .map(drop)
            .map_err(|e| e.to_string())
    });
    outcome
        .clone()
        .map_err(|e| LabError::io("installing the Ctrl-C handler", std::io::Error::other(e)))
}

fn cleanup_registered() {
    let (children, namespaces) = {
        let reg = registry();
        (reg.children.clone(), reg.namespaces.clone())
    };
    for pid in children {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    for name in namespaces {
        if let Err(e) = destroy_namespace(&name) {
            eprintln!("routerd-lab: removing {name}: {e}");
        }
    }
}

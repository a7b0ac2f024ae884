//! Network namespaces for the render crate's root-only tests: a named
//! namespace deleted on drop, commands in it, closures run inside it. Each
//! test file names its namespaces with its own prefix so a leftover tells
//! which test left it.

#![allow(dead_code)] // each test file uses its own subset

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use routerd_render::linux::netns;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A named namespace with `lo` up, deleted on drop.
pub(crate) struct Ns(pub(crate) String);

impl Ns {
    /// `<prefix><pid>-<n><tag>`.
    pub(crate) fn new(prefix: &str, tag: &str) -> Ns {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}{}-{n}{tag}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Ns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> <args>`, which must succeed.
    pub(crate) fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// A command in the namespace, which must succeed.
    pub(crate) fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.0];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// A command in the namespace whose failure is an answer (`arping`
    /// without a reply): its standard output either way.
    pub(crate) fn output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A file of the namespace's `/proc` or `/sys`, trimmed.
    pub(crate) fn read(&self, path: &str) -> String {
        self.output(&["cat", path]).trim().to_string()
    }

    /// Runs `f` on a thread inside the namespace.
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.0.clone();
        std::thread::spawn(move || {
            netns::enter(&name).expect("setns");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A command that must succeed; its standard output.
pub(crate) fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

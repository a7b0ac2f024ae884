//! Helpers shared by the namespace end-to-end tests (`e2e.rs`,
//! `e2e_plugin.rs`): the `routerd serve` process inside the lab's router
//! namespace, and commands run there.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use routerd_lab::{ChildId, ChildOutput, Lab, Node};

/// Runs `routerd demo <args>` to the end and returns what it printed,
/// failing the test (with both streams) when it exits unsuccessfully.
pub(crate) fn run_routerd_demo(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_routerd"))
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// The demo configuration (`examples/demo/config.yaml`); tests append resources to it.
pub(crate) const DEMO: &str = include_str!("../../../../examples/demo/config.yaml");

/// `routerd serve` in the lab's router namespace, with its config, state
/// directory, control socket and log in `dir`.
///
/// Dropping it SIGKILLs a daemon that is still running (a failed test); the
/// lab's own teardown would kill it too, this only makes it happen first.
pub(crate) struct Daemon<'a> {
    lab: &'a Lab,
    dir: PathBuf,
    child: Option<ChildId>,
    /// More `routerd serve` arguments (`--metrics-listen`, ...).
    pub(crate) args: Vec<String>,
}

impl<'a> Daemon<'a> {
    /// Writes `dir/config.yaml`: the demo configuration followed by `extra`
    /// (more resources, indented as list items of `spec.resources`).
    pub(crate) fn new(lab: &'a Lab, dir: &Path, extra: &str) -> Self {
        std::fs::write(dir.join("config.yaml"), format!("{DEMO}{extra}")).unwrap();
        Daemon {
            lab,
            dir: dir.to_path_buf(),
            child: None,
            args: Vec::new(),
        }
    }

    pub(crate) fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// [`Daemon::start`] with extra environment variables (`NOTIFY_SOCKET`
    /// to watch for systemd's `READY=1`), set through `env(1)`, which execs
    /// routerd so the child's pid stays the daemon's.
    pub(crate) fn start_with_env(&mut self, vars: &[(&str, &str)]) {
        let d = &self.dir;
        let vars: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let id = self
            .lab
            .spawn(
                Node::Router,
                "env",
                vars.iter()
                    .map(std::ffi::OsStr::new)
                    .chain([
                        env!("CARGO_BIN_EXE_routerd").as_ref(),
                        "serve".as_ref(),
                        "--config".as_ref(),
                        d.join("config.yaml").as_os_str(),
                        "--state-dir".as_ref(),
                        d.join("state").as_os_str(),
                        "--socket".as_ref(),
                        d.join("routerd.sock").as_os_str(),
                        "--resync".as_ref(),
                        "30s".as_ref(),
                    ])
                    .chain(self.args.iter().map(std::ffi::OsStr::new)),
                ChildOutput::File(d.join("routerd.log")),
            )
            .unwrap();
        self.child = Some(id);
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(id) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(id.pid()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = self.lab.stop_child(id, Duration::from_secs(2));
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(id) = self.child.take() {
            let st = self.lab.stop_child(id, Duration::from_secs(10)).unwrap();
            assert!(
                st.success(),
                "routerd exited with {st} on SIGTERM; log:\n{}",
                self.log()
            );
        }
    }

    /// Sends `sig` to the running daemon (SIGHUP: reload).
    pub(crate) fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(id) = &self.child {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(id.pid()).unwrap());
            nix::sys::signal::kill(pid, sig).unwrap();
        }
    }

    /// SIGHUP: reload the configuration file.
    pub(crate) fn reload(&self) {
        self.signal(nix::sys::signal::Signal::SIGHUP);
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("routerd.sock")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("routerd.log")).unwrap_or_default()
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `prog args` in the router namespace; empty output when it fails.
pub(crate) fn sh(lab: &Lab, prog: &str, args: &[&str]) -> String {
    lab.exec(Node::Router, prog, args).unwrap_or_default()
}

/// A fresh lab with namespaces named `PREFIX-...`, after removing what a
/// crashed earlier run with the same prefix left behind.
pub(crate) fn lab(prefix: &str) -> Lab {
    let _ = routerd_lab::cleanup_stale(prefix);
    Lab::build(prefix).unwrap()
}

//! Supervision of keepalived and conntrackd: install a configuration only
//! after the daemon accepted it, start, reload on change, restart on death.
//!
//! Every side effect goes through [`Effects`], so the policy (never install
//! a rejected configuration, reload only on a byte change, restart a dead
//! daemon, commit the external cache on promotion) is tested against
//! [`MemoryEffects`] and runs against [`SystemEffects`].

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::plan::{GroupPlan, Paths};
use crate::render::{conntrackd_conf, keepalived_conf};

/// The two supervised daemons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Daemon {
    /// VRRP election and virtual addresses.
    Keepalived,
    /// Connection-state sync.
    Conntrackd,
}

impl Daemon {
    /// The executable's name.
    pub fn binary(self) -> &'static str {
        match self {
            Daemon::Keepalived => "keepalived",
            Daemon::Conntrackd => "conntrackd",
        }
    }

    /// The configuration file under `paths`.
    pub fn config(self, paths: &Paths) -> PathBuf {
        match self {
            Daemon::Keepalived => paths.keepalived_conf(),
            Daemon::Conntrackd => paths.conntrackd_conf(),
        }
    }
}

/// Why supervising failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperviseError {
    /// The executable is not installed.
    #[error("{0} is not installed: install the distribution's {0} package (scripts/deps.sh)")]
    MissingBinary(&'static str),
    /// The daemon rejected the rendered configuration; it was not installed.
    #[error("{daemon} rejected the rendered configuration, which was not installed: {message}")]
    Rejected {
        /// The daemon.
        daemon: &'static str,
        /// What it said.
        message: String,
    },
    /// A command ran and failed.
    #[error("{daemon} {what} failed: {message}")]
    Failed {
        /// The daemon.
        daemon: &'static str,
        /// What was attempted.
        what: String,
        /// What it said.
        message: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// The side effects supervision needs, and nothing more.
pub trait Effects {
    /// Replaces `path` atomically with `contents`.
    fn write(&mut self, path: &Path, contents: &str) -> Result<(), SuperviseError>;
    /// Asks the daemon whether `config` is acceptable (keepalived
    /// `--config-test`; conntrackd has no such mode and accepts).
    fn config_test(&mut self, daemon: Daemon, config: &Path) -> Result<(), SuperviseError>;
    /// Starts the daemon in the foreground on `config`.
    fn start(&mut self, daemon: Daemon, config: &Path, paths: &Paths)
    -> Result<(), SuperviseError>;
    /// Makes a running daemon re-read its configuration.
    fn reload(&mut self, daemon: Daemon) -> Result<(), SuperviseError>;
    /// Whether the daemon routerd started is still running.
    fn running(&mut self, daemon: Daemon) -> bool;
    /// Stops the daemon (it releases its addresses on the way out).
    fn stop(&mut self, daemon: Daemon);
    /// Runs a control command (`conntrackd -C config <args>`).
    fn ctl(&mut self, daemon: Daemon, config: &Path, args: &[&str]) -> Result<(), SuperviseError>;

    /// Whether this is the real system, whose gateway agent may talk to the
    /// other members on the network (suitability beacons, VRRP adverts);
    /// the in-memory twin never sends a packet.
    fn networked(&self) -> bool {
        false
    }
}

/// What one reconcile step did to a daemon.
#[derive(Debug)]
pub enum Outcome {
    /// Started for the first time.
    Started(Daemon),
    /// The configuration changed and the daemon re-read it.
    Reloaded(Daemon),
    /// It had died and was started again.
    Restarted(Daemon),
    /// Nothing to do.
    Unchanged(Daemon),
    /// No longer needed and stopped.
    Stopped(Daemon),
    /// Something failed; the previous state is kept.
    Failed(Daemon, SuperviseError),
}

#[derive(Debug, Default)]
struct Slot {
    installed: Option<String>,
    restarts: u64,
}

/// The supervisor of one node's daemons.
#[derive(Debug)]
pub struct Supervisor<E: Effects> {
    effects: E,
    paths: Paths,
    slots: BTreeMap<Daemon, Slot>,
    suitability: BTreeMap<PathBuf, bool>,
}

impl<E: Effects> Supervisor<E> {
    /// A supervisor writing under `paths`.
    pub fn new(effects: E, paths: Paths) -> Self {
        Supervisor {
            effects,
            paths,
            slots: BTreeMap::new(),
            suitability: BTreeMap::new(),
        }
    }

    /// The effects (for tests and for the daemon's status).
    pub fn effects(&mut self) -> &mut E {
        &mut self.effects
    }

    /// The runtime paths.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// How many times `daemon` was restarted after dying.
    pub fn restarts(&self, daemon: Daemon) -> u64 {
        self.slots.get(&daemon).map_or(0, |s| s.restarts)
    }

    /// The configuration installed for `daemon`, if any.
    pub fn installed(&self, daemon: Daemon) -> Option<&str> {
        self.slots.get(&daemon).and_then(|s| s.installed.as_deref())
    }

    /// Writes a gateway's suitability file (`0` suitable, `1` not) when it
    /// changed; keepalived puts the instance in FAULT on `1` at once.
    pub fn set_suitable(
        &mut self,
        track_file: &Path,
        suitable: bool,
    ) -> Result<bool, SuperviseError> {
        if self.suitability.get(track_file) == Some(&suitable) {
            return Ok(false);
        }
        self.effects
            .write(track_file, if suitable { "0\n" } else { "1\n" })?;
        self.suitability.insert(track_file.to_path_buf(), suitable);
        Ok(true)
    }

    /// Brings both daemons to `plan`: track files first (unsuitable until
    /// routerd says otherwise), then conntrackd, then keepalived.
    pub fn apply(&mut self, plan: &GroupPlan) -> Vec<Outcome> {
        let mut out = Vec::new();
        for g in &plan.gateways {
            if !self.suitability.contains_key(&g.track_file)
                && let Err(e) = self.set_suitable(&g.track_file, false)
            {
                out.push(Outcome::Failed(Daemon::Keepalived, e));
                return out;
            }
        }
        let ct = conntrackd_conf(plan, &self.paths);
        out.push(self.reconcile(Daemon::Conntrackd, ct));
        let ka = keepalived_conf(plan, &self.paths);
        out.push(self.reconcile(Daemon::Keepalived, ka));
        out
    }

    fn reconcile(&mut self, daemon: Daemon, want: Option<String>) -> Outcome {
        let config = daemon.config(&self.paths);
        let installed = self.slots.entry(daemon).or_default().installed.clone();
        let Some(text) = want else {
            if installed.is_some() {
                self.effects.stop(daemon);
                self.slots.entry(daemon).or_default().installed = None;
                return Outcome::Stopped(daemon);
            }
            return Outcome::Unchanged(daemon);
        };
        if installed.as_deref() == Some(text.as_str()) {
            if self.effects.running(daemon) {
                return Outcome::Unchanged(daemon);
            }
            return self.restart(daemon);
        }
        // Test a candidate beside the live file: a rejected configuration
        // never replaces the one the daemon runs on.
        let candidate = config.with_extension("conf.candidate");
        if let Err(e) = self.effects.write(&candidate, &text) {
            return Outcome::Failed(daemon, e);
        }
        if let Err(e) = self.effects.config_test(daemon, &candidate) {
            return Outcome::Failed(daemon, e);
        }
        if let Err(e) = self.effects.write(&config, &text) {
            return Outcome::Failed(daemon, e);
        }
        self.slots.entry(daemon).or_default().installed = Some(text);
        let running = self.effects.running(daemon);
        let r = match (running, daemon) {
            (true, Daemon::Keepalived) => self
                .effects
                .reload(daemon)
                .map(|()| Outcome::Reloaded(daemon)),
            (true, Daemon::Conntrackd) => {
                // conntrackd has no reload: restart it (the peers resync it).
                self.effects.stop(daemon);
                self.effects
                    .start(daemon, &config, &self.paths)
                    .map(|()| Outcome::Reloaded(daemon))
            }
            (false, _) => self
                .effects
                .start(daemon, &config, &self.paths)
                .map(|()| Outcome::Started(daemon)),
        };
        r.unwrap_or_else(|e| {
            // Not running on it: try again on the next tick.
            if !self.effects.running(daemon) {
                self.slots.entry(daemon).or_default().installed = None;
            }
            Outcome::Failed(daemon, e)
        })
    }

    fn restart(&mut self, daemon: Daemon) -> Outcome {
        let config = daemon.config(&self.paths);
        match self.effects.start(daemon, &config, &self.paths) {
            Ok(()) => {
                self.slots.entry(daemon).or_default().restarts += 1;
                Outcome::Restarted(daemon)
            }
            Err(e) => Outcome::Failed(daemon, e),
        }
    }

    /// Restarts any installed daemon that died.
    pub fn tick(&mut self) -> Vec<Outcome> {
        let daemons: Vec<Daemon> = self
            .slots
            .iter()
            .filter(|(_, s)| s.installed.is_some())
            .map(|(d, _)| *d)
            .collect();
        let mut out = Vec::new();
        for d in daemons {
            if !self.effects.running(d) {
                out.push(self.restart(d));
            }
        }
        out
    }

    /// On promotion (VIP mode): commit conntrackd's external cache into the
    /// kernel so established connections continue through the new master,
    /// then flush it and resync, as conntrackd's primary-backup script does.
    pub fn promoted(&mut self) -> Result<(), SuperviseError> {
        if self.installed(Daemon::Conntrackd).is_none() {
            return Ok(());
        }
        let config = Daemon::Conntrackd.config(&self.paths);
        for args in [["-c"], ["-f"], ["-R"], ["-B"]] {
            self.effects.ctl(Daemon::Conntrackd, &config, &args)?;
        }
        Ok(())
    }

    /// On demotion: ask the new master for a resync and age out the
    /// internal cache, as the primary-backup script does.
    pub fn demoted(&mut self) -> Result<(), SuperviseError> {
        if self.installed(Daemon::Conntrackd).is_none() {
            return Ok(());
        }
        let config = Daemon::Conntrackd.config(&self.paths);
        for args in [["-t"], ["-n"]] {
            self.effects.ctl(Daemon::Conntrackd, &config, &args)?;
        }
        Ok(())
    }

    /// Stops both daemons (routerd shutting down): keepalived releases the
    /// addresses so a peer takes over without waiting for the timeout.
    pub fn shutdown(&mut self) {
        for d in [Daemon::Keepalived, Daemon::Conntrackd] {
            if self.effects.running(d) {
                self.effects.stop(d);
            }
            self.slots.remove(&d);
        }
    }
}

/// The in-memory twin: files in a map, daemons as flags, every call logged.
#[derive(Debug, Default)]
pub struct MemoryEffects {
    /// Written files.
    pub files: BTreeMap<PathBuf, String>,
    /// Running daemons.
    pub running: BTreeSet<Daemon>,
    /// Binaries that are "not installed".
    pub missing: BTreeSet<Daemon>,
    /// A configuration containing this text is rejected by config_test.
    pub reject_containing: Option<String>,
    /// Every effect, in order (`start keepalived`, `reload keepalived`, ...).
    pub log: Vec<String>,
}

impl MemoryEffects {
    /// Simulates the daemon dying.
    pub fn kill(&mut self, d: Daemon) {
        self.running.remove(&d);
    }
}

impl Effects for MemoryEffects {
    fn write(&mut self, path: &Path, contents: &str) -> Result<(), SuperviseError> {
        self.log.push(format!("write {}", path.display()));
        self.files.insert(path.to_path_buf(), contents.to_string());
        Ok(())
    }

    fn config_test(&mut self, daemon: Daemon, config: &Path) -> Result<(), SuperviseError> {
        self.log.push(format!("test {}", daemon.binary()));
        if self.missing.contains(&daemon) {
            return Err(SuperviseError::MissingBinary(daemon.binary()));
        }
        let text = self.files.get(config).cloned().unwrap_or_default();
        match &self.reject_containing {
            Some(bad) if text.contains(bad.as_str()) => Err(SuperviseError::Rejected {
                daemon: daemon.binary(),
                message: format!("unknown keyword {bad}"),
            }),
            _ => Ok(()),
        }
    }

    fn start(
        &mut self,
        daemon: Daemon,
        _config: &Path,
        _paths: &Paths,
    ) -> Result<(), SuperviseError> {
        self.log.push(format!("start {}", daemon.binary()));
        if self.missing.contains(&daemon) {
            return Err(SuperviseError::MissingBinary(daemon.binary()));
        }
        self.running.insert(daemon);
        Ok(())
    }

    fn reload(&mut self, daemon: Daemon) -> Result<(), SuperviseError> {
        self.log.push(format!("reload {}", daemon.binary()));
        Ok(())
    }

    fn running(&mut self, daemon: Daemon) -> bool {
        self.running.contains(&daemon)
    }

    fn stop(&mut self, daemon: Daemon) {
        self.log.push(format!("stop {}", daemon.binary()));
        self.running.remove(&daemon);
    }

    fn ctl(&mut self, daemon: Daemon, _config: &Path, args: &[&str]) -> Result<(), SuperviseError> {
        self.log
            .push(format!("ctl {} {}", daemon.binary(), args.join(" ")));
        Ok(())
    }
}

/// The real effects: files on disk and child processes.
///
/// Children get SIGTERM when the thread that started them exits
/// (`PR_SET_PDEATHSIG`), so a routerd that dies takes its keepalived with
/// it and a peer takes the role: use one long-lived thread for the
/// supervisor, never a pool thread that may retire.
#[derive(Debug, Default)]
pub struct SystemEffects {
    children: BTreeMap<Daemon, Child>,
    /// Directory of the executables (`None`: search `PATH`).
    pub bin_dir: Option<PathBuf>,
    /// Run the daemons in this named network namespace (`ip netns exec`,
    /// which execs in place, so the pid stays the daemon's): for the lab
    /// and `routerd demo gateway`, where several nodes share one host.
    pub netns: Option<String>,
}

impl SystemEffects {
    fn command(&self, daemon: Daemon) -> Command {
        let program = match &self.bin_dir {
            Some(d) => d.join(daemon.binary()),
            None => PathBuf::from(daemon.binary()),
        };
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str()]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// The pid of a running daemon.
    pub fn pid(&self, daemon: Daemon) -> Option<u32> {
        self.children.get(&daemon).map(Child::id)
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SuperviseError {
    let path = path.to_path_buf();
    move |source| SuperviseError::Io { op, path, source }
}

fn spawn_err(daemon: Daemon, e: io::Error) -> SuperviseError {
    if e.kind() == io::ErrorKind::NotFound {
        SuperviseError::MissingBinary(daemon.binary())
    } else {
        SuperviseError::Failed {
            daemon: daemon.binary(),
            what: "start".into(),
            message: e.to_string(),
        }
    }
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes one async-signal-safe system call (prctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(io::Error::from)
        });
    }
}

impl Effects for SystemEffects {
    fn networked(&self) -> bool {
        true
    }

    fn write(&mut self, path: &Path, contents: &str) -> Result<(), SuperviseError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, contents).map_err(io_err("write", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err("rename", path))
    }

    fn config_test(&mut self, daemon: Daemon, config: &Path) -> Result<(), SuperviseError> {
        if daemon != Daemon::Keepalived {
            return Ok(());
        }
        let out = self
            .command(daemon)
            .arg("--config-test")
            .arg("--log-console")
            .arg("-f")
            .arg(config)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_err(daemon, e))?;
        if out.status.success() {
            return Ok(());
        }
        let mut message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.trim().is_empty() {
            message.push_str(stdout.trim());
        }
        Err(SuperviseError::Rejected {
            daemon: daemon.binary(),
            message,
        })
    }

    fn start(
        &mut self,
        daemon: Daemon,
        config: &Path,
        paths: &Paths,
    ) -> Result<(), SuperviseError> {
        let log = paths.file(&format!("{}.log", daemon.binary()));
        std::fs::create_dir_all(&paths.dir).map_err(io_err("create", &paths.dir))?;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err("open", &log))?;
        let log_err = log_file.try_clone().map_err(io_err("open", &log))?;
        let mut cmd = self.command(daemon);
        match daemon {
            Daemon::Keepalived => {
                cmd.args([
                    "--dont-fork",
                    "--vrrp",
                    "--log-console",
                    "--log-detail",
                    "-f",
                ])
                .arg(config)
                .arg("-p")
                .arg(paths.file("keepalived.pid"))
                .arg("-r")
                .arg(paths.file("keepalived-vrrp.pid"));
            }
            Daemon::Conntrackd => {
                // A lock left by a killed conntrackd would refuse the start.
                let _ = std::fs::remove_file(paths.file("conntrackd.lock"));
                let _ = std::fs::remove_file(paths.file("conntrackd.ctl"));
                cmd.arg("-C").arg(config);
            }
        }
        cmd.stdin(Stdio::null()).stdout(log_file).stderr(log_err);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| spawn_err(daemon, e))?;
        self.children.insert(daemon, child);
        Ok(())
    }

    fn reload(&mut self, daemon: Daemon) -> Result<(), SuperviseError> {
        let Some(pid) = self.pid(daemon) else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).map_err(|e| {
            SuperviseError::Failed {
                daemon: daemon.binary(),
                what: "reload (SIGHUP)".into(),
                message: e.to_string(),
            }
        })
    }

    fn running(&mut self, daemon: Daemon) -> bool {
        match self.children.get_mut(&daemon) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn stop(&mut self, daemon: Daemon) {
        let Some(mut child) = self.children.remove(&daemon) else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn ctl(&mut self, daemon: Daemon, config: &Path, args: &[&str]) -> Result<(), SuperviseError> {
        let out = self
            .command(daemon)
            .arg("-C")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_err(daemon, e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SuperviseError::Failed {
                daemon: daemon.binary(),
                what: args.join(" "),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

impl Drop for SystemEffects {
    fn drop(&mut self) {
        let ds: Vec<Daemon> = self.children.keys().copied().collect();
        for d in ds {
            self.stop(d);
        }
    }
}

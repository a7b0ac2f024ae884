//! Running one plugin process, defensively.
//!
//! A plugin is trusted to run, not to behave. The runner therefore: refuses
//! executables that are relative, missing, not regular, not executable or
//! writable by other users, before anything runs; starts the executable alone
//! (no shell, no arguments, working directory `/`) in its own process group
//! with only `PATH` and `spec.env`; writes one request and reads at most
//! 4 MiB of stdout and 64 KiB of stderr; and kills the whole process group on
//! timeout, on output overflow, when the runner's future is dropped, and after
//! the plugin exits (so nothing it started outlives the run). netavark's
//! plugin runner, which reads to EOF with no deadline, is the counter-example
//! (style guide §1.1).
//!
//! A run must not outlive the daemon either, even one killed with SIGKILL,
//! where no clean-up code runs: the plugin gets `PR_SET_PDEATHSIG` (SIGKILL),
//! and while it runs its process group is recorded in
//! [`RunConfig::group_dir`] so the next start-up can kill what the plugin
//! forked ([`groups`](crate::groups)).

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpid, getppid};
use routerd_model::GoDuration;
use routerd_model::spec::{PluginRequest, PluginSpec};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;
use tokio::time::Instant;

use crate::env::child_env;
use crate::groups;
use crate::request::encode_request;

/// Timeout when `spec.timeout` is unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most stdout bytes read (routerd's limit).
pub const STDOUT_LIMIT: usize = 4 * 1024 * 1024;
/// Most stderr bytes read (routerd's limit).
pub const STDERR_LIMIT: usize = 64 * 1024;
/// Stderr bytes kept in [`RunStats::stderr`] and the log.
pub const STDERR_KEEP: usize = 8192;
/// How long stdout may stay open after the plugin exited.
pub const EXIT_GRACE: Duration = Duration::from_millis(500);

/// Runner limits and the one thing taken from the parent environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Used when `spec.timeout` is unset.
    pub default_timeout: Duration,
    /// Most stdout bytes; more fails the run.
    pub stdout_limit: usize,
    /// Most stderr bytes; more fails the run.
    pub stderr_limit: usize,
    /// After the plugin exits, how long its stdout and stderr may stay open
    /// (held by a child it left behind) before the run fails.
    pub exit_grace: Duration,
    /// The parent's `PATH`, passed on to the child.
    pub inherited_path: Option<OsString>,
    /// Where running process groups are recorded for the start-up sweep
    /// ([`groups::sweep`]); `None` records nothing (`routerctl plugin run
    /// --dry-run`, tests).
    pub group_dir: Option<PathBuf>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            default_timeout: DEFAULT_TIMEOUT,
            stdout_limit: STDOUT_LIMIT,
            stderr_limit: STDERR_LIMIT,
            exit_grace: EXIT_GRACE,
            inherited_path: None,
            group_dir: None,
        }
    }
}

impl RunConfig {
    /// The defaults, with `PATH` read from this process's environment.
    pub fn from_process_env() -> Self {
        RunConfig {
            inherited_path: std::env::var_os("PATH"),
            ..RunConfig::default()
        }
    }
}

/// What is recorded about every run that started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStats {
    /// Exit code; `None` when killed by a signal or never reaped.
    pub exit_code: Option<i32>,
    /// Wall time from start to the end of output collection.
    pub duration: Duration,
    /// Lowercase hex SHA-256 of the stdout bytes read (even on failure).
    pub stdout_digest: String,
    /// How many stdout bytes were read.
    pub stdout_bytes: usize,
    /// The first [`STDERR_KEEP`] bytes of stderr, lossily decoded.
    pub stderr: String,
}

/// A run that exited 0 within its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// What was recorded.
    pub stats: RunStats,
    /// The plugin's stdout.
    pub stdout: Vec<u8>,
}

/// A run that was refused or failed.
#[derive(Debug)]
pub struct RunFailure {
    /// Present when the process started.
    pub stats: Option<RunStats>,
    /// Why.
    pub error: RunError,
}

/// Why a plugin did not produce usable stdout. Messages are routerd's where
/// routerd has one (spec §6.2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// `spec.executable` is empty.
    #[error("plugin executable is required")]
    ExecutableRequired,
    /// `spec.executable` is not absolute.
    #[error("plugin executable \"{0}\" must be an absolute path")]
    NotAbsolute(String),
    /// `stat` failed.
    #[error("plugin executable \"{path}\" is not accessible: {error}")]
    NotAccessible {
        /// The path.
        path: String,
        /// The OS error.
        error: io::Error,
    },
    /// A directory, device, socket...
    #[error("plugin executable \"{0}\" is not a regular file")]
    NotRegular(String),
    /// No execute bit.
    #[error("plugin executable \"{0}\" is not executable")]
    NotExecutable(String),
    /// Group- or world-writable: someone else could replace the code routerd
    /// runs.
    #[error("plugin executable \"{path}\" is writable by other users (mode {mode:04o})")]
    WritableByOthers {
        /// The path.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// The directory holding the executable is group- or world-writable
    /// without the sticky bit: someone else could swap the file.
    #[error(
        "plugin executable \"{path}\" is in directory \"{dir}\", which is writable by other users (mode {mode:04o})"
    )]
    DirWritableByOthers {
        /// The path.
        path: String,
        /// Its directory.
        dir: String,
        /// The directory's permission bits.
        mode: u32,
    },
    /// `spec.timeout` does not parse.
    #[error("plugin timeout must be a valid duration: {0}")]
    TimeoutInvalid(String),
    /// `spec.timeout` is zero or negative.
    #[error("plugin timeout must be greater than 0")]
    TimeoutNotPositive,
    /// The request could not be encoded.
    #[error("encode plugin {plugin} request: {error}")]
    Encode {
        /// Plugin name.
        plugin: String,
        /// Encoder error.
        error: String,
    },
    /// The process did not start.
    #[error("start plugin {plugin}: {error}")]
    Spawn {
        /// Plugin name.
        plugin: String,
        /// OS error.
        error: io::Error,
    },
    /// Reading or waiting failed.
    #[error("plugin {plugin} i/o: {error}")]
    Io {
        /// Plugin name.
        plugin: String,
        /// OS error.
        error: io::Error,
    },
    /// The deadline passed; the process group was killed.
    #[error("plugin {plugin} timed out after {timeout}")]
    TimedOut {
        /// Plugin name.
        plugin: String,
        /// The timeout, Go-formatted.
        timeout: GoDuration,
    },
    /// The plugin exited but something it started kept its output open.
    #[error(
        "plugin {plugin} protocol failure: output still open {grace} after the plugin exited (a child process outlived it)"
    )]
    OutputHeldOpen {
        /// Plugin name.
        plugin: String,
        /// The grace, Go-formatted.
        grace: GoDuration,
    },
    /// Too much output; the process group was killed.
    #[error("plugin {plugin} protocol failure: {stream} output exceeded {limit}-byte limit")]
    OutputLimit {
        /// Plugin name.
        plugin: String,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Non-zero exit or death by signal.
    #[error("plugin {plugin} failed: {status}")]
    Exit {
        /// Plugin name.
        plugin: String,
        /// `exit status <n>` or `signal: <n>`.
        status: String,
    },
}

/// Refuses an executable that must not run; returns the path to execute.
pub fn check_executable(executable: &str) -> Result<PathBuf, RunError> {
    if executable.trim().is_empty() {
        return Err(RunError::ExecutableRequired);
    }
    let path = Path::new(executable);
    if !path.is_absolute() {
        return Err(RunError::NotAbsolute(executable.to_string()));
    }
    let md = std::fs::metadata(path).map_err(|error| RunError::NotAccessible {
        path: executable.to_string(),
        error,
    })?;
    if !md.is_file() {
        return Err(RunError::NotRegular(executable.to_string()));
    }
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o111 == 0 {
        return Err(RunError::NotExecutable(executable.to_string()));
    }
    if mode & 0o022 != 0 {
        return Err(RunError::WritableByOthers {
            path: executable.to_string(),
            mode,
        });
    }
    if let Some(dir) = path.parent()
        && let Ok(dmd) = std::fs::metadata(dir)
    {
        let dmode = dmd.permissions().mode() & 0o7777;
        if dmode & 0o022 != 0 && dmode & 0o1000 == 0 {
            return Err(RunError::DirWritableByOthers {
                path: executable.to_string(),
                dir: dir.display().to_string(),
                mode: dmode,
            });
        }
    }
    Ok(path.to_path_buf())
}

/// The effective timeout of a plugin.
pub fn timeout_of(spec: &PluginSpec, default: Duration) -> Result<Duration, RunError> {
    match spec.timeout.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(t) => {
            let d = GoDuration::parse(t).map_err(|e| RunError::TimeoutInvalid(e.to_string()))?;
            if d.is_positive() {
                Ok(d.to_std())
            } else {
                Err(RunError::TimeoutNotPositive)
            }
        }
    }
}

/// Kills a process group when dropped, so a cancelled run (daemon shutdown,
/// a dropped future) leaves nothing behind. Disarmed once the run is over so
/// a late drop cannot signal a recycled process-group id. Owns the group's
/// record, which goes once the group has been killed.
struct GroupKiller {
    pgid: AtomicI32,
    record: Mutex<Option<PathBuf>>,
}

impl GroupKiller {
    fn new(pgid: Option<i32>) -> Self {
        GroupKiller {
            pgid: AtomicI32::new(pgid.unwrap_or(0)),
            record: Mutex::new(None),
        }
    }

    /// Writes the group's record into `dir`. A failure costs only the
    /// start-up sweep of this one run, so it is logged, not fatal.
    fn record(&self, dir: &Path, plugin: &str, executable: &Path) {
        let pg = self.pgid.load(Ordering::SeqCst);
        if pg <= 0 {
            return;
        }
        match groups::capture(pg, plugin, executable).and_then(|rec| groups::write(dir, &rec)) {
            Ok(path) => *self.record.lock().unwrap_or_else(PoisonError::into_inner) = Some(path),
            Err(error) => tracing::warn!(
                plugin,
                dir = %dir.display(),
                %error,
                "cannot record the plugin's process group; it is not swept if routerd dies during the run"
            ),
        }
    }

    fn kill(&self) {
        let pg = self.pgid.load(Ordering::SeqCst);
        if pg > 0 {
            // ESRCH (nothing left in the group) is the normal case.
            let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
        }
    }

    fn forget_record(&self) {
        if let Some(path) = self
            .record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = std::fs::remove_file(path);
        }
    }

    fn disarm(&self) {
        self.pgid.store(0, Ordering::SeqCst);
        self.forget_record();
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
        self.forget_record();
    }
}

/// Makes the kernel SIGKILL the plugin when the thread that started it dies
/// (with the daemon: the runtime's threads live as long as the process).
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    let parent = getpid();
    // SAFETY: the closure runs in the forked child before exec. It only
    // makes the prctl(2) and getppid(2) system calls and builds an
    // io::Error from a raw errno: no allocation, no locks, nothing that is
    // unsafe between fork and exec in a multi-threaded parent.
    unsafe {
        cmd.pre_exec(move || {
            set_pdeathsig(Signal::SIGKILL)?;
            // The daemon may have died between fork and prctl; then the
            // signal will never come and the plugin must not start.
            if getppid() != parent {
                return Err(Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

fn to_go(d: Duration) -> GoDuration {
    GoDuration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Reads at most `limit` bytes; on overflow kills the group at once (a
/// writer blocked on a full pipe would otherwise run into the timeout).
async fn read_capped<R: AsyncRead + Unpin>(
    r: Option<R>,
    limit: usize,
    killer: &GroupKiller,
) -> (Vec<u8>, bool, Option<io::Error>) {
    let Some(mut r) = r else {
        return (Vec::new(), false, None);
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) => return (buf, false, None),
            Ok(n) => {
                let room = limit.saturating_sub(buf.len());
                if n > room {
                    buf.extend_from_slice(&chunk[..room]);
                    killer.kill();
                    return (buf, true, None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (buf, false, Some(e)),
        }
    }
}

fn spawn(cmd: &mut Command) -> io::Result<tokio::process::Child> {
    // A script just written by another thread can be briefly "busy" while a
    // concurrently forked child still holds its write descriptor.
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) && tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

fn status_text(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(name) => format!("signal: {name}"),
            Err(_) => format!("signal: {sig}"),
        },
        (None, None) => "unknown exit status".to_string(),
    }
}

/// Runs plugin `name` once with `request` on stdin and returns its stdout.
pub async fn run(
    name: &str,
    spec: &PluginSpec,
    request: &PluginRequest,
    cfg: &RunConfig,
) -> Result<RunOutput, RunFailure> {
    let refuse = |error| RunFailure { stats: None, error };
    let path = check_executable(&spec.executable).map_err(refuse)?;
    let timeout = timeout_of(spec, cfg.default_timeout).map_err(refuse)?;
    let body = encode_request(request).map_err(|e| {
        refuse(RunError::Encode {
            plugin: name.to_string(),
            error: e.to_string(),
        })
    })?;
    let mut cmd = Command::new(&path);
    cmd.env_clear()
        .envs(child_env(cfg.inherited_path.clone(), &spec.env))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let start = Instant::now();
    let mut child = spawn(&mut cmd).map_err(|error| {
        refuse(RunError::Spawn {
            plugin: name.to_string(),
            error,
        })
    })?;
    let killer = GroupKiller::new(child.id().and_then(|id| i32::try_from(id).ok()));
    if let Some(dir) = &cfg.group_dir {
        killer.record(dir, name, &path);
    }
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let write = async move {
        if let Some(mut w) = stdin {
            // A plugin may exit without reading; a broken pipe is its business.
            let _ = w.write_all(&body).await;
            let _ = w.shutdown().await;
        }
    };
    let io = async {
        let ((), out, err) = tokio::join!(
            write,
            read_capped(stdout, cfg.stdout_limit, &killer),
            read_capped(stderr, cfg.stderr_limit, &killer)
        );
        (out, err)
    };
    tokio::pin!(io);
    let deadline = start + timeout;
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    let mut io_done = None;
    let mut status = None;
    let mut grace_armed = false;
    let mut timed_out = false;
    let mut held_open = false;
    while io_done.is_none() || status.is_none() {
        tokio::select! {
            r = &mut io, if io_done.is_none() => io_done = Some(r),
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                let grace_end = Instant::now() + cfg.exit_grace;
                if io_done.is_none() && grace_end < deadline {
                    sleep.as_mut().reset(grace_end);
                    grace_armed = true;
                }
            }
            () = &mut sleep => {
                if grace_armed {
                    held_open = true;
                } else {
                    timed_out = true;
                }
                break;
            }
        }
    }
    // Whatever the outcome, nothing the plugin started survives the run.
    killer.kill();
    if status.is_none() {
        status = tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .ok();
    }
    if io_done.is_none() {
        // Killed processes close their pipes; one that escaped the group
        // (setsid) may not, and is not waited for.
        io_done = tokio::time::timeout(Duration::from_millis(200), &mut io)
            .await
            .ok();
    }
    killer.disarm();
    let duration = start.elapsed();
    let ((out, out_over, out_err), (err, err_over, err_err)) =
        io_done.unwrap_or(((Vec::new(), false, None), (Vec::new(), false, None)));
    let status = match status {
        Some(Ok(s)) => Some(s),
        Some(Err(error)) => {
            return Err(RunFailure {
                stats: None,
                error: RunError::Io {
                    plugin: name.to_string(),
                    error,
                },
            });
        }
        None => None,
    };
    let stderr_text = String::from_utf8_lossy(&err[..err.len().min(STDERR_KEEP)]).into_owned();
    let stats = RunStats {
        exit_code: status.as_ref().and_then(ExitStatus::code),
        duration,
        stdout_digest: hex::encode(Sha256::digest(&out)),
        stdout_bytes: out.len(),
        stderr: stderr_text,
    };
    if !stats.stderr.is_empty() {
        tracing::info!(plugin = name, stderr = %stats.stderr, "plugin stderr");
    }
    let plugin = name.to_string();
    let error = if timed_out {
        Some(RunError::TimedOut {
            plugin,
            timeout: to_go(timeout),
        })
    } else if held_open {
        Some(RunError::OutputHeldOpen {
            plugin,
            grace: to_go(cfg.exit_grace),
        })
    } else if out_over {
        Some(RunError::OutputLimit {
            plugin,
            stream: "stdout",
            limit: cfg.stdout_limit,
        })
    } else if err_over {
        Some(RunError::OutputLimit {
            plugin,
            stream: "stderr",
            limit: cfg.stderr_limit,
        })
    } else if let Some(error) = out_err.or(err_err) {
        Some(RunError::Io { plugin, error })
    } else {
        match &status {
            Some(s) if s.success() => None,
            Some(s) => Some(RunError::Exit {
                plugin,
                status: status_text(s),
            }),
            None => Some(RunError::Exit {
                plugin,
                status: "exit status unknown".into(),
            }),
        }
    };
    match error {
        Some(error) => {
            tracing::warn!(plugin = name, %error, "plugin run failed");
            Err(RunFailure {
                stats: Some(stats),
                error,
            })
        }
        None => Ok(RunOutput { stats, stdout: out }),
    }
}

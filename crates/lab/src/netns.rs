//! Namespace plumbing: bounded command execution, `setns` threads, naming and cleanup.
//!
//! Every `ip`, `nft`, `sysctl` and `conntrack` call of the lab is built by [`ns_command`],
//! so the rule "never touch the host's interfaces, routes or ruleset" is enforced in one
//! place. The only commands that run in the host namespace are `ip netns add`, `ip netns
//! del` and `ip netns pids`, which manage the namespaces themselves.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{LabError, Result};
use crate::topology::Node;

/// Where iproute2 keeps its named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Upper bound for any single helper command. `ip`/`nft` normally answer in
/// milliseconds; the bound exists so a wedged helper fails the test instead of hanging CI.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// `ip netns exec NS program`: the only way the lab runs network tools.
pub(crate) fn ns_command(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.arg("netns").arg("exec").arg(ns).arg(program);
    cmd
}

/// A command that manages namespaces themselves (`ip netns add/del/pids`).
pub(crate) fn netns_admin(args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.arg("netns").args(args);
    cmd
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` to completion within [`COMMAND_TIMEOUT`], feeding `stdin`, and returns its
/// stdout. Pipes are drained on their own threads so a chatty command (a long conntrack
/// table) cannot fill a pipe and stall against the timeout.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<String> {
    let text = describe(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::io(format!("starting `{text}`"), e))?;
    // Readers first, so a program that answers before it has read all its input cannot
    // block on a full stdout pipe while we block writing its stdin.
    let out_reader = child.stdout.take().map(drain);
    let err_reader = child.stderr.take().map(drain);
    let mut write_error = None;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The pipe is closed at the end of this block: the program's end of input.
        write_error = pipe.write_all(input.as_bytes()).err();
    }
    let status = wait_bounded(&mut child, COMMAND_TIMEOUT, &text)?;
    let stdout = out_reader.map(join_drain).unwrap_or_default();
    let stderr = err_reader.map(join_drain).unwrap_or_default();
    if let (true, Some(e)) = (status.success(), write_error) {
        return Err(LabError::io(format!("writing stdin of `{text}`"), e));
    }
    if status.success() {
        Ok(stdout)
    } else {
        Err(LabError::Command {
            command: text,
            status: status.to_string(),
            stderr: stderr.trim().to_owned(),
        })
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error only truncates diagnostics; the exit status still decides success.
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn join_drain(handle: thread::JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

/// Waits for `child` at most `timeout`, killing it when the time is up.
pub(crate) fn wait_bounded(child: &mut Child, timeout: Duration, what: &str) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Timeout {
                    what: format!("`{what}`"),
                    waited: timeout,
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(LabError::io(format!("waiting for `{what}`"), e)),
        }
    }
}

/// Runs `f` on a fresh thread that has joined namespace `ns`.
///
/// The thread is thrown away afterwards, so no thread of the caller (a test harness
/// thread, a tokio worker) ever changes namespace. Sockets keep the namespace they were
/// created in, so `f` may create a socket and hand it back for use from anywhere.
pub(crate) fn in_netns<R, F>(ns: &str, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let path = Path::new(NETNS_DIR).join(ns);
    let handle =
        File::open(&path).map_err(|e| LabError::io(format!("opening {}", path.display()), e))?;
    thread::scope(|scope| {
        let worker = scope.spawn(move || -> Result<R> {
            setns(&handle, CloneFlags::CLONE_NEWNET).map_err(|source| LabError::Setns {
                ns: ns.to_owned(),
                source,
            })?;
            Ok(f())
        });
        worker
            .join()
            .map_err(|_| LabError::ThreadPanicked(format!("working in {ns}")))?
    })
}

/// Checks that `prefix` cannot match anything but lab namespaces.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    let bad = |reason| {
        Err(LabError::InvalidPrefix {
            prefix: prefix.to_owned(),
            reason,
        })
    };
    if prefix.len() < 2 || prefix.len() > 24 {
        return bad("must be 2 to 24 characters long");
    }
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lowercase letter");
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("may contain only lowercase letters, digits and '-'");
    }
    Ok(())
}

/// The namespace name for `node` in lab number `counter` of process `pid`.
pub(crate) fn ns_name(prefix: &str, pid: u32, counter: u64, node: Node) -> String {
    format!("{prefix}-{pid}-{counter}-{}", node.role())
}

/// If `name` is a lab namespace of `prefix`, the pid of the process that made it.
pub(crate) fn owner_pid(prefix: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?;
    let counter = parts.next()?;
    let role = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(counter) || !Node::ALL.iter().any(|n| n.role() == role) {
        return None;
    }
    pid.parse().ok()
}

/// Names of all named namespaces. Read from the directory rather than `ip netns list`
/// because there is nothing to parse and no process to start.
pub(crate) fn list_namespaces() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(format!("listing {NETNS_DIR}"), e)),
    };
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| LabError::io(format!("listing {NETNS_DIR}"), e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

pub(crate) fn add_namespace(name: &str) -> Result<()> {
    run(&mut netns_admin(&["add", name]), None).map(drop)
}

/// Kills whatever still runs inside `name` (a daemon the caller forgot, or one left by a
/// crashed run), then deletes the namespace. This process itself is never signalled.
pub(crate) fn destroy_namespace(name: &str) -> Result<()> {
    let mut errors = Vec::new();
    if let Err(e) = kill_processes_in(name) {
        errors.push(e);
    }
    if let Err(e) = run(&mut netns_admin(&["del", name]), None) {
        // Someone else already removed it: the goal is reached.
        if Path::new(NETNS_DIR).join(name).exists() {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(LabError::Teardown(errors)),
    }
}

fn kill_processes_in(name: &str) -> Result<()> {
    let own = std::process::id();
    let out = run(&mut netns_admin(&["pids", name]), None)?;
    for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
        if u32::try_from(pid).is_ok_and(|p| p == own) {
            continue;
        }
        // The process may have exited between listing and signalling; that is fine.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    Ok(())
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes namespaces that a previous, crashed lab run with the same `prefix` left behind,
/// and returns their names.
///
/// Only names of the lab's own shape (`PREFIX-PID-N-ROLE`) are considered, and only those
/// whose creating process is gone, so labs of concurrently running tests (in this or
/// another process) are never touched.
pub fn cleanup_stale(prefix: &str) -> Result<Vec<String>> {
    validate_prefix(prefix)?;
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for name in list_namespaces()? {
        let Some(pid) = owner_pid(prefix, &name) else {
            continue;
        };
        if process_alive(pid) {
            continue;
        }
        match destroy_namespace(&name) {
            Ok(()) => removed.push(name),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(LabError::Teardown(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_accepts_only_the_lab_shape() {
        assert_eq!(owner_pid("rdlab", "rdlab-42-0-rtr"), Some(42));
        assert_eq!(owner_pid("rdlab", "rdlab-42-17-cli"), Some(42));
        assert_eq!(owner_pid("rdlab", "rdlab-42-0-other"), None);
        assert_eq!(owner_pid("rdlab", "rdlabx-42-0-rtr"), None);
        assert_eq!(owner_pid("rdlab", "rdlab-x-42-0-rtr"), None);
        assert_eq!(owner_pid("rd", "rd-lab-42-0-rtr"), None);
        assert_eq!(owner_pid("rdlab", "proto-pa"), None);
        assert_eq!(owner_pid("rdlab", "rdlab-42-rtr"), None);
    }

    #[test]
    fn names_round_trip() {
        let name = ns_name("rd-e2e", 1234, 5, Node::Up2);
        assert_eq!(name, "rd-e2e-1234-5-up2");
        assert_eq!(owner_pid("rd-e2e", &name), Some(1234));
    }

    #[test]
    fn prefixes_that_could_match_foreign_namespaces_are_rejected() {
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("r").is_err());
        assert!(validate_prefix("-x").is_err());
        assert!(validate_prefix("Lab").is_err());
        assert!(validate_prefix("lab/..").is_err());
        assert!(validate_prefix("rdlab").is_ok());
        assert!(validate_prefix("rd-e2e").is_ok());
    }
}

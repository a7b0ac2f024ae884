//! Process groups of running plugins, written down so that a daemon killed
//! without a chance to clean up (kill -9, OOM killer, a crash) can kill what
//! its plugins left behind when it starts again.
//!
//! The runner gives each plugin `PR_SET_PDEATHSIG`, so the plugin itself dies
//! with the daemon, but the kernel clears that setting in every process the
//! plugin forks: its children and grandchildren in the group survive the
//! daemon, re-parented to init. While a run is in progress its group is
//! recorded as one file in the daemon's directory for them; the run removes
//! the file when the group is gone. A file that is still there at start-up is
//! a run that never ended, and [`sweep`] kills its group.
//!
//! Killing a process group by number is only safe while the number still
//! means the same group. Linux never hands out a pid that is still in use as
//! a process-group id, so a number can only have been recycled once every
//! process of the old group is gone. The record therefore carries the boot id
//! and the leader's start time (clock ticks since boot, which `exec` does not
//! change, unlike `/proc/<pid>/cmdline`, which a plugin that `exec`s another
//! program rewrites): a live leader with another start time is someone
//! else's process and is left alone; an absent leader means whatever is left
//! in the group can only be the old group's members.

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// What is written down about one running plugin's process group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRecord {
    /// Process-group id, which is the plugin's pid (it leads its group).
    pub pgid: i32,
    /// Plugin name.
    pub plugin: String,
    /// The executable started.
    pub executable: String,
    /// The leader's start time, in clock ticks after boot (`/proc/<pid>/stat`
    /// field 22).
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when the run started.
    pub boot_id: String,
}

/// What [`sweep`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Groups that still had processes and were killed.
    pub killed: Vec<GroupRecord>,
    /// Records left alone, with the reason (gone, another boot, recycled pid,
    /// unreadable).
    pub skipped: Vec<(PathBuf, String)>,
}

/// Facts about a live process from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process-group id.
    pub pgrp: i32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    /// The one-letter state (`Z` for a zombie).
    pub state: char,
}

/// Reads `/proc/<pid>/stat`; `None` when the process does not exist.
pub fn proc_stat(pid: i32) -> io::Result<Option<ProcStat>> {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    parse_stat(&text)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc stat"))
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // `comm` (field 2) may contain spaces and parentheses; it ends at the
    // last ')'. Field 3 (state) is then index 0.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        start_ticks: f.get(19)?.parse().ok()?,
    })
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn record_path(dir: &Path, pgid: i32) -> PathBuf {
    dir.join(format!("{pgid}.json"))
}

/// Describes the group `pgid` led by a plugin that just started.
pub fn capture(pgid: i32, plugin: &str, executable: &Path) -> io::Result<GroupRecord> {
    let stat = proc_stat(pgid)?.ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("process {pgid} is gone"))
    })?;
    Ok(GroupRecord {
        pgid,
        plugin: plugin.to_string(),
        executable: executable.display().to_string(),
        start_ticks: stat.start_ticks,
        boot_id: boot_id(),
    })
}

/// Writes `rec` into `dir` (created if missing) and returns the file to
/// remove once the group is gone. The file appears whole or not at all.
pub fn write(dir: &Path, rec: &GroupRecord) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = record_path(dir, rec.pgid);
    let tmp = dir.join(format!(".{}.json.tmp", rec.pgid));
    let body = serde_json::to_vec(rec).map_err(io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Kills every recorded group that is still ours and removes all records.
/// Run it once at start-up, before any plugin starts (a run in progress in
/// this process would be killed too). A missing directory is an empty one.
pub fn sweep(dir: &Path) -> io::Result<SweepReport> {
    let mut report = SweepReport::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e),
    };
    let boot = boot_id();
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            // A record that was being written when the daemon died.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        let rec = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<GroupRecord>(&b).map_err(|e| e.to_string()));
        match rec {
            Ok(rec) => match judge(&rec, &boot) {
                Ok(()) => report.killed.push(rec),
                Err(reason) => report.skipped.push((path.clone(), reason)),
            },
            Err(e) => report
                .skipped
                .push((path.clone(), format!("unreadable: {e}"))),
        }
        std::fs::remove_file(&path)?;
    }
    Ok(report)
}

/// Kills `rec`'s group if it is still the plugin's; `Err` says why not.
fn judge(rec: &GroupRecord, boot: &str) -> Result<(), String> {
    if rec.pgid <= 1 {
        return Err(format!("invalid process group {}", rec.pgid));
    }
    if !rec.boot_id.is_empty() && !boot.is_empty() && rec.boot_id != boot {
        return Err("recorded before a reboot".into());
    }
    let pg = Pid::from_raw(rec.pgid);
    match proc_stat(rec.pgid) {
        Ok(Some(st)) if st.start_ticks == rec.start_ticks => {
            // The leader is the plugin we started (perhaps after an exec).
            let _ = killpg(pg, Signal::SIGKILL);
            if st.pgrp != rec.pgid {
                // It moved itself out of its group.
                let _ = kill(pg, Signal::SIGKILL);
            }
            Ok(())
        }
        Ok(Some(_)) => Err(format!(
            "process {} is another process now (pid reused)",
            rec.pgid
        )),
        Ok(None) => match killpg(pg, Signal::SIGKILL) {
            // The leader died (parent-death signal); its group's number
            // cannot have been reused while members remain.
            Ok(()) => Ok(()),
            Err(Errno::ESRCH) => Err("nothing left in the group".into()),
            Err(e) => Err(format!("kill process group {}: {e}", rec.pgid)),
        },
        Err(e) => Err(format!("read /proc/{}/stat: {e}", rec.pgid)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let line = "4242 (a) b (c)) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pgrp: 4240,
                start_ticks: 987654,
                state: 'S'
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_described_consistently() {
        let me = i32::try_from(std::process::id()).unwrap();
        let a = proc_stat(me).unwrap().unwrap();
        let b = proc_stat(me).unwrap().unwrap();
        assert_eq!(a.start_ticks, b.start_ticks);
        assert!(a.start_ticks > 0);
    }
}

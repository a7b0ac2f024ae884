//! Opening a store that may be damaged: typed failures with a remedy, and
//! containment of panics raised by the storage engine while it recovers.
//!
//! sled 0.34 panics on some corrupt logs while it replays them (for example
//! `tried to serialize Uninitialized`). A daemon that dies with exit 101 and a
//! backtrace is restarted by systemd into the same panic, so the open
//! boundary catches the unwind and turns it into [`OpenError`], which names
//! the directory and what to do about it (docs/adr/0007).

// Only the sled backend opens directories; the error types stay public
// without it so callers need no feature gates.
#![cfg_attr(not(feature = "sled"), allow(dead_code))]

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::StoreError;

/// Why a store directory could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenFailure {
    /// The files are damaged, truncated or overwritten, or a record does not
    /// decode. `--recover-state` applies.
    Corrupt,
    /// Written in a format this build does not read (usually a newer
    /// release). `--recover-state` applies.
    Incompatible,
    /// Another process holds the store's lock. Moving the store aside would
    /// pull it from under a live daemon, so recovery does not apply.
    Locked,
    /// The directory cannot be read or written (permissions, missing parent,
    /// full or read-only file system). Recovery does not apply.
    Io,
}

/// A store directory that cannot be opened, with the remedy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    /// The store directory.
    pub dir: PathBuf,
    /// What kind of failure.
    pub failure: OpenFailure,
    /// The underlying cause, for the operator and for bug reports.
    pub detail: String,
}

impl OpenError {
    pub(crate) fn new(dir: &Path, failure: OpenFailure, detail: impl Into<String>) -> Self {
        OpenError {
            dir: dir.to_path_buf(),
            failure,
            detail: detail.into(),
        }
    }

    /// Whether moving the directory aside and starting afresh can help
    /// (`routerd serve --recover-state`).
    pub fn recoverable(&self) -> bool {
        matches!(
            self.failure,
            OpenFailure::Corrupt | OpenFailure::Incompatible
        )
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self.dir.display();
        let detail = &self.detail;
        let keeps = "routerd keeps its ownership ledger, statuses, events and configuration \
                     generations there and does not start on a copy it cannot trust";
        let recover = format!(
            "run `routerd serve --recover-state` once (it moves {dir} aside to \
             {dir}.broken-<UTC time>, starts a fresh store and adopts its kernel objects \
             again from routerd's markers and the configuration), or stop routerd and \
             remove {dir}"
        );
        match self.failure {
            OpenFailure::Corrupt => write!(
                f,
                "cannot open the state store in {dir}: it is corrupt or truncated \
                 ({detail}). {keeps}. To start over, {recover}."
            ),
            OpenFailure::Incompatible => write!(
                f,
                "cannot open the state store in {dir}: it was written in a format this \
                 routerd does not read ({detail}), usually by a newer release. Run the \
                 release that wrote it, or, to start over, {recover}."
            ),
            OpenFailure::Locked => write!(
                f,
                "cannot open the state store in {dir}: another process holds its lock \
                 ({detail}), most likely a routerd already running with the same \
                 --state-dir. Stop that process (systemctl stop routerd) or give this one \
                 another --state-dir; --recover-state does not apply to a store in use."
            ),
            OpenFailure::Io => write!(
                f,
                "cannot open the state store in {dir}: {detail}. Check that the directory \
                 is readable and writable by routerd and that its file system has space \
                 and is not read-only; if its contents are damaged, {recover}."
            ),
        }
    }
}

impl std::error::Error for OpenError {}

thread_local! {
    /// Set while this thread runs inside [`contain`]: its panics are caught
    /// there and reported as errors, so the global hook stays silent.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the contained panic happened (the hook sees it, the payload
    /// does not carry it).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs, once per process, a panic hook that stays quiet for threads
/// inside [`contain`] and hands every other panic to the hook that was in
/// place before, so the rest of the program (and test harnesses) see no
/// difference.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `f` (an open or a first read of the store in `dir`) and turns a panic
/// inside it into [`OpenFailure::Corrupt`]. Panics on threads the storage
/// engine starts itself are not caught here; the ADR lists that limit.
pub(crate) fn contain<T>(
    dir: &Path,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    install_hook();
    let was_quiet = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was_quiet));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let at = LOCATION
                .with(|l| l.borrow_mut().take())
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            Err(StoreError::Open(OpenError::new(
                dir,
                OpenFailure::Corrupt,
                format!(
                    "the storage engine panicked while reading it{at}: {}",
                    payload_text(&*payload)
                ),
            )))
        }
    }
}

/// Classifies an error raised while opening and checking the store in
/// `dir`: undecodable records mean a damaged store, a newer record version
/// an incompatible one; errors that already carry a classification pass.
pub(crate) fn classify(dir: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Open(_) => e,
        StoreError::Version { .. } => StoreError::Open(OpenError::new(
            dir,
            OpenFailure::Incompatible,
            e.to_string(),
        )),
        StoreError::Record { .. } | StoreError::Backend(_) => {
            StoreError::Open(OpenError::new(dir, OpenFailure::Corrupt, e.to_string()))
        }
        other => other,
    }
}

/// What `--recover-state` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the unusable store went.
    pub moved_to: PathBuf,
    /// Why it could not be opened (the [`OpenError`] text).
    pub cause: String,
}

/// Moves `dir` aside to `<dir>.broken-<UTC time>` (with a numeric suffix if
/// that exists already) and returns the new path. Renaming keeps the damaged
/// files for a post-mortem and is atomic on one file system.
pub(crate) fn move_aside(
    dir: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<PathBuf, StoreError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let mut target = dir.with_file_name(format!("{name}.broken-{stamp}"));
    let mut n = 2;
    while target.exists() {
        target = dir.with_file_name(format!("{name}.broken-{stamp}-{n}"));
        n += 1;
    }
    std::fs::rename(dir, &target).map_err(|e| {
        StoreError::Open(OpenError::new(
            dir,
            OpenFailure::Io,
            format!("cannot move it aside to {}: {e}", target.display()),
        ))
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_panic_inside_the_boundary_becomes_a_corrupt_store_error() {
        let dir = Path::new("/var/lib/routerd/store");
        let r: Result<(), StoreError> = contain(dir, || panic!("tried to serialize Uninitialized"));
        let Err(StoreError::Open(e)) = r else {
            panic!("expected an open error, got {r:?}")
        };
        assert_eq!(e.failure, OpenFailure::Corrupt);
        assert!(e.recoverable());
        assert!(e.detail.contains("tried to serialize Uninitialized"), "{e}");
        assert!(e.detail.contains("open.rs"), "location is reported: {e}");
        let text = e.to_string();
        assert!(text.contains("/var/lib/routerd/store"), "{text}");
        assert!(text.contains("routerd serve --recover-state"), "{text}");
        assert!(!text.contains('\n'), "one paragraph: {text}");
        // The thread is not left quiet: the flag is restored.
        assert!(!QUIET.with(Cell::get));
    }

    #[test]
    fn a_locked_store_does_not_suggest_recovery() {
        let e = OpenError::new(
            Path::new("/s"),
            OpenFailure::Locked,
            "could not acquire lock",
        );
        assert!(!e.recoverable());
        let text = e.to_string();
        assert!(text.contains("another process holds its lock"), "{text}");
        assert!(text.contains("does not apply"), "{text}");
    }

    #[test]
    fn errors_without_a_panic_pass_through() {
        let r: Result<u8, StoreError> =
            contain(Path::new("/s"), || Err(StoreError::BadRequest("x".into())));
        assert!(matches!(r, Err(StoreError::BadRequest(_))));
        assert_eq!(contain(Path::new("/s"), || Ok(7)).unwrap(), 7);
    }
}

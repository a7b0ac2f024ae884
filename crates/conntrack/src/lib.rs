//! Deleting the connections of one egress path from the kernel's conntrack
//! table, and nothing else.
//!
//! routerd steers new connections by ct mark: every path (a candidate, or a
//! target of one) writes its own mark into the conntrack entries of the
//! connections it carries. When a path dies, its connections keep their NAT
//! binding and route until they time out, which for a busy UDP flow is
//! never. `flushOnFailover: deadPath` deletes exactly the entries whose ct
//! mark is the dead path's, so their next packet is tracked, routed and
//! translated afresh, while every other connection is left alone.
//!
//! The daemon depends only on the narrow [`ConntrackFlusher`] trait; tests
//! use [`MemoryFlusher`], the daemon the ctnetlink implementation
//! (`NetlinkFlusher`, Linux and feature `netlink`, docs/adr/0011).

#![deny(missing_docs)]

use std::sync::Mutex;

#[cfg(all(target_os = "linux", feature = "netlink"))]
mod netlink;
pub mod reply;

#[cfg(all(target_os = "linux", feature = "netlink"))]
pub use netlink::NetlinkFlusher;

/// What one flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Entries the mark selected right before the kernel deleted them (the
    /// kernel's flush itself answers with a bare acknowledgement).
    pub deleted: u64,
    /// Entries that carried the mark right after the flush: connections
    /// that were (re)created with it in between. Normally 0.
    pub remaining: u64,
}

/// Why a flush failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConntrackError {
    /// The netlink socket could not be opened, or sending or receiving on it
    /// failed.
    #[error("conntrack netlink {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the request (a positive errno: for example
    /// EOPNOTSUPP without mark support, EPERM without CAP_NET_ADMIN).
    #[error("conntrack netlink {op}: kernel error {errno} ({})", std::io::Error::from_raw_os_error(*.errno))]
    Kernel {
        /// What was being done.
        op: &'static str,
        /// The errno.
        errno: i32,
    },
    /// A reply did not parse as netlink.
    #[error("conntrack netlink reply: {0}")]
    Malformed(String),
    /// Mark 0 (with a mask that keeps any bit of it) would select every
    /// connection no path marked: refused so no caller can flush the table.
    #[error("conntrack flush of mark 0 refused: it would select every unmarked connection")]
    ZeroMark,
    /// Not available on this platform.
    #[error("conntrack flushing is not supported on this platform")]
    Unsupported,
}

/// Deletes conntrack entries by ct mark.
///
/// Kept this narrow on purpose: selecting by mark is the only way routerd
/// touches conntrack, so the trait cannot be used to flush anything wider.
pub trait ConntrackFlusher: Send + Sync + std::fmt::Debug {
    /// Deletes every entry whose `ctmark & mask == mark & mask`.
    fn flush_mark(&self, mark: u32, mask: u32) -> Result<FlushReport, ConntrackError>;
}

/// Refuses a selection that would match unmarked connections.
pub fn check_mark(mark: u32, mask: u32) -> Result<(), ConntrackError> {
    if mark & mask == 0 {
        return Err(ConntrackError::ZeroMark);
    }
    Ok(())
}

/// One entry of the in-memory table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEntry {
    /// A label the test chose (for example the flow's 5-tuple).
    pub id: String,
    /// Its ct mark.
    pub mark: u32,
}

/// The in-memory twin of the kernel table: engine tests check which marks
/// were flushed and that other entries survived, without root or a kernel.
#[derive(Debug, Default)]
pub struct MemoryFlusher {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    entries: Vec<MemoryEntry>,
    calls: Vec<(u32, u32)>,
    fail_with: Option<i32>,
}

impl MemoryFlusher {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A test that panicked while holding the lock leaves a usable table.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds an entry.
    pub fn insert(&self, id: impl Into<String>, mark: u32) {
        self.lock().entries.push(MemoryEntry {
            id: id.into(),
            mark,
        });
    }

    /// The entries left.
    pub fn entries(&self) -> Vec<MemoryEntry> {
        self.lock().entries.clone()
    }

    /// Every `(mark, mask)` asked for, in order, failed ones included.
    pub fn calls(&self) -> Vec<(u32, u32)> {
        self.lock().calls.clone()
    }

    /// Makes every following flush fail with `errno` (`None`: succeed).
    pub fn fail_with(&self, errno: Option<i32>) {
        self.lock().fail_with = errno;
    }
}

impl ConntrackFlusher for MemoryFlusher {
    fn flush_mark(&self, mark: u32, mask: u32) -> Result<FlushReport, ConntrackError> {
        let mut st = self.lock();
        st.calls.push((mark, mask));
        check_mark(mark, mask)?;
        if let Some(errno) = st.fail_with {
            return Err(ConntrackError::Kernel { op: "flush", errno });
        }
        let before = st.entries.len();
        st.entries.retain(|e| e.mark & mask != mark & mask);
        Ok(FlushReport {
            deleted: u64::try_from(before - st.entries.len()).unwrap_or(u64::MAX),
            remaining: 0,
        })
    }
}

/// Stands in where no conntrack access exists (other platforms): every
/// flush fails with [`ConntrackError::Unsupported`], which the daemon
/// reports without failing its step.
#[derive(Debug, Default)]
pub struct UnsupportedFlusher;

impl ConntrackFlusher for UnsupportedFlusher {
    fn flush_mark(&self, mark: u32, mask: u32) -> Result<FlushReport, ConntrackError> {
        check_mark(mark, mask)?;
        Err(ConntrackError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_flush_deletes_only_the_mark() {
        let f = MemoryFlusher::new();
        f.insert("a", 0x10);
        f.insert("b", 0x20);
        f.insert("c", 0x10);
        f.insert("d", 0);
        let r = f.flush_mark(0x10, u32::MAX).unwrap();
        assert_eq!(r.deleted, 2);
        let left: Vec<_> = f.entries().into_iter().map(|e| e.id).collect();
        assert_eq!(left, ["b", "d"]);
        assert_eq!(f.calls(), [(0x10, u32::MAX)]);
    }

    #[test]
    fn mark_zero_is_refused() {
        let f = MemoryFlusher::new();
        f.insert("d", 0);
        assert!(matches!(
            f.flush_mark(0, u32::MAX),
            Err(ConntrackError::ZeroMark)
        ));
        assert!(matches!(
            f.flush_mark(0x100, 0xff),
            Err(ConntrackError::ZeroMark)
        ));
        assert_eq!(f.entries().len(), 1);
    }

    #[test]
    fn memory_failure_is_reported() {
        let f = MemoryFlusher::new();
        f.insert("a", 0x10);
        f.fail_with(Some(1));
        let e = f.flush_mark(0x10, u32::MAX).unwrap_err();
        assert!(e.to_string().contains("kernel error 1"), "{e}");
        assert_eq!(f.entries().len(), 1);
    }
}

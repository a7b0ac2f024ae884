//! An in-memory [`Resolver`] whose answers tests set and change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{Answer, Family, ResolveError, ResolveFuture, Resolver};

#[derive(Clone, Debug)]
enum Entry {
    Answer(Answer),
    Fail(String),
    Hang,
}

/// Answers from a table; unknown names have no records. `hang` makes a
/// name never answer, to exercise the daemon's timeout.
#[derive(Debug, Default)]
pub struct MemoryResolver {
    table: Mutex<HashMap<(String, Family), Entry>>,
    calls: AtomicUsize,
}

impl MemoryResolver {
    /// An empty table.
    pub fn new() -> Self {
        MemoryResolver::default()
    }

    fn put(&self, name: &str, family: Family, e: Entry) {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((name.to_string(), family), e);
    }

    /// `name` answers `addresses` (of `family`) with `ttl`.
    pub fn set(&self, name: &str, family: Family, addresses: &[IpAddr], ttl: Option<Duration>) {
        self.put(
            name,
            family,
            Entry::Answer(Answer {
                addresses: addresses.to_vec(),
                ttl,
            }),
        );
    }

    /// `name` fails with `message` (a server that does not answer).
    pub fn fail(&self, name: &str, family: Family, message: &str) {
        self.put(name, family, Entry::Fail(message.to_string()));
    }

    /// `name` never answers.
    pub fn hang(&self, name: &str, family: Family) {
        self.put(name, family, Entry::Hang);
    }

    /// How many resolutions were asked so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Resolver for MemoryResolver {
    fn resolve<'a>(&'a self, name: &'a str, family: Family) -> ResolveFuture<'a> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let entry = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(name.to_string(), family))
            .cloned();
        let out = match entry {
            Some(Entry::Answer(a)) if !a.addresses.is_empty() => Ok(a),
            Some(Entry::Fail(message)) => Err(ResolveError::Failed {
                name: name.to_string(),
                message,
            }),
            Some(Entry::Hang) => return Box::pin(std::future::pending()),
            _ => Err(ResolveError::NoRecords {
                name: name.to_string(),
                family,
            }),
        };
        Box::pin(std::future::ready(out))
    }
}

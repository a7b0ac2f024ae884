//! The upstreams' listeners: probe targets and the traffic sink.
//!
//! Listening sockets are created inside the upstream namespace by a `setns` thread and
//! then served by ordinary threads, so the sink's records land directly in the `Lab`'s
//! memory without a helper process or a parsing step.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::netns::in_netns;
use crate::topology::{HTTP_PORT, Node, SINK_PORT, TCP_PORT};

/// How many connections the sink remembers. Health probes connect several times a second
/// for as long as a demo runs; older records are dropped so memory stays bounded.
pub(crate) const MAX_RECORDS: usize = 50_000;
/// How often blocked accept/read loops look at the stop flag: the upper bound on how long
/// teardown waits for the serving threads.
const POLL: Duration = Duration::from_millis(10);
/// How long a connection may take to send its greeting line or HTTP request.
const GREETING_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest greeting line or request head accepted, so a misbehaving peer cannot grow a
/// buffer without bound.
const MAX_GREETING: u64 = 4096;

/// The first word of the sink's answer, so a client can tell the sink from anything else
/// that might answer on the port.
pub(crate) const SINK_BANNER: &str = "routerd-lab";

/// One connection accepted by an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkRecord {
    /// Which upstream accepted it, i.e. which uplink the flow left the router through.
    pub upstream: Node,
    /// The port it was accepted on ([`HTTP_PORT`], [`TCP_PORT`] or [`SINK_PORT`]).
    pub port: u16,
    /// The source address as the upstream saw it: after the router's source NAT.
    pub peer: SocketAddr,
    /// The greeting line of a sink connection (the flow's tag); `None` for probes.
    pub tag: Option<String>,
    /// When it was accepted.
    pub at: Instant,
}

/// Records shared between the serving threads and the `Lab`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Records(Arc<Mutex<VecDeque<SinkRecord>>>);

impl Records {
    fn lock(&self) -> MutexGuard<'_, VecDeque<SinkRecord>> {
        // A panicking serving thread cannot leave the deque half-updated in a way that
        // matters to readers, so a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, record: SinkRecord) {
        let mut records = self.lock();
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
    }

    pub(crate) fn snapshot(&self) -> Vec<SinkRecord> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// Binds the three listeners inside `ns` and starts serving them. Returns the accept
/// threads; they exit soon after `stop` is set.
pub(crate) fn start(
    ns: &str,
    upstream: Node,
    records: &Records,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<thread::JoinHandle<()>>> {
    let listeners = in_netns(ns, || -> Result<Vec<(u16, TcpListener)>> {
        [HTTP_PORT, TCP_PORT, SINK_PORT]
            .into_iter()
            .map(|port| {
                let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
                let listener = TcpListener::bind(addr)
                    .map_err(|e| LabError::io(format!("binding {addr} in {ns}"), e))?;
                // Non-blocking accept lets the loop notice `stop` without a wake-up trick.
                listener
                    .set_nonblocking(true)
                    .map_err(|e| LabError::io(format!("configuring {addr} in {ns}"), e))?;
                Ok((port, listener))
            })
            .collect()
    })??;
    let mut threads = Vec::new();
    for (port, listener) in listeners {
        let records = records.clone();
        let stop = Arc::clone(stop);
        let handle = thread::Builder::new()
            .name(format!("lab-{upstream}-{port}"))
            .spawn(move || accept_loop(listener, upstream, port, &records, &stop))
            .map_err(|e| LabError::io(format!("starting the {upstream}:{port} listener"), e))?;
        threads.push(handle);
    }
    Ok(threads)
}

fn accept_loop(
    listener: TcpListener,
    upstream: Node,
    port: u16,
    records: &Records,
    stop: &Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let records = records.clone();
                let stop = Arc::clone(stop);
                let spawned = thread::Builder::new()
                    .name(format!("lab-{upstream}-{port}-conn"))
                    .spawn(move || serve(stream, peer, upstream, port, &records, &stop));
                // Out of threads: drop this connection, the client sees a reset.
                drop(spawned);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            // Transient accept errors (ECONNABORTED, EMFILE): back off and keep serving.
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    upstream: Node,
    port: u16,
    records: &Records,
    stop: &AtomicBool,
) {
    let at = Instant::now();
    // Accepted sockets do not inherit O_NONBLOCK on Linux, but be explicit: the handlers
    // below rely on read timeouts.
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let record = |tag| SinkRecord {
        upstream,
        port,
        peer,
        tag,
        at,
    };
    match port {
        HTTP_PORT => {
            records.push(record(None));
            let _ = serve_http(stream, upstream);
        }
        SINK_PORT => {
            let _ = serve_sink(stream, peer, upstream, stop, |tag| {
                records.push(record(Some(tag)))
            });
        }
        _ => {
            records.push(record(None));
            let _ = echo(stream, stop);
        }
    }
}

/// Answers one HTTP request with `200 OK` and the upstream's name, enough for an HTTP
/// health check that looks at the status code (and for a human using curl).
fn serve_http(stream: TcpStream, upstream: Node) -> std::io::Result<()> {
    stream.set_read_timeout(Some(GREETING_TIMEOUT))?;
    let mut reader = BufReader::new((&stream).take(MAX_GREETING));
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let body = format!("{upstream}\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    (&stream).write_all(response.as_bytes())
}

/// Reads the client's tag line, records it, answers `routerd-lab UPSTREAM PEER`, then
/// echoes lines until the client closes: that keeps long-lived flows alive and lets them
/// check that their path still works.
fn serve_sink(
    stream: TcpStream,
    peer: SocketAddr,
    upstream: Node,
    stop: &AtomicBool,
    record: impl FnOnce(String),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(GREETING_TIMEOUT))?;
    let mut tag = String::new();
    BufReader::new((&stream).take(MAX_GREETING)).read_line(&mut tag)?;
    record(tag.trim().to_owned());
    (&stream).write_all(format!("{SINK_BANNER} {upstream} {peer}\n").as_bytes())?;
    echo(stream, stop)
}

fn echo(mut stream: TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_read_timeout(Some(POLL * 10))?;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => stream.write_all(buf.get(..n).unwrap_or_default())?,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

//! Client flows through the router, and plain TCP connects for reachability checks.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::{LabError, Result};
use crate::netns::in_netns;
use crate::sink::SINK_BANNER;
use crate::topology::{Node, SINK_PORT, TARGET};

/// What the sink reported about one client flow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowReport {
    /// The upstream that accepted the flow, i.e. the uplink it left through.
    pub upstream: Node,
    /// The flow's source as the upstream saw it: the router's SNAT address and port.
    pub seen_source: SocketAddr,
    /// The flow's source inside the LAN (before NAT), which is how to find it in conntrack.
    pub local: SocketAddr,
    /// The tag the flow greeted the sink with.
    pub tag: String,
    /// Time from starting the connect to the sink's answer.
    pub elapsed: Duration,
}

/// A connection from the client to the sink that stays open, for checks that span a
/// route change ("the established flow keeps its conntrack entry").
#[derive(Debug)]
pub struct LongFlow {
    reader: BufReader<TcpStream>,
    report: FlowReport,
    pings: u64,
}

impl LongFlow {
    /// What the sink said when the flow was opened.
    pub fn report(&self) -> &FlowReport {
        &self.report
    }

    /// The client-side address, the key for finding the flow in conntrack.
    pub fn local_addr(&self) -> SocketAddr {
        self.report.local
    }

    /// Sends one line and waits for the sink's echo, to see whether the flow still works
    /// end to end (after a failover a masqueraded flow normally does not: its replies go
    /// to the old uplink's address).
    pub fn ping(&mut self, timeout: Duration) -> Result<Duration> {
        self.pings += 1;
        let line = format!("ping {}\n", self.pings);
        let start = Instant::now();
        let stream = self.reader.get_mut();
        stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .and_then(|()| stream.write_all(line.as_bytes()))
            .map_err(|e| LabError::io("sending on the long-lived flow", e))?;
        let answer = read_line(&mut self.reader, "the long-lived flow's echo", timeout)?;
        if answer != line.trim_end() {
            return Err(LabError::Protocol(answer));
        }
        Ok(start.elapsed())
    }
}

fn read_line(reader: &mut BufReader<TcpStream>, what: &str, timeout: Duration) -> Result<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Err(LabError::Protocol(format!("{what}: connection closed"))),
        Ok(_) => Ok(line.trim_end().to_owned()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(LabError::Timeout {
                what: what.to_owned(),
                waited: timeout,
            })
        }
        Err(e) => Err(LabError::io(format!("reading {what}"), e)),
    }
}

/// Opens a flow from the client namespace `ns` to the sink and reads the sink's answer.
pub(crate) fn open(ns: &str, tag: &str, timeout: Duration) -> Result<LongFlow> {
    let start = Instant::now();
    let target = SocketAddr::V4(SocketAddrV4::new(TARGET, SINK_PORT));
    let stream = in_netns(ns, || TcpStream::connect_timeout(&target, timeout))?
        .map_err(|e| LabError::io(format!("connecting from the client to {target}"), e))?;
    let local = stream
        .local_addr()
        .map_err(|e| LabError::io("reading the flow's address", e))?;
    let remaining = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(remaining))
        .and_then(|()| (&stream).write_all(format!("{tag}\n").as_bytes()))
        .map_err(|e| LabError::io("greeting the sink", e))?;
    let mut reader = BufReader::new(stream);
    let answer = read_line(&mut reader, "the sink's answer", timeout)?;
    let report = parse_answer(&answer, local, tag, start.elapsed())?;
    Ok(LongFlow {
        reader,
        report,
        pings: 0,
    })
}

/// Parses `routerd-lab UPSTREAM PEER`.
fn parse_answer(
    answer: &str,
    local: SocketAddr,
    tag: &str,
    elapsed: Duration,
) -> Result<FlowReport> {
    let bad = || LabError::Protocol(answer.to_owned());
    let mut words = answer.split_whitespace();
    if words.next() != Some(SINK_BANNER) {
        return Err(bad());
    }
    let upstream = match words.next() {
        Some(w) if w == Node::Up1.role() => Node::Up1,
        Some(w) if w == Node::Up2.role() => Node::Up2,
        _ => return Err(bad()),
    };
    let seen_source = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    Ok(FlowReport {
        upstream,
        seen_source,
        local,
        tag: tag.to_owned(),
        elapsed,
    })
}

/// How a TCP connect ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectOutcome {
    /// The handshake completed after this long.
    Connected(Duration),
    /// No answer within the timeout: what a silent drop looks like.
    TimedOut,
    /// The connect failed at once (refused, unreachable, ...); the kind tells which.
    Failed(ErrorKind, String),
}

impl ConnectOutcome {
    /// Whether the handshake completed.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectOutcome::Connected(_))
    }
}

/// Sends a minimal `GET /` and returns the status code of the answer.
pub(crate) fn http_status(
    ns: &str,
    dst: SocketAddr,
    device: Option<&str>,
    timeout: Duration,
) -> Result<u16> {
    let socket = in_netns(ns, || -> Result<Socket> {
        let socket = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| LabError::io(format!("creating a socket in {ns}"), e))?;
        if let Some(dev) = device {
            socket
                .bind_device(Some(dev.as_bytes()))
                .map_err(|e| LabError::io(format!("binding to {dev} in {ns}"), e))?;
        }
        Ok(socket)
    })??;
    socket
        .connect_timeout(&SockAddr::from(dst), timeout)
        .and_then(|()| socket.set_read_timeout(Some(timeout.max(Duration::from_millis(1)))))
        .map_err(|e| LabError::io(format!("connecting to {dst}"), e))?;
    let mut stream = TcpStream::from(socket);
    stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: {dst}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| LabError::io(format!("sending a request to {dst}"), e))?;
    let status_line = read_line(&mut BufReader::new(stream), "the HTTP status line", timeout)?;
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok());
    code.ok_or(LabError::Protocol(status_line))
}

/// Connects from namespace `ns` to `dst`, optionally bound to `device` (`SO_BINDTODEVICE`),
/// the same way routerd's TCP probe leaves through one uplink.
pub(crate) fn tcp_connect(
    ns: &str,
    dst: SocketAddr,
    device: Option<&str>,
    timeout: Duration,
) -> Result<ConnectOutcome> {
    in_netns(ns, || {
        let socket = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| LabError::io(format!("creating a socket in {ns}"), e))?;
        if let Some(dev) = device {
            socket
                .bind_device(Some(dev.as_bytes()))
                .map_err(|e| LabError::io(format!("binding to {dev} in {ns}"), e))?;
        }
        let start = Instant::now();
        Ok(
            match socket.connect_timeout(&SockAddr::from(dst), timeout) {
                Ok(()) => ConnectOutcome::Connected(start.elapsed()),
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                    ConnectOutcome::TimedOut
                }
                Err(e) => ConnectOutcome::Failed(e.kind(), e.to_string()),
            },
        )
    })?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_sink_answer() {
        let local: SocketAddr = "192.168.50.10:40000".parse().unwrap();
        let r = parse_answer(
            "routerd-lab up2 198.18.2.1:40000",
            local,
            "t",
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(r.upstream, Node::Up2);
        assert_eq!(r.seen_source, "198.18.2.1:40000".parse().unwrap());
        assert!(parse_answer("routerd-lab rtr 1.2.3.4:5", local, "t", Duration::ZERO).is_err());
        assert!(parse_answer("hello up1 1.2.3.4:5", local, "t", Duration::ZERO).is_err());
        assert!(parse_answer("routerd-lab up1", local, "t", Duration::ZERO).is_err());
    }
}

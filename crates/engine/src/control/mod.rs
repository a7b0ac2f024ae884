//! The control-socket server: HTTP and JSON over a Unix socket.
//!
//! This module owns the transport (connections and their limits, access
//! control by peer credentials, body limits, JSON errors); what a request
//! means is the [`ControlHandler`]'s business, so the server is tested
//! without a daemon.
//!
//! Connections are served by hyper directly rather than through a router:
//! every request goes to one dispatch function, and the connection limits
//! (idle and header timeouts, body timeout, a cap on a connection's life and
//! on open connections) need hyper's own settings.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use routerd_api::control::{
    ApplyRequest, CandidateRequest, DeleteRequest, DynamicDropRequest, ErrorBody, MAX_BODY_BYTES,
    PREFIX, PluginRunRequest,
};
use serde::de::DeserializeOwned;
use tokio::net::UnixListener;

/// A parsed control request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ControlRequest {
    /// `GET /status`.
    Status,
    /// `GET /get?subject=...` (plus filters).
    Get {
        /// `resources`, `status`, `events`, `ledger`, or `Kind[/name]`.
        subject: String,
        /// Other query parameters.
        query: HashMap<String, String>,
    },
    /// `GET /describe?target=Kind/name`.
    Describe {
        /// `Kind/name`.
        target: String,
        /// Recent events to include.
        events_limit: usize,
    },
    /// `GET /explain?policy=name`: a policy's decision record.
    Explain {
        /// EgressRoutePolicy name.
        policy: String,
    },
    /// `GET /explain?gateway=name`: an EgressGateway as this node sees it.
    ExplainGateway {
        /// EgressGateway name.
        gateway: String,
    },
    /// `POST /cordon?node=name&on=true|false`: maintenance of this node
    /// in its gateway groups.
    Cordon {
        /// The node (must be this daemon's).
        node: String,
        /// Cordon (true) or uncordon (false).
        on: bool,
    },
    /// `GET /events`: newer than `since_id`, optionally waiting for them.
    Events {
        /// Cursor.
        since_id: u64,
        /// Topic filter.
        topic: Option<String>,
        /// `Kind/name` filter.
        resource: Option<String>,
        /// Most events (default 50).
        limit: usize,
        /// Long-poll: wait up to this long for a first event (at most 30 s).
        wait: Duration,
    },
    /// `GET /dynamic?source=...`: stored parts.
    Dynamic {
        /// Restrict to one source.
        source: Option<String>,
    },
    /// `POST /validate`.
    Validate(CandidateRequest),
    /// `POST /plan`.
    Plan(CandidateRequest),
    /// `POST /apply`.
    Apply(ApplyRequest),
    /// `POST /delete`.
    Delete(DeleteRequest),
    /// `POST /plugin/run`.
    PluginRun(PluginRunRequest),
    /// `POST /dynamic/drop`.
    DynamicDrop {
        /// The request.
        request: DynamicDropRequest,
        /// Who asked (the peer's uid from the socket credentials), for the
        /// audit event.
        uid: Option<u32>,
    },
}

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Message for the JSON error body.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: m.into(),
        }
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        ApiError {
            status: 404,
            message: m.into(),
        }
    }
    /// 409: the request is understood but refused in the current state.
    pub fn conflict(m: impl Into<String>) -> Self {
        ApiError {
            status: 409,
            message: m.into(),
        }
    }
    /// 500.
    pub fn internal(m: impl Into<String>) -> Self {
        ApiError {
            status: 500,
            message: m.into(),
        }
    }
}

/// What the daemon does with a request.
pub trait ControlHandler: Send + Sync + 'static {
    /// Answers one request with a JSON document.
    fn handle(
        &self,
        req: ControlRequest,
    ) -> impl Future<Output = Result<serde_json::Value, ApiError>> + Send;
}

/// Who may talk to the socket: root always; members of `group` when set;
/// members of `read_group` for the read-only verbs (status, get, describe,
/// events, explain, dynamic listings), so monitoring can look without
/// being able to change the router.
#[derive(Debug, Clone, Copy, Default)]
pub struct Access {
    /// Group id allowed everything besides root.
    pub group: Option<u32>,
    /// Group id allowed only `GET` requests (reads).
    pub read_group: Option<u32>,
}

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Write,
    Read,
    None,
}

impl Access {
    fn role(&self, peer: &Peer) -> Role {
        let member =
            |g: Option<u32>| g.is_some_and(|g| peer.gid == Some(g) || peer.groups.contains(&g));
        if peer.uid == Some(0) || member(self.group) {
            Role::Write
        } else if member(self.read_group) {
            Role::Read
        } else {
            Role::None
        }
    }
}

/// How long a connection may take, and how many may be open. A peer that
/// holds a connection without sending a request, sends its headers or body
/// slowly, or never reads its answer is disconnected; connections beyond
/// the cap are closed at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Reading a request's headers, and waiting for the next request on a
    /// kept-alive connection (the idle timeout).
    pub header_timeout: Duration,
    /// Reading a request's body.
    pub body_timeout: Duration,
    /// The whole life of a connection: longer than the longest wait a
    /// request may ask for (apply's timeout, the events long poll).
    pub max_connection: Duration,
    /// Open connections.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connection: Duration::from_secs(
                routerd_api::control::MAX_APPLY_TIMEOUT_SECONDS + 60,
            ),
            max_connections: 256,
        }
    }
}

/// Credentials of the connected peer.
#[derive(Debug, Clone)]
pub struct Peer {
    uid: Option<u32>,
    gid: Option<u32>,
    /// Supplementary groups (from `/proc/<pid>/status`): an operator is
    /// usually in the routerd group as a supplementary one, which the
    /// socket credentials do not carry.
    groups: Vec<u32>,
}

impl Peer {
    fn of(stream: &tokio::net::UnixStream) -> Peer {
        let cred = stream.peer_cred().ok();
        let groups = cred
            .and_then(|c| c.pid())
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .and_then(|t| {
                t.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                    g.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
            })
            .unwrap_or_default();
        Peer {
            uid: cred.map(|c| c.uid()),
            gid: cred.map(|c| c.gid()),
            groups,
        }
    }
}

/// Binds the socket at `path`, replacing a stale one, readable and writable
/// by the owner (root) and, when `group` is set, by that group only.
pub fn bind(path: &Path, group: Option<u32>) -> std::io::Result<UnixListener> {
    bind_with(
        path,
        Access {
            group,
            read_group: None,
        },
    )
}

/// [`bind`] for `access`: with a read-only group as well, the socket file
/// cannot name two groups, so it is connectable by everyone (0666) and
/// every request is authorised by the peer's credentials instead.
pub fn bind_with(path: &Path, access: Access) -> std::io::Result<UnixListener> {
    let group = access.group;
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    let mode = if access.read_group.is_some() {
        0o666
    } else if group.is_some() {
        0o660
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    Ok(listener)
}

struct Shared<H> {
    handler: Arc<H>,
    access: Access,
    limits: Limits,
}

/// Serves `handler` on `listener` with the default [`Limits`] until
/// `shutdown` resolves.
pub async fn serve<H: ControlHandler>(
    listener: UnixListener,
    handler: Arc<H>,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, handler, access, Limits::default(), shutdown).await
}

/// Serves `handler` on `listener` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish (for a few seconds) and
/// returns.
pub async fn serve_with<H: ControlHandler>(
    listener: UnixListener,
    handler: Arc<H>,
    access: Access,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        handler,
        access,
        limits,
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of descriptors or similar: back off instead of spinning.
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(max = limits.max_connections, "control socket: too many connections; closing a new one");
                    continue;
                };
                conns.spawn(connection(shared.clone(), stream, closing.clone(), slot));
            }
        }
    }
    let _ = closing_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
    Ok(())
}

/// Serves one connection within the limits.
async fn connection<H: ControlHandler>(
    shared: Arc<Shared<H>>,
    stream: tokio::net::UnixStream,
    mut closing: tokio::sync::watch::Receiver<bool>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let peer = Peer::of(&stream);
    let limits = shared.limits;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(dispatch(&shared, peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = async { let _ = closing.wait_for(|c| *c).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
        () = tokio::time::sleep(limits.max_connection) => {
            tracing::debug!("control connection closed: it outlived its limit");
        }
    }
}

fn json_response(status: u16, value: &impl serde::Serialize, close: bool) -> Response<Full<Bytes>> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
    body.push('\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if close {
        r.headers_mut()
            .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
    }
    r
}

fn error(status: u16, message: impl Into<String>) -> Response<Full<Bytes>> {
    // After an error about the request itself the rest of the connection
    // cannot be trusted (an unread body, a peer that is not allowed).
    json_response(
        status,
        &ErrorBody::new(message),
        status != 404 && status < 500,
    )
}

async fn dispatch<H: ControlHandler>(
    shared: &Shared<H>,
    peer: Peer,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let role = shared.access.role(&peer);
    if role == Role::None {
        return error(
            403,
            "permission denied: the control socket is for root (or the configured group)",
        );
    }
    if role == Role::Read && req.method() != Method::GET {
        return error(
            403,
            "permission denied: read-only access (--socket-read-group) allows status, get, describe, events, explain and dynamic listings; changes need root or the --socket-group",
        );
    }
    let too_large = || error(413, format!("request body exceeds {MAX_BODY_BYTES} bytes"));
    // Refuse an announced body over the limit before reading any of it.
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(n) if n > MAX_BODY_BYTES as u64 => return too_large(),
            Some(_) => {}
            None => return error(400, "invalid content-length"),
        }
    }
    let (parts, body) = req.into_parts();
    let limited = Limited::new(body, MAX_BODY_BYTES);
    let body = match tokio::time::timeout(shared.limits.body_timeout, limited.collect()).await {
        Err(_) => return error(408, "request body not received in time"),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => return error(400, format!("reading the request body: {e}")),
        Ok(Ok(b)) => b.to_bytes(),
    };
    let req = match parse(&parts.method, &parts.uri, &body) {
        Ok(ControlRequest::DynamicDrop { request, .. }) => ControlRequest::DynamicDrop {
            request,
            uid: peer.uid,
        },
        Ok(r) => r,
        Err(e) => return error(e.status, e.message),
    };
    match shared.handler.handle(req).await {
        Ok(v) => json_response(200, &v, false),
        Err(e) => json_response(e.status, &ErrorBody::new(e.message), false),
    }
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn number(q: &HashMap<String, String>, key: &str, default: u64) -> Result<u64, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{key} must be a non-negative integer"))),
    }
}

fn body_json<T: DeserializeOwned>(body: &[u8], expected_kind: &str) -> Result<T, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if let Some(api) = v.get("apiVersion").and_then(|a| a.as_str())
        && api != routerd_model::id::CONTROL_API
    {
        return Err(ApiError::bad_request("unsupported apiVersion"));
    }
    if let Some(kind) = v.get("kind").and_then(|a| a.as_str())
        && kind != expected_kind
    {
        return Err(ApiError::bad_request("unsupported kind"));
    }
    serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("invalid {expected_kind}: {e}")))
}

fn parse(method: &Method, uri: &Uri, body: &[u8]) -> Result<ControlRequest, ApiError> {
    let not_found = || ApiError::not_found("not found");
    let path = uri.path().strip_prefix(PREFIX).ok_or_else(not_found)?;
    let q = query(uri);
    match (method.as_str(), path) {
        ("GET", "/status") => Ok(ControlRequest::Status),
        ("GET", "/get") => {
            let subject = q
                .get("subject")
                .cloned()
                .unwrap_or_else(|| "resources".into());
            Ok(ControlRequest::Get { subject, query: q })
        }
        ("GET", "/describe") => {
            let target = q
                .get("target")
                .filter(|t| !t.is_empty())
                .cloned()
                .ok_or_else(|| ApiError::bad_request("target is required (Kind/name)"))?;
            let events_limit = usize::try_from(number(&q, "events-limit", 10)?).unwrap_or(10);
            Ok(ControlRequest::Describe {
                target,
                events_limit,
            })
        }
        ("GET", "/explain") if q.get("gateway").is_some_and(|g| !g.is_empty()) => {
            Ok(ControlRequest::ExplainGateway {
                gateway: q.get("gateway").cloned().unwrap_or_default(),
            })
        }
        ("POST", "/cordon") => {
            let node = q
                .get("node")
                .filter(|t| !t.is_empty())
                .cloned()
                .ok_or_else(|| ApiError::bad_request("node is required"))?;
            let on = q.get("on").is_none_or(|v| v != "false");
            Ok(ControlRequest::Cordon { node, on })
        }
        ("GET", "/explain") => {
            let policy = q
                .get("policy")
                .filter(|t| !t.is_empty())
                .cloned()
                .ok_or_else(|| ApiError::bad_request("policy is required"))?;
            Ok(ControlRequest::Explain { policy })
        }
        ("GET", "/events") => {
            let wait_s = number(&q, "wait", 0)?.min(30);
            Ok(ControlRequest::Events {
                since_id: number(&q, "since-id", 0)?,
                topic: q.get("topic").filter(|t| !t.is_empty()).cloned(),
                resource: q.get("resource").filter(|t| !t.is_empty()).cloned(),
                limit: usize::try_from(number(&q, "limit", 50)?).unwrap_or(50),
                wait: Duration::from_secs(wait_s),
            })
        }
        ("GET", "/dynamic") => Ok(ControlRequest::Dynamic {
            source: q.get("source").filter(|s| !s.is_empty()).cloned(),
        }),
        ("POST", "/validate") => Ok(ControlRequest::Validate(body_json(
            body,
            "ValidateRequest",
        )?)),
        ("POST", "/plan") => Ok(ControlRequest::Plan(body_json(body, "PlanRequest")?)),
        ("POST", "/apply") => Ok(ControlRequest::Apply(body_json(body, "ApplyRequest")?)),
        ("POST", "/delete") => Ok(ControlRequest::Delete(body_json(body, "DeleteRequest")?)),
        ("POST", "/plugin/run") => Ok(ControlRequest::PluginRun(body_json(
            body,
            "PluginRunRequest",
        )?)),
        ("POST", "/dynamic/drop") => Ok(ControlRequest::DynamicDrop {
            request: body_json(body, "DynamicDropRequest")?,
            uid: None,
        }),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("EgressRoutePolicy%2Fipv4"),
            "EgressRoutePolicy/ipv4"
        );
        assert_eq!(percent_decode("a+b%"), "a b%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("é%"), "é%");
    }

    #[test]
    fn parses_paths_queries_and_bodies() {
        let uri: Uri = format!("{PREFIX}/events?since-id=7&topic=t&wait=99")
            .parse()
            .unwrap();
        match parse(&Method::GET, &uri, b"").unwrap() {
            ControlRequest::Events {
                since_id,
                topic,
                wait,
                limit,
                ..
            } => {
                assert_eq!(
                    (since_id, topic.as_deref(), wait.as_secs(), limit),
                    (7, Some("t"), 30, 50)
                );
            }
            other => panic!("{other:?}"),
        }
        let bad: Uri = format!("{PREFIX}/events?since-id=x").parse().unwrap();
        assert_eq!(
            parse(&Method::GET, &bad, b"").unwrap_err().message,
            "since-id must be a non-negative integer"
        );
        let apply: Uri = format!("{PREFIX}/apply").parse().unwrap();
        let wrong_kind = br#"{"kind":"PlanRequest","candidateYaml":""}"#;
        assert_eq!(
            parse(&Method::POST, &apply, wrong_kind)
                .unwrap_err()
                .message,
            "unsupported kind"
        );
        let wrong_api = br#"{"apiVersion":"v9","candidateYaml":""}"#;
        assert_eq!(
            parse(&Method::POST, &apply, wrong_api).unwrap_err().message,
            "unsupported apiVersion"
        );
        assert_eq!(parse(&Method::POST, &apply, b"{").unwrap_err().status, 400);
        let unknown: Uri = format!("{PREFIX}/nope").parse().unwrap();
        assert_eq!(parse(&Method::GET, &unknown, b"").unwrap_err().status, 404);
        let wrong_method: Uri = format!("{PREFIX}/status").parse().unwrap();
        assert_eq!(
            parse(&Method::DELETE, &wrong_method, b"")
                .unwrap_err()
                .status,
            404
        );
    }
}

//! The control-socket server: HTTP and JSON over a Unix socket.
//!
//! This module owns the transport (routing, access control by peer
//! credentials, body limits, JSON errors); what a request means is the
//! [`ControlHandler`]'s business, so the server is tested without a daemon.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use routerd_api::control::{
    ApplyRequest, CandidateRequest, DeleteRequest, ErrorBody, MAX_BODY_BYTES, PREFIX,
    PluginRunRequest,
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

/// Who may talk to the socket: root always; members of `group` when set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Access {
    /// Group id allowed besides root.
    pub group: Option<u32>,
}

/// Credentials of the connected peer.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    uid: Option<u32>,
    gid: Option<u32>,
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        let cred = stream.io().peer_cred().ok();
        Peer {
            uid: cred.map(|c| c.uid()),
            gid: cred.map(|c| c.gid()),
        }
    }
}

/// Binds the socket at `path`, replacing a stale one, readable and writable
/// by the owner (root) and, when `group` is set, by that group only.
pub fn bind(path: &Path, group: Option<u32>) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    Ok(listener)
}

struct Shared<H> {
    handler: Arc<H>,
    access: Access,
}

/// Serves `handler` on `listener` until `shutdown` resolves.
pub async fn serve<H: ControlHandler>(
    listener: UnixListener,
    handler: Arc<H>,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared { handler, access });
    let app = axum::Router::new()
        .fallback(dispatch::<H>)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(shutdown)
        .await
}

fn json_response(status: u16, value: &impl serde::Serialize) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
    body.push('\n');
    (code, [("content-type", "application/json")], body).into_response()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    json_response(status, &ErrorBody::new(message))
}

async fn dispatch<H: ControlHandler>(
    State(shared): State<Arc<Shared<H>>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let allowed =
        peer.uid == Some(0) || (shared.access.group.is_some() && peer.gid == shared.access.group);
    if !allowed {
        return error(
            403,
            "permission denied: the control socket is for root (or the configured group)",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(413, format!("request body exceeds {MAX_BODY_BYTES} bytes"));
        }
        Err(e) => return error(400, e.body_text()),
    };
    let req = match parse(&method, &uri, &body) {
        Ok(r) => r,
        Err(e) => return error(e.status, e.message),
    };
    match shared.handler.handle(req).await {
        Ok(v) => json_response(200, &v),
        Err(e) => error(e.status, e.message),
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

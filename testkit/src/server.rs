//! The HTTP side: accept loop, per-connection serving with hyper, routing, auth, gzip and
//! fault application.
//!
//! Every connection's socket is wrapped so that a handler can abort it: the handler flags the
//! connection and the connection task drops it (the socket gets `SO_LINGER` 0 first for a
//! reset, so the peer sees RST instead of FIN). That is how `Reset`, `Close` and `DropResponse`
//! faults answer with no response at all.

use std::convert::Infallible;
use std::io::{self, Read as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

use crate::artifacts;
use crate::faults::{FaultAction, FaultRule, Faults, RequestKind};
use crate::filestream;
use crate::graphql;
use crate::state::{REQUEST_LOG_LIMIT, RequestLogEntry, RunKey, Store};
use crate::tls::{ALPN_H2, Tls};
use crate::urlpath::decode_segment;

/// State shared by the handle and every connection task.
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: Faults,
    pub(crate) features: Mutex<Vec<String>>,
    /// `None` accepts any (or no) credentials.
    pub(crate) api_key: Option<String>,
    pub(crate) default_entity: String,
    pub(crate) base_url: String,
    pub(crate) started: Instant,
    /// Whether GraphQL variables go into the request log.
    pub(crate) record_variables: bool,
    /// The network model connections go through, if any.
    pub(crate) link: Option<Arc<crate::link::Link>>,
    /// HTTPS: the acceptor and its authority; `None` serves plain HTTP/1.1.
    pub(crate) tls: Option<Tls>,
    /// The HTTP/2 receive window of a stream (`None`: hyper's default).
    pub(crate) http2_window: Option<u32>,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn features(&self) -> Vec<String> {
        self.features
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_features(&self, features: Vec<String>) {
        *self.features.lock().unwrap_or_else(PoisonError::into_inner) = features;
    }
}

/// A response body: its bytes, then the end; or, after a [`FaultAction::StallBody`] fault, its
/// first half and then nothing more, ever (no length is announced, so the client waits for the
/// rest until it gives up or the backend stops).
pub(crate) struct Body {
    data: Option<Bytes>,
    stall: bool,
}

impl Body {
    fn new(data: Bytes) -> Self {
        Body {
            data: (!data.is_empty()).then_some(data),
            stall: false,
        }
    }

    fn stalled_after_half(self) -> Self {
        let data = self
            .data
            .map(|d| d.slice(..d.len() / 2))
            .filter(|d| !d.is_empty());
        Body { data, stall: true }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match this.data.take() {
            Some(data) => Poll::Ready(Some(Ok(hyper::body::Frame::data(data)))),
            // Never woken: the connection task is dropped when the client or the backend goes.
            None if this.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.stall && self.data.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match (&self.data, self.stall) {
            (_, true) => hyper::body::SizeHint::default(),
            (Some(data), false) => hyper::body::SizeHint::with_exact(data.len() as u64),
            (None, false) => hyper::body::SizeHint::with_exact(0),
        }
    }
}

const KILL_CLOSE: u8 = 1;
const KILL_RESET: u8 = 2;

/// Lets a request handler abort its own connection.
#[derive(Default)]
struct ConnControl {
    mode: AtomicU8,
    notify: Notify,
}

impl ConnControl {
    fn kill(&self, reset: bool) {
        let mode = if reset { KILL_RESET } else { KILL_CLOSE };
        self.mode.store(mode, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// The connection's socket; on drop after a reset request it sets `SO_LINGER` 0 so that closing
/// sends RST.
struct ConnIo {
    stream: TcpStream,
    control: Arc<ConnControl>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.control.mode.load(Ordering::SeqCst) == KILL_RESET {
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts connections until `shutdown` fires (or its sender is dropped), then closes the
/// listener and aborts every open connection.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(e) => {
                    shared.store().error(format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    shared.store().counters.connections += 1;
    let control = Arc::new(ConnControl::default());
    let socket = ConnIo {
        stream,
        control: Arc::clone(&control),
    };
    match shared.link.clone() {
        None => serve_secured(socket, shared, control).await,
        Some(link) => {
            // The client's bytes (TLS records, on HTTPS) reach hyper through the link model's
            // pumps.
            let (server_side, link_side) = tokio::io::duplex(256 << 10);
            let carried = tokio::spawn(crate::link::carry(socket, link_side, link));
            serve_secured(server_side, shared, control).await;
            // Serving ended (or a fault killed the connection): the pumps see the pipe close.
            carried.abort();
        }
    }
}

/// Serves `io` as plain HTTP/1.1, or on an HTTPS backend after the TLS handshake, in the
/// protocol ALPN agreed on.
async fn serve_secured<I>(io: I, shared: Arc<Shared>, control: Arc<ConnControl>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(tls) = &shared.tls else {
        return serve_io(TokioIo::new(io), shared, control, false).await;
    };
    let accept = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(io));
    // A client that gives up on the handshake (an untrusted certificate, a timeout) is the
    // client's error to report, not the backend's.
    let stream = tokio::select! {
        accepted = accept => match accepted {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) | Err(_) => return,
        },
        () = control.notify.notified() => return,
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(ALPN_H2);
    shared.store().counters.tls_handshakes += 1;
    serve_io(TokioIo::new(stream), shared, control, h2).await;
}

async fn serve_io<I>(io: TokioIo<I>, shared: Arc<Shared>, control: Arc<ConnControl>, h2: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handler_control = Arc::clone(&control);
    let window = shared.http2_window;
    let service =
        service_fn(move |req| handle(req, Arc::clone(&shared), Arc::clone(&handler_control)));
    if h2 {
        // A stream's and the connection's receive windows: hyper's (1 MiB each) unless the
        // config sets them, as an untuned server and a tuned one.
        let connection = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(window)
            .initial_connection_window_size(window.map(|w| w.saturating_mul(4)))
            .serve_connection(io, service);
        tokio::select! {
            _ = connection => {}
            () = control.notify.notified() => {}
        }
    } else {
        let connection = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service);
        tokio::select! {
            _ = connection => {}
            () = control.notify.notified() => {}
        }
    }
}

/// Where a request goes.
enum Target {
    Graphql,
    FileStream(RunKey),
    Upload(RunKey, String),
    Download(RunKey, String),
    ArtifactUpload(artifacts::UploadTarget),
    ArtifactDownload(artifacts::UploadTarget),
    Otel,
    Other,
}

impl Target {
    fn kind(&self) -> Option<RequestKind> {
        match self {
            Target::Graphql => Some(RequestKind::Graphql),
            Target::FileStream(_) => Some(RequestKind::FileStream),
            Target::Upload(..) | Target::Download(..) => Some(RequestKind::Upload),
            Target::ArtifactUpload(_) | Target::ArtifactDownload(_) => {
                Some(RequestKind::ArtifactUpload)
            }
            Target::Otel | Target::Other => None,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Target::Graphql => "graphql",
            Target::FileStream(_) => "file_stream",
            Target::Upload(..) => "upload",
            Target::Download(..) => "download",
            Target::ArtifactUpload(_) => "artifact_upload",
            Target::ArtifactDownload(_) => "artifact_download",
            Target::Otel => "otel",
            Target::Other => "other",
        }
    }
}

fn classify(method: &Method, path: &str) -> Target {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["graphql"] | ["graphql", ""]) => Target::Graphql,
        (&Method::POST, ["files", entity, project, run, "file_stream"]) => {
            Target::FileStream(run_key(entity, project, run))
        }
        (&Method::PUT | &Method::GET, ["_upload", entity, project, run, rest @ ..])
            if !rest.is_empty() =>
        {
            let key = run_key(entity, project, run);
            let file: Vec<String> = rest.iter().map(|s| decode_segment(s)).collect();
            if method == Method::PUT {
                Target::Upload(key, file.join("/"))
            } else {
                Target::Download(key, file.join("/"))
            }
        }
        (&Method::PUT | &Method::GET, ["_artifact_upload" | "_artifact_manifest", ..]) => {
            match artifacts::upload_target(&segments) {
                Some(target) if method == Method::PUT => Target::ArtifactUpload(target),
                Some(target) => Target::ArtifactDownload(target),
                None => Target::Other,
            }
        }
        (_, ["sdk", "otel", ..]) => Target::Otel,
        _ => Target::Other,
    }
}

fn run_key(entity: &str, project: &str, run: &str) -> RunKey {
    (
        decode_segment(entity),
        decode_segment(project),
        decode_segment(run),
    )
}

fn header_string(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn response(status: StatusCode, content_type: Option<&'static str>, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::new(body));
    *resp.status_mut() = status;
    if let Some(content_type) = content_type {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    resp
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    response(status, Some("application/json"), Bytes::from(bytes))
}

fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"error": message, "errors": [{"message": message}]}),
    )
}

fn gunzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4);
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

fn authorized(shared: &Shared, header: Option<&HeaderValue>) -> bool {
    let Some(expected) = shared.api_key.as_deref() else {
        return true;
    };
    let Some(value) = header.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    text.strip_prefix("api:").is_some_and(|key| key == expected)
}

/// Writes the final status into the request log entry.
fn finish(shared: &Shared, log_index: Option<usize>, status: u16) {
    if let Some(index) = log_index
        && let Some(entry) = shared.store().request_log.get_mut(index)
    {
        entry.status = status;
    }
}

/// Waits forever; used after asking the connection task to drop the connection.
async fn abandon(control: &ConnControl, reset: bool) -> Infallible {
    control.kill(reset);
    std::future::pending::<Infallible>().await
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    control: Arc<ConnControl>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    if matches!(
        path.as_str(),
        "/_state" | "/_faults" | "/_reset" | "/_features" | "/_health"
    ) {
        return Ok(control_endpoint(req, &shared, &path).await);
    }
    if method == Method::GET
        && let Some(reply) = run_page(&shared, &path)
    {
        return Ok(reply);
    }
    let target = classify(&method, &path);
    let content_encoding = header_string(req.headers(), CONTENT_ENCODING);
    let user_agent = header_string(req.headers(), USER_AGENT);
    let version = req.version();
    let authorization = req.headers().get(AUTHORIZATION).cloned();
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            shared
                .store()
                .error(format!("{method} {path}: reading the body failed: {e}"));
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "could not read body",
            ));
        }
    };
    let wire_len = body.len() as u64;
    let is_gzip = content_encoding
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let decodes_body = matches!(target, Target::Graphql | Target::FileStream(_));

    // Decode and parse JSON bodies up front: the GraphQL operation decides fault matching.
    let mut decoded_len = wire_len;
    let parsed: Result<Value, String> = if decodes_body {
        let decoded = if is_gzip {
            gunzip(&body).map_err(|e| format!("bad gzip body: {e}"))
        } else {
            Ok(body.to_vec())
        };
        decoded.and_then(|bytes| {
            decoded_len = bytes.len() as u64;
            serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("bad JSON body: {e}"))
        })
    } else {
        Ok(Value::Null)
    };
    let operation = match (&target, &parsed) {
        (Target::Graphql, Ok(body)) => graphql::operation_of(body),
        _ => None,
    };

    let (seq, log_index) = {
        let mut store = shared.store();
        let seq = store.next_request_seq;
        store.next_request_seq += 1;
        store.counters.bytes_received += wire_len;
        store.counters.bytes_decoded += decoded_len;
        if is_gzip {
            store.counters.gzip_requests += 1;
        }
        store.counters.bump(target.label());
        if version == hyper::Version::HTTP_2 {
            store.counters.http2_requests += 1;
        }
        if let Some(op) = &operation {
            store.counters.bump(&format!("graphql:{op}"));
        }
        let log_index = (store.request_log.len() < REQUEST_LOG_LIMIT).then(|| {
            store.request_log.push(RequestLogEntry {
                seq,
                at_ms: shared.started.elapsed().as_secs_f64() * 1000.0,
                method: method.to_string(),
                path: path.clone(),
                kind: target.label().to_owned(),
                operation: operation.clone(),
                status: 0,
                bytes: wire_len,
                content_encoding: content_encoding.clone(),
                user_agent,
                http_version: format!("{version:?}"),
                fault: None,
                variables: match (&target, &parsed) {
                    (Target::Graphql, Ok(body)) if shared.record_variables => {
                        body.get("variables").cloned()
                    }
                    _ => None,
                },
            });
            store.request_log.len() - 1
        });
        (seq, log_index)
    };

    let fault = target.kind().and_then(|kind| {
        shared
            .faults
            .decide(kind, operation.as_deref(), seq, &format!("{method} {path}"))
    });
    let mut drop_response = false;
    let mut stall_body = false;
    if let Some(action) = &fault {
        {
            let mut store = shared.store();
            store.counters.faults_injected += 1;
            if let Some(entry) = log_index.and_then(|i| store.request_log.get_mut(i)) {
                entry.fault = Some(action.label());
            }
        }
        match action {
            FaultAction::Status { code } => {
                let status =
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                finish(&shared, log_index, status.as_u16());
                return Ok(error_response(status, "wandb-testkit: injected fault"));
            }
            FaultAction::RateLimit { retry_after_secs } => {
                finish(&shared, log_index, 429);
                let mut resp = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "wandb-testkit: injected rate limit",
                );
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                return Ok(resp);
            }
            FaultAction::Reset => match abandon(&control, true).await {},
            FaultAction::Close => match abandon(&control, false).await {},
            FaultAction::DropResponse => drop_response = true,
            FaultAction::Delay { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            FaultAction::Stall => {
                // Ends when the client closes the connection or the backend stops.
                std::future::pending::<()>().await;
            }
            FaultAction::StallBody => stall_body = true,
        }
    }

    let needs_auth = matches!(target, Target::Graphql | Target::FileStream(_));
    if needs_auth && !authorized(&shared, authorization.as_ref()) {
        shared.store().counters.auth_failures += 1;
        finish(&shared, log_index, 401);
        return Ok(error_response(
            StatusCode::UNAUTHORIZED,
            "wandb-testkit: missing or wrong API key",
        ));
    }

    let resp = dispatch(&shared, target, parsed, &body, wire_len);
    if drop_response {
        match abandon(&control, true).await {}
    }
    finish(&shared, log_index, resp.status().as_u16());
    if stall_body {
        return Ok(resp.map(Body::stalled_after_half));
    }
    Ok(resp)
}

fn dispatch(
    shared: &Shared,
    target: Target,
    parsed: Result<Value, String>,
    raw_body: &Bytes,
    wire_len: u64,
) -> Response<Body> {
    match target {
        Target::Graphql => {
            let body = match parsed {
                Ok(body) => body,
                Err(message) => {
                    shared.store().error(format!("graphql: {message}"));
                    return error_response(StatusCode::BAD_REQUEST, &message);
                }
            };
            let operation = graphql::operation_of(&body);
            let variables = body.get("variables").cloned().unwrap_or(Value::Null);
            let features = shared.features();
            let ctx = graphql::Context {
                default_entity: &shared.default_entity,
                base_url: &shared.base_url,
                features: &features,
            };
            let reply =
                graphql::execute(&mut shared.store(), &ctx, operation.as_deref(), &variables);
            json_response(StatusCode::OK, &reply)
        }
        Target::FileStream(key) => {
            let result = parsed
                .and_then(|body| filestream::apply(&mut shared.store(), &key, &body, wire_len));
            match result {
                Ok(reply) => json_response(StatusCode::OK, &reply),
                Err(message) => {
                    let (entity, project, run) = &key;
                    shared
                        .store()
                        .error(format!("file_stream {entity}/{project}/{run}: {message}"));
                    error_response(StatusCode::BAD_REQUEST, &message)
                }
            }
        }
        Target::Upload(key, file) => {
            let mut store = shared.store();
            let (run, created) = store.run_entry(&key);
            if created {
                run.errors.push(format!(
                    "upload of {file} for a run that was never upserted"
                ));
            }
            run.counters.upload_puts += 1;
            run.counters.bytes_received += wire_len;
            let stored = run.files.entry(file).or_default();
            stored.bytes = raw_body.to_vec();
            stored.put_count += 1;
            response(StatusCode::OK, None, Bytes::new())
        }
        Target::Download(key, file) => {
            let store = shared.store();
            match store.runs.get(&key).and_then(|run| run.files.get(&file)) {
                Some(stored) => response(
                    StatusCode::OK,
                    Some("application/octet-stream"),
                    Bytes::from(stored.bytes.clone()),
                ),
                None => error_response(StatusCode::NOT_FOUND, "no such file"),
            }
        }
        Target::ArtifactUpload(target) => {
            match artifacts::apply_upload(&mut shared.store(), &target, raw_body) {
                Ok(etag) => {
                    let mut reply = response(StatusCode::OK, None, Bytes::new());
                    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
                        reply.headers_mut().insert(hyper::header::ETAG, value);
                    }
                    reply
                }
                Err((status, message)) => error_response(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    &message,
                ),
            }
        }
        Target::ArtifactDownload(target) => match artifacts::download(&shared.store(), &target) {
            Some(bytes) => response(
                StatusCode::OK,
                Some("application/octet-stream"),
                Bytes::from(bytes),
            ),
            None => error_response(StatusCode::NOT_FOUND, "no such artifact file"),
        },
        Target::Otel => response(StatusCode::OK, None, Bytes::new()),
        Target::Other => error_response(StatusCode::NOT_FOUND, "wandb-testkit: unknown endpoint"),
    }
}

/// `/_…` endpoints: state dump, faults, reset, features, health. Never faulted, never counted.
async fn control_endpoint(req: Request<Incoming>, shared: &Shared, path: &str) -> Response<Body> {
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error_response(StatusCode::BAD_REQUEST, "could not read body"),
    };
    let parse = || serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string());
    match (method, path) {
        (Method::GET, "/_health") => {
            response(StatusCode::OK, Some("text/plain"), Bytes::from("ok"))
        }
        (Method::GET, "/_state") => {
            let features = shared.features();
            let snapshot = shared.store().snapshot(&features);
            match serde_json::to_vec(&snapshot) {
                Ok(bytes) => response(StatusCode::OK, Some("application/json"), Bytes::from(bytes)),
                Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (Method::GET, "/_faults") => faults_reply(&shared.faults),
        (Method::POST, "/_faults") => {
            let value = match parse() {
                Ok(value) => value,
                Err(e) => return error_response(StatusCode::BAD_REQUEST, &e),
            };
            let (clear, rules) = match value {
                Value::Array(_) => (false, value),
                Value::Object(mut map) => (
                    map.get("clear").and_then(Value::as_bool).unwrap_or(false),
                    map.remove("rules").unwrap_or(Value::Array(Vec::new())),
                ),
                _ => return error_response(StatusCode::BAD_REQUEST, "expected a list or object"),
            };
            let rules: Vec<FaultRule> = match serde_json::from_value(rules) {
                Ok(rules) => rules,
                Err(e) => return error_response(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            if clear {
                shared.faults.clear();
            }
            for rule in rules {
                shared.faults.push(rule);
            }
            faults_reply(&shared.faults)
        }
        (Method::POST, "/_reset") => {
            *shared.store() = Store::default();
            json_response(StatusCode::OK, &json!({"reset": true}))
        }
        (Method::GET, "/_features") => {
            json_response(StatusCode::OK, &json!({"features": shared.features()}))
        }
        (Method::POST, "/_features") => {
            let value = match parse() {
                Ok(value) => value,
                Err(e) => return error_response(StatusCode::BAD_REQUEST, &e),
            };
            let list = value.get("features").cloned().unwrap_or(value);
            match serde_json::from_value::<Vec<String>>(list) {
                Ok(features) => {
                    shared.set_features(features);
                    json_response(StatusCode::OK, &json!({"features": shared.features()}))
                }
                Err(e) => error_response(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        }
        _ => error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// `GET /{entity}/{project}/runs/{run}`: the run URL that sync tools print (the app URL of a
/// server with no `api.` host is the base URL), answered with that run's reconstructed state as
/// JSON, or a 404 naming the run. Never faulted or counted, like the control endpoints.
fn run_page(shared: &Shared, path: &str) -> Option<Response<Body>> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [entity, project, "runs", run] = segments.as_slice() else {
        return None;
    };
    let (entity, project, run) = (
        decode_segment(entity),
        decode_segment(project),
        decode_segment(run),
    );
    let features = shared.features();
    let snapshot = shared.store().snapshot(&features);
    let found = snapshot
        .runs
        .iter()
        .find(|r| r.entity == entity && r.project == project && r.run_id == run);
    Some(match found {
        Some(state) => match serde_json::to_vec_pretty(state) {
            Ok(bytes) => response(StatusCode::OK, Some("application/json"), Bytes::from(bytes)),
            Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        None => error_response(
            StatusCode::NOT_FOUND,
            &format!("no run {entity}/{project}/{run} on this backend"),
        ),
    })
}

fn faults_reply(faults: &Faults) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({"pending": faults.pending(), "injected": faults.injected()}),
    )
}

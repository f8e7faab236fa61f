//! Shared helpers for the testkit integration tests: a minimal raw HTTP/1.1 client (one
//! request per connection, so connection resets are observable exactly) and protocol shortcuts.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use wandb_testkit::TestBackend;

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole response.
/// A connection closed or reset before any response byte gives an error.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<RawResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    if raw.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed without a response",
        ));
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

/// `POST /graphql` with the backend's credentials.
pub(crate) fn graphql(
    backend: &TestBackend,
    operation: &str,
    variables: Value,
) -> io::Result<RawResponse> {
    let body = json!({
        "query": format!("query {operation} {{ placeholder }}"),
        "variables": variables,
        "operationName": operation,
    });
    let auth = backend.auth_header();
    request(
        backend.addr(),
        "POST",
        "/graphql",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Like [`graphql`] but unwraps and checks for HTTP 200, returning the JSON reply.
pub(crate) fn gql(backend: &TestBackend, operation: &str, variables: Value) -> Value {
    let resp = graphql(backend, operation, variables).unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()
}

/// `POST /files/{e}/{p}/{r}/file_stream` with the backend's credentials.
pub(crate) fn file_stream(
    backend: &TestBackend,
    entity: &str,
    project: &str,
    run: &str,
    body: &Value,
) -> io::Result<RawResponse> {
    let auth = backend.auth_header();
    request(
        backend.addr(),
        "POST",
        &format!("/files/{entity}/{project}/{run}/file_stream"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// An UpsertBucket with the usual wandb-core variable set (everything else null).
pub(crate) fn upsert_vars(name: &str, entity: Option<&str>, project: Option<&str>) -> Value {
    json!({
        "id": null, "name": name, "project": project, "entity": entity, "groupName": null,
        "description": null, "displayName": null, "notes": null, "commit": null,
        "config": null, "host": null, "debug": null, "program": null, "repo": null,
        "jobType": null, "state": null, "sweep": null, "tags": null, "summaryMetrics": null,
    })
}

/// History line `i` as JSON text.
pub(crate) fn history_line(i: u64) -> String {
    json!({"_step": i, "x": i * 2}).to_string()
}

//! HTTP with W&B's retry rules: exponential backoff with jitter, `Retry-After` honoured (for any
//! status, as wandb-core does), statuses W&B treats as permanent never retried, and every wait
//! bounded by the run's deadline.
//!
//! Every attempt has its own timeout, covering connect, TLS, sending the body and reading the
//! whole reply: the operation's own limit (GraphQL 30 s, file_stream 180 s, an upload 60 s plus
//! the time its body takes at [`MIN_UPLOAD_RATE`]), cut to what is left of the run's budget. A
//! server that accepts a request and never answers therefore costs at most the budget, and the
//! run fails with an error naming the request.
//!
//! A server that cannot be reached at all (connection refused, DNS failure, no route) is reported
//! on stderr at the first failure, one line naming the host and the cause, and given up on after
//! [`RetryPolicy::unreachable_budget`] (shared by every request to that host, reset by any
//! answer); a TLS certificate error gives up at once. The long budget stays for 5xx and 429.
//!
//! The client is reqwest's blocking client over rustls, with the system's root certificates
//! (plus `SSL_CERT_FILE`, read by the native-roots loader) and an extra bundle from
//! `REQUESTS_CA_BUNDLE` or `SSL_CERT_FILE`; `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` are
//! honoured by reqwest. The `Authorization` header is added only to requests on the base URL
//! (GraphQL, file_stream), never to upload URLs, and never appears in an error: errors carry the
//! status, a URL without its query string, and the server's message.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use wandb_settings::Secret;

use crate::error::{Error, Result};
use crate::files::Snapshot;
use crate::pace::Pace;

/// Retry timing.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// First backoff wait.
    pub min_wait: Duration,
    /// Longest backoff wait.
    pub max_wait: Duration,
    /// Attempts per GraphQL request or upload (file_stream retries until the run's deadline).
    pub max_attempts: u32,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// How long a host may stay unreachable (connection refused, DNS failure) before requests
    /// to it give up.
    pub unreachable_budget: Duration,
}

impl Default for RetryPolicy {
    /// W&B's defaults: 2 s to 60 s, 21 attempts.
    fn default() -> Self {
        RetryPolicy {
            min_wait: Duration::from_secs(2),
            max_wait: Duration::from_secs(60),
            max_attempts: 21,
            max_retry_after: Duration::from_secs(300),
            unreachable_budget: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Tiny waits for tests (see `WANDB_SYNC_TEST_FAST_RETRY`).
    pub fn fast() -> Self {
        RetryPolicy {
            min_wait: Duration::from_millis(5),
            max_wait: Duration::from_millis(50),
            max_attempts: 21,
            max_retry_after: Duration::from_secs(2),
            unreachable_budget: Duration::from_secs(60),
        }
    }
}

/// Which of W&B's retry policies applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryClass {
    /// GraphQL and file_stream (`RetryMostFailures`).
    Api,
    /// UpsertBucket: like `Api`, but 409 is retried.
    Upsert,
    /// File PUTs: connection errors, 429 and 5xx (except 501).
    Upload,
}

impl RetryClass {
    fn retries_status(self, status: u16) -> bool {
        match self {
            RetryClass::Api => {
                !matches!(status, 400 | 401 | 403 | 404 | 409 | 410 | 413 | 422 | 501)
            }
            RetryClass::Upsert => !matches!(status, 400 | 401 | 403 | 404 | 410 | 413 | 422 | 501),
            RetryClass::Upload => status == 429 || (status >= 500 && status != 501),
        }
    }
}

/// Slowest upload rate an upload's timeout allows for (bytes per second).
pub(crate) const MIN_UPLOAD_RATE: u64 = 256 << 10;

/// Timeout of one upload attempt, before the run's budget cuts it.
pub(crate) fn upload_timeout(len: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_secs(len / MIN_UPLOAD_RATE)
}

/// One HTTP reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) body: Vec<u8>,
    /// The reply's `ETag` header (what a multipart upload's part PUT returns).
    pub(crate) etag: Option<String>,
}

/// The shared HTTP client.
#[derive(Clone)]
pub(crate) struct Http {
    client: Client,
    base_url: String,
    auth: Option<HeaderValue>,
    pub(crate) retry: RetryPolicy,
    /// Requests in flight and the reply wait, shared by every client of one sync.
    pace: Arc<Pace>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// Builds the client. `extra_ca` is a PEM bundle added to the system roots. On HTTPS the
    /// client offers HTTP/2 and HTTP/1.1 by ALPN, as wandb-core does, unless `http1_only`.
    pub(crate) fn new(
        base_url: &str,
        api_key: Option<&Secret>,
        retry: RetryPolicy,
        extra_ca: Option<&Path>,
        http1_only: bool,
    ) -> Result<Http> {
        let mut builder = Client::builder()
            .user_agent(concat!("wandb-sync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .timeout(None::<Duration>)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true);
        if http1_only {
            builder = builder.http1_only();
        }
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path).map_err(|e| Error::io(path, "read CA bundle", e))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| Error::Client {
                    ca_bundle: Some(path.to_path_buf()),
                    source,
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|source| Error::Client {
            ca_bundle: None,
            source,
        })?;
        let auth = match api_key {
            Some(key) => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("api:{}", key.expose()));
                let mut value = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| Error::ApiKeyNotAHeader)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Http {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
            retry,
            pace: Arc::default(),
        })
    }

    /// This client, sharing `other`'s pace (requests in flight, reply wait).
    #[must_use]
    pub(crate) fn sharing_pace(mut self, other: &Http) -> Http {
        self.pace = Arc::clone(&other.pace);
        self
    }

    /// The pace shared by this sync's clients.
    pub(crate) fn pace(&self) -> &Pace {
        &self.pace
    }

    /// POSTs JSON to `path` on the base URL (with credentials), retrying per `class`; a `gzip`
    /// body is already compressed and goes with `Content-Encoding: gzip`.
    #[expect(
        clippy::too_many_arguments,
        reason = "each argument is a different request setting; a struct would only rename them"
    )]
    pub(crate) fn post_json(
        &self,
        what: &str,
        path: &str,
        body: bytes::Bytes,
        class: RetryClass,
        timeout: Duration,
        deadline: Instant,
        unlimited_attempts: bool,
        gzip: bool,
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.base_url);
        let attempt = Attempt {
            what,
            url: &url,
            class,
            timeout,
            deadline,
            unlimited_attempts,
        };
        self.with_retries(&attempt, |timeout| {
            let mut request = self
                .client
                .post(&url)
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .header("X-WANDB-USERNAME", "")
                .header("X-WANDB-USER-EMAIL", "")
                .body(Body::from(body.clone()));
            if gzip {
                request = request.header("Content-Encoding", "gzip");
            }
            if let Some(auth) = &self.auth {
                request = request.header("Authorization", auth.clone());
            }
            request
        })
    }

    /// PUTs a snapshot's bytes to an upload URL (no credentials), retrying per W&B's upload
    /// policy. Every attempt sends the same bytes, with the snapshot's length as
    /// `Content-Length`.
    pub(crate) fn put(
        &self,
        what: &str,
        url: &str,
        headers: &HeaderMap,
        snapshot: &Snapshot,
        deadline: Instant,
    ) -> Result<()> {
        let attempt = Attempt {
            what,
            url,
            class: RetryClass::Upload,
            timeout: upload_timeout(snapshot.len()),
            deadline,
            unlimited_attempts: false,
        };
        self.with_retries(&attempt, |timeout| {
            let body = match snapshot.bytes() {
                Some(bytes) => Body::from(bytes.clone()),
                None => Body::sized(snapshot.reader(), snapshot.len()),
            };
            self.client
                .put(url)
                .timeout(timeout)
                .headers(headers.clone())
                .header("Content-Length", snapshot.len())
                .body(body)
        })
        .map(|_| ())
    }

    /// PUTs the bytes of `range` of a snapshot (one part of a multipart upload) to its URL,
    /// retrying per W&B's upload policy; every attempt sends exactly those bytes, with their
    /// length as `Content-Length`. Returns the reply's `ETag`.
    pub(crate) fn put_part(
        &self,
        what: &str,
        url: &str,
        headers: &HeaderMap,
        snapshot: &Snapshot,
        range: std::ops::Range<u64>,
        deadline: Instant,
    ) -> Result<Option<String>> {
        let len = range.end.saturating_sub(range.start);
        let attempt = Attempt {
            what,
            url,
            class: RetryClass::Upload,
            timeout: upload_timeout(len),
            deadline,
            unlimited_attempts: false,
        };
        self.with_retries(&attempt, |timeout| {
            let in_memory = snapshot.bytes().and_then(|bytes| {
                let start = usize::try_from(range.start).ok()?;
                let end = usize::try_from(range.end).ok()?;
                (start <= end && end <= bytes.len()).then(|| bytes.slice(start..end))
            });
            let body = match in_memory {
                Some(bytes) => Body::from(bytes),
                None => Body::sized(snapshot.reader_range(range.clone()), len),
            };
            self.client
                .put(url)
                .timeout(timeout)
                .headers(headers.clone())
                .header("Content-Length", len)
                .body(body)
        })
        .map(|reply| reply.etag)
    }

    fn with_retries(
        &self,
        attempt: &Attempt<'_>,
        build: impl Fn(Duration) -> RequestBuilder,
    ) -> Result<Reply> {
        let what = attempt.what;
        let url = attempt.url;
        let started = Instant::now();
        let mut n_attempts: u32 = 0;
        let host = host_of(url);
        let mut unreachable_until: Option<Instant> = None;
        loop {
            let left = attempt.deadline.saturating_duration_since(Instant::now());
            if left < MIN_ATTEMPT {
                return Err(Error::BudgetExhausted {
                    what: what.to_owned(),
                    attempts: n_attempts,
                    elapsed: started.elapsed(),
                    last: "no time left for another attempt".into(),
                });
            }
            n_attempts += 1;
            let permit = self.pace.acquire();
            let outcome = build(attempt.timeout.min(left)).send();
            let (cause, retry_after) = match outcome {
                Ok(response) => {
                    reachable(&host);
                    let status = response.status().as_u16();
                    if status == 429 || status >= 500 {
                        self.pace.congested();
                    } else {
                        permit.replied(attempt.class != RetryClass::Upload);
                    }
                    let retry_after = parse_retry_after(response.headers());
                    if (200..300).contains(&status) {
                        let etag = response
                            .headers()
                            .get(reqwest::header::ETAG)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        match read_body(response) {
                            Ok(body) => return Ok(Reply { body, etag }),
                            Err(e) => (
                                format!("reading the reply failed: {}", error_chain(&e)),
                                None,
                            ),
                        }
                    } else {
                        let message = server_message(response);
                        let detail = format!("HTTP {status} from {}{message}", redact(url));
                        if !attempt.class.retries_status(status) {
                            return Err(Error::Permanent {
                                what: what.to_owned(),
                                detail,
                            });
                        }
                        (detail, retry_after)
                    }
                }
                Err(e) => {
                    let text = error_chain(&e);
                    if e.is_timeout() {
                        self.pace.congested();
                    }
                    if e.is_builder() {
                        return Err(Error::Permanent {
                            what: what.to_owned(),
                            detail: text,
                        });
                    }
                    match unreachable_cause(&e, &text) {
                        Some(Unreachable::Tls(cause)) => {
                            announce(&host, cause, false);
                            return Err(Error::Unreachable {
                                what: what.to_owned(),
                                host,
                                cause: text,
                            });
                        }
                        Some(Unreachable::Connect(cause)) => {
                            let since = unreachable_since(&host);
                            if since.elapsed() >= self.retry.unreachable_budget {
                                return Err(Error::Unreachable {
                                    what: what.to_owned(),
                                    host,
                                    cause: text,
                                });
                            }
                            announce(&host, cause, true);
                            unreachable_until = Some(since + self.retry.unreachable_budget);
                        }
                        None => {}
                    }
                    if e.is_timeout() && Instant::now() + MIN_ATTEMPT >= attempt.deadline {
                        return Err(Error::BudgetExhausted {
                            what: what.to_owned(),
                            attempts: n_attempts,
                            elapsed: started.elapsed(),
                            last: format!("no complete reply: {text}"),
                        });
                    }
                    (text, None)
                }
            };
            drop(permit);
            let now = Instant::now();
            let out_of_attempts =
                !attempt.unlimited_attempts && n_attempts >= self.retry.max_attempts;
            let mut wait = match retry_after {
                Some(wait) => wait.min(self.retry.max_retry_after),
                None => backoff(&self.retry, n_attempts),
            };
            if let Some(until) = unreachable_until.take() {
                // The last try of an unreachable host comes when its budget ends, not after.
                wait = wait.min(until.saturating_duration_since(now));
            }
            if out_of_attempts {
                return Err(Error::RetriesExhausted {
                    what: what.to_owned(),
                    attempts: n_attempts,
                    elapsed: started.elapsed(),
                    last: cause,
                });
            }
            if now + wait + MIN_ATTEMPT >= attempt.deadline {
                return Err(Error::BudgetExhausted {
                    what: what.to_owned(),
                    attempts: n_attempts,
                    elapsed: started.elapsed(),
                    last: cause,
                });
            }
            log::debug!("{what}: attempt {n_attempts} failed ({cause}); retrying in {wait:?}");
            std::thread::sleep(wait);
        }
    }
}

/// Shortest attempt worth starting: with less budget left than this, the run gives up.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// One request's retry settings.
struct Attempt<'a> {
    what: &'a str,
    url: &'a str,
    class: RetryClass,
    /// The operation's own per-attempt limit (the run's budget may cut it).
    timeout: Duration,
    deadline: Instant,
    unlimited_attempts: bool,
}

/// Why a server could not be reached at all.
enum Unreachable {
    /// The TLS handshake failed (a certificate not accepted, a server not speaking TLS): give up
    /// at once.
    Tls(&'static str),
    /// No connection (refused, DNS, no route): give up after the short budget.
    Connect(&'static str),
}

fn unreachable_cause(error: &reqwest::Error, text: &str) -> Option<Unreachable> {
    if is_certificate_error(text) {
        return Some(Unreachable::Tls(
            "TLS certificate not accepted (a private certificate authority: set REQUESTS_CA_BUNDLE or SSL_CERT_FILE to its PEM file)",
        ));
    }
    if !error.is_connect() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    // rustls' words for a handshake that cannot succeed (the URL is in the text too, so no
    // match on a bare "tls", which a host name may contain).
    if [
        "handshake",
        "corrupt message",
        "peer is incompatible",
        "invalidcontenttype",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return Some(Unreachable::Tls("TLS handshake failed"));
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        Some(Unreachable::Connect("the host name does not resolve (DNS)"))
    } else if lower.contains("connection refused") {
        Some(Unreachable::Connect("connection refused"))
    } else if lower.contains("no route to host") || lower.contains("network is unreachable") {
        Some(Unreachable::Connect("no route to host"))
    } else if error.is_timeout() {
        None
    } else {
        Some(Unreachable::Connect("cannot connect"))
    }
}

/// Hosts that failed to connect, and since when (reset by any answer).
static UNREACHABLE: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// Hosts already reported on stderr.
static ANNOUNCED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn unreachable_since(host: &str) -> Instant {
    let mut map = UNREACHABLE.lock().unwrap_or_else(PoisonError::into_inner);
    *map.get_or_insert_with(HashMap::new)
        .entry(host.to_owned())
        .or_insert_with(Instant::now)
}

fn reachable(host: &str) {
    let mut map = UNREACHABLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(map) = map.as_mut() {
        map.remove(host);
    }
    let mut announced = ANNOUNCED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(set) = announced.as_mut() {
        set.remove(host);
    }
}

/// Prints one line on stderr the first time a host cannot be reached (never the API key: only
/// the host and the cause).
fn announce(host: &str, cause: &str, retrying: bool) {
    let mut announced = ANNOUNCED.lock().unwrap_or_else(PoisonError::into_inner);
    if announced
        .get_or_insert_with(HashSet::new)
        .insert(host.to_owned())
    {
        let then = if retrying {
            "; retrying for a while"
        } else {
            ""
        };
        #[allow(clippy::print_stderr, reason = "the user must see this without -v")]
        {
            eprintln!("wandb-sync: cannot reach {host}: {cause}{then}");
        }
    }
}

/// `host[:port]` of a URL (no user info, path or query).
fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => redact(url).to_owned(),
        },
        Err(_) => redact(url).to_owned(),
    }
}

fn read_body(response: Response) -> std::result::Result<Vec<u8>, reqwest::Error> {
    response.bytes().map(|b| b.to_vec())
}

/// A short excerpt of the server's error message, if any.
fn server_message(response: Response) -> String {
    let Ok(bytes) = response.bytes() else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// The URL without its query string and fragment (signed upload URLs carry tokens there).
pub(crate) fn redact(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

fn error_chain(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // reqwest includes the URL; make sure no query string (signed tokens) survives.
    match text.find('?') {
        Some(q) => {
            let end = text[q..].find([' ', ')']).map_or(text.len(), |e| q + e);
            text.replace_range(q..end, "");
            text
        }
        None => text,
    }
}

fn is_certificate_error(text: &str) -> bool {
    text.contains("invalid peer certificate") || text.contains("UnknownIssuer")
}

/// `min · 2^(attempt-1) · (1 + U[0, 0.25))`, capped at `max`.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let base = policy.min_wait.as_secs_f64() * 2f64.powi(exp as i32);
    let jitter = 1.0 + 0.25 * random_unit();
    Duration::from_secs_f64((base * jitter).min(policy.max_wait.as_secs_f64()))
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` as seconds (integer or float) or an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_wandb_policies() {
        assert_eq!(
            host_of("https://user:pw@h.example:8443/x?y=1"),
            "h.example:8443"
        );
        assert_eq!(upload_timeout(0), Duration::from_secs(60));
        assert!(!RetryClass::Api.retries_status(400));
        assert!(!RetryClass::Api.retries_status(409));
        assert!(RetryClass::Upsert.retries_status(409));
        assert!(RetryClass::Api.retries_status(429));
        assert!(RetryClass::Api.retries_status(503));
        assert!(!RetryClass::Upload.retries_status(403));
        assert!(RetryClass::Upload.retries_status(502));
        assert!(!RetryClass::Upload.retries_status(501));
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn http_dates_and_backoff() {
        let mut headers = HeaderMap::new();
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO));
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = parse_retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1.5"));
        assert_eq!(
            parse_retry_after(&headers),
            Some(Duration::from_millis(1500))
        );
        let policy = RetryPolicy::default();
        let first = backoff(&policy, 1);
        assert!(first >= Duration::from_secs(2) && first < Duration::from_millis(2500));
        assert_eq!(backoff(&policy, 30), Duration::from_secs(60));
        assert_eq!(redact("http://h/p?sig=1"), "http://h/p");
    }
}

//! HTTP with W&B's retry rules: exponential backoff with jitter, `Retry-After` honoured (for any
//! status, as wandb-core does), statuses W&B treats as permanent never retried, and every wait
//! bounded by the run's deadline.
//!
//! The client is reqwest's blocking client over rustls, with the system's root certificates
//! (plus `SSL_CERT_FILE`, read by the native-roots loader) and an extra bundle from
//! `REQUESTS_CA_BUNDLE` or `SSL_CERT_FILE`; `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` are
//! honoured by reqwest. The `Authorization` header is added only to requests on the base URL
//! (GraphQL, file_stream), never to upload URLs, and never appears in an error: errors carry the
//! status, a URL without its query string, and the server's message.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use wandb_settings::Secret;

use crate::error::{Error, Result};

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
}

impl Default for RetryPolicy {
    /// W&B's defaults: 2 s to 60 s, 21 attempts.
    fn default() -> Self {
        RetryPolicy {
            min_wait: Duration::from_secs(2),
            max_wait: Duration::from_secs(60),
            max_attempts: 21,
            max_retry_after: Duration::from_secs(300),
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

/// One HTTP reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) body: Vec<u8>,
}

/// The shared HTTP client.
#[derive(Clone)]
pub(crate) struct Http {
    client: Client,
    base_url: String,
    auth: Option<HeaderValue>,
    pub(crate) retry: RetryPolicy,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// Builds the client. `extra_ca` is a PEM bundle added to the system roots.
    pub(crate) fn new(
        base_url: &str,
        api_key: Option<&Secret>,
        retry: RetryPolicy,
        extra_ca: Option<&Path>,
    ) -> Result<Http> {
        let mut builder = Client::builder()
            .user_agent(concat!("wandb-sync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .timeout(None::<Duration>)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true);
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path).map_err(|e| Error::io(path, "read CA bundle", e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Client(format!("{}: {e}", path.display())))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| Error::Client(e.to_string()))?;
        let auth = match api_key {
            Some(key) => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("api:{}", key.expose()));
                let mut value = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                    Error::Settings(
                        "the api key contains characters not allowed in an HTTP header".into(),
                    )
                })?;
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
        })
    }

    /// POSTs JSON to `path` on the base URL (with credentials), retrying per `class`.
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
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.base_url);
        self.with_retries(what, &url, class, deadline, unlimited_attempts, || {
            let mut request = self
                .client
                .post(&url)
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .header("X-WANDB-USERNAME", "")
                .header("X-WANDB-USER-EMAIL", "")
                .body(Body::from(body.clone()));
            if let Some(auth) = &self.auth {
                request = request.header("Authorization", auth.clone());
            }
            request
        })
    }

    /// PUTs a file's bytes to an upload URL (no credentials), retrying per W&B's upload policy.
    pub(crate) fn put(
        &self,
        what: &str,
        url: &str,
        headers: &HeaderMap,
        source: &UploadSource,
        deadline: Instant,
    ) -> Result<()> {
        self.with_retries(what, url, RetryClass::Upload, deadline, false, || {
            let body = match source {
                UploadSource::Bytes(bytes) => Body::from(bytes.clone()),
                UploadSource::File { path, len } => match std::fs::File::open(path) {
                    Ok(file) => Body::sized(file, *len),
                    Err(_) => Body::from(Vec::new()),
                },
            };
            self.client
                .put(url)
                .headers(headers.clone())
                .header("Content-Length", source.len())
                .body(body)
        })
        .map(|_| ())
    }

    fn with_retries(
        &self,
        what: &str,
        url: &str,
        class: RetryClass,
        deadline: Instant,
        unlimited_attempts: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Reply> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome = build().send();
            let (cause, retry_after) = match outcome {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = parse_retry_after(response.headers());
                    if (200..300).contains(&status) {
                        match read_body(response) {
                            Ok(body) => return Ok(Reply { body }),
                            Err(e) => (format!("reading the reply failed: {e}"), None),
                        }
                    } else {
                        let message = server_message(response);
                        let detail = format!("HTTP {status} from {}{message}", redact(url));
                        if !class.retries_status(status) {
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
                    if e.is_builder() || is_certificate_error(&text) {
                        return Err(Error::Permanent {
                            what: what.to_owned(),
                            detail: text,
                        });
                    }
                    (text, None)
                }
            };
            let now = Instant::now();
            let out_of_attempts = !unlimited_attempts && attempt >= self.retry.max_attempts;
            let wait = match retry_after {
                Some(wait) => wait.min(self.retry.max_retry_after),
                None => backoff(&self.retry, attempt),
            };
            if out_of_attempts || now + wait >= deadline {
                return Err(Error::RetriesExhausted {
                    what: what.to_owned(),
                    attempts: attempt,
                    elapsed: started.elapsed(),
                    last: cause,
                });
            }
            log::debug!("{what}: attempt {attempt} failed ({cause}); retrying in {wait:?}");
            std::thread::sleep(wait);
        }
    }
}

/// What an upload sends.
#[derive(Debug, Clone)]
pub(crate) enum UploadSource {
    /// Bytes built in memory (generated files).
    Bytes(bytes::Bytes),
    /// A file on disk, streamed.
    File { path: std::path::PathBuf, len: u64 },
}

impl UploadSource {
    fn len(&self) -> u64 {
        match self {
            UploadSource::Bytes(bytes) => bytes.len() as u64,
            UploadSource::File { len, .. } => *len,
        }
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
    let when = parse_http_date(text)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some(Duration::from_secs(u64::try_from(when - now).unwrap_or(0)))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_wandb_policies() {
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
    fn http_dates_and_backoff() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        let policy = RetryPolicy::default();
        let first = backoff(&policy, 1);
        assert!(first >= Duration::from_secs(2) && first < Duration::from_millis(2500));
        assert_eq!(backoff(&policy, 30), Duration::from_secs(60));
        assert_eq!(redact("http://h/p?sig=1"), "http://h/p");
    }
}

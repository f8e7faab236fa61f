//! Server-side run store and the public snapshot types built from it.
//!
//! The store keeps what clients uploaded in raw form (lines by offset, file bytes, upsert
//! fields). [`BackendState`] / [`RunState`] are cloned, parsed snapshots of it for assertions
//! and for the JSON dump served at `GET /_state`.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use base64::Engine as _;
use serde::{Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::artifacts::{ArtifactData, ArtifactState, Blob, BlobKey, MultipartUpload};
use crate::json::parse_tolerant;

/// `(entity, project, run id)`.
pub(crate) type RunKey = (String, String, String);

/// Upper bound on the number of entries kept in the request log.
pub(crate) const REQUEST_LOG_LIMIT: usize = 100_000;

/// A line-addressed file (history, events, console) as the server stores it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Lines {
    /// `lines[i]` is line `i`; `None` marks a line never written (a gap).
    pub(crate) lines: Vec<Option<String>>,
    /// Lines skipped over by writes past the end.
    pub(crate) gaps: u64,
    /// Writes to an already written line with different content.
    pub(crate) changed_rewrites: u64,
    /// Writes to an already written line with identical content.
    pub(crate) identical_rewrites: u64,
}

/// What a [`Lines::write`] call observed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteOutcome {
    pub(crate) gap_before: u64,
    pub(crate) changed: u64,
    pub(crate) identical: u64,
}

impl Lines {
    /// Stores `content[i]` as line `offset + i`.
    pub(crate) fn write(&mut self, offset: usize, content: &[String]) -> WriteOutcome {
        let mut outcome = WriteOutcome::default();
        if offset > self.lines.len() {
            let missing = offset - self.lines.len();
            outcome.gap_before = missing as u64;
            self.gaps += missing as u64;
            self.lines.resize(offset, None);
        }
        for (i, line) in content.iter().enumerate() {
            let index = offset + i;
            if let Some(slot) = self.lines.get_mut(index) {
                match slot {
                    Some(old) if old == line => outcome.identical += 1,
                    Some(_) => outcome.changed += 1,
                    None => {}
                }
                *slot = Some(line.clone());
            } else {
                self.lines.push(Some(line.clone()));
            }
        }
        self.changed_rewrites += outcome.changed;
        self.identical_rewrites += outcome.identical;
        outcome
    }

    /// Number of lines, including unwritten gaps (the next append offset).
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }

    /// Number of lines currently missing.
    pub(crate) fn missing(&self) -> usize {
        self.lines.iter().filter(|l| l.is_none()).count()
    }
}

/// One uploaded file as stored.
#[derive(Debug, Default, Clone)]
pub(crate) struct StoredFile {
    pub(crate) bytes: Vec<u8>,
    pub(crate) put_count: u64,
}

/// Everything the server knows about one run.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunData {
    pub(crate) entity: String,
    pub(crate) project: String,
    pub(crate) name: String,
    pub(crate) storage_id: String,
    pub(crate) upserted: bool,
    pub(crate) display_name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) notes: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) group: Option<String>,
    pub(crate) job_type: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) program: Option<String>,
    pub(crate) commit: Option<String>,
    pub(crate) repo: Option<String>,
    pub(crate) sweep: Option<String>,
    pub(crate) run_state: Option<String>,
    pub(crate) config_raw: Option<String>,
    pub(crate) summary_metrics_raw: Option<String>,
    pub(crate) summary_raw: Option<String>,
    pub(crate) history: Lines,
    pub(crate) events: Lines,
    pub(crate) console: Lines,
    pub(crate) other_stream_files: BTreeMap<String, Lines>,
    pub(crate) files: BTreeMap<String, StoredFile>,
    pub(crate) requested_files: Vec<String>,
    pub(crate) uploaded: Vec<String>,
    pub(crate) marked_uploaded: Vec<String>,
    pub(crate) complete: bool,
    pub(crate) exit_code: Option<i64>,
    pub(crate) preempting: bool,
    pub(crate) stop_requested: bool,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) counters: RunCounters,
    pub(crate) errors: Vec<String>,
}

/// The whole server-side store.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) runs: BTreeMap<RunKey, RunData>,
    pub(crate) by_storage_id: HashMap<String, RunKey>,
    pub(crate) counters: Counters,
    pub(crate) errors: Vec<String>,
    pub(crate) request_log: Vec<RequestLogEntry>,
    pub(crate) next_request_seq: u64,
    pub(crate) generated_names: u64,
    /// Artifact versions, in creation order (the index is part of their id).
    pub(crate) artifacts: Vec<ArtifactData>,
    /// Artifact file contents, stored once per entity, project and MD5.
    pub(crate) blobs: HashMap<BlobKey, Blob>,
    /// Multipart uploads of artifact files, by upload id.
    pub(crate) multipart_uploads: BTreeMap<String, MultipartUpload>,
    /// The number of the last upload id handed out.
    pub(crate) next_upload_id: u64,
    /// Hand out no multipart uploads (files sent with parts get a single upload URL).
    pub(crate) no_multipart: bool,
    /// Sweeps by (entity, project, name).
    pub(crate) sweeps: BTreeMap<RunKey, crate::sweeps::SweepData>,
    /// Sweep keys by storage id.
    pub(crate) sweep_by_id: HashMap<String, RunKey>,
    /// The number of sweep names handed out.
    pub(crate) generated_sweeps: u64,
}

impl Store {
    /// Storage ids look like the real server's: base64 of `Run:v1:<name>:<project>:<entity>`.
    pub(crate) fn storage_id_for(key: &RunKey) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("Run:v1:{}:{}:{}", key.2, key.1, key.0))
    }

    /// Returns the run, creating it (not yet upserted) if needed; the bool is `true` when created.
    pub(crate) fn run_entry(&mut self, key: &RunKey) -> (&mut RunData, bool) {
        match self.runs.entry(key.clone()) {
            Entry::Occupied(entry) => (entry.into_mut(), false),
            Entry::Vacant(entry) => {
                let storage_id = Self::storage_id_for(key);
                self.by_storage_id.insert(storage_id.clone(), key.clone());
                let run = entry.insert(RunData {
                    entity: key.0.clone(),
                    project: key.1.clone(),
                    name: key.2.clone(),
                    storage_id,
                    ..RunData::default()
                });
                (run, true)
            }
        }
    }

    /// A fresh run id for an UpsertBucket without `name`.
    pub(crate) fn generate_name(&mut self) -> String {
        self.generated_names += 1;
        format!("gen{:05}", self.generated_names)
    }

    /// Records a backend-wide error.
    pub(crate) fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Builds the public snapshot.
    pub(crate) fn snapshot(&self, features: &[String]) -> BackendState {
        BackendState {
            runs: self.runs.values().map(RunData::snapshot).collect(),
            counters: self.counters.clone(),
            errors: self.errors.clone(),
            features: features.to_vec(),
            request_log: self.request_log.clone(),
            artifacts: crate::artifacts::snapshot(self),
            sweeps: crate::sweeps::snapshot(self),
        }
    }
}

fn parse_or_string(raw: &str, what: &str, errors: &mut Vec<String>) -> Value {
    match parse_tolerant(raw) {
        Ok(v) => v,
        Err(e) => {
            errors.push(format!("{what}: unparseable JSON ({e}); kept as a string"));
            Value::String(raw.to_owned())
        }
    }
}

fn parse_lines(lines: &Lines, what: &str, errors: &mut Vec<String>) -> Vec<Value> {
    lines
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| match line {
            Some(text) => parse_or_string(text, &format!("{what} line {i}"), errors),
            None => Value::Null,
        })
        .collect()
}

impl RunData {
    pub(crate) fn snapshot(&self) -> RunState {
        let mut errors = self.errors.clone();
        let config = self
            .config_raw
            .as_deref()
            .map(|raw| parse_or_string(raw, "config", &mut errors));
        let summary_metrics = self
            .summary_metrics_raw
            .as_deref()
            .map(|raw| parse_or_string(raw, "summaryMetrics", &mut errors));
        let summary = self
            .summary_raw
            .as_deref()
            .map(|raw| parse_or_string(raw, "wandb-summary.json", &mut errors));
        let history = parse_lines(&self.history, "wandb-history.jsonl", &mut errors);
        let events = parse_lines(&self.events, "wandb-events.jsonl", &mut errors);
        let history_raw = self
            .history
            .lines
            .iter()
            .map(|l| l.clone().unwrap_or_default())
            .collect();
        let console = self
            .console
            .lines
            .iter()
            .map(|l| l.clone().unwrap_or_default())
            .collect();
        let other_stream_files = self
            .other_stream_files
            .iter()
            .map(|(name, lines)| {
                let content = lines
                    .lines
                    .iter()
                    .map(|l| l.clone().unwrap_or_default())
                    .collect();
                (name.clone(), content)
            })
            .collect();
        let files = self
            .files
            .iter()
            .map(|(path, f)| {
                (
                    path.clone(),
                    UploadedFile::new(f.bytes.clone(), f.put_count),
                )
            })
            .collect();
        let mut counters = self.counters.clone();
        counters.history_missing_lines = self.history.missing() as u64;
        RunState {
            entity: self.entity.clone(),
            project: self.project.clone(),
            run_id: self.name.clone(),
            storage_id: self.storage_id.clone(),
            upserted: self.upserted,
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            notes: self.notes.clone(),
            tags: self.tags.clone().unwrap_or_default(),
            group: self.group.clone(),
            job_type: self.job_type.clone(),
            host: self.host.clone(),
            program: self.program.clone(),
            commit: self.commit.clone(),
            repo: self.repo.clone(),
            sweep: self.sweep.clone(),
            state: self.run_state.clone(),
            config,
            summary_metrics,
            summary,
            history,
            history_raw,
            events,
            console,
            other_stream_files,
            files,
            requested_files: self.requested_files.clone(),
            uploaded: self.uploaded.clone(),
            marked_uploaded: self.marked_uploaded.clone(),
            complete: self.complete,
            exit_code: self.exit_code,
            preempting: self.preempting,
            alerts: self.alerts.clone(),
            counters,
            errors,
        }
    }
}

/// Per-run counters.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RunCounters {
    /// `UpsertBucket` calls that targeted this run.
    pub upserts: u64,
    /// Applied file_stream posts (including heartbeats).
    pub file_stream_requests: u64,
    /// Applied file_stream posts with an empty body object `{}`.
    pub heartbeats: u64,
    /// `CreateRunFiles` calls.
    pub create_run_files_calls: u64,
    /// Applied upload `PUT`s.
    pub upload_puts: u64,
    /// Request body bytes (as sent on the wire, before gunzip) of applied requests for this run.
    pub bytes_received: u64,
    /// History lines skipped over by writes past the end (offset > stored line count).
    pub history_gaps: u64,
    /// History lines still missing (never written) right now.
    pub history_missing_lines: u64,
    /// Events lines skipped over by writes past the end.
    pub events_gaps: u64,
    /// Console lines skipped over by writes past the end.
    pub console_gaps: u64,
    /// History or events lines written again at the same offset with **different** content.
    pub duplicate_line_writes: u64,
    /// History or events lines written again at the same offset with identical content (e.g.
    /// a client retrying after a lost response).
    pub identical_line_rewrites: u64,
    /// Console lines overwritten (identical or not): normal for progress bars and re-syncs.
    pub console_overwrites: u64,
    /// UpsertBuckets that arrived after the run was complete (a re-sync or resume); each one
    /// clears `complete` and `exit_code` again, like the real server marks the run running.
    pub reopened: u64,
}

/// Backend-wide counters.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Requests by kind: `graphql`, `graphql:<Operation>`, `file_stream`, `upload`,
    /// `download`, `artifact_upload` (artifact file and manifest PUTs), `artifact_download`,
    /// `otel`, `other`. Counted on arrival, whether or not a fault or auth failure
    /// followed.
    pub requests: BTreeMap<String, u64>,
    /// Request body bytes received as sent on the wire (before gunzip), all requests.
    pub bytes_received: u64,
    /// Request body bytes after gunzip, all requests.
    pub bytes_decoded: u64,
    /// Requests rejected with 401.
    pub auth_failures: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// Requests whose body had `Content-Encoding: gzip`.
    pub gzip_requests: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// TLS handshakes completed (HTTPS backends only).
    pub tls_handshakes: u64,
    /// Requests that came over HTTP/2.
    pub http2_requests: u64,
}

impl Counters {
    pub(crate) fn bump(&mut self, kind: &str) {
        *self.requests.entry(kind.to_owned()).or_insert(0) += 1;
    }
}

/// One alert sent with `NotifyScriptableRunAlert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Alert title.
    pub title: String,
    /// Alert text.
    pub text: String,
    /// Severity (`INFO`, `WARN`, `ERROR`), if sent.
    pub severity: Option<String>,
    /// Wait duration, if sent (as the JSON value the client sent).
    pub wait_duration: Option<String>,
}

/// One entry of the request log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestLogEntry {
    /// Arrival order, from 0.
    pub seq: u64,
    /// Milliseconds since the backend started.
    pub at_ms: f64,
    /// HTTP method.
    pub method: String,
    /// Request path (without query).
    pub path: String,
    /// Kind, as in [`Counters::requests`].
    pub kind: String,
    /// GraphQL operation name, if any.
    pub operation: Option<String>,
    /// Response status; 0 when the connection was reset or closed without a response.
    pub status: u16,
    /// Body bytes on the wire.
    pub bytes: u64,
    /// `Content-Encoding` header, if any.
    pub content_encoding: Option<String>,
    /// `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// The HTTP version the request came in (`HTTP/1.1`, `HTTP/2.0`).
    pub http_version: String,
    /// The injected fault, if any.
    pub fault: Option<String>,
    /// The GraphQL `variables` of the request (when [`crate::BackendConfig::record_variables`]
    /// is on).
    pub variables: Option<Value>,
}

/// An uploaded run file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadedFile {
    /// The bytes of the last PUT. Serialized as a string: the text if it is UTF-8, otherwise
    /// `"base64:<standard base64>"`.
    #[serde(serialize_with = "serialize_bytes")]
    pub bytes: Vec<u8>,
    /// Length of `bytes`.
    pub size: u64,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
    /// How many times the path was PUT.
    pub put_count: u64,
}

fn serialize_bytes<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serializer.serialize_str(text),
        Err(_) => serializer.serialize_str(&format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )),
    }
}

impl UploadedFile {
    fn new(bytes: Vec<u8>, put_count: u64) -> Self {
        let digest = Sha256::digest(&bytes);
        let mut sha256 = String::with_capacity(64);
        for b in digest.iter() {
            let _ = write!(sha256, "{b:02x}");
        }
        Self {
            size: bytes.len() as u64,
            bytes,
            sha256,
            put_count,
        }
    }

    /// The bytes as UTF-8 text, if they are valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

/// The reconstructed state of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunState {
    /// Entity (the default entity when the client sent `null`).
    pub entity: String,
    /// Project (`uncategorized` when the client sent `null`).
    pub project: String,
    /// Run id (the `name` of UpsertBucket).
    pub run_id: String,
    /// Server storage id returned as `bucket.id`.
    pub storage_id: String,
    /// Whether an `UpsertBucket` ever created or updated this run (false when it only appeared
    /// through file_stream / uploads, which is recorded in `errors`).
    pub upserted: bool,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `notes`.
    pub notes: Option<String>,
    /// `tags` (empty when never sent).
    pub tags: Vec<String>,
    /// `groupName`.
    pub group: Option<String>,
    /// `jobType`.
    pub job_type: Option<String>,
    /// `host`.
    pub host: Option<String>,
    /// `program`.
    pub program: Option<String>,
    /// `commit`.
    pub commit: Option<String>,
    /// `repo`.
    pub repo: Option<String>,
    /// `sweep`.
    pub sweep: Option<String>,
    /// `state` variable of UpsertBucket.
    pub state: Option<String>,
    /// The last `config` JSONString, parsed (`{"key": {"value": v}, "_wandb": {...}}`).
    pub config: Option<Value>,
    /// The last `summaryMetrics` JSONString of UpsertBucket, parsed (wandb-core never sends it).
    pub summary_metrics: Option<Value>,
    /// The last `wandb-summary.json` line received on file_stream, parsed.
    pub summary: Option<Value>,
    /// History rows in line order, parsed; `null` for lines never written. Non-finite numbers
    /// appear as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    pub history: Vec<Value>,
    /// The raw history lines as received (empty string for missing lines).
    #[serde(skip)]
    pub history_raw: Vec<String>,
    /// Events (system metrics) rows in line order, parsed like history.
    pub events: Vec<Value>,
    /// `output.log` lines as received over file_stream (with their timestamp prefixes; empty
    /// string for missing lines). See [`RunState::console_text`].
    pub console: Vec<String>,
    /// Any other file_stream file names, as raw lines.
    pub other_stream_files: BTreeMap<String, Vec<String>>,
    /// Files uploaded with PUT, by path relative to the run's `files/` directory.
    pub files: BTreeMap<String, UploadedFile>,
    /// File names requested with `CreateRunFiles`, in order (repeats kept).
    pub requested_files: Vec<String>,
    /// Names reported in file_stream `uploaded` lists, first-seen order, without repeats.
    pub uploaded: Vec<String>,
    /// Names reported with `MarkRunFilesUploaded`, in order.
    pub marked_uploaded: Vec<String>,
    /// Whether file_stream sent `complete: true`.
    pub complete: bool,
    /// The `exitcode` sent with `complete`.
    pub exit_code: Option<i64>,
    /// Whether file_stream sent `preempting: true`.
    pub preempting: bool,
    /// Alerts sent with `NotifyScriptableRunAlert`.
    pub alerts: Vec<Alert>,
    /// Counters for this run.
    pub counters: RunCounters,
    /// Protocol anomalies noticed for this run (gaps, unparseable lines, unknown run, …).
    pub errors: Vec<String>,
}

impl RunState {
    /// The values of `key` (a top-level key) across history rows that have it, in order.
    pub fn history_values(&self, key: &str) -> Vec<&Value> {
        self.history.iter().filter_map(|row| row.get(key)).collect()
    }

    /// The user value of config key `key` (unwrapping `{"value": v}`).
    pub fn config_value(&self, key: &str) -> Option<&Value> {
        let entry = self.config.as_ref()?.get(key)?;
        Some(entry.get("value").unwrap_or(entry))
    }

    /// An uploaded file by path.
    pub fn file(&self, path: &str) -> Option<&UploadedFile> {
        self.files.get(path)
    }

    /// The console lines without the client's prefixes: `ERROR `, the ISO-8601 timestamp and a
    /// `[label]`; structured (JSON) lines give their `content`.
    pub fn console_text(&self) -> Vec<String> {
        self.console
            .iter()
            .map(|l| strip_console_prefix(l))
            .collect()
    }
}

/// Strips `ERROR `, a leading timestamp token and a `[label] ` from one console line.
pub fn strip_console_prefix(line: &str) -> String {
    if line.starts_with('{')
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line)
        && let Some(Value::String(content)) = map.get("content")
    {
        return content.clone();
    }
    let mut rest = line.strip_prefix("ERROR ").unwrap_or(line);
    if let Some((token, tail)) = rest.split_once(' ') {
        let looks_like_ts = token.len() >= 19
            && token.as_bytes().get(4) == Some(&b'-')
            && token.as_bytes().get(10) == Some(&b'T');
        if looks_like_ts {
            rest = tail;
        }
    } else if rest.len() >= 19 && rest.as_bytes().get(10) == Some(&b'T') {
        rest = "";
    }
    if rest.starts_with('[')
        && let Some((_, tail)) = rest.split_once("] ")
    {
        rest = tail;
    }
    rest.to_owned()
}

/// A snapshot of everything the backend holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendState {
    /// All runs, ordered by (entity, project, run id).
    pub runs: Vec<RunState>,
    /// Backend-wide counters.
    pub counters: Counters,
    /// Backend-wide protocol anomalies (bad JSON bodies, unknown operations, …).
    pub errors: Vec<String>,
    /// The server features currently advertised.
    pub features: Vec<String>,
    /// Every request received (bounded to the first 100,000), in arrival order.
    pub request_log: Vec<RequestLogEntry>,
    /// Every artifact version, in creation order.
    pub artifacts: Vec<ArtifactState>,
    /// Every sweep, ordered by (entity, project, name), with the runs attached to it.
    pub sweeps: Vec<crate::sweeps::SweepState>,
}

impl BackendState {
    /// The run with this id in any entity/project (the first one, if several).
    pub fn find_run(&self, run_id: &str) -> Option<&RunState> {
        self.runs.iter().find(|r| r.run_id == run_id)
    }

    /// The run with this entity, project and id.
    pub fn run(&self, entity: &str, project: &str, run_id: &str) -> Option<&RunState> {
        self.runs
            .iter()
            .find(|r| r.entity == entity && r.project == project && r.run_id == run_id)
    }

    /// The sweep named `name` in any entity/project (the first one, if several).
    pub fn find_sweep(&self, name: &str) -> Option<&crate::sweeps::SweepState> {
        self.sweeps.iter().find(|s| s.name == name)
    }

    /// The artifacts of collection `name` (any entity, project, digest), in creation order.
    pub fn artifacts_named(&self, name: &str) -> Vec<&ArtifactState> {
        self.artifacts.iter().filter(|a| a.name == name).collect()
    }

    /// The artifacts created by run `run_id`, in creation order.
    pub fn artifacts_created_by(&self, run_id: &str) -> Vec<&ArtifactState> {
        self.artifacts
            .iter()
            .filter(|a| a.created_by.as_deref() == Some(run_id))
            .collect()
    }

    /// Number of requests of `kind` (see [`Counters::requests`]).
    pub fn requests(&self, kind: &str) -> u64 {
        self.counters.requests.get(kind).copied().unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_track_gaps_and_rewrites() {
        let mut l = Lines::default();
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        l.write(0, &s(&["a", "b"]));
        let o = l.write(1, &s(&["b", "c"]));
        assert_eq!((o.identical, o.changed), (1, 0));
        let o = l.write(2, &s(&["C"]));
        assert_eq!(o.changed, 1);
        let o = l.write(5, &s(&["f"]));
        assert_eq!(o.gap_before, 2);
        assert_eq!(l.len(), 6);
        assert_eq!(l.missing(), 2);
    }

    #[test]
    fn console_prefixes_are_stripped() {
        assert_eq!(
            strip_console_prefix("2026-11-22T02:35:12.440515 hi there"),
            "hi there"
        );
        assert_eq!(
            strip_console_prefix("ERROR 2026-11-22T02:35:12.440515 [lbl] oops"),
            "oops"
        );
        assert_eq!(
            strip_console_prefix(r#"{"ts":"2026-11-22T02:35:29.446668","content":"x y"}"#),
            "x y"
        );
        assert_eq!(strip_console_prefix("2026-11-22T02:35:12.440515"), "");
        assert_eq!(strip_console_prefix("plain"), "plain");
    }
}

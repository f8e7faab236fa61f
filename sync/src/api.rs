//! The W&B operations the syncer uses: `UpsertBucket`, `CreateRunFiles`,
//! `NotifyScriptableRunAlert` (GraphQL), file_stream posts and upload PUTs.
//!
//! GraphQL bodies are `{query, variables, operationName}` with every variable present (`null`
//! when unset), as wandb-core sends them. A reply with an `errors` array is a permanent failure
//! (W&B does not retry it either).

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use wandb_format::proto::AlertRecord;

use crate::error::{Error, Result};
use crate::files::Snapshot;
use crate::http::{Http, RetryClass};

/// Per-attempt timeout of GraphQL requests (W&B: 30 s).
const GRAPHQL_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-attempt timeout of file_stream requests (W&B: 180 s).
const FILE_STREAM_TIMEOUT: Duration = Duration::from_secs(180);

const UPSERT_BUCKET: &str = "mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, $groupName: String, $description: String, $displayName: String, $notes: String, $commit: String, $config: JSONString, $host: String, $debug: Boolean, $program: String, $repo: String, $jobType: String, $state: String, $sweep: String, $tags: [String!], $summaryMetrics: JSONString) { upsertBucket(input: {id: $id, name: $name, groupName: $groupName, modelName: $project, entityName: $entity, description: $description, displayName: $displayName, notes: $notes, config: $config, commit: $commit, host: $host, debug: $debug, jobProgram: $program, jobRepo: $repo, jobType: $jobType, state: $state, sweep: $sweep, tags: $tags, summaryMetrics: $summaryMetrics}) { bucket { id name displayName description config sweepName project { id name entity { id name } } historyLineCount eventsLineCount logLineCount } inserted } }";

const CREATE_RUN_FILES: &str = "mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: [String!]!) { createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) { runID uploadHeaders files { name uploadUrl } } }";

const NOTIFY_ALERT: &str = "mutation NotifyScriptableRunAlert($entityName: String!, $projectName: String!, $runName: String!, $title: String!, $text: String!, $severity: AlertSeverity = INFO, $waitDuration: Duration) { notifyScriptableRunAlert(input: {entityName: $entityName, projectName: $projectName, runName: $runName, title: $title, text: $text, severity: $severity, waitDuration: $waitDuration}) { success } }";

/// The run's metadata sent with UpsertBucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UpsertParams {
    pub(crate) storage_id: Option<String>,
    pub(crate) run_id: String,
    pub(crate) entity: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) notes: Option<String>,
    pub(crate) commit: Option<String>,
    pub(crate) repo: Option<String>,
    pub(crate) config: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) program: Option<String>,
    pub(crate) job_type: Option<String>,
    pub(crate) sweep: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
}

/// What UpsertBucket tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub(crate) storage_id: String,
    pub(crate) run_id: String,
    pub(crate) entity: String,
    pub(crate) project: String,
    pub(crate) history_line_count: u64,
    pub(crate) events_line_count: u64,
    pub(crate) log_line_count: u64,
}

/// One upload slot handed out by CreateRunFiles.
#[derive(Debug, Clone)]
pub(crate) struct UploadSlot {
    pub(crate) name: String,
    pub(crate) url: String,
}

/// The API, bound to one HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub(crate) http: Http,
    /// The server advertises `FILESTREAM_GZIP`: file_stream bodies go gzipped.
    pub(crate) gzip_file_stream: bool,
}

/// The features query (no variables; W&B's `ServerFeaturesQuery`).
const SERVER_FEATURES: &str =
    "query ServerFeaturesQuery { serverInfo { features { name isEnabled } } }";

/// The server feature that allows gzipped file_stream bodies.
pub(crate) const FILESTREAM_GZIP: &str = "FILESTREAM_GZIP";

impl Api {
    /// Posts one GraphQL operation and returns its `data`; a reply with `errors` is permanent.
    pub(crate) fn graphql(
        &self,
        operation: &str,
        query: &str,
        variables: Value,
        class: RetryClass,
        deadline: Instant,
    ) -> Result<Value> {
        let body = json!({"query": query, "variables": variables, "operationName": operation});
        let bytes = serde_json::to_vec(&body).map_err(|e| Error::Internal {
            what: "encode a GraphQL request",
            detail: e.to_string(),
        })?;
        let reply = self.http.post_json(
            operation,
            "/graphql",
            bytes::Bytes::from(bytes),
            class,
            GRAPHQL_TIMEOUT,
            deadline,
            false,
            false,
        )?;
        let value: Value = serde_json::from_slice(&reply.body).map_err(|e| Error::BadReply {
            what: operation.to_owned(),
            detail: format!("not JSON: {e}"),
        })?;
        if let Some(errors) = value.get("errors").filter(|e| !e.is_null()) {
            return Err(Error::Permanent {
                what: operation.to_owned(),
                detail: graphql_errors(errors),
            });
        }
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            return Err(Error::Permanent {
                what: operation.to_owned(),
                detail: graphql_errors(error),
            });
        }
        Ok(value.get("data").cloned().unwrap_or(Value::Null))
    }

    /// The names of the features the server reports enabled; none if the query fails (as W&B
    /// treats a failed query: every feature disabled).
    pub(crate) fn server_features(&self, deadline: Instant) -> Vec<String> {
        let data = match self.graphql(
            "ServerFeaturesQuery",
            SERVER_FEATURES,
            json!({}),
            RetryClass::Api,
            deadline,
        ) {
            Ok(data) => data,
            Err(e) => {
                log::debug!("ServerFeaturesQuery failed, no features assumed: {e}");
                return Vec::new();
            }
        };
        data.pointer("/serverInfo/features")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| f.get("isEnabled").and_then(Value::as_bool) == Some(true))
            .filter_map(|f| f.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// Creates or updates the run.
    pub(crate) fn upsert_bucket(&self, params: &UpsertParams, deadline: Instant) -> Result<Bucket> {
        let variables = json!({
            "id": params.storage_id, "name": params.run_id, "project": params.project,
            "entity": params.entity, "groupName": params.group, "description": null,
            "displayName": params.display_name, "notes": params.notes, "commit": params.commit,
            "config": params.config, "host": params.host, "debug": null,
            "program": params.program, "repo": params.repo, "jobType": params.job_type,
            "state": null, "sweep": params.sweep, "tags": params.tags, "summaryMetrics": null,
        });
        let data = self.graphql(
            "UpsertBucket",
            UPSERT_BUCKET,
            variables,
            RetryClass::Upsert,
            deadline,
        )?;
        let bucket = data
            .pointer("/upsertBucket/bucket")
            .ok_or_else(|| Error::BadReply {
                what: "UpsertBucket".into(),
                detail: "no upsertBucket.bucket".into(),
            })?;
        let text = |pointer: &str| {
            bucket
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let count = |name: &str| bucket.get(name).and_then(Value::as_u64).unwrap_or(0);
        let missing = |what: &str| Error::BadReply {
            what: "UpsertBucket".into(),
            detail: format!("no {what} in the reply"),
        };
        Ok(Bucket {
            storage_id: text("/id").ok_or_else(|| missing("bucket.id"))?,
            run_id: text("/name").unwrap_or_else(|| params.run_id.clone()),
            entity: text("/project/entity/name").ok_or_else(|| missing("entity name"))?,
            project: text("/project/name").ok_or_else(|| missing("project name"))?,
            history_line_count: count("historyLineCount"),
            events_line_count: count("eventsLineCount"),
            log_line_count: count("logLineCount"),
        })
    }

    /// Asks for upload URLs for `names`.
    pub(crate) fn create_run_files(
        &self,
        entity: &str,
        project: &str,
        run_id: &str,
        names: &[String],
        deadline: Instant,
    ) -> Result<(Vec<UploadSlot>, HeaderMap)> {
        let variables =
            json!({"entity": entity, "project": project, "run": run_id, "files": names});
        let data = self.graphql(
            "CreateRunFiles",
            CREATE_RUN_FILES,
            variables,
            RetryClass::Api,
            deadline,
        )?;
        let bad = |detail: &str| Error::BadReply {
            what: "CreateRunFiles".into(),
            detail: detail.to_owned(),
        };
        let files = data
            .pointer("/createRunFiles/files")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no createRunFiles.files"))?;
        let mut slots = Vec::with_capacity(files.len());
        for file in files {
            let name = file.get("name").and_then(Value::as_str);
            let url = file.get("uploadUrl").and_then(Value::as_str);
            if let (Some(name), Some(url)) = (name, url) {
                slots.push(UploadSlot {
                    name: name.to_owned(),
                    url: url.to_owned(),
                });
            }
        }
        if slots.len() != names.len() {
            return Err(bad(&format!(
                "asked for {} upload URLs, got {}",
                names.len(),
                slots.len()
            )));
        }
        let headers = upload_headers(data.pointer("/createRunFiles/uploadHeaders"));
        Ok((slots, headers))
    }

    /// Sends an alert.
    pub(crate) fn notify_alert(
        &self,
        entity: &str,
        project: &str,
        run_id: &str,
        alert: &AlertRecord,
        deadline: Instant,
    ) -> Result<()> {
        let severity = match alert.level.as_str() {
            "" => "INFO",
            other => other,
        };
        let wait: Option<i64> = (alert.wait_duration != 0).then_some(alert.wait_duration);
        let variables = json!({
            "entityName": entity, "projectName": project, "runName": run_id,
            "title": alert.title, "text": alert.text, "severity": severity,
            "waitDuration": wait,
        });
        self.graphql(
            "NotifyScriptableRunAlert",
            NOTIFY_ALERT,
            variables,
            RetryClass::Api,
            deadline,
        )?;
        Ok(())
    }

    /// Posts one file_stream body; returns whether the server asked the run to stop.
    pub(crate) fn file_stream(
        &self,
        entity: &str,
        project: &str,
        run_id: &str,
        body: bytes::Bytes,
        deadline: Instant,
    ) -> Result<bool> {
        let path = format!(
            "/files/{}/{}/{}/file_stream",
            escape_segment(entity),
            escape_segment(project),
            escape_segment(run_id)
        );
        let started = Instant::now();
        let n_bytes = body.len();
        let body = if self.gzip_file_stream {
            gzip(&body)?
        } else {
            body
        };
        let reply = self.http.post_json(
            "file_stream",
            &path,
            body,
            RetryClass::Api,
            FILE_STREAM_TIMEOUT,
            deadline,
            true,
            self.gzip_file_stream,
        )?;
        log::debug!(
            "file_stream {run_id}: {n_bytes} bytes acknowledged in {:?}",
            started.elapsed()
        );
        let stopped = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("stopped").and_then(Value::as_bool))
            .unwrap_or(false);
        Ok(stopped)
    }

    /// Uploads one file to its slot.
    pub(crate) fn upload(
        &self,
        slot: &UploadSlot,
        headers: &HeaderMap,
        source: &Snapshot,
        deadline: Instant,
    ) -> Result<()> {
        self.http.put(
            &format!("PUT {}", slot.name),
            &slot.url,
            headers,
            source,
            deadline,
        )
    }
}

/// A file_stream body gzipped at a fast level (JSON lines shrink to a fraction at little CPU),
/// in one call over the whole body (libdeflate's level 1).
fn gzip(body: &[u8]) -> Result<bytes::Bytes> {
    let mut compressor = libdeflater::Compressor::new(
        libdeflater::CompressionLvl::new(1)
            .unwrap_or_else(|_| libdeflater::CompressionLvl::default()),
    );
    let mut out = vec![0; compressor.gzip_compress_bound(body.len())];
    let len = compressor
        .gzip_compress(body, &mut out)
        .map_err(|e| Error::Internal {
            what: "gzip a file_stream body",
            detail: e.to_string(),
        })?;
    out.truncate(len);
    Ok(bytes::Bytes::from(out))
}

/// The `uploadHeaders` of a reply (`["Name:value", ...]`) as headers; malformed ones are skipped.
pub(crate) fn upload_headers(list: Option<&Value>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for item in list
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some((key, value)) = item.split_once(':')
            && let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(key.trim().as_bytes()),
                HeaderValue::from_str(value.trim()),
            )
        {
            headers.insert(name, value);
        }
    }
    headers
}

fn graphql_errors(errors: &Value) -> String {
    let messages: Vec<String> = match errors {
        Value::Array(items) => items
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| other.to_string(), str::to_owned),
            })
            .collect(),
        Value::String(s) => vec![s.clone()],
        other => vec![
            other
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| other.to_string(), str::to_owned),
        ],
    };
    let mut text = messages.join("; ");
    if text.len() > 500 {
        let mut cut = 500;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// Percent-encodes one URL path segment.
pub(crate) fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

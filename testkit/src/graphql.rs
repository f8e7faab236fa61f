//! The GraphQL operations the backend understands, applied to the run store.
//!
//! Requests are `{query, variables, operationName}`. The operation is taken from
//! `operationName`, or sniffed from the query text when that is missing. Replies mimic the
//! fields the official clients read (see the W&B reference, sections 6a and 9).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::artifacts;
use crate::state::{Alert, RunData, RunKey, Store};
use crate::urlpath::encode_segment;

/// The operations this backend implements.
pub const SUPPORTED_OPERATIONS: [&str; 15] = [
    "UpsertBucket",
    "UpsertSweep",
    "ServerFeaturesQuery",
    "CreateRunFiles",
    "Viewer",
    "ServerInfo",
    "RunResumeStatus",
    "NotifyScriptableRunAlert",
    "MarkRunFilesUploaded",
    "CreateArtifact",
    "CreateArtifactManifest",
    "UpdateArtifactManifest",
    "CreateArtifactFiles",
    "CommitArtifact",
    "UseArtifact",
];

/// Project used when UpsertBucket sends `project: null`.
pub const DEFAULT_PROJECT: &str = "uncategorized";

/// What a GraphQL handler needs besides the store.
pub(crate) struct Context<'a> {
    pub(crate) default_entity: &'a str,
    pub(crate) base_url: &'a str,
    pub(crate) features: &'a [String],
}

/// The operation of a GraphQL request body: `operationName`, else sniffed from `query`.
pub(crate) fn operation_of(body: &Value) -> Option<String> {
    if let Some(name) = body.get("operationName").and_then(Value::as_str)
        && !name.is_empty()
    {
        return Some(name.to_owned());
    }
    let query = body.get("query").and_then(Value::as_str)?;
    sniff_operation(query).map(str::to_owned)
}

/// Guesses the operation from the query text.
fn sniff_operation(query: &str) -> Option<&'static str> {
    // A named operation ("mutation UpsertBucket(" / "query Viewer {") wins.
    for keyword in ["mutation", "query"] {
        for (pos, _) in query.match_indices(keyword) {
            let after = query[pos + keyword.len()..].trim_start();
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(op) = SUPPORTED_OPERATIONS.iter().find(|op| **op == name) {
                return Some(op);
            }
        }
    }
    let has = |needle: &str| query.contains(needle);
    if has("upsertSweep") {
        Some("UpsertSweep")
    } else if has("upsertBucket") {
        Some("UpsertBucket")
    } else if has("createRunFiles") {
        Some("CreateRunFiles")
    } else if has("markRunFilesUploaded") {
        Some("MarkRunFilesUploaded")
    } else if has("notifyScriptableRunAlert") {
        Some("NotifyScriptableRunAlert")
    } else if has("serverInfo") && has("features") {
        Some("ServerFeaturesQuery")
    } else if has("serverInfo") {
        Some("ServerInfo")
    } else if has("viewer") {
        Some("Viewer")
    } else if has("bucket(") && has("model(") {
        Some("RunResumeStatus")
    } else {
        None
    }
}

/// A GraphQL error reply.
pub(crate) fn error_reply(message: &str) -> Value {
    json!({"data": null, "errors": [{"message": message}]})
}

/// Runs one operation and returns the JSON reply (always served with HTTP 200).
pub(crate) fn execute(
    store: &mut Store,
    ctx: &Context<'_>,
    operation: Option<&str>,
    variables: &Value,
) -> Value {
    match operation {
        Some("UpsertBucket") => upsert_bucket(store, ctx, variables),
        Some("UpsertSweep") => crate::sweeps::upsert_sweep(store, ctx, variables),
        Some("ServerFeaturesQuery") => json!({"data": {"serverInfo": {
            "features": features_json(ctx.features),
        }}}),
        Some("ServerInfo") => json!({"data": {"serverInfo": {
            "cliVersionInfo": {},
            "latestLocalVersionInfo": null,
            "features": features_json(ctx.features),
        }}}),
        Some("Viewer") => json!({"data": {"viewer": {
            "id": b64("User:1"),
            "entity": ctx.default_entity,
            "username": ctx.default_entity,
            "email": "test-user@example.invalid",
            "admin": false,
            "flags": "{}",
            "teams": {"edges": []},
        }}}),
        Some("CreateRunFiles") => create_run_files(store, ctx, variables),
        Some("MarkRunFilesUploaded") => mark_run_files_uploaded(store, ctx, variables),
        Some("NotifyScriptableRunAlert") => notify_alert(store, ctx, variables),
        Some("RunResumeStatus") => run_resume_status(store, ctx, variables),
        Some("CreateArtifact") => artifacts::create_artifact(store, ctx.default_entity, variables),
        Some("CreateArtifactManifest") => {
            artifacts::create_artifact_manifest(store, ctx.base_url, variables)
        }
        Some("UpdateArtifactManifest") => {
            artifacts::update_artifact_manifest(store, ctx.base_url, variables)
        }
        Some("CreateArtifactFiles") => {
            artifacts::create_artifact_files(store, ctx.base_url, variables)
        }
        Some("CompleteMultipartUploadArtifact") => {
            artifacts::complete_multipart_upload(store, variables)
        }
        Some("CommitArtifact") => artifacts::commit_artifact(store, variables),
        Some("UseArtifact") => artifacts::use_artifact(store, ctx.default_entity, variables),
        Some(other) => {
            store.error(format!("graphql: unsupported operation {other}"));
            error_reply(&format!("wandb-testkit: unsupported operation {other}"))
        }
        None => {
            store.error("graphql: request without a recognisable operation".to_owned());
            error_reply("wandb-testkit: could not determine the GraphQL operation")
        }
    }
}

fn features_json(features: &[String]) -> Value {
    Value::Array(
        features
            .iter()
            .map(|name| json!({"name": name, "isEnabled": true}))
            .collect(),
    )
}

pub(crate) fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A string variable; `null`, missing and non-strings give `None`.
pub(crate) fn str_var(vars: &Value, name: &str) -> Option<String> {
    vars.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A JSONString variable: a string is kept verbatim, any other non-null value is re-encoded.
pub(crate) fn json_string_var(vars: &Value, name: &str) -> Option<String> {
    match vars.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

fn string_list_var(vars: &Value, name: &str) -> Option<Vec<String>> {
    let list = vars.get(name)?.as_array()?;
    Some(
        list.iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
    )
}

pub(crate) fn entity_or_default(vars: &Value, name: &str, ctx: &Context<'_>) -> String {
    str_var(vars, name).unwrap_or_else(|| ctx.default_entity.to_owned())
}

pub(crate) fn project_or_default(vars: &Value, name: &str) -> String {
    str_var(vars, name).unwrap_or_else(|| DEFAULT_PROJECT.to_owned())
}

fn set_if_present(field: &mut Option<String>, vars: &Value, name: &str) {
    if let Some(value) = str_var(vars, name) {
        *field = Some(value);
    }
}

fn project_json(run: &RunData) -> Value {
    json!({
        "id": b64(&format!("Project:v1:{}:{}", run.project, run.entity)),
        "name": run.project,
        "entity": {"id": b64(&format!("Entity:v1:{}", run.entity)), "name": run.entity},
    })
}

fn upsert_bucket(store: &mut Store, ctx: &Context<'_>, vars: &Value) -> Value {
    let by_id = str_var(vars, "id").and_then(|id| store.by_storage_id.get(&id).cloned());
    let key: RunKey = match by_id {
        Some(key) => key,
        None => {
            let name = match str_var(vars, "name") {
                Some(name) => name,
                None => store.generate_name(),
            };
            (
                entity_or_default(vars, "entity", ctx),
                project_or_default(vars, "project"),
                name,
            )
        }
    };
    let unknown_id = str_var(vars, "id").filter(|id| !store.by_storage_id.contains_key(id));
    let sweeps = &store.sweeps.keys().cloned().collect::<Vec<_>>();
    let (run, created) = store.run_entry(&key);
    if let Some(id) = unknown_id {
        run.errors.push(format!(
            "UpsertBucket: unknown storage id {id:?}; matched by name instead"
        ));
    }
    let inserted = created || !run.upserted;
    run.upserted = true;
    if run.complete {
        run.complete = false;
        run.exit_code = None;
        run.counters.reopened += 1;
    }
    run.counters.upserts += 1;
    set_if_present(&mut run.display_name, vars, "displayName");
    set_if_present(&mut run.description, vars, "description");
    set_if_present(&mut run.notes, vars, "notes");
    set_if_present(&mut run.group, vars, "groupName");
    set_if_present(&mut run.job_type, vars, "jobType");
    set_if_present(&mut run.host, vars, "host");
    set_if_present(&mut run.program, vars, "program");
    set_if_present(&mut run.commit, vars, "commit");
    set_if_present(&mut run.repo, vars, "repo");
    set_if_present(&mut run.sweep, vars, "sweep");
    if let Some(sweep) = str_var(vars, "sweep")
        && !store_has_sweep(&key, &sweep, sweeps)
    {
        run.errors.push(format!(
            "UpsertBucket: sweep {sweep:?} does not exist in {}/{}",
            key.0, key.1
        ));
    }
    set_if_present(&mut run.run_state, vars, "state");
    if let Some(tags) = string_list_var(vars, "tags") {
        run.tags = Some(tags);
    }
    if let Some(config) = json_string_var(vars, "config") {
        run.config_raw = Some(config);
    }
    if let Some(summary) = json_string_var(vars, "summaryMetrics") {
        run.summary_metrics_raw = Some(summary);
    }
    json!({"data": {"upsertBucket": {
        "bucket": {
            "id": run.storage_id,
            "name": run.name,
            "displayName": run.display_name,
            "description": run.description,
            "notes": run.notes,
            "tags": run.tags.clone().unwrap_or_default(),
            "config": run.config_raw,
            "sweepName": run.sweep,
            "project": project_json(run),
            "historyLineCount": run.history.len(),
            "eventsLineCount": run.events.len(),
            "logLineCount": run.console.len(),
        },
        "inserted": inserted,
    }}})
}

/// Whether sweep `name` exists in the run's entity and project.
fn store_has_sweep(run: &RunKey, name: &str, sweeps: &[RunKey]) -> bool {
    sweeps
        .iter()
        .any(|(entity, project, sweep)| *entity == run.0 && *project == run.1 && sweep == name)
}

/// Looks up the run named by `entity`/`project`/`run` variables, creating it (and noting an
/// error) when it was never upserted.
fn run_from_vars<'s>(
    store: &'s mut Store,
    ctx: &Context<'_>,
    vars: &Value,
    names: [&str; 3],
    operation: &str,
) -> &'s mut RunData {
    let key: RunKey = (
        entity_or_default(vars, names[0], ctx),
        project_or_default(vars, names[1]),
        str_var(vars, names[2]).unwrap_or_default(),
    );
    let (run, created) = store.run_entry(&key);
    if created {
        run.errors
            .push(format!("{operation} for a run that was never upserted"));
    }
    run
}

fn create_run_files(store: &mut Store, ctx: &Context<'_>, vars: &Value) -> Value {
    let files = string_list_var(vars, "files").unwrap_or_default();
    let run = run_from_vars(
        store,
        ctx,
        vars,
        ["entity", "project", "run"],
        "CreateRunFiles",
    );
    run.counters.create_run_files_calls += 1;
    run.requested_files.extend(files.iter().cloned());
    let prefix = format!(
        "{}/_upload/{}/{}/{}",
        ctx.base_url,
        encode_segment(&run.entity),
        encode_segment(&run.project),
        encode_segment(&run.name)
    );
    let entries: Vec<Value> = files
        .iter()
        .map(|name| {
            let path: Vec<String> = name.split('/').map(encode_segment).collect();
            json!({"name": name, "uploadUrl": format!("{prefix}/{}", path.join("/"))})
        })
        .collect();
    json!({"data": {"createRunFiles": {
        "runID": run.storage_id,
        "uploadHeaders": [],
        "files": entries,
    }}})
}

fn mark_run_files_uploaded(store: &mut Store, ctx: &Context<'_>, vars: &Value) -> Value {
    let files = string_list_var(vars, "files").unwrap_or_default();
    let run = run_from_vars(
        store,
        ctx,
        vars,
        ["entity", "project", "run"],
        "MarkRunFilesUploaded",
    );
    run.marked_uploaded.extend(files);
    json!({"data": {"markRunFilesUploaded": {"success": true}}})
}

fn notify_alert(store: &mut Store, ctx: &Context<'_>, vars: &Value) -> Value {
    let alert = Alert {
        title: str_var(vars, "title").unwrap_or_default(),
        text: str_var(vars, "text").unwrap_or_default(),
        severity: str_var(vars, "severity"),
        wait_duration: match vars.get("waitDuration") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        },
    };
    let run = run_from_vars(
        store,
        ctx,
        vars,
        ["entityName", "projectName", "runName"],
        "NotifyScriptableRunAlert",
    );
    run.alerts.push(alert);
    json!({"data": {"notifyScriptableRunAlert": {"success": true}}})
}

fn tail_json(lines: &crate::state::Lines, n: usize) -> String {
    let start = lines.lines.len().saturating_sub(n);
    let tail: Vec<Value> = lines.lines[start..]
        .iter()
        .flatten()
        .map(|l| Value::String(l.clone()))
        .collect();
    Value::Array(tail).to_string()
}

fn run_resume_status(store: &mut Store, ctx: &Context<'_>, vars: &Value) -> Value {
    let key: RunKey = (
        entity_or_default(vars, "entity", ctx),
        project_or_default(vars, "project"),
        str_var(vars, "name").unwrap_or_default(),
    );
    let bucket = match store.runs.get(&key).filter(|r| r.upserted) {
        None => Value::Null,
        Some(run) => {
            let wandb_config = run
                .config_raw
                .as_deref()
                .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
                .and_then(|config| config.pointer("/_wandb/value/t").cloned())
                .map(|t| {
                    let mut map = Map::new();
                    map.insert("t".to_owned(), t);
                    Value::Object(map).to_string()
                })
                .unwrap_or_else(|| "{}".to_owned());
            json!({
                "id": run.storage_id,
                "name": run.name,
                "displayName": run.display_name,
                "summaryMetrics": run.summary_raw.clone().unwrap_or_else(|| "{}".to_owned()),
                "logLineCount": run.console.len(),
                "historyLineCount": run.history.len(),
                "eventsLineCount": run.events.len(),
                "historyTail": tail_json(&run.history, 10),
                "eventsTail": tail_json(&run.events, 10),
                "config": run.config_raw.clone().unwrap_or_else(|| "{}".to_owned()),
                "tags": run.tags.clone().unwrap_or_default(),
                "notes": run.notes,
                "runInfo": null,
                "wandbConfig": wandb_config,
            })
        }
    };
    json!({"data": {"model": {
        "id": b64(&format!("Project:v1:{}:{}", key.1, key.0)),
        "name": key.1,
        "entity": {"id": b64(&format!("Entity:v1:{}", key.0)), "name": key.0},
        "bucket": bucket,
    }}})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn operation_from_name_or_query() {
        let body = json!({"operationName": "Viewer", "query": "query Viewer { viewer { id } }"});
        assert_eq!(operation_of(&body).as_deref(), Some("Viewer"));
        let body = json!({"query": "mutation UpsertBucket($id: String) { upsertBucket(input: {}) { inserted } }"});
        assert_eq!(operation_of(&body).as_deref(), Some("UpsertBucket"));
        let body = json!({"query": "query { serverInfo { features { name isEnabled } } }"});
        assert_eq!(operation_of(&body).as_deref(), Some("ServerFeaturesQuery"));
        let body =
            json!({"query": "query Probe { model(name: \"p\") { bucket(name: \"r\") { id } } }"});
        assert_eq!(operation_of(&body).as_deref(), Some("RunResumeStatus"));
        let body = json!({"query": "query { somethingElse }"});
        assert_eq!(operation_of(&body), None);
    }
}

//! Comparing reconstructed runs: the parts of a run that must be equal when the same data is synced
//! twice (by two clients, or once cleanly and once through faults), with the parts that legitimately
//! differ normalized away.

use serde_json::Value;

use crate::artifacts::ArtifactState;
use crate::state::{BackendState, RunState};

/// The parts of a reconstructed run that must match between two syncs of the same data.
pub fn essence(run: &RunState) -> Value {
    let config = normalize_config(run.config.clone().unwrap_or(Value::Null));
    let mut files = serde_json::Map::new();
    for (name, file) in &run.files {
        let value = match name.as_str() {
            "config.yaml" => Value::String("present".into()),
            "wandb-metadata.json" | "wandb-summary.json" => {
                crate::json::parse_tolerant(file.text().unwrap_or_default()).unwrap_or(Value::Null)
            }
            _ => Value::String(file.sha256.clone()),
        };
        files.insert(name.clone(), value);
    }
    let mut uploaded = run.uploaded.clone();
    uploaded.sort();
    serde_json::json!({
        "entity": run.entity, "project": run.project, "run_id": run.run_id,
        "display_name": run.display_name, "notes": run.notes, "tags": run.tags,
        "group": run.group, "job_type": run.job_type,
        "config": config, "summary": run.summary, "history": run.history,
        "events": run.events, "console": run.console_text(),
        "console_stderr": run.console.iter().map(|l| l.starts_with("ERROR ")).collect::<Vec<_>>(),
        "files": files, "uploaded": uploaded, "complete": run.complete,
        "exit_code": run.exit_code, "preempting": run.preempting,
        "alerts": run.alerts.iter().map(|a| (a.title.clone(), a.text.clone())).collect::<Vec<_>>(),
    })
}

/// The parts of a reconstructed artifact that must match between two syncs of the same run:
/// name, type, digest, description, metadata, aliases and tags (sorted), committed, the
/// creating and using runs, and each file with its digest, size, reference and the SHA-256 of
/// the content the server holds. Server ids, client ids, counters and the manifest's
/// `local_path`/`birthArtifactID` (machine paths and server ids) are left out.
pub fn artifact_essence(artifact: &ArtifactState) -> Value {
    let mut files = serde_json::Map::new();
    for (path, file) in &artifact.files {
        files.insert(
            path.clone(),
            serde_json::json!({
                "digest": file.digest, "size": file.size, "reference": file.reference,
                "stored": file.stored, "sha256": file.sha256,
            }),
        );
    }
    let mut aliases = artifact.aliases.clone();
    aliases.sort();
    let mut tags = artifact.tags.clone();
    tags.sort();
    let mut used_by = artifact.used_by.clone();
    used_by.sort();
    serde_json::json!({
        "entity": artifact.entity, "project": artifact.project,
        "type": artifact.artifact_type, "name": artifact.name, "digest": artifact.digest,
        "description": artifact.description, "metadata": artifact.metadata,
        "aliases": aliases, "tags": tags, "committed": artifact.committed,
        "version": artifact.version, "created_by": artifact.created_by, "used_by": used_by,
        "files": files,
    })
}

/// [`artifact_essence`] of every artifact, keyed by `name:digest` (creation order differs
/// between clients that upload artifacts concurrently).
pub fn artifacts_essence(state: &BackendState) -> Value {
    let mut out = serde_json::Map::new();
    for artifact in &state.artifacts {
        out.insert(
            format!("{}:{}", artifact.name, artifact.digest),
            artifact_essence(artifact),
        );
    }
    let mut keys: Vec<String> = out.keys().cloned().collect();
    keys.sort();
    Value::Object(
        keys.into_iter()
            .filter_map(|k| out.remove(&k).map(|v| (k, v)))
            .collect(),
    )
}

/// A run config with the parts that legitimately differ between syncs normalized: the random
/// `_wandb.e` keys, `_wandb.t["12"]` (the syncing core's version), and set order in lists.
pub fn normalize_config(mut config: Value) -> Value {
    if let Some(w) = config.pointer_mut("/_wandb/value")
        && let Some(map) = w.as_object_mut()
    {
        if let Some(Value::Object(envs)) = map.remove("e") {
            let mut values: Vec<String> = envs.values().map(canonical_text).collect();
            values.sort();
            map.insert("e".into(), Value::from(values));
        }
        if let Some(Value::Object(t)) = map.get_mut("t") {
            t.remove("12");
            for v in t.values_mut() {
                sort_list(v);
            }
        }
        if let Some(Value::Array(metrics)) = map.get_mut("m") {
            // wandb-core lists metrics in map order: resolve step-metric indexes to names,
            // then sort.
            let names: Vec<Value> = metrics.iter().map(|m| m["1"].clone()).collect();
            for m in metrics.iter_mut() {
                if let Some(obj) = m.as_object_mut() {
                    if let Some(index) = obj.get("5").and_then(Value::as_u64) {
                        let name = names
                            .get(usize::try_from(index).unwrap_or(0).saturating_sub(1))
                            .cloned()
                            .unwrap_or(Value::Null);
                        obj.insert("5".into(), name);
                    }
                    for v in obj.values_mut() {
                        sort_list(v);
                    }
                }
            }
            metrics.sort_by_key(canonical_text);
        }
    }
    config
}

/// JSON text with object keys sorted at every level.
fn canonical_text(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_text(&map[k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_text).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

fn sort_list(v: &mut Value) {
    if let Value::Array(items) = v {
        items.sort_by_key(Value::to_string);
    }
}

/// Asserts that `got` equals `want` field by field, printing the first difference.
///
/// # Panics
///
/// When they differ: it is meant for tests.
pub fn assert_same(want: &Value, got: &Value, what: &str) {
    let (Some(w), Some(g)) = (want.as_object(), got.as_object()) else {
        assert_eq!(want, got, "{what}");
        return;
    };
    for (key, wv) in w {
        let gv = g.get(key).unwrap_or(&Value::Null);
        if key == "history" {
            let (Some(wr), Some(gr)) = (wv.as_array(), gv.as_array()) else {
                panic!("{what}: history is not a list");
            };
            assert_eq!(wr.len(), gr.len(), "{what}: history rows");
            for (i, (a, b)) in wr.iter().zip(gr).enumerate() {
                assert_eq!(a, b, "{what}: history row {i}");
            }
        }
        assert_eq!(wv, gv, "{what}: {key}");
    }
}

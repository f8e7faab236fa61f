//! Applying a `POST /files/{entity}/{project}/{run}/file_stream` body to the run store.
//!
//! Body shape (reference section 6b): `{"files": {<name>: {"offset": N, "content": [lines]}},
//! "uploaded": [...], "preempting": true, "complete": true, "exitcode": N}`; every key optional,
//! `{}` is a heartbeat.

use serde_json::{Value, json};

use crate::state::{Lines, RunData, RunKey, Store};

/// File names with dedicated handling.
const HISTORY: &str = "wandb-history.jsonl";
const EVENTS: &str = "wandb-events.jsonl";
const SUMMARY: &str = "wandb-summary.json";
const CONSOLE: &str = "output.log";

/// Writes further than this many lines past the end are rejected (400) instead of allocating
/// the gap.
const MAX_GAP_LINES: usize = 1_000_000;

/// Applies one file_stream body; returns the JSON reply, or an error message for a malformed
/// body (answered with 400).
pub(crate) fn apply(
    store: &mut Store,
    key: &RunKey,
    body: &Value,
    wire_bytes: u64,
) -> Result<Value, String> {
    let Some(obj) = body.as_object() else {
        return Err("file_stream body is not a JSON object".to_owned());
    };
    // Validate everything before touching the store, so a 400 changes nothing.
    let mut updates: Vec<(&str, usize, Vec<String>)> = Vec::new();
    if let Some(files) = obj.get("files") {
        let Some(files) = files.as_object() else {
            return Err("file_stream `files` is not an object".to_owned());
        };
        for (name, update) in files {
            let offset = match update.get("offset") {
                None | Some(Value::Null) => 0,
                Some(v) => v
                    .as_u64()
                    .and_then(|o| usize::try_from(o).ok())
                    .ok_or_else(|| {
                        format!("file_stream {name}: offset {v} is not a line number")
                    })?,
            };
            let content = match update.get("content") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(format!(
                            "file_stream {name}: content item {other} is not a string"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(format!("file_stream {name}: content is not a list")),
            };
            updates.push((name.as_str(), offset, content));
        }
    }
    let uploaded: Vec<String> = match obj.get("uploaded") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "file_stream `uploaded` holds a non-string".to_owned())?,
        Some(_) => return Err("file_stream `uploaded` is not a list".to_owned()),
    };

    let (run, created) = store.run_entry(key);
    for (name, offset, _) in &updates {
        let stored = match *name {
            HISTORY => run.history.len(),
            EVENTS => run.events.len(),
            CONSOLE => run.console.len(),
            SUMMARY => continue,
            other => run.other_stream_files.get(other).map_or(0, Lines::len),
        };
        if *offset > stored.saturating_add(MAX_GAP_LINES) {
            return Err(format!(
                "file_stream {name}: offset {offset} is more than {MAX_GAP_LINES} lines past \
                 the {stored} stored line(s)"
            ));
        }
    }
    if created {
        run.errors
            .push("file_stream for a run that was never upserted".to_owned());
    }
    run.counters.file_stream_requests += 1;
    run.counters.bytes_received += wire_bytes;
    if obj.is_empty() {
        run.counters.heartbeats += 1;
    }
    if run.complete && (!updates.is_empty() || !uploaded.is_empty()) {
        run.errors
            .push("file_stream data received after complete".to_owned());
    }
    for (name, offset, content) in updates {
        apply_file(run, name, offset, &content);
    }
    for name in uploaded {
        if !run.uploaded.contains(&name) {
            run.uploaded.push(name);
        }
    }
    if obj.get("preempting").and_then(Value::as_bool) == Some(true) {
        run.preempting = true;
    }
    if obj.get("complete").and_then(Value::as_bool) == Some(true) {
        run.complete = true;
    }
    if let Some(code) = obj.get("exitcode").and_then(Value::as_i64) {
        run.exit_code = Some(code);
    }
    let mut reply = json!({"exitcode": null, "limits": {}});
    if run.stop_requested
        && let Some(map) = reply.as_object_mut()
    {
        map.insert("stopped".to_owned(), Value::Bool(true));
    }
    Ok(reply)
}

fn write_lines(
    lines: &mut Lines,
    errors: &mut Vec<String>,
    name: &str,
    offset: usize,
    content: &[String],
) -> (u64, u64, u64) {
    let before = lines.len();
    let outcome = lines.write(offset, content);
    if outcome.gap_before > 0 {
        errors.push(format!(
            "{name}: gap of {} line(s): write at offset {offset} but only {before} line(s) stored",
            outcome.gap_before
        ));
    }
    (outcome.gap_before, outcome.changed, outcome.identical)
}

fn apply_file(run: &mut RunData, name: &str, offset: usize, content: &[String]) {
    match name {
        HISTORY => {
            let (gaps, changed, identical) =
                write_lines(&mut run.history, &mut run.errors, name, offset, content);
            run.counters.history_gaps += gaps;
            run.counters.duplicate_line_writes += changed;
            run.counters.identical_line_rewrites += identical;
        }
        EVENTS => {
            let (gaps, changed, identical) =
                write_lines(&mut run.events, &mut run.errors, name, offset, content);
            run.counters.events_gaps += gaps;
            run.counters.duplicate_line_writes += changed;
            run.counters.identical_line_rewrites += identical;
        }
        CONSOLE => {
            let (gaps, changed, identical) =
                write_lines(&mut run.console, &mut run.errors, name, offset, content);
            run.counters.console_gaps += gaps;
            run.counters.console_overwrites += changed + identical;
        }
        SUMMARY => {
            if let Some(last) = content.last() {
                run.summary_raw = Some(last.clone());
            }
        }
        other => {
            let lines = run.other_stream_files.entry(other.to_owned()).or_default();
            lines.write(offset, content);
        }
    }
}

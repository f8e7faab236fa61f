//! Protocol tests: raw HTTP requests against the backend (upsert, file_stream with offsets,
//! gzip, uploads, completion, the other GraphQL operations, auth and the control endpoints),
//! checking the reconstructed state.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;

use common::{file_stream, gql, graphql, history_line, request, upsert_vars};
use serde_json::{Value, json};
use wandb_testkit::{BackendConfig, DEFAULT_ENTITY, DEFAULT_PROJECT, TestBackend};

#[test]
fn upsert_defaults_merge_and_history_line_count() {
    let backend = TestBackend::start().unwrap();
    let mut vars = upsert_vars("run1", None, None);
    vars["config"] = json!(r#"{"lr":{"value":0.1},"_wandb":{"value":{"cli_version":"0.31.0"}}}"#);
    vars["tags"] = json!(["a", "b"]);
    vars["displayName"] = json!("first name");
    vars["host"] = json!("vm");
    let reply = gql(&backend, "UpsertBucket", vars);
    let up = &reply["data"]["upsertBucket"];
    assert_eq!(up["inserted"], true);
    assert_eq!(up["bucket"]["name"], "run1");
    assert_eq!(up["bucket"]["historyLineCount"], 0);
    assert_eq!(up["bucket"]["project"]["name"], DEFAULT_PROJECT);
    assert_eq!(up["bucket"]["project"]["entity"]["name"], DEFAULT_ENTITY);
    assert_eq!(up["bucket"]["displayName"], "first name");
    assert!(up["bucket"]["config"].as_str().unwrap().contains("lr"));
    let storage_id = up["bucket"]["id"].as_str().unwrap().to_owned();

    // Stream three history lines, then a second upsert reports them.
    let lines: Vec<String> = (0..3).map(history_line).collect();
    let resp = file_stream(
        &backend,
        DEFAULT_ENTITY,
        DEFAULT_PROJECT,
        "run1",
        &json!({"files": {"wandb-history.jsonl": {"offset": 0, "content": lines}}}),
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({"exitcode": null, "limits": {}}));

    let mut vars = upsert_vars("run1", Some(DEFAULT_ENTITY), Some(DEFAULT_PROJECT));
    vars["id"] = json!(storage_id);
    vars["notes"] = json!("some notes");
    vars["config"] = json!(r#"{"lr":{"value":0.2}}"#);
    let reply = gql(&backend, "UpsertBucket", vars);
    let up = &reply["data"]["upsertBucket"];
    assert_eq!(up["inserted"], false);
    assert_eq!(up["bucket"]["historyLineCount"], 3);
    assert_eq!(up["bucket"]["id"], storage_id.as_str());

    let run = backend
        .run(DEFAULT_ENTITY, DEFAULT_PROJECT, "run1")
        .unwrap();
    assert!(run.upserted);
    assert_eq!(run.storage_id, storage_id);
    assert_eq!(
        run.display_name.as_deref(),
        Some("first name"),
        "null keeps the old value"
    );
    assert_eq!(run.notes.as_deref(), Some("some notes"));
    assert_eq!(run.tags, vec!["a", "b"]);
    assert_eq!(run.host.as_deref(), Some("vm"));
    assert_eq!(run.config_value("lr"), Some(&json!(0.2)));
    assert_eq!(run.counters.upserts, 2);
    assert_eq!(run.history.len(), 3);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let state = backend.state();
    assert_eq!(state.requests("graphql:UpsertBucket"), 2);
    assert_eq!(state.requests("file_stream"), 1);
}

#[test]
fn history_offsets_nan_rewrites_and_gaps() {
    let backend = TestBackend::start().unwrap();
    gql(
        &backend,
        "UpsertBucket",
        upsert_vars("r", Some("e"), Some("p")),
    );
    let send = |offset: u64, content: Vec<String>| {
        let body =
            json!({"files": {"wandb-history.jsonl": {"offset": offset, "content": content}}});
        let resp = file_stream(&backend, "e", "p", "r", &body).unwrap();
        assert_eq!(resp.status, 200);
    };
    send(0, (0..3).map(history_line).collect());
    send(
        3,
        vec![
            r#"{"_step":3,"x":NaN,"y":Infinity,"z":-Infinity,"s":"NaN text"}"#.to_owned(),
            history_line(4),
        ],
    );
    let run = backend.run("e", "p", "r").unwrap();
    assert_eq!(run.history.len(), 5);
    assert_eq!(run.history[3]["x"], "NaN");
    assert_eq!(run.history[3]["y"], "Infinity");
    assert_eq!(run.history[3]["z"], "-Infinity");
    assert_eq!(run.history[3]["s"], "NaN text");
    assert_eq!(run.history_values("_step").len(), 5);
    assert!(run.history_raw[3].contains("NaN"));

    // Identical re-send (a retry) and a conflicting re-send.
    send(4, vec![history_line(4)]);
    send(4, vec![json!({"_step": 4, "x": 999}).to_string()]);
    // A gap of two lines.
    send(7, vec![history_line(7)]);
    let run = backend.run("e", "p", "r").unwrap();
    assert_eq!(run.counters.identical_line_rewrites, 1);
    assert_eq!(run.counters.duplicate_line_writes, 1);
    assert_eq!(run.history[4]["x"], 999);
    assert_eq!(run.counters.history_gaps, 2);
    assert_eq!(run.counters.history_missing_lines, 2);
    assert_eq!(run.history.len(), 8);
    assert_eq!(run.history[5], Value::Null);
    assert!(
        run.errors.iter().any(|e| e.contains("gap")),
        "{:?}",
        run.errors
    );
    // Filling the gap later clears "missing" but the gap stays counted.
    send(5, vec![history_line(5), history_line(6)]);
    let run = backend.run("e", "p", "r").unwrap();
    assert_eq!(run.counters.history_missing_lines, 0);
    assert_eq!(run.counters.history_gaps, 2);
}

#[test]
fn gzip_events_summary_console_uploaded_complete() {
    let backend = TestBackend::start().unwrap();
    gql(
        &backend,
        "UpsertBucket",
        upsert_vars("r", Some("e"), Some("p")),
    );
    let body = json!({
        "files": {
            "wandb-events.jsonl": {"offset": 0, "content": [r#"{"_wandb":true,"_runtime":1.5,"system.cpu":3}"#]},
            "wandb-summary.json": {"offset": 0, "content": [r#"{"_runtime":0,"x":1}"#]},
            "output.log": {"offset": 0, "content": [
                "2026-11-22T02:35:12.440515 hello",
                "ERROR 2026-11-22T02:35:12.440600 oops",
                "2026-11-22T02:35:12.440700 progress 10%",
            ]},
        },
    });
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.to_string().as_bytes()).unwrap();
    let gz = encoder.finish().unwrap();
    let auth = backend.auth_header();
    let resp = request(
        backend.addr(),
        "POST",
        "/files/e/p/r/file_stream",
        &[("Authorization", &auth), ("Content-Encoding", "gzip")],
        &gz,
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));

    // Progress-bar style overwrite, summary replacement, uploaded, preempting, completion.
    let body = json!({
        "files": {
            "output.log": {"offset": 2, "content": ["2026-11-22T02:35:13.000000 progress 100%"]},
            "wandb-summary.json": {"offset": 0, "content": [r#"{"_runtime":2,"x":5,"nan":NaN}"#]},
        },
        "uploaded": ["config.yaml", "output.log"],
        "preempting": true,
    });
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &body).unwrap().status,
        200
    );
    let heartbeat = file_stream(&backend, "e", "p", "r", &json!({})).unwrap();
    assert_eq!(heartbeat.status, 200);
    let body =
        json!({"uploaded": ["config.yaml", "wandb-summary.json"], "complete": true, "exitcode": 3});
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &body).unwrap().status,
        200
    );

    let run = backend.run("e", "p", "r").unwrap();
    assert_eq!(run.events.len(), 1);
    assert_eq!(run.events[0]["system.cpu"], 3);
    assert_eq!(run.summary.as_ref().unwrap()["x"], 5);
    assert_eq!(run.summary.as_ref().unwrap()["nan"], "NaN");
    assert_eq!(run.console.len(), 3);
    assert_eq!(run.console_text(), vec!["hello", "oops", "progress 100%"]);
    assert_eq!(run.counters.console_overwrites, 1);
    assert_eq!(run.counters.duplicate_line_writes, 0);
    assert_eq!(
        run.uploaded,
        vec!["config.yaml", "output.log", "wandb-summary.json"]
    );
    assert!(run.preempting);
    assert!(run.complete);
    assert_eq!(run.exit_code, Some(3));
    assert_eq!(run.counters.heartbeats, 1);
    assert_eq!(run.counters.file_stream_requests, 4);
    let state = backend.state();
    assert_eq!(state.counters.gzip_requests, 1);
    assert!(state.counters.bytes_received > 0);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
}

#[test]
fn create_run_files_and_uploads() {
    let backend = TestBackend::start().unwrap();
    gql(
        &backend,
        "UpsertBucket",
        upsert_vars("r 1", Some("e"), Some("p")),
    );
    let reply = gql(
        &backend,
        "CreateRunFiles",
        json!({"entity": "e", "project": "p", "run": "r 1", "files": ["config.yaml", "media/images/a b.png"]}),
    );
    let created = &reply["data"]["createRunFiles"];
    assert_eq!(created["uploadHeaders"], json!([]));
    assert!(created["runID"].as_str().is_some());
    let files = created["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[1]["name"], "media/images/a b.png");
    let urls: Vec<String> = files
        .iter()
        .map(|f| f["uploadUrl"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        urls[1],
        format!(
            "{}/_upload/e/p/r%201/media/images/a%20b.png",
            backend.base_url()
        )
    );

    let path_of = |url: &str| url.strip_prefix(&backend.base_url()).unwrap().to_owned();
    // Uploads carry no Authorization header, like the official client.
    for body in [&b"a: 1\n"[..], &b"a: 2\n"[..]] {
        let resp = request(backend.addr(), "PUT", &path_of(&urls[0]), &[], body).unwrap();
        assert_eq!(resp.status, 200);
    }
    let png = [0x89u8, b'P', b'N', b'G', 0xff, 0x00];
    let resp = request(backend.addr(), "PUT", &path_of(&urls[1]), &[], &png).unwrap();
    assert_eq!(resp.status, 200);
    let download = request(backend.addr(), "GET", &path_of(&urls[1]), &[], b"").unwrap();
    assert_eq!(download.body, png);

    let run = backend.run("e", "p", "r 1").unwrap();
    assert_eq!(
        run.requested_files,
        vec!["config.yaml", "media/images/a b.png"]
    );
    let config = run.file("config.yaml").unwrap();
    assert_eq!(config.put_count, 2);
    assert_eq!(config.text(), Some("a: 2\n"));
    assert_eq!(config.size, 5);
    let image = run.file("media/images/a b.png").unwrap();
    assert_eq!(image.bytes, png);
    use sha2::Digest as _;
    let expected: String = sha2::Sha256::digest(png)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(image.sha256, expected);
    assert_eq!(image.sha256.len(), 64);
    assert_eq!(run.counters.upload_puts, 3);
    assert_eq!(run.counters.create_run_files_calls, 1);
    // The JSON dump shows binary files as base64.
    let dumped: Value = serde_json::from_str(&backend.state_json().unwrap()).unwrap();
    let image_json = &dumped["runs"][0]["files"]["media/images/a b.png"]["bytes"];
    assert!(image_json.as_str().unwrap().starts_with("base64:"));
    assert_eq!(dumped["runs"][0]["files"]["config.yaml"]["bytes"], "a: 2\n");
}

#[test]
fn other_operations() {
    let backend = TestBackend::start_with(BackendConfig {
        features: vec!["FILESTREAM_GZIP".to_owned()],
        ..BackendConfig::default()
    })
    .unwrap();
    let reply = gql(&backend, "ServerFeaturesQuery", json!({}));
    assert_eq!(
        reply["data"]["serverInfo"]["features"],
        json!([{"name": "FILESTREAM_GZIP", "isEnabled": true}])
    );
    backend.set_features(["STRUCTURED_CONSOLE_LOGS"]);
    let reply = gql(&backend, "ServerFeaturesQuery", json!({}));
    assert_eq!(
        reply["data"]["serverInfo"]["features"][0]["name"],
        "STRUCTURED_CONSOLE_LOGS"
    );

    let reply = gql(&backend, "Viewer", json!({}));
    assert_eq!(reply["data"]["viewer"]["entity"], DEFAULT_ENTITY);
    let reply = gql(&backend, "ServerInfo", json!({}));
    assert!(reply["data"]["serverInfo"].is_object());

    // RunResumeStatus before and after the run exists.
    let vars = json!({"project": "p", "entity": "e", "name": "r"});
    let reply = gql(&backend, "RunResumeStatus", vars.clone());
    assert_eq!(reply["data"]["model"]["bucket"], Value::Null);
    let mut up = upsert_vars("r", Some("e"), Some("p"));
    up["config"] = json!(r#"{"_wandb":{"value":{"t":{"1":[1,2]}}}}"#);
    gql(&backend, "UpsertBucket", up);
    let lines: Vec<String> = (0..4).map(history_line).collect();
    let body = json!({"files": {"wandb-history.jsonl": {"offset": 0, "content": lines},
                               "output.log": {"offset": 0, "content": ["a", "b"]}}});
    file_stream(&backend, "e", "p", "r", &body).unwrap();
    let reply = gql(&backend, "RunResumeStatus", vars);
    let bucket = &reply["data"]["model"]["bucket"];
    assert_eq!(bucket["historyLineCount"], 4);
    assert_eq!(bucket["logLineCount"], 2);
    assert_eq!(bucket["eventsLineCount"], 0);
    let tail: Vec<String> = serde_json::from_str(bucket["historyTail"].as_str().unwrap()).unwrap();
    assert_eq!(tail.len(), 4);
    assert_eq!(bucket["wandbConfig"], r#"{"t":{"1":[1,2]}}"#);

    let reply = gql(
        &backend,
        "NotifyScriptableRunAlert",
        json!({"entityName": "e", "projectName": "p", "runName": "r", "title": "T",
               "text": "body", "severity": "WARN", "waitDuration": null}),
    );
    assert_eq!(reply["data"]["notifyScriptableRunAlert"]["success"], true);
    let reply = gql(
        &backend,
        "MarkRunFilesUploaded",
        json!({"entity": "e", "project": "p", "run": "r", "files": ["x.txt"]}),
    );
    assert_eq!(reply["data"]["markRunFilesUploaded"]["success"], true);

    // Unknown operation: HTTP 200 with a GraphQL error.
    let reply = gql(&backend, "DeleteEverything", json!({}));
    assert!(
        reply["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("DeleteEverything")
    );

    // No operationName: sniffed from the query text.
    let body = json!({"query": "mutation UpsertBucket($name: String) { upsertBucket(input: {name: $name}) { inserted } }",
                      "variables": {"name": "sniffed"}});
    let auth = backend.auth_header();
    let resp = request(
        backend.addr(),
        "POST",
        "/graphql",
        &[("Authorization", &auth)],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.json()["data"]["upsertBucket"]["inserted"], true);

    let state = backend.state();
    let run = state.run("e", "p", "r").unwrap();
    assert_eq!(run.alerts.len(), 1);
    assert_eq!(run.alerts[0].severity.as_deref(), Some("WARN"));
    assert_eq!(run.marked_uploaded, vec!["x.txt"]);
    assert!(state.find_run("sniffed").is_some());
    assert_eq!(state.requests("graphql:DeleteEverything"), 1);
    assert!(state.errors.iter().any(|e| e.contains("DeleteEverything")));
}

#[test]
fn auth_is_checked_on_graphql_and_file_stream_only() {
    let backend = TestBackend::start().unwrap();
    let body = json!({"query": "query Viewer { viewer { id } }", "operationName": "Viewer"});
    let missing = request(
        backend.addr(),
        "POST",
        "/graphql",
        &[],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(missing.status, 401);
    use base64::Engine as _;
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("api:not-the-key")
    );
    let resp = request(
        backend.addr(),
        "POST",
        "/graphql",
        &[("Authorization", &wrong)],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 401);
    let resp = request(
        backend.addr(),
        "POST",
        "/files/e/p/r/file_stream",
        &[("Authorization", &wrong)],
        b"{}",
    )
    .unwrap();
    assert_eq!(resp.status, 401);
    let ok = graphql(&backend, "Viewer", json!({})).unwrap();
    assert_eq!(ok.status, 200);
    let put = request(backend.addr(), "PUT", "/_upload/e/p/r/f.txt", &[], b"x").unwrap();
    assert_eq!(put.status, 200);
    let state = backend.state();
    assert_eq!(state.counters.auth_failures, 3);
    assert!(state.find_run("r").unwrap().counters.file_stream_requests == 0);

    // With auth disabled anything goes.
    let open = TestBackend::start_with(BackendConfig {
        check_auth: false,
        ..BackendConfig::default()
    })
    .unwrap();
    let resp = request(
        open.addr(),
        "POST",
        "/graphql",
        &[],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200);
}

#[test]
fn bad_bodies_get_400_and_unknown_paths_404() {
    let backend = TestBackend::start().unwrap();
    let auth = backend.auth_header();
    let resp = request(
        backend.addr(),
        "POST",
        "/files/e/p/r/file_stream",
        &[("Authorization", &auth)],
        b"not json",
    )
    .unwrap();
    assert_eq!(resp.status, 400);
    let resp = request(
        backend.addr(),
        "POST",
        "/files/e/p/r/file_stream",
        &[("Authorization", &auth)],
        br#"{"files": {"wandb-history.jsonl": {"offset": -1, "content": []}}}"#,
    )
    .unwrap();
    assert_eq!(resp.status, 400);
    let resp = request(
        backend.addr(),
        "POST",
        "/files/e/p/r/file_stream",
        &[("Authorization", &auth)],
        br#"{"files": {"output.log": {"offset": 1000000000000, "content": ["x"]}}}"#,
    )
    .unwrap();
    assert_eq!(resp.status, 400);
    let resp = request(backend.addr(), "GET", "/nope", &[], b"").unwrap();
    assert_eq!(resp.status, 404);
    let otel = request(backend.addr(), "POST", "/sdk/otel/v1/metrics", &[], b"").unwrap();
    assert_eq!(otel.status, 200);
    let state = backend.state();
    assert_eq!(state.errors.len(), 3, "{:?}", state.errors);
    assert!(state.runs.iter().all(|r| r.console.is_empty()));
    assert_eq!(state.requests("otel"), 1);
    assert_eq!(state.requests("other"), 1);
}

#[test]
fn state_endpoint_reset_and_request_log() {
    let backend = TestBackend::start().unwrap();
    gql(&backend, "UpsertBucket", upsert_vars("r", None, None));
    let resp = request(backend.addr(), "GET", "/_state", &[], b"").unwrap();
    assert_eq!(resp.status, 200);
    let state = resp.json();
    assert_eq!(state["runs"][0]["run_id"], "r");
    assert_eq!(state["runs"][0]["entity"], DEFAULT_ENTITY);
    assert_eq!(state["request_log"][0]["operation"], "UpsertBucket");
    assert_eq!(state["request_log"][0]["status"], 200);
    assert!(state["counters"]["requests"]["graphql"].as_u64() == Some(1));
    let resp = request(backend.addr(), "GET", "/_health", &[], b"").unwrap();
    assert_eq!(resp.body, b"ok");
    let resp = request(backend.addr(), "POST", "/_reset", &[], b"").unwrap();
    assert_eq!(resp.status, 200);
    assert!(backend.state().runs.is_empty());
    let resp = request(
        backend.addr(),
        "POST",
        "/_features",
        &[],
        br#"{"features": ["FILESTREAM_GZIP"]}"#,
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(backend.state().features, vec!["FILESTREAM_GZIP"]);
}

#[test]
fn stop_flag_is_reported_on_file_stream() {
    let backend = TestBackend::start().unwrap();
    gql(
        &backend,
        "UpsertBucket",
        upsert_vars("r", Some("e"), Some("p")),
    );
    assert!(backend.request_stop("e", "p", "r"));
    assert!(!backend.request_stop("e", "p", "missing"));
    let resp = file_stream(&backend, "e", "p", "r", &json!({})).unwrap();
    assert_eq!(resp.json()["stopped"], true);
}

#[test]
fn data_for_unknown_runs_is_kept_and_flagged() {
    let backend = TestBackend::start().unwrap();
    let body =
        json!({"files": {"wandb-history.jsonl": {"offset": 0, "content": [history_line(0)]}}});
    assert_eq!(
        file_stream(&backend, "e", "p", "ghost", &body)
            .unwrap()
            .status,
        200
    );
    let run = backend.run("e", "p", "ghost").unwrap();
    assert!(!run.upserted);
    assert_eq!(run.history.len(), 1);
    assert!(run.errors[0].contains("never upserted"));
}

#[test]
fn upsert_after_complete_reopens_the_run() {
    let backend = TestBackend::start().unwrap();
    gql(
        &backend,
        "UpsertBucket",
        upsert_vars("r", Some("e"), Some("p")),
    );
    let done = json!({"complete": true, "exitcode": 0});
    file_stream(&backend, "e", "p", "r", &done).unwrap();
    assert!(backend.run("e", "p", "r").unwrap().complete);
    gql(
        &backend,
        "UpsertBucket",
        upsert_vars("r", Some("e"), Some("p")),
    );
    let run = backend.run("e", "p", "r").unwrap();
    assert!(!run.complete);
    assert_eq!(run.exit_code, None);
    assert_eq!(run.counters.reopened, 1);
    let body = json!({"files": {"wandb-history.jsonl": {"offset": 0, "content": [history_line(0)]}},
                      "complete": true, "exitcode": 1});
    file_stream(&backend, "e", "p", "r", &body).unwrap();
    let run = backend.run("e", "p", "r").unwrap();
    assert_eq!((run.complete, run.exit_code), (true, Some(1)));
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let state = backend.state();
    let vars = state.request_log[0].variables.as_ref().unwrap();
    assert_eq!(vars["name"], "r");
}

#[test]
fn run_url_answers_with_the_runs_state() {
    let backend = TestBackend::start().unwrap();
    gql(&backend, "UpsertBucket", upsert_vars("pageRun", None, None));
    let path = format!("/{DEFAULT_ENTITY}/{DEFAULT_PROJECT}/runs/pageRun");
    let found = request(backend.addr(), "GET", &path, &[], b"").unwrap();
    assert_eq!(found.status, 200);
    let state = found.json();
    assert_eq!(state["run_id"], "pageRun");
    assert_eq!(state["project"], DEFAULT_PROJECT);

    let path = format!("/{DEFAULT_ENTITY}/{DEFAULT_PROJECT}/runs/nope");
    let missing = request(backend.addr(), "GET", &path, &[], b"").unwrap();
    assert_eq!(missing.status, 404);
    assert!(
        String::from_utf8_lossy(&missing.body).contains("no run"),
        "{:?}",
        String::from_utf8_lossy(&missing.body)
    );
}

#[test]
fn the_link_model_delays_each_exchange_and_caps_bandwidth() {
    use std::time::{Duration, Instant};
    use wandb_testkit::LinkModel;

    let rtt = Duration::from_millis(200);
    let backend = TestBackend::start_with(BackendConfig {
        link: Some(LinkModel::with_rtt(rtt).megabits_per_second(8)),
        ..BackendConfig::default()
    })
    .unwrap();
    // A request on a new connection: the handshake's round trip plus the request's.
    let started = Instant::now();
    let reply = request(backend.addr(), "GET", "/_health", &[], b"").unwrap();
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= 2 * rtt, "{:?}", started.elapsed());

    // 1 MB at 8 Mbit/s needs a second on the wire; the model cannot be faster than that.
    let body = vec![b'x'; 1_000_000];
    let started = Instant::now();
    let reply = request(backend.addr(), "POST", "/_health", &[], &body).unwrap();
    assert_eq!(reply.status, 405);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

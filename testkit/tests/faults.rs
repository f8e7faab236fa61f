//! Fault-injection tests: every fault mode, route targeting, skip counts, the `/_faults`
//! endpoint, and stop/restart on the same port.

#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::time::{Duration, Instant};

use common::{file_stream, gql, graphql, history_line, request, upsert_vars};
use serde_json::json;
use wandb_testkit::{FaultAction, FaultRule, Route, TestBackend};

fn history_body(offset: u64) -> serde_json::Value {
    json!({"files": {"wandb-history.jsonl": {"offset": offset, "content": [history_line(offset)]}}})
}

fn setup() -> TestBackend {
    let backend = TestBackend::start().unwrap();
    gql(
        &backend,
        "UpsertBucket",
        upsert_vars("r", Some("e"), Some("p")),
    );
    backend
}

fn history_len(backend: &TestBackend) -> usize {
    backend.run("e", "p", "r").unwrap().history.len()
}

#[test]
fn fail_next_is_per_route_and_not_applied() {
    let backend = setup();
    backend.faults().fail_next(Route::FileStream, 2, 503);
    // GraphQL is not affected.
    assert_eq!(graphql(&backend, "Viewer", json!({})).unwrap().status, 200);
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(0))
            .unwrap()
            .status,
        503
    );
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(0))
            .unwrap()
            .status,
        503
    );
    assert_eq!(history_len(&backend), 0);
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(0))
            .unwrap()
            .status,
        200
    );
    assert_eq!(history_len(&backend), 1);
    assert!(backend.faults().pending().is_empty());
    let injected = backend.faults().injected();
    assert_eq!(injected.len(), 2);
    assert_eq!(injected[0].action, FaultAction::Status { code: 503 });
    let state = backend.state();
    assert_eq!(state.counters.faults_injected, 2);
    let statuses: Vec<u16> = state.request_log.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![200, 200, 503, 503, 200]);
}

#[test]
fn statuses_500_502_and_any_route() {
    let backend = setup();
    backend.faults().fail_next(Route::Any, 1, 500);
    backend.faults().fail_next(Route::Upload, 1, 502);
    assert_eq!(graphql(&backend, "Viewer", json!({})).unwrap().status, 500);
    let put = request(backend.addr(), "PUT", "/_upload/e/p/r/a.txt", &[], b"x").unwrap();
    assert_eq!(put.status, 502);
    let put = request(backend.addr(), "PUT", "/_upload/e/p/r/a.txt", &[], b"x").unwrap();
    assert_eq!(put.status, 200);
    assert_eq!(
        backend
            .run("e", "p", "r")
            .unwrap()
            .file("a.txt")
            .unwrap()
            .put_count,
        1
    );
}

#[test]
fn rate_limit_sends_retry_after() {
    let backend = setup();
    backend.faults().rate_limit_next(Route::Graphql, 1, 7);
    let resp = graphql(&backend, "Viewer", json!({})).unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("7"));
    assert_eq!(graphql(&backend, "Viewer", json!({})).unwrap().status, 200);
}

#[test]
fn reset_gives_no_response_and_is_not_applied() {
    let backend = setup();
    backend.faults().reset_next(Route::FileStream, 1);
    let err = file_stream(&backend, "e", "p", "r", &history_body(0)).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
        ),
        "{err:?}"
    );
    assert_eq!(history_len(&backend), 0);
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(0))
            .unwrap()
            .status,
        200
    );
    let state = backend.state();
    let log: Vec<(u16, Option<String>)> = state
        .request_log
        .iter()
        .map(|e| (e.status, e.fault.clone()))
        .collect();
    assert_eq!(log[1], (0, Some("reset".to_owned())));
}

#[test]
fn reset_is_a_real_rst() {
    let backend = setup();
    backend.faults().reset_next(Route::Graphql, 1);
    let err = graphql(&backend, "Viewer", json!({})).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err:?}");
}

#[test]
fn close_gives_eof_without_response() {
    let backend = setup();
    backend.faults().close_next(Route::Graphql, 1);
    let err = graphql(&backend, "Viewer", json!({})).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err:?}");
    assert_eq!(graphql(&backend, "Viewer", json!({})).unwrap().status, 200);
}

#[test]
fn drop_response_applies_then_resets() {
    let backend = setup();
    backend.faults().drop_response_next(Route::FileStream, 1);
    assert!(file_stream(&backend, "e", "p", "r", &history_body(0)).is_err());
    assert_eq!(
        history_len(&backend),
        1,
        "applied although no response was sent"
    );
    // The client retries: the server sees an identical rewrite.
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(0))
            .unwrap()
            .status,
        200
    );
    let run = backend.run("e", "p", "r").unwrap();
    assert_eq!(run.counters.identical_line_rewrites, 1);
    assert_eq!(run.counters.duplicate_line_writes, 0);
}

#[test]
fn delay_slows_responses() {
    let backend = setup();
    backend
        .faults()
        .delay_next(Route::FileStream, 1, Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(0))
            .unwrap()
            .status,
        200
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(1))
            .unwrap()
            .status,
        200
    );
    assert!(start.elapsed() < Duration::from_millis(300));
    assert_eq!(history_len(&backend), 2);
}

#[test]
fn skip_and_operation_routes_are_deterministic() {
    for _ in 0..3 {
        let backend = setup();
        backend.faults().push(
            FaultRule::new(
                Route::GraphqlOperation("CreateRunFiles".to_owned()),
                FaultAction::Status { code: 500 },
            )
            .after(1)
            .times(2),
        );
        let vars = json!({"entity": "e", "project": "p", "run": "r", "files": ["a"]});
        let statuses: Vec<u16> = (0..4)
            .map(|_| {
                assert_eq!(graphql(&backend, "Viewer", json!({})).unwrap().status, 200);
                graphql(&backend, "CreateRunFiles", vars.clone())
                    .unwrap()
                    .status
            })
            .collect();
        assert_eq!(statuses, vec![200, 500, 500, 200]);
        let seqs: Vec<u64> = backend
            .faults()
            .injected()
            .iter()
            .map(|f| f.request_seq)
            .collect();
        assert_eq!(seqs, vec![4, 6]);
    }
}

#[test]
fn faults_endpoint_accepts_json_rules() {
    let backend = setup();
    let rules = r#"{"clear": true, "rules": [
        {"route": "file_stream", "action": {"status": {"code": 502}}, "times": 1},
        {"route": "graphql", "action": {"rate_limit": {"retry_after_secs": 2}}}
    ]}"#;
    let resp = request(backend.addr(), "POST", "/_faults", &[], rules.as_bytes()).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["pending"].as_array().unwrap().len(), 2);
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(0))
            .unwrap()
            .status,
        502
    );
    let resp = graphql(&backend, "Viewer", json!({})).unwrap();
    assert_eq!((resp.status, resp.header("Retry-After")), (429, Some("2")));
    let resp = request(backend.addr(), "GET", "/_faults", &[], b"").unwrap();
    assert_eq!(resp.json()["injected"].as_array().unwrap().len(), 2);
    let bad = request(
        backend.addr(),
        "POST",
        "/_faults",
        &[],
        br#"[{"route": "nowhere"}]"#,
    )
    .unwrap();
    assert_eq!(bad.status, 400);
}

#[test]
fn stop_and_restart_keep_state_and_port() {
    let backend = setup();
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(0))
            .unwrap()
            .status,
        200
    );
    let addr = backend.addr();
    backend.stop().unwrap();
    assert!(!backend.is_running());
    let err = request(addr, "GET", "/_health", &[], b"").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
    backend.stop().unwrap(); // idempotent
    backend.restart().unwrap();
    assert!(backend.is_running());
    assert_eq!(backend.addr(), addr);
    assert_eq!(
        file_stream(&backend, "e", "p", "r", &history_body(1))
            .unwrap()
            .status,
        200
    );
    assert_eq!(history_len(&backend), 2);
    // Restart while running also works.
    backend.restart().unwrap();
    assert_eq!(graphql(&backend, "Viewer", json!({})).unwrap().status, 200);
}

#[test]
fn stop_for_from_another_thread() {
    let backend = setup();
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| backend.stop_for(Duration::from_millis(1500)));
        // Poll until the server is down (bounded), then expect a refusal.
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut refused = false;
        while Instant::now() < deadline {
            if request(backend.addr(), "GET", "/_health", &[], b"").is_err() {
                refused = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(refused, "server never went down");
        handle.join().unwrap().unwrap();
    });
    assert_eq!(
        request(backend.addr(), "GET", "/_health", &[], b"")
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn handle_is_usable_and_droppable_inside_async_tests() {
    let backend = setup();
    backend.faults().fail_next(Route::Graphql, 1, 500);
    let addr = backend.addr();
    let status = tokio::task::spawn_blocking(move || {
        common::request(addr, "GET", "/_health", &[], b"")
            .unwrap()
            .status
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    backend.restart().unwrap();
    drop(backend);
}

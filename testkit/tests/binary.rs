//! Tests of the `wandb-test-backend` binary: prints its URL, serves, takes faults over HTTP,
//! and dumps the state as JSON when terminated.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::request;
use serde_json::{Value, json};

#[test]
fn binary_serves_and_dumps_state_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wandb-test-backend"))
        .args(["--any-key", "--feature", "FILESTREAM_GZIP", "--dump"])
        .arg(&dump)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_owned();
    let addr: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback());

    let faults = r#"[{"route": "graphql", "action": {"status": {"code": 502}}}]"#;
    assert_eq!(
        request(addr, "POST", "/_faults", &[], faults.as_bytes())
            .unwrap()
            .status,
        200
    );
    let upsert = json!({"operationName": "UpsertBucket", "query": "mutation UpsertBucket { x }",
                        "variables": {"name": "bin-run", "project": null, "entity": null}});
    let body = upsert.to_string();
    assert_eq!(
        request(addr, "POST", "/graphql", &[], body.as_bytes())
            .unwrap()
            .status,
        502
    );
    let resp = request(addr, "POST", "/graphql", &[], body.as_bytes()).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json()["data"]["upsertBucket"]["bucket"]["name"],
        "bin-run"
    );
    let live: Value = request(addr, "GET", "/_state", &[], b"").unwrap().json();
    assert_eq!(live["runs"][0]["run_id"], "bin-run");
    assert_eq!(live["features"], json!(["FILESTREAM_GZIP"]));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "backend did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let dumped: Value = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    assert_eq!(dumped["runs"][0]["run_id"], "bin-run");
    assert_eq!(dumped["counters"]["faults_injected"], 1);
}

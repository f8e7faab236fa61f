//! Every network wait is bounded: a server that accepts a request and never answers (or never
//! finishes its reply) costs at most the run's `--timeout`, and a server that cannot be reached
//! is reported on stderr at once and given up on after the short budget.
//!
//! These tests run the real binary with a wall-clock guard: a sync still running after
//! [`GUARD`] is killed and the test fails (a hang), without asserting anything about speed.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wandb_testkit::{FaultAction, FaultRule, Route, TestBackend};

use crate::common::{RunSpec, assert_clean, write_run};

/// Longest a sync may run before the test calls it a hang.
const GUARD: Duration = Duration::from_secs(90);

fn command(home: &Path, base_url: &str, key: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wandb-sync"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WANDB_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(home)
        .env("HOME", home)
        .env("NETRC", home.join("netrc"))
        .env("WANDB_CONFIG_DIR", home.join("config"))
        .env("WANDB_SYNC_TEST_FAST_RETRY", "1")
        .env("WANDB_SYNC_NO_PROGRESS", "1")
        .env("WANDB_BASE_URL", base_url)
        .env("WANDB_API_KEY", key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for the child, killing it (and failing the test) after [`GUARD`].
fn wait_guarded(mut child: Child, what: &str) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > GUARD {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: wandb-sync still running after {GUARD:?} (a hang); killed. stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn spec() -> RunSpec {
    let mut spec = RunSpec::new("stallrun", 300);
    spec.console_every = 50;
    spec.files = vec!["a.txt".into(), "sub/b.txt".into()];
    spec
}

#[test]
fn a_stalled_server_costs_at_most_the_budget_and_the_rerun_completes_once() {
    type Plan = fn(&TestBackend);
    let plans: [(&str, &str, Plan); 6] = [
        ("upload never answered", "PUT", |b| {
            b.faults().stall_next(Route::Upload, 1);
        }),
        ("upload reply never finished", "PUT", |b| {
            b.faults().stall_body_next(Route::Upload, 1);
        }),
        // The run is small: its lines go with the final file_stream request, the only one.
        ("file_stream never answered", "file_stream", |b| {
            b.faults()
                .push(FaultRule::new(Route::FileStream, FaultAction::Stall));
        }),
        ("file_stream reply never finished", "file_stream", |b| {
            b.faults()
                .push(FaultRule::new(Route::FileStream, FaultAction::StallBody));
        }),
        ("GraphQL never answered", "UpsertBucket", |b| {
            b.faults()
                .stall_next(Route::GraphqlOperation("UpsertBucket".into()), 1);
        }),
        ("GraphQL reply never finished", "CreateRunFiles", |b| {
            b.faults()
                .stall_body_next(Route::GraphqlOperation("CreateRunFiles".into()), 1);
        }),
    ];
    for (what, request, plan) in plans {
        let home = tempfile::tempdir().unwrap();
        let path = write_run(&home.path().join("wandb"), &spec());
        let backend = TestBackend::start().unwrap();
        plan(&backend);
        let url = backend.base_url();
        let key = backend.api_key().to_owned();
        let child = command(home.path(), &url, &key)
            .args(["--timeout", "3"])
            .arg(&path)
            .spawn()
            .unwrap();
        let out = wait_guarded(child, what);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {all}");
        assert!(all.contains("time budget"), "{what}: {all}");
        assert!(
            all.contains(request),
            "{what}: the error names the request: {all}"
        );
        assert!(!all.contains(&key), "{what}: the key was printed");
        assert!(backend.faults().injected_count() > 0, "{what}: no stall");
        let marker = path.with_extension("wandb.synced");
        assert!(!marker.exists(), "{what}: marked synced");

        // The server recovers: the re-run completes, every line exactly once.
        backend.faults().clear();
        let child = command(home.path(), &url, &key)
            .args(["--timeout", "60"])
            .arg(&path)
            .spawn()
            .unwrap();
        let out = wait_guarded(child, what);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out));
        let state = backend.state();
        assert_eq!(state.runs.len(), 1, "{what}");
        let run = &state.runs[0];
        assert_clean(run);
        assert_eq!(run.history.len(), 300, "{what}");
        assert!(run.file("a.txt").is_some(), "{what}");
        assert!(run.file("sub/b.txt").is_some(), "{what}");
        assert!(marker.exists(), "{what}");
    }
}

#[test]
fn a_stalled_run_fails_alone_and_the_other_runs_go_on() {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    for id in ["first", "second"] {
        let mut spec = RunSpec::new(id, 50);
        spec.files = vec!["a.txt".into()];
        write_run(&wandb, &spec);
    }
    let backend = TestBackend::start().unwrap();
    backend.faults().stall_next(Route::Upload, 1);
    let key = backend.api_key().to_owned();
    let child = command(home.path(), &backend.base_url(), &key)
        .args(["--timeout", "3", "-j", "2"])
        .arg(&wandb)
        .spawn()
        .unwrap();
    let out = wait_guarded(child, "two runs");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("2 run(s): 1 synced, 1 failed"), "{all}");
    assert_eq!(backend.faults().injected_count(), 1);
    let state = backend.state();
    assert_eq!(state.runs.iter().filter(|r| r.complete).count(), 1, "{all}");
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn unreachable_servers_are_reported_at_once_and_given_up_on() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("nohost", 20));
    let key = "k".repeat(40);
    let port = closed_port();
    let cases = [
        (
            format!("http://127.0.0.1:{port}"),
            format!("cannot reach 127.0.0.1:{port}: connection refused"),
        ),
        (
            "http://wandb-sync-test.invalid".to_owned(),
            "cannot reach wandb-sync-test.invalid: the host name does not resolve".to_owned(),
        ),
    ];
    for (url, message) in cases {
        let child = command(home.path(), &url, &key)
            .args(["--unreachable-timeout", "2", "--timeout", "3600"])
            .arg(&path)
            .spawn()
            .unwrap();
        let out = wait_guarded(child, &url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{url}: {stderr}");
        let first = stderr
            .lines()
            .position(|l| l.contains(&message))
            .unwrap_or_else(|| panic!("{url}: no line {message:?} in:\n{stderr}"));
        assert_eq!(
            stderr.lines().filter(|l| l.contains(&message)).count(),
            1,
            "{url}: reported once: {stderr}"
        );
        assert!(first < 2, "{url}: reported at the first failure: {stderr}");
        assert!(!text(&out).contains(&key), "{url}: the key was printed");
    }
}

#[test]
fn a_tls_failure_gives_up_at_once() {
    // The test backend speaks plain HTTP: a TLS handshake with it fails.
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("tlsfail", 20));
    let backend = TestBackend::start().unwrap();
    let url = format!("https://127.0.0.1:{}", backend.addr().port());
    let key = backend.api_key().to_owned();
    let child = command(home.path(), &url, &key)
        .args(["--unreachable-timeout", "3600", "--timeout", "3600"])
        .arg(&path)
        .spawn()
        .unwrap();
    let out = wait_guarded(child, "tls");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach 127.0.0.1:{}: TLS",
            backend.addr().port()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(&key));
}

/// The most runs in progress at once, from the backend's request log: a run is in progress from
/// its first `UpsertBucket` to its last file_stream request.
fn most_runs_at_once(backend: &TestBackend) -> usize {
    let mut spans: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for entry in backend.state().request_log {
        let run = if entry.operation.as_deref() == Some("UpsertBucket") {
            entry
                .variables
                .as_ref()
                .and_then(|v| v.get("name"))
                .and_then(|name| name.as_str())
                .map(str::to_owned)
        } else if entry.kind == "file_stream" {
            entry.path.split('/').rev().nth(1).map(str::to_owned)
        } else {
            None
        };
        if let Some(run) = run {
            let span = spans.entry(run).or_insert((entry.at_ms, entry.at_ms));
            span.0 = span.0.min(entry.at_ms);
            span.1 = span.1.max(entry.at_ms);
        }
    }
    spans
        .values()
        .map(|&(start, _)| {
            spans
                .values()
                .filter(|&&(s, e)| s <= start && start <= e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn runs_at_once_follow_the_link_and_stay_within_jobs() {
    use wandb_sync::{RunResult, sync_paths};
    use wandb_testkit::{BackendConfig, LinkModel};
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    for i in 0..4 {
        let mut spec = RunSpec::new(&format!("link{i}"), 300);
        spec.console_every = 50;
        write_run(&wandb, &spec);
    }
    let backend = TestBackend::start_with(BackendConfig {
        link: Some(LinkModel::with_rtt(Duration::from_millis(150))),
        ..BackendConfig::default()
    })
    .unwrap();
    let sync = |jobs: usize, max_jobs: usize| {
        backend.reset_state();
        for dir in std::fs::read_dir(&wandb).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let name = path.to_string_lossy().into_owned();
                if name.ends_with(".synced") || name.ends_with(".ledger.json") {
                    std::fs::remove_file(&path).unwrap();
                }
            }
        }
        let mut opts = crate::common::options(&backend, vec![wandb.clone()]);
        opts.jobs = jobs;
        opts.max_jobs = max_jobs;
        let report = sync_paths(&opts).unwrap();
        assert!(report.runs.iter().all(|r| r.result == RunResult::Synced));
        let state = backend.state();
        assert_eq!(state.runs.len(), 4);
        assert!(!state.request_log.is_empty());
        for run in &state.runs {
            assert_clean(run);
            assert_eq!(run.history.len(), 300, "{}", run.run_id);
        }
        most_runs_at_once(&backend)
    };
    // A reply takes at least the link's 150 ms round trip, so one run at a time on a fast link
    // becomes all four at once on this one; `-j 1` (jobs = max_jobs = 1) stays at one.
    assert!(sync(1, 8) > 1, "runs at once did not follow the link");
    assert_eq!(sync(1, 1), 1, "-j 1 was not an upper bound");
}

#[test]
fn file_stream_is_gzipped_only_when_the_server_advertises_it() {
    use wandb_sync::{RunResult, sync_paths};
    use wandb_testkit::BackendConfig;
    let sync = |features: Vec<String>, no_gzip: bool| {
        let home = tempfile::tempdir().unwrap();
        let wandb = home.path().join("wandb");
        let mut spec = RunSpec::new("gz", 2_000);
        spec.console_every = 100;
        write_run(&wandb, &spec);
        let backend = TestBackend::start_with(BackendConfig {
            features,
            ..BackendConfig::default()
        })
        .unwrap();
        let mut opts = crate::common::options(&backend, vec![wandb]);
        opts.chunk_bytes = 64 << 10;
        opts.no_gzip = no_gzip;
        let report = sync_paths(&opts).unwrap();
        assert_eq!(report.runs[0].result, RunResult::Synced);
        let state = backend.state();
        assert_clean(&state.runs[0]);
        let encodings = crate::common::file_stream_encodings(&state);
        assert!(encodings.len() > 1, "{encodings:?}");
        (state.runs[0].clone(), encodings, state.counters.clone())
    };
    let (gzipped, encodings, counters) = sync(vec!["FILESTREAM_GZIP".into()], false);
    assert!(
        encodings.iter().all(|e| e.as_deref() == Some("gzip")),
        "{encodings:?}"
    );
    assert!(
        counters.bytes_received * 2 < counters.bytes_decoded,
        "{counters:?}"
    );
    let (plain, encodings, counters) = sync(Vec::new(), false);
    assert!(encodings.iter().all(Option::is_none), "{encodings:?}");
    assert_eq!(counters.gzip_requests, 0);
    // `--no-gzip` (or `x_file_stream_no_gzip`): plain bodies to a server that accepts gzip.
    let (refused, encodings, counters) = sync(vec!["FILESTREAM_GZIP".into()], true);
    assert!(encodings.iter().all(Option::is_none), "{encodings:?}");
    assert_eq!(counters.gzip_requests, 0);
    assert_eq!(refused.history_raw, plain.history_raw);
    // The same lines arrive either way.
    assert_eq!(gzipped.history_raw.len(), 2_000);
    assert_eq!(gzipped.history_raw, plain.history_raw);
    assert_eq!(gzipped.events, plain.events);
    assert_eq!(gzipped.console, plain.console);
    assert_eq!(gzipped.summary, plain.summary);
}

#[test]
fn the_files_of_a_runs_end_go_up_with_one_create_run_files() {
    use wandb_sync::{RunResult, sync_paths};
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    let mut spec = RunSpec::new("ends", 50);
    spec.console_every = 10;
    write_run(&wandb, &spec);
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&crate::common::options(&backend, vec![wandb])).unwrap();
    assert_eq!(report.runs[0].result, RunResult::Synced);
    let state = backend.state();
    assert_clean(&state.runs[0]);
    let files = &state.runs[0].files;
    for name in ["wandb-summary.json", "config.yaml", "output.log"] {
        assert!(files.contains_key(name), "{name} not uploaded: {files:?}");
    }
    assert_eq!(
        state.counters.requests.get("graphql:CreateRunFiles"),
        Some(&1),
        "{:?}",
        state.counters.requests
    );
}

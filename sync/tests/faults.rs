//! After every kind of fault the server ends with the same exact state as a clean sync: no
//! duplicated, missing or changed history row, the same summary, files and completion, over
//! HTTP/1.1 and over HTTP/2.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::{BackendConfig, FaultAction, FaultRule, Https, Route, TestBackend};

use crate::common::{RunSpec, assert_clean, assert_same, essence, options, write_run};

fn spec() -> RunSpec {
    let mut spec = RunSpec::new("faultrun", 600);
    spec.console_every = 40;
    spec.stats_every = 100;
    spec.files = vec!["a.txt".into(), "sub/b.txt".into()];
    spec
}

/// Syncs a fresh copy of the run to `backend` with small chunks (many requests).
fn sync_to(backend: &TestBackend) -> wandb_sync::Report {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &spec());
    let mut opts = options(backend, vec![path]);
    opts.chunk_bytes = 8 << 10;
    sync_paths(&opts).unwrap()
}

fn baseline() -> Value {
    let backend = TestBackend::start().unwrap();
    let report = sync_to(&backend);
    assert_eq!(report.runs[0].result, RunResult::Synced);
    let state = backend.state();
    assert!(state.requests("file_stream") > 10, "want many requests");
    assert_clean(&state.runs[0]);
    essence(&state.runs[0])
}

fn check_same_state(backend: &TestBackend, want: &Value, what: &str) {
    let state = backend.state();
    assert_eq!(state.runs.len(), 1, "{what}");
    assert_clean(&state.runs[0]);
    assert_same(want, &essence(&state.runs[0]), what);
}

#[test]
fn same_state_after_each_fault() {
    let want = baseline();
    type Plan = fn(&TestBackend);
    let plans: [(&str, Plan); 6] = [
        ("500s", |b| {
            b.faults().push(
                FaultRule::new(Route::FileStream, FaultAction::Status { code: 500 })
                    .after(2)
                    .times(3),
            );
            b.faults().fail_next(Route::Upload, 2, 503);
            b.faults()
                .fail_next(Route::GraphqlOperation("UpsertBucket".into()), 1, 502);
        }),
        ("429 with Retry-After", |b| {
            b.faults().push(
                FaultRule::new(
                    Route::FileStream,
                    FaultAction::RateLimit {
                        retry_after_secs: 1,
                    },
                )
                .after(3),
            );
            b.faults()
                .rate_limit_next(Route::GraphqlOperation("CreateRunFiles".into()), 1, 1);
        }),
        ("connection resets", |b| {
            b.faults().push(
                FaultRule::new(Route::FileStream, FaultAction::Reset)
                    .after(1)
                    .times(3),
            );
            b.faults().reset_next(Route::Upload, 1);
            b.faults().close_next(Route::Graphql, 1);
        }),
        ("lost responses", |b| {
            b.faults().push(
                FaultRule::new(Route::FileStream, FaultAction::DropResponse)
                    .after(2)
                    .times(2),
            );
            b.faults().drop_response_next(Route::Upload, 1);
        }),
        ("slow responses", |b| {
            b.faults().delay_all(Route::Any, Duration::from_millis(15));
        }),
        ("everything at once", |b| {
            b.faults().fail_next(Route::Any, 2, 500);
            b.faults().reset_next(Route::FileStream, 2);
            b.faults().drop_response_next(Route::FileStream, 1);
            b.faults().rate_limit_next(Route::Upload, 1, 1);
        }),
    ];
    // Over HTTP/2 a reset or a dropped reply ends every request in flight on the connection,
    // not only the faulted one.
    let servers = [("http", None), ("https h2", Some(Https::Http2))];
    for ((server, https), (what, plan)) in servers
        .into_iter()
        .flat_map(|server| plans.into_iter().map(move |plan| (server, plan)))
    {
        let what = &format!("{server}: {what}");
        let backend = TestBackend::start_with(BackendConfig {
            https,
            ..BackendConfig::default()
        })
        .unwrap();
        plan(&backend);
        let report = sync_to(&backend);
        assert_eq!(
            report.runs[0].result,
            RunResult::Synced,
            "{what}: {:?}",
            report.runs[0]
        );
        assert!(
            backend.faults().injected_count() > 0,
            "{what}: no fault injected"
        );
        backend.faults().clear();
        if https.is_some() {
            let log = backend.state().request_log;
            assert!(
                log.iter().all(|entry| entry.http_version == "HTTP/2.0"),
                "{what}: not all over HTTP/2"
            );
        }
        check_same_state(&backend, &want, what);
    }
}

#[test]
fn same_state_after_the_server_restarts_mid_sync() {
    let want = baseline();
    let backend = TestBackend::start().unwrap();
    backend
        .faults()
        .delay_all(Route::FileStream, Duration::from_millis(20));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let seen = backend.wait_for(Duration::from_secs(30), |s| {
                s.runs.first().is_some_and(|r| r.history.len() > 100)
            });
            assert!(seen.is_some(), "sync made no progress");
            backend.stop_for(Duration::from_millis(400)).unwrap();
        });
        let report = sync_to(&backend);
        assert_eq!(
            report.runs[0].result,
            RunResult::Synced,
            "{:?}",
            report.runs[0]
        );
    });
    backend.faults().clear();
    check_same_state(&backend, &want, "restart");
}

#[test]
fn permanent_refusals_fail_the_run_without_retrying() {
    let backend = TestBackend::start().unwrap();
    backend
        .faults()
        .fail_next(Route::GraphqlOperation("UpsertBucket".into()), 5, 403);
    let report = sync_to(&backend);
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Failed);
    assert!(
        run.error.as_deref().unwrap().contains("403"),
        "{:?}",
        run.error
    );
    assert_eq!(
        backend.faults().injected_count(),
        1,
        "403 must not be retried"
    );
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn an_exhausted_budget_fails_the_run_and_a_rerun_completes_it() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &spec());
    let backend = TestBackend::start().unwrap();
    backend.faults().push(
        FaultRule::new(Route::FileStream, FaultAction::Status { code: 503 })
            .after(3)
            .times(u32::MAX),
    );
    let mut opts = options(&backend, vec![path.clone()]);
    opts.chunk_bytes = 8 << 10;
    opts.run_timeout = Duration::from_secs(2);
    let report = sync_paths(&opts).unwrap();
    assert_eq!(report.runs[0].result, RunResult::Failed);
    assert!(!path.with_extension("wandb.synced").exists());
    backend.faults().clear();
    opts.run_timeout = Duration::from_secs(60);
    let report = sync_paths(&opts).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    assert!(
        report.runs[0].rows < 600,
        "the rerun resumed instead of starting over"
    );
    check_same_state(&backend, &baseline(), "budget then rerun");
}

//! HTTPS: a server that offers HTTP/2 by ALPN gets every request over HTTP/2, one that offers
//! only HTTP/1.1 gets HTTP/1.1, and both reconstruct exactly the run a plain-HTTP server does.
//! The backend's certificate comes from an authority made at its start, trusted through
//! `REQUESTS_CA_BUNDLE` as a user would trust a private authority.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use wandb_testkit::{BackendConfig, Https, TestBackend};

use crate::common::{RunSpec, assert_clean, assert_same, essence, sync_command, write_run};

fn https_backend(https: Https) -> TestBackend {
    TestBackend::start_with(BackendConfig {
        https: Some(https),
        features: vec!["FILESTREAM_GZIP".to_owned()],
        ..BackendConfig::default()
    })
    .unwrap()
}

/// Syncs the runs under `home/wandb` to `backend` with the real binary; returns its stderr.
fn sync(backend: &TestBackend, home: &Path, ca: Option<&Path>, args: &[&str]) -> (bool, String) {
    let mut cmd = sync_command(backend, home);
    cmd.args(["--quiet", "--chunk-bytes", "65536", "--timeout", "60"])
        .args(args)
        .arg(home.join("wandb"));
    if let Some(ca) = ca {
        cmd.env("REQUESTS_CA_BUNDLE", ca);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_runs(home: &Path) {
    for (id, rows) in [("h2small", 30), ("h2large", 3000)] {
        let mut spec = RunSpec::new(id, rows);
        spec.files = vec!["model.txt".to_owned(), "notes/readme.md".to_owned()];
        write_run(&home.join("wandb"), &spec);
    }
}

#[test]
fn a_server_offering_http2_gets_every_request_over_it_and_the_same_runs() {
    let plain_home = tempfile::tempdir().unwrap();
    write_runs(plain_home.path());
    let plain = TestBackend::start_with(BackendConfig {
        features: vec!["FILESTREAM_GZIP".to_owned()],
        ..BackendConfig::default()
    })
    .unwrap();
    let (ok, stderr) = sync(&plain, plain_home.path(), None, &[]);
    assert!(ok, "{stderr}");

    for (https, args, want) in [
        (Https::Http2, &[][..], "HTTP/2.0"),
        (Https::Http1Only, &[], "HTTP/1.1"),
        // The user's choice of HTTP/1.1 holds when the server offers both.
        (Https::Http2, &["--http1"], "HTTP/1.1"),
    ] {
        let home = tempfile::tempdir().unwrap();
        write_runs(home.path());
        let backend = https_backend(https);
        assert!(backend.base_url().starts_with("https://127.0.0.1:"));
        let ca = home.path().join("ca.pem");
        std::fs::write(&ca, backend.ca_pem().unwrap()).unwrap();
        let (ok, stderr) = sync(&backend, home.path(), Some(&ca), args);
        assert!(ok, "{https:?} {args:?}: {stderr}");

        let state = backend.state();
        assert!(state.request_log.len() > 10, "{https:?} {args:?}");
        for entry in &state.request_log {
            assert_eq!(entry.http_version, want, "{https:?} {args:?}: {entry:?}");
        }
        assert!(
            state.counters.gzip_requests > 0,
            "{https:?} {args:?}: no gzip"
        );
        assert!(state.counters.tls_handshakes > 0);
        if want == "HTTP/2.0" {
            // Parallel requests of a run share a connection instead of opening more.
            assert!(
                state.counters.connections <= 2 * 2,
                "{https:?} {args:?}: {} connections",
                state.counters.connections
            );
        }
        let plain_state = plain.state();
        assert_eq!(state.runs.len(), 2);
        for run in &state.runs {
            assert_clean(run);
            let twin = plain_state
                .runs
                .iter()
                .find(|r| r.run_id == run.run_id)
                .unwrap();
            assert_same(
                &essence(twin),
                &essence(run),
                &format!("{https:?} {args:?} {}", run.run_id),
            );
        }
    }
}

#[test]
fn an_untrusted_certificate_is_refused_at_once_with_the_reason() {
    let home = tempfile::tempdir().unwrap();
    write_run(&home.path().join("wandb"), &RunSpec::new("untrusted", 20));
    let backend = https_backend(Https::Http2);
    let started = std::time::Instant::now();
    let mut cmd = sync_command(&backend, home.path());
    let out = cmd
        .args(["--unreachable-timeout", "3600", "--timeout", "3600"])
        .arg(home.path().join("wandb"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "TLS certificate not accepted (a private certificate authority: set REQUESTS_CA_BUNDLE"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(backend.api_key()), "{stderr}");
    // A certificate error is not retried as if the server were down.
    assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");
    assert!(backend.state().request_log.is_empty());
}

//! The command line: exit codes, --dry-run, --json, credentials, and the key never printed.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use wandb_testkit::{Route, TestBackend};

use crate::common::{RunSpec, write_run};

fn run(home: &Path, envs: &[(&str, &str)], args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wandb-sync"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WANDB_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(home)
        .env("HOME", home)
        .env("NETRC", home.join("netrc"))
        .env("WANDB_CONFIG_DIR", home.join("config"))
        .env("WANDB_SYNC_TEST_FAST_RETRY", "1")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("codes", 30));
    let backend = TestBackend::start().unwrap();
    let url = backend.base_url();
    let key = backend.api_key().to_owned();
    let env = [
        ("WANDB_BASE_URL", url.as_str()),
        ("WANDB_API_KEY", key.as_str()),
    ];

    // Usage errors: 2.
    let out = run(home.path(), &env, &["no/such/path".as_ref()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no/such/path"));
    let out = run(home.path(), &env, &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        home.path(),
        &[("WANDB_BASE_URL", url.as_str())],
        &[path.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no api key"), "{}", text(&out));

    // A failed run: 1, no marker, key never printed.
    backend
        .faults()
        .fail_next(Route::GraphqlOperation("UpsertBucket".into()), 1, 401);
    let out = run(home.path(), &env, &["-v".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains(&key), "the api key was printed");

    // Success: 0; then the run is skipped as synced: 0.
    let out = run(home.path(), &env, &[path.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(&key));
    let out = run(home.path(), &env, &[home.path().join("wandb").as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("skipped_synced"), "{}", text(&out));
    for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
        let name = entry.unwrap().path();
        if name.to_string_lossy().ends_with(".ledger.json") {
            let ledger = std::fs::read_to_string(&name).unwrap();
            assert!(!ledger.contains(&key), "the api key is in the ledger");
        }
    }
}

#[test]
fn the_key_comes_from_netrc_and_settings_give_the_server() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("netrc", 10));
    let backend = TestBackend::start().unwrap();
    let host = backend.base_url().trim_start_matches("http://").to_owned();
    std::fs::write(
        home.path().join("netrc"),
        format!(
            "machine {host}\n  login user\n  password {}\n",
            backend.api_key()
        ),
    )
    .unwrap();
    std::fs::write(
        home.path().join("wandb/settings"),
        format!("[default]\nbase_url = {}\n", backend.base_url()),
    )
    .unwrap();
    let out = run(home.path(), &[], &[path.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(backend.state().runs[0].history.len(), 10);
}

#[test]
fn dry_run_sends_and_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("dry", 40);
    spec.files = vec!["a.txt".into(), "../escape".into()];
    let path = write_run(&home.path().join("wandb"), &spec);
    let backend = TestBackend::start().unwrap();
    let before: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    let out = run(
        home.path(),
        &[("WANDB_BASE_URL", &backend.base_url())],
        &["--dry-run".as_ref(), "--json".as_ref(), path.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "run");
    assert_eq!(lines[0]["data"]["result"], "dry_run");
    assert_eq!(lines[0]["data"]["rows"], 40);
    let files = lines[0]["data"]["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f == "a.txt"));
    assert!(files.iter().any(|f| f == "wandb-summary.json"));
    assert_eq!(lines[0]["data"]["refused"][0]["path"], "../escape");
    assert_eq!(lines.last().unwrap()["type"], "summary");
    assert!(
        backend.state().counters.requests.is_empty(),
        "dry run sent requests"
    );
    let after: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(before.len(), after.len(), "dry run wrote files");
}

#[test]
fn json_report_for_scripts() {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    write_run(&wandb, &RunSpec::new("json1", 10));
    write_run(&wandb, &RunSpec::new("json2", 20));
    let backend = TestBackend::start().unwrap();
    let out = run(
        home.path(),
        &[
            ("WANDB_BASE_URL", &backend.base_url()),
            ("WANDB_API_KEY", backend.api_key()),
        ],
        &[
            "--json".as_ref(),
            "-p".as_ref(),
            "other".as_ref(),
            wandb.as_os_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["data"]["project"], "other");
    assert_eq!(lines[0]["data"]["result"], "synced");
    let summary = &lines[2]["data"];
    assert_eq!(summary["synced"], 2);
    assert_eq!(summary["rows"], 30);
    assert_eq!(summary["exit_code"], 0);
    assert!(backend.state().runs.iter().all(|r| r.project == "other"));
}

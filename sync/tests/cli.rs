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

/// To a server that advertises FILESTREAM_GZIP, file_stream bodies go gzipped unless
/// `--no-gzip` or W&B's setting `x_file_stream_no_gzip` (here its variable) says otherwise; the
/// setting set to false keeps gzip.
#[test]
fn no_gzip_from_the_flag_or_the_wandb_setting() {
    use wandb_testkit::BackendConfig;
    /// What is tried, the variables and flags it adds, and whether the bodies are gzipped.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], bool);
    let cases: [Case<'_>; 4] = [
        ("default", &[], &[], true),
        ("--no-gzip", &[], &["--no-gzip"], false),
        (
            "setting true",
            &[("WANDB_X_FILE_STREAM_NO_GZIP", "true")],
            &[],
            false,
        ),
        (
            "setting false",
            &[("WANDB_X_FILE_STREAM_NO_GZIP", "false")],
            &[],
            true,
        ),
    ];
    for (what, envs, flags, gzipped) in cases {
        let home = tempfile::tempdir().unwrap();
        let wandb = home.path().join("wandb");
        write_run(&wandb, &RunSpec::new("gz", 50));
        let backend = TestBackend::start_with(BackendConfig {
            features: vec!["FILESTREAM_GZIP".into()],
            ..BackendConfig::default()
        })
        .unwrap();
        let url = backend.base_url();
        let mut all_envs = vec![
            ("WANDB_BASE_URL", url.as_str()),
            ("WANDB_API_KEY", backend.api_key()),
        ];
        all_envs.extend_from_slice(envs);
        let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
        args.push(wandb.as_os_str());
        let out = run(home.path(), &all_envs, &args);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out));
        let state = backend.state();
        let encodings = crate::common::file_stream_encodings(&state);
        assert!(!encodings.is_empty(), "{what}");
        let want = gzipped.then(|| "gzip".to_owned());
        assert!(
            encodings.iter().all(|e| *e == want),
            "{what}: {encodings:?}"
        );
        assert_eq!(state.runs[0].history_raw.len(), 50, "{what}");
    }
}

#[path = "../../format/tests/input_rules/table.rs"]
mod input_rules;

/// Runs `wandb-sync ARGS` in `cwd` with no credentials, stdout and stderr to files, killed after
/// 60 s so that a hang (on a FIFO, say) fails the test instead of blocking it.
fn run_bounded(cwd: &Path, envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let stdout = out_dir.path().join("stdout");
    let stderr = out_dir.path().join("stderr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wandb-sync"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WANDB_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd)
        .env("HOME", out_dir.path())
        .env("NETRC", out_dir.path().join("netrc"))
        .env("WANDB_CONFIG_DIR", out_dir.path().join("config"))
        .env("WANDB_SYNC_TEST_FAST_RETRY", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("wandb-sync {args:?} did not finish in 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read_to_string(stdout).unwrap(),
        std::fs::read_to_string(stderr).unwrap(),
    )
}

/// The shared input rules, through the binary: `--dry-run --json` lists every file found (online
/// ones skipped), refuses what is not a regular `.wandb` log by name, warns about inputs holding
/// no run, and exits with 2 (a missing input), 1 (something refused, or nothing found) or 0.
#[test]
fn the_input_rules_table_through_the_binary() {
    use input_rules::{CASES, Problem};
    let tmp = tempfile::tempdir().unwrap();
    input_rules::build(tmp.path());
    for case in CASES {
        let mut args = vec!["--dry-run", "--json"];
        args.extend(case.args);
        let (code, stdout, stderr) = run_bounded(tmp.path(), &[], &args);
        let context = format!("case: {}\nstdout:\n{stdout}\nstderr:\n{stderr}", case.name);
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let runs: Vec<(String, String, String)> = lines
            .iter()
            .filter(|l| l["type"] == "run")
            .map(|l| {
                let d = &l["data"];
                (
                    d["path"].as_str().unwrap().to_owned(),
                    d["result"].as_str().unwrap().to_owned(),
                    d["error"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if case.problems.iter().any(|(p, _)| p.about_argument()) {
            assert_eq!(code, Some(2), "{context}");
            assert!(runs.is_empty(), "{context}");
            for (problem, path) in case.problems {
                let want = format!("wandb-sync: error: {path}: {}", problem.message());
                assert!(stderr.contains(&want), "missing {want:?}\n{context}");
            }
            continue;
        }
        let mut want_runs: Vec<(String, String)> = Vec::new();
        for (problem, path) in case.problems {
            if problem.is_warning() {
                let want = format!("wandb-sync: warning: {path}: {}", problem.message());
                assert!(stderr.contains(&want), "missing {want:?}\n{context}");
                assert!(
                    lines.iter().any(|l| l["type"] == "warning"
                        && l["data"]["message"]
                            .as_str()
                            .unwrap()
                            .starts_with(&format!("{path}: "))),
                    "{context}"
                );
            } else {
                want_runs.push(((*path).to_owned(), "failed".to_owned()));
                let error = &runs
                    .iter()
                    .find(|(p, result, _)| p == path && result == "failed")
                    .unwrap_or_else(|| panic!("no failed run for {path}\n{context}"))
                    .2;
                assert!(
                    error.starts_with(&format!("{path}: {}", problem.message())),
                    "{error}\n{context}"
                );
            }
        }
        for (path, offline) in case.files {
            if case
                .problems
                .iter()
                .any(|(p, at)| *p == Problem::NotWandb && at == path)
            {
                continue;
            }
            let result = if *offline {
                "dry_run"
            } else {
                "skipped_online"
            };
            want_runs.push(((*path).to_owned(), result.to_owned()));
        }
        let got: Vec<(String, String)> = runs
            .iter()
            .map(|(p, r, _)| (p.clone(), r.clone()))
            .collect();
        assert_eq!(got, want_runs, "{context}");
        let refused = case.problems.iter().any(|(p, _)| !p.is_warning());
        let want_code = if refused || case.files.is_empty() {
            1
        } else {
            0
        };
        assert_eq!(code, Some(want_code), "{context}");
    }
}

/// `wandb-sync wandb/latest-run` (what the quickstart suggests) syncs the run the link points to:
/// the run is judged by its target folder's name, not the link's. Without a terminal each run is
/// one plain line on stderr, named `entity/project/run-id`.
#[test]
fn a_latest_run_link_is_synced_as_the_run_it_points_to() {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    let path = write_run(&wandb, &RunSpec::new("latest", 12));
    std::os::unix::fs::symlink(path.parent().unwrap(), wandb.join("latest-run")).unwrap();
    let backend = TestBackend::start().unwrap();
    let env = [
        ("WANDB_BASE_URL", backend.base_url()),
        ("WANDB_API_KEY", backend.api_key().to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, stdout, stderr) = run_bounded(home.path(), &env, &["wandb/latest-run"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let state = backend.state();
    let [run] = state.runs.as_slice() else {
        panic!("{:?}", state.runs.len());
    };
    assert_eq!(run.history.len(), 12);
    let name = format!("{}/{}/{}", run.entity, run.project, run.run_id);
    assert!(
        stderr.contains(&format!(
            "synced {name} (12 rows, wandb/latest-run/run-latest.wandb)"
        )),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("synced          {name}")),
        "{stdout}"
    );
}

/// `--base-url` wins over `WANDB_BASE_URL`.
#[test]
fn the_base_url_flag_wins_over_the_environment() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("flag", 5));
    let wrong = TestBackend::start().unwrap();
    let right = TestBackend::start().unwrap();
    let env = [
        ("WANDB_BASE_URL", wrong.base_url()),
        ("WANDB_API_KEY", right.api_key().to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = right.base_url();
    let (code, stdout, stderr) = run_bounded(
        home.path(),
        &env,
        &["--base-url", &url, path.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(right.state().runs.len(), 1);
    assert!(wrong.state().counters.requests.is_empty());
    let (code, _, stderr) = run_bounded(
        home.path(),
        &env,
        &["--base-url", "ftp://nope", path.to_str().unwrap()],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--base-url"), "{stderr}");
}

/// `--dry-run` lists, per run, the requests it would send and the files it would upload.
#[test]
fn dry_run_lists_the_requests_and_files_it_would_send() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("plan", 40);
    spec.files = vec!["a.txt".into()];
    let path = write_run(&home.path().join("wandb"), &spec);
    let size = std::fs::metadata(path.parent().unwrap().join("files/a.txt"))
        .unwrap()
        .len();
    let (code, stdout, stderr) = run_bounded(home.path(), &[], &["--dry-run", "wandb"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for want in [
        "dry_run         ",
        "    would send UpsertBucket: run plan in project ",
        "    would send file_stream: 40 history row(s)",
        ", the summary, then complete with exit code 0\n",
        "    would send CreateRunFiles for ",
        &format!("        a.txt ({size} bytes)\n"),
        "        wandb-summary.json (made from the run's records)\n",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
}

//! End-to-end check against the official W&B SDK: make an offline run with the Python SDK,
//! upload it with the official `wandb sync` to the test backend, and check the reconstructed
//! run (100 history rows, summary, config, console, uploaded files, completion) — once on a
//! healthy backend and once with faults on every route.
//!
//! Runs only when `WANDB_SDK_PYTHON` names a Python interpreter with `wandb` installed (e.g.
//! `.venv/bin/python`). When `CI=true` a missing or unusable interpreter is a test failure,
//! not a skip.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use wandb_testkit::{
    DEFAULT_ENTITY, FaultAction, FaultRule, Route, RunState, TestBackend, sdk_python,
};

/// The script from which the offline run is made.
const OFFLINE_SCRIPT: &str = "import wandb; r=wandb.init(project='p', config={'a':1}); \
     [r.log({'x': i}) for i in range(100)]; print('hi'); r.finish()";

/// The files wandb-core uploads for such a run.
const EXPECTED_FILES: [&str; 5] = [
    "config.yaml",
    "wandb-summary.json",
    "wandb-metadata.json",
    "output.log",
    "requirements.txt",
];

/// Limit for each Python process.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(240);

/// A command with every inherited `WANDB_*` variable removed and private config/cache dirs.
fn wandb_command(python: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(python);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WANDB_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(home)
        .env("WANDB_DIR", home)
        .env("WANDB_CONFIG_DIR", home.join("config"))
        .env("WANDB_CACHE_DIR", home.join("cache"))
        .env("WANDB_DATA_DIR", home.join("data"))
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` with its output in `log` (read back on return), killing it after the timeout.
fn run_logged(mut cmd: Command, log: &Path) -> (ExitStatus, String) {
    let out = fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = cmd.stdout(out).stderr(err).spawn().unwrap();
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            // Not `{cmd:?}`: its Debug output would include the API key in the environment.
            panic!(
                "{:?} timed out; output:\n{}",
                cmd.get_args().collect::<Vec<_>>(),
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, fs::read_to_string(log).unwrap_or_default())
}

/// Makes the offline run and returns its directory.
fn make_offline_run(python: &Path, home: &Path) -> PathBuf {
    make_offline_run_with(python, home, OFFLINE_SCRIPT)
}

/// Makes an offline run with `script` and returns its directory.
fn make_offline_run_with(python: &Path, home: &Path, script: &str) -> PathBuf {
    let mut cmd = wandb_command(python, home);
    cmd.env("WANDB_MODE", "offline").args(["-c", script]);
    let (status, output) = run_logged(cmd, &home.join("offline.log"));
    assert!(status.success(), "offline run failed:\n{output}");
    let runs: Vec<PathBuf> = fs::read_dir(home.join("wandb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("offline-run-"))
        })
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "expected one offline run dir: {runs:?}\n{output}"
    );
    runs.into_iter().next().unwrap()
}

/// Runs the official `wandb sync` of `run_dir` against `backend`.
fn official_sync(python: &Path, home: &Path, backend: &TestBackend, run_dir: &Path) -> String {
    let mut cmd = wandb_command(python, home);
    cmd.env("WANDB_BASE_URL", backend.base_url())
        .env("WANDB_API_KEY", backend.api_key())
        .args(["-m", "wandb", "sync", "--include-synced"])
        .arg(run_dir);
    let (status, output) = run_logged(cmd, &home.join("sync.log"));
    assert!(status.success(), "wandb sync failed:\n{output}");
    output
}

/// The run id is the part of the directory name after the last `-`.
fn run_id_of(run_dir: &Path) -> String {
    let name = run_dir.file_name().unwrap().to_string_lossy().into_owned();
    name.rsplit('-').next().unwrap().to_owned()
}

/// Everything the synced 100-step run must look like on the server.
fn check_run(run: &RunState, run_id: &str) {
    assert_eq!(run.entity, DEFAULT_ENTITY);
    assert_eq!(run.project, "p");
    assert_eq!(run.run_id, run_id);
    assert!(run.upserted);

    assert_eq!(run.history.len(), 100, "history rows");
    for (i, row) in run.history.iter().enumerate() {
        assert_eq!(row["_step"], json!(i), "row {i}: {row}");
        assert_eq!(row["x"], json!(i), "row {i}: {row}");
        assert!(row["_runtime"].is_number() && row["_timestamp"].is_number());
    }
    let summary = run.summary.as_ref().expect("summary");
    assert_eq!(summary["x"], 99);
    assert_eq!(summary["_step"], 99);
    assert!(summary["_wandb"]["runtime"].is_number());

    assert_eq!(
        run.config_value("a"),
        Some(&json!(1)),
        "config {:?}",
        run.config
    );
    let wandb_cfg = run.config_value("_wandb").expect("_wandb in config");
    assert!(wandb_cfg["cli_version"].is_string());

    assert!(
        run.console_text().iter().any(|l| l == "hi"),
        "console {:?}",
        run.console
    );

    for name in EXPECTED_FILES {
        let file = run
            .file(name)
            .unwrap_or_else(|| panic!("{name} not uploaded; files: {:?}", run.files.keys()));
        assert!(file.put_count >= 1);
        assert!(
            run.uploaded.iter().any(|u| u == name),
            "{name} not reported as uploaded: {:?}",
            run.uploaded
        );
    }
    assert_eq!(run.file("output.log").unwrap().text(), Some("hi\n"));
    let summary_file: serde_json::Value = wandb_testkit::json::parse_tolerant(
        run.file("wandb-summary.json").unwrap().text().unwrap(),
    )
    .unwrap();
    assert_eq!(summary_file["x"], 99);
    let config_yaml = run.file("config.yaml").unwrap().text().unwrap();
    assert!(
        config_yaml.contains("a:") && config_yaml.contains("value: 1"),
        "{config_yaml}"
    );

    assert!(run.complete, "run not complete");
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.counters.history_gaps, 0);
    assert_eq!(run.counters.duplicate_line_writes, 0);
    assert!(run.errors.is_empty(), "run errors: {:?}", run.errors);
}

#[test]
fn official_wandb_sync_reconstructs_the_run() {
    let Some(python) = sdk_python() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let run_dir = make_offline_run(&python, home.path());
    let run_id = run_id_of(&run_dir);
    let backend = TestBackend::start().unwrap();

    let output = official_sync(&python, home.path(), &backend, &run_dir);
    assert!(output.contains("Finished syncing"), "{output}");
    assert!(run_dir.join(format!("run-{run_id}.wandb.synced")).exists());

    let state = backend.state();
    assert_eq!(
        state.runs.len(),
        1,
        "{:?}",
        state.runs.iter().map(|r| &r.run_id).collect::<Vec<_>>()
    );
    check_run(&state.runs[0], &run_id);
    assert!(
        state.errors.is_empty(),
        "backend errors: {:?}",
        state.errors
    );
    assert_eq!(state.counters.auth_failures, 0);
    assert!(state.requests("graphql:UpsertBucket") >= 1);
    assert!(state.requests("graphql:CreateRunFiles") >= 1);
    assert!(state.requests("file_stream") >= 1);
    // wandb-core sends `entity: null` first and uses the entity from the reply afterwards.
    let first = &state.request_log[0];
    assert_eq!(first.operation.as_deref(), Some("UpsertBucket"));
    assert_eq!(first.user_agent.as_deref(), Some("wandb-core"));
    let vars = first.variables.as_ref().unwrap();
    assert_eq!(vars["entity"], serde_json::Value::Null);
    assert_eq!(vars["name"], run_id.as_str());
    assert!(vars["config"].is_string());
}

#[test]
fn official_wandb_sync_survives_faults() {
    let Some(python) = sdk_python() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let run_dir = make_offline_run(&python, home.path());
    let run_id = run_id_of(&run_dir);
    let backend = TestBackend::start().unwrap();
    let faults = backend.faults();
    faults.push(FaultRule::new(
        Route::GraphqlOperation("UpsertBucket".to_owned()),
        FaultAction::Close,
    ));
    faults.fail_next(Route::FileStream, 1, 503);
    faults.rate_limit_next(Route::GraphqlOperation("CreateRunFiles".to_owned()), 1, 1);
    faults.reset_next(Route::Upload, 1);
    faults.drop_response_next(Route::Upload, 1);

    official_sync(&python, home.path(), &backend, &run_dir);

    assert!(
        faults.pending().is_empty(),
        "unused faults: {:?}",
        faults.pending()
    );
    assert_eq!(faults.injected_count(), 5);
    let state = backend.state();
    assert_eq!(state.runs.len(), 1);
    let run = &state.runs[0];
    check_run(run, &run_id);
    // The upload whose response was dropped was PUT twice.
    assert_eq!(
        run.files.values().map(|f| f.put_count).sum::<u64>(),
        EXPECTED_FILES.len() as u64 + 1
    );
    // Every faulted request was retried: failed statuses are followed by successes.
    let failed: Vec<_> = state
        .request_log
        .iter()
        .filter(|e| e.fault.is_some())
        .collect();
    assert_eq!(failed.len(), 5);
}

/// An offline run with a Table and `log_artifact` of a file and of a directory.
const ARTIFACT_SCRIPT: &str = r#"
import os, wandb
os.makedirs("data/dir/sub", exist_ok=True)
open("data/weights.bin", "wb").write(bytes(range(256)) * 40)
open("data/dir/a.txt", "w").write("alpha\n")
open("data/dir/sub/b.txt", "w").write("beta\n")
run = wandb.init(project="p")
run.log({"tbl": wandb.Table(columns=["x", "y"], data=[[1, "a"], [2, "b"]])})
model = wandb.Artifact("model", type="model", metadata={"k": 1})
model.add_file("data/weights.bin")
run.log_artifact(model, aliases=["best"])
dataset = wandb.Artifact("dataset", type="dataset")
dataset.add_dir("data/dir")
run.log_artifact(dataset)
run.finish()
"#;

#[test]
fn official_wandb_sync_uploads_artifacts_through_faults() {
    let Some(python) = sdk_python() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let run_dir = make_offline_run_with(&python, home.path(), ARTIFACT_SCRIPT);
    let run_id = run_id_of(&run_dir);
    let backend = TestBackend::start().unwrap();
    let faults = backend.faults();
    faults.fail_next(
        Route::GraphqlOperation("CreateArtifactFiles".to_owned()),
        1,
        500,
    );
    faults.reset_next(Route::ArtifactUpload, 1);
    faults.fail_next(Route::GraphqlOperation("CommitArtifact".to_owned()), 1, 503);
    official_sync(&python, home.path(), &backend, &run_dir);
    assert_eq!(faults.injected_count(), 3, "{:?}", faults.injected());

    let state = backend.state();
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    let mut names: Vec<&str> = state.artifacts.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    let table = format!("run-{run_id}-tbl");
    assert_eq!(names, ["dataset", "model", table.as_str()]);
    for artifact in &state.artifacts {
        assert!(artifact.committed, "{} not committed", artifact.name);
        assert_eq!(artifact.created_by.as_deref(), Some(run_id.as_str()));
        assert_eq!(artifact.entity, DEFAULT_ENTITY);
        assert!(
            artifact.errors.is_empty(),
            "{}: {:?}",
            artifact.name,
            artifact.errors
        );
        assert!(!artifact.files.is_empty());
        for (path, file) in &artifact.files {
            assert!(
                file.stored && file.digest_matches,
                "{}: {path}",
                artifact.name
            );
        }
    }
    let model = state.artifacts_named("model")[0];
    // wandb-core sends an artifact's aliases in no fixed order.
    let mut aliases: Vec<&str> = model.aliases.iter().map(String::as_str).collect();
    aliases.sort_unstable();
    assert_eq!(aliases, ["best", "latest"]);
    assert_eq!(model.metadata, Some(json!({"k": 1})));
    let dataset = state.artifacts_named("dataset")[0];
    let files: Vec<&str> = dataset.files.keys().map(String::as_str).collect();
    assert_eq!(files, ["a.txt", "sub/b.txt"]);
    assert_eq!(state.artifacts_named(&table)[0].artifact_type, "run_table");
}

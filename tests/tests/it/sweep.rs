//! Runs of one offline sweep (written by our logger with a sweep agent's environment, or by the
//! official SDK) are attached to one W&B sweep by `wandb-sync`: it creates the sweep from
//! `wandb/sweep-<id>/sweep.yaml` with `UpsertSweep` once, maps the local id to the name the
//! server gave (`sweep.synced.json`), and sends that name in each run's `UpsertBucket`. The
//! official `wandb sync` sends the local id as it is (D8 in `sync/README.md`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use wandb_logger::{Env, InitOptions, LoadContext, Setup, SetupOptions, row};
use wandb_settings::Secret;
use wandb_sync::{Report, RunResult, SyncOptions, sync_paths};
use wandb_testkit::TestBackend;

const SWEEP_ID: &str = "loc12345";

/// `sweep.yaml` as `wandb-launch sweep create` writes it (the text UpsertSweep sends).
const SWEEP_YAML: &str = "method: grid\nmetric:\n  goal: minimize\n  name: loss\nparameters:\n  lr:\n    values:\n    - 0.1\n    - 0.01\n    - 0.001\nprogram: train.py\n";

/// Lays down `wandb/sweep-<id>/sweep.yaml` and `sweep.json` under `root`, as launch does.
fn write_sweep_files(root: &Path) {
    let dir = root.join("wandb").join(format!("sweep-{SWEEP_ID}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sweep.yaml"), SWEEP_YAML).unwrap();
    std::fs::write(
        dir.join("sweep.json"),
        serde_json::json!({
            "id": SWEEP_ID, "entity": null, "project": "sweepproj", "method": "grid",
            "created_at": "2026-12-01T00:00:00Z",
        })
        .to_string(),
    )
    .unwrap();
}

/// One run of the sweep written by our logger, with the environment a sweep agent gives it:
/// the param file `wandb/sweep-<id>/config-<run>.yaml`, `WANDB_SWEEP_ID`, `WANDB_RUN_ID`.
fn write_sweep_run(root: &Path, run_id: &str, lr: f64) -> PathBuf {
    let sweep_dir = root.join("wandb").join(format!("sweep-{SWEEP_ID}"));
    std::fs::create_dir_all(&sweep_dir).unwrap();
    let params = sweep_dir.join(format!("config-{run_id}.yaml"));
    std::fs::write(&params, format!("lr:\n  value: {lr}\n")).unwrap();
    let env = Env::from_pairs([
        ("WANDB_MODE", "offline"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB_X_DISABLE_STATS", "true"),
        ("WANDB_X_HANDLE_SIGTERM", "false"),
        ("WANDB_PROJECT", "sweepproj"),
        ("WANDB_SWEEP_ID", SWEEP_ID),
        ("WANDB_SWEEP_PARAM_PATH", params.to_str().unwrap()),
        ("WANDB_RUN_ID", run_id),
    ]);
    let context = LoadContext::new(env, root)
        .with_home(root)
        .with_hostname("testhost");
    let setup = Setup::new(SetupOptions::default().context(context)).unwrap();
    let config = serde_json::json!({"lr": 1.0, "epochs": 3});
    let run = setup.init(InitOptions::new().config(&config)).unwrap();
    for step in 0..3 {
        run.log(row! {"loss" => lr * f64::from(3 - step)}).unwrap();
    }
    let dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    dir
}

fn sync(backend: &TestBackend, paths: Vec<PathBuf>, include_synced: bool) -> Report {
    let mut options = SyncOptions::new(
        paths,
        backend.base_url(),
        Some(Secret::new(backend.api_key())),
    );
    options.run_timeout = Duration::from_secs(60);
    options.include_synced = include_synced;
    let report = sync_paths(&options).unwrap();
    assert!(
        report
            .runs
            .iter()
            .all(|r| matches!(r.result, RunResult::Synced | RunResult::SkippedSynced)),
        "{:?}",
        report.runs
    );
    report
}

const RUNS: [(&str, f64); 3] = [
    ("sweeprun1", 0.1),
    ("sweeprun2", 0.01),
    ("sweeprun3", 0.001),
];

#[test]
fn runs_of_one_sweep_sync_to_one_sweep_once() {
    let scratch = tempfile::tempdir().unwrap();
    write_sweep_files(scratch.path());
    for (run_id, lr) in RUNS {
        write_sweep_run(scratch.path(), run_id, lr);
    }
    let backend = TestBackend::start().unwrap();
    let report = sync(&backend, vec![scratch.path().join("wandb")], false);
    assert_eq!(report.runs.len(), 3);
    for run in &report.runs {
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    }
    let state = backend.state();
    assert_eq!(state.sweeps.len(), 1, "{:?}", state.sweeps);
    let sweep = &state.sweeps[0];
    assert_eq!(sweep.config.as_deref(), Some(SWEEP_YAML));
    assert_eq!(sweep.project, "sweepproj");
    assert_eq!(sweep.state, "PENDING");
    assert_eq!(sweep.upserts, 1, "one UpsertSweep for three runs");
    assert_eq!(sweep.runs, ["sweeprun1", "sweeprun2", "sweeprun3"]);
    for (run_id, lr) in RUNS {
        let run = backend.find_run(run_id).unwrap();
        assert_eq!(run.sweep.as_deref(), Some(sweep.name.as_str()));
        assert_eq!(run.project, "sweepproj");
        // The sweep's value beat the script's `lr: 1.0`; the script's other keys stay.
        assert_eq!(
            run.config_value("lr"),
            Some(&serde_json::json!(lr)),
            "{run_id}"
        );
        assert_eq!(run.config_value("epochs"), Some(&serde_json::json!(3)));
        assert!(run.errors.is_empty(), "{run_id}: {:?}", run.errors);
    }
    // The local id maps to the server's name.
    let mapping = std::fs::read_to_string(
        scratch
            .path()
            .join(format!("wandb/sweep-{SWEEP_ID}/sweep.synced.json")),
    )
    .unwrap();
    assert!(mapping.contains(&sweep.name), "{mapping}");

    // A re-sync (everything again) attaches to the same sweep and creates none.
    sync(&backend, vec![scratch.path().join("wandb")], true);
    let state = backend.state();
    assert_eq!(state.sweeps.len(), 1);
    assert_eq!(state.sweeps[0].upserts, 1);
    assert_eq!(state.sweeps[0].runs.len(), 3);
    // And a run of the sweep written later joins it.
    write_sweep_run(scratch.path(), "sweeprun4", 0.5);
    let report = sync(&backend, vec![scratch.path().join("wandb")], false);
    let synced: Vec<&str> = report
        .runs
        .iter()
        .filter(|r| r.result == RunResult::Synced)
        .map(|r| r.run_id.as_str())
        .collect();
    assert_eq!(synced, ["sweeprun4"]);
    let state = backend.state();
    assert_eq!(state.sweeps.len(), 1);
    assert_eq!(state.sweeps[0].upserts, 1);
    assert_eq!(state.sweeps[0].runs.len(), 4);
}

#[test]
fn without_the_sweep_files_runs_sync_with_a_warning() {
    let scratch = tempfile::tempdir().unwrap();
    for (run_id, lr) in &RUNS[..2] {
        write_sweep_run(scratch.path(), run_id, *lr);
    }
    let backend = TestBackend::start().unwrap();
    let report = sync(&backend, vec![scratch.path().join("wandb")], false);
    let expected_path = scratch
        .path()
        .join(format!("wandb/sweep-{SWEEP_ID}/sweep.yaml"));
    for run in &report.runs {
        let warning = run
            .warnings
            .iter()
            .find(|w| w.contains(SWEEP_ID))
            .unwrap_or_else(|| panic!("no sweep warning: {:?}", run.warnings));
        assert!(
            warning.contains(&expected_path.display().to_string()),
            "{warning}"
        );
    }
    let state = backend.state();
    assert!(state.sweeps.is_empty());
    for (run_id, lr) in &RUNS[..2] {
        let run = backend.find_run(run_id).unwrap();
        assert!(run.complete);
        assert_eq!(run.sweep, None);
        assert_eq!(run.config_value("lr"), Some(&serde_json::json!(lr)));
    }
}

/// The SDK script a sweep agent starts (offline).
const SDK_SCRIPT: &str = r#"
import wandb
run = wandb.init(mode="offline", config={"lr": 1.0, "epochs": 3})
for step in range(3):
    run.log({"loss": run.config.lr * (3 - step)})
d = run.dir
run.finish()
print("RUNDIR", d)
"#;

#[test]
fn an_sdk_sweep_run_attaches_the_same_with_both_syncs() {
    let Some(python) = wandb_integration_tests::sdk_python() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    write_sweep_files(root);
    let params = root.join(format!("wandb/sweep-{SWEEP_ID}/config-sdkrun01.yaml"));
    std::fs::write(&params, "wandb_version: 1\nlr:\n  value: 0.01\n").unwrap();
    let mut command = std::process::Command::new(&python);
    command
        .arg("-c")
        .arg(SDK_SCRIPT)
        .current_dir(root)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("WANDB_SILENT", "true")
        .env("WANDB_X_DISABLE_STATS", "true")
        .env("WANDB_PROJECT", "sweepproj")
        .env("WANDB_SWEEP_ID", SWEEP_ID)
        .env("WANDB_SWEEP_PARAM_PATH", &params)
        .env("WANDB_RUN_ID", "sdkrun01");
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK script: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RUNDIR "))
        .map(|files| PathBuf::from(files).parent().unwrap().to_path_buf())
        .unwrap();

    // The official sync sends the local sweep id as the sweep's name; it creates no sweep.
    let theirs = TestBackend::start().unwrap();
    let out = wandb_integration_tests::official_sync(
        &python,
        &run_dir,
        &theirs.base_url(),
        theirs.api_key(),
        root,
    )
    .unwrap();
    assert!(
        out.status.success(),
        "wandb sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let their_run = theirs.find_run("sdkrun01").unwrap();
    assert_eq!(their_run.sweep.as_deref(), Some(SWEEP_ID));
    assert!(theirs.state().sweeps.is_empty());
    assert!(
        their_run
            .errors
            .iter()
            .any(|e| e.contains("does not exist")),
        "{:?}",
        their_run.errors
    );

    // Ours creates the sweep and attaches the run to it under the server's name.
    let ours = TestBackend::start().unwrap();
    sync(&ours, vec![run_dir.clone()], true);
    let state = ours.state();
    assert_eq!(state.sweeps.len(), 1);
    let sweep = &state.sweeps[0];
    assert_eq!(sweep.runs, ["sdkrun01"]);
    let our_run = ours.find_run("sdkrun01").unwrap();
    assert_eq!(our_run.sweep.as_deref(), Some(sweep.name.as_str()));
    assert!(our_run.errors.is_empty(), "{:?}", our_run.errors);
    // The same run otherwise: project, config (the sweep's lr), history.
    assert_eq!(our_run.project, their_run.project);
    assert_eq!(our_run.config_value("lr"), Some(&serde_json::json!(0.01)));
    assert_eq!(our_run.config_value("lr"), their_run.config_value("lr"));
    assert_eq!(
        our_run.history_values("loss"),
        their_run.history_values("loss")
    );
}

#[test]
fn upsert_sweep_faults_are_retried_or_fail_the_run_until_a_rerun() {
    use wandb_testkit::Route;
    let scratch = tempfile::tempdir().unwrap();
    write_sweep_files(scratch.path());
    for (run_id, lr) in &RUNS[..2] {
        write_sweep_run(scratch.path(), run_id, *lr);
    }
    let route = || Route::GraphqlOperation("UpsertSweep".into());
    let options = |backend: &TestBackend| {
        let mut options = SyncOptions::new(
            vec![scratch.path().join("wandb")],
            backend.base_url(),
            Some(Secret::new(backend.api_key())),
        );
        options.retry = wandb_sync::RetryPolicy::fast();
        options.run_timeout = Duration::from_secs(60);
        options
    };

    // Two 503s: retried, one sweep.
    let backend = TestBackend::start().unwrap();
    backend.faults().fail_next(route(), 2, 503);
    let report = sync_paths(&options(&backend)).unwrap();
    assert!(
        report.runs.iter().all(|r| r.result == RunResult::Synced),
        "{:?}",
        report.runs
    );
    assert_eq!(backend.faults().injected_count(), 2);
    let state = backend.state();
    assert_eq!(state.sweeps.len(), 1);
    assert_eq!(state.sweeps[0].runs.len(), 2);

    // Refused (403) on a new server: the runs fail and are not marked synced; once the server
    // takes it, a re-run creates the sweep once and attaches both.
    for dir in std::fs::read_dir(scratch.path().join("wandb")).unwrap() {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let name = file.to_string_lossy().into_owned();
            if name.ends_with(".synced")
                || name.ends_with(".ledger.json")
                || name.ends_with("sweep.synced.json")
            {
                std::fs::remove_file(&file).unwrap();
            }
        }
    }
    let backend = TestBackend::start().unwrap();
    backend.faults().fail_next(route(), u32::MAX, 403);
    let report = sync_paths(&options(&backend)).unwrap();
    assert!(
        report.runs.iter().all(|r| r.result == RunResult::Failed),
        "{:?}",
        report.runs
    );
    assert!(
        report.runs[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("403"),
        "{:?}",
        report.runs[0].error
    );
    assert!(backend.state().sweeps.is_empty());
    assert!(
        backend.state().runs.is_empty(),
        "no run goes up before its sweep exists"
    );
    backend.faults().clear();
    let report = sync_paths(&options(&backend)).unwrap();
    assert!(
        report.runs.iter().all(|r| r.result == RunResult::Synced),
        "{:?}",
        report.runs
    );
    let state = backend.state();
    assert_eq!(state.sweeps.len(), 1);
    assert_eq!(state.sweeps[0].upserts, 1);
    assert_eq!(state.sweeps[0].runs.len(), 2);
}

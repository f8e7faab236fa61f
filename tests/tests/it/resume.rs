//! A run resumed offline (two fragments of one run id, the second written by `resume="allow"`)
//! is uploaded by `wandb-sync` as one run: history continuous across the fragments, summary and
//! config merged, the files of both kept, the exit state of the last. The official `wandb sync`
//! given the same two folders is run too, and what it makes of them is checked (see D-numbers in
//! `sync/README.md` for where we differ on purpose).

use std::path::{Path, PathBuf};
use std::time::Duration;

use wandb_logger::{Env, InitOptions, LoadContext, SavePolicy, Setup, SetupOptions, row};
use wandb_settings::Secret;
use wandb_sync::{RunResult, SyncOptions, sync_paths};
use wandb_testkit::RunState;
use wandb_testkit::TestBackend;

use crate::common::official_sync_ok;

const FIRST_ROWS: u64 = 40;
const SECOND_ROWS: u64 = 25;

/// A setup rooted at `dir`, offline, without process-wide features.
fn setup(dir: &Path) -> Setup {
    let env = Env::from_pairs([
        ("WANDB_MODE", "offline"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB_X_DISABLE_STATS", "true"),
        ("WANDB_X_HANDLE_SIGTERM", "false"),
        ("WANDB_PROJECT", "resume"),
    ]);
    let context = LoadContext::new(env, dir)
        .with_home(dir)
        .with_hostname("testhost");
    Setup::new(SetupOptions::default().context(context)).unwrap()
}

/// Writes two fragments of run `resumed1` under `dir/wandb`; returns their run folders.
fn two_fragments(dir: &Path) -> (PathBuf, PathBuf) {
    let setup = setup(dir);
    let config = serde_json::json!({"lr": 0.1, "layers": 4});
    let run = setup
        .init(InitOptions::new().id("resumed1").config(&config))
        .unwrap();
    for step in 0..FIRST_ROWS {
        run.log(row! {"loss" => 1.0 / (step as f64 + 1.0), "first" => step})
            .unwrap();
    }
    let a = dir.join("a.txt");
    std::fs::write(&a, "from the first fragment\n").unwrap();
    run.save(&a, SavePolicy::Now).unwrap();
    run.summary_set("best", &"first").unwrap();
    let first = run.dir().unwrap().to_path_buf();
    // Preempted: the job is requeued and resumes.
    run.finish_with_code(143).unwrap();

    let config = serde_json::json!({"lr": 0.2});
    let run = setup
        .init(
            InitOptions::new()
                .id("resumed1")
                .resume("allow")
                .config(&config),
        )
        .unwrap();
    assert!(run.resumed());
    assert_eq!(run.starting_step(), FIRST_ROWS);
    for step in 0..SECOND_ROWS {
        run.log(row! {"loss" => 0.01 / (step as f64 + 1.0), "second" => step})
            .unwrap();
    }
    let b = dir.join("b.txt");
    std::fs::write(&b, "from the second fragment\n").unwrap();
    run.save(&b, SavePolicy::Now).unwrap();
    let second = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    (first, second)
}

/// The `_step` of every history row the server holds, in line order.
fn steps(run: &RunState) -> Vec<i64> {
    run.history
        .iter()
        .map(|row| row["_step"].as_i64().unwrap())
        .collect()
}

/// What both fragments must give, whoever uploads them.
fn check_continuation(run: &RunState, client: &str) {
    let expected: Vec<i64> = (0..(FIRST_ROWS + SECOND_ROWS) as i64).collect();
    assert_eq!(steps(run), expected, "{client}: history continues");
    let summary = run.summary.as_ref().unwrap();
    assert_eq!(summary["best"], "first", "{client}: carried summary");
    assert_eq!(
        summary["first"],
        FIRST_ROWS - 1,
        "{client}: first fragment's key"
    );
    assert_eq!(
        summary["second"],
        SECOND_ROWS - 1,
        "{client}: second fragment's key"
    );
    assert_eq!(summary["_step"], FIRST_ROWS + SECOND_ROWS - 1, "{client}");
    let config = run.config.as_ref().unwrap();
    assert_eq!(
        config["lr"]["value"], 0.2,
        "{client}: the resumed init's config"
    );
    assert_eq!(config["layers"]["value"], 4, "{client}: the carried config");
    assert!(
        run.file("a.txt").is_some(),
        "{client}: first fragment's file"
    );
    assert!(
        run.file("b.txt").is_some(),
        "{client}: second fragment's file"
    );
    assert_eq!(run.exit_code, Some(0), "{client}: the last fragment's exit");
    assert!(run.complete, "{client}");
    let runtimes: Vec<f64> = run
        .history
        .iter()
        .map(|row| row["_runtime"].as_f64().unwrap())
        .collect();
    assert!(
        runtimes.windows(2).all(|w| w[0] <= w[1]),
        "{client}: _runtime never goes back: {runtimes:?}"
    );
}

#[test]
fn a_resumed_run_syncs_as_one_run() {
    let scratch = tempfile::tempdir().unwrap();
    let (first, second) = two_fragments(scratch.path());
    assert_ne!(first, second);

    let ours = TestBackend::start().unwrap();
    let mut options = SyncOptions::new(
        vec![scratch.path().join("wandb")],
        ours.base_url(),
        Some(Secret::new(ours.api_key())),
    );
    options.run_timeout = Duration::from_secs(120);
    let report = sync_paths(&options).unwrap();
    assert_eq!(report.runs.len(), 2, "{:?}", report.runs);
    assert!(
        report.runs.iter().all(|r| r.result == RunResult::Synced),
        "{:?}",
        report.runs
    );
    let state = ours.state();
    assert_eq!(state.runs.len(), 1, "one run on the server");
    let run = ours.find_run("resumed1").unwrap();
    assert_eq!(run.counters.history_gaps, 0);
    assert_eq!(run.counters.duplicate_line_writes, 0);
    check_continuation(&run, "wandb-sync");
}

#[test]
fn the_official_sync_uploads_a_resumed_run_as_one_run_too() {
    let Some(python) = wandb_integration_tests::sdk_python() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let (first, second) = two_fragments(scratch.path());
    let theirs = TestBackend::start().unwrap();
    // One `wandb sync` per fragment, in start order, as a user would run them.
    for fragment in [&first, &second] {
        official_sync_ok(&python, fragment, &theirs, scratch.path());
    }
    let run = theirs
        .find_run("resumed1")
        .expect("the official sync uploaded nothing");
    check_continuation(&run, "wandb sync, one fragment at a time");

    // Both folders in one `wandb sync`, the later one first: it puts them in order too.
    let theirs = TestBackend::start().unwrap();
    let config_dir = scratch.path().join("wandb-config");
    let out = std::process::Command::new(&python)
        .args(["-m", "wandb", "sync", "--include-synced"])
        .arg(&second)
        .arg(&first)
        .current_dir(scratch.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch.path())
        .env("WANDB_CONFIG_DIR", &config_dir)
        .env("WANDB_BASE_URL", theirs.base_url())
        .env("WANDB_API_KEY", theirs.api_key())
        .env("WANDB_SILENT", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wandb sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = theirs.find_run("resumed1").unwrap();
    check_continuation(&run, "wandb sync, both folders at once");

    // And ours reconstructs the same run from the same folders.
    let ours = TestBackend::start().unwrap();
    let mut options = SyncOptions::new(
        vec![second.clone(), first.clone()],
        ours.base_url(),
        Some(Secret::new(ours.api_key())),
    );
    options.run_timeout = Duration::from_secs(120);
    // The official client marked the files synced.
    options.include_synced = true;
    let report = sync_paths(&options).unwrap();
    assert!(
        report.runs.iter().all(|r| r.result == RunResult::Synced),
        "{:?}",
        report.runs
    );
    let ours_run = ours.find_run("resumed1").unwrap();
    wandb_testkit::compare::assert_same(
        &wandb_testkit::compare::essence(&run),
        &wandb_testkit::compare::essence(&ours_run),
        "resumed run",
    );
}

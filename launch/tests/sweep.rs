//! `wandb-launch sweep ...` end to end, with the real binary: a sweep created from a W&B sweep
//! configuration, its runs proposed by `sweep controller` (or `agent --sweeps`) and run by an
//! agent on local processes (and on the one-node SLURM when there is one). Programs: a tiny
//! shell script, a `wandb-logger` program (this test binary, see [`sweep_logger_child`]), an
//! unmodified official-SDK script. The `wandb-logger` sweep is synced to the test backend, which
//! then holds the sweep with every run attached. Every wait is bounded; polls are 100 ms.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, LogFile, Recovery};
use wandb_settings::Secret;
use wandb_sync::{RetryPolicy, SyncOptions, sync_paths};
use wandb_testkit::TestBackend;

mod common;

/// When set, [`sweep_logger_child`] is the job: `curve` (Hyperband's scripted metric) or
/// `quadratic` (loss = (x - 2)^2 + y).
const CHILD: &str = "WANDB_LAUNCH_TEST_SWEEP_CHILD";

/// How long a whole sweep may take before the test fails.
const SWEEP_BOUND: Duration = Duration::from_secs(60);

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = common::command(dir, args);
    cmd.env("WANDB_MODE", "offline")
        .env_remove("WANDB_SWEEP_ID")
        .env_remove("WANDB_SWEEP_PARAM_PATH")
        .env_remove("WANDB_RUN_ID")
        .env_remove(CHILD)
        .stdin(Stdio::null());
    cmd
}

/// Runs `wandb-launch args` to success; its stdout.
fn launch(dir: &Path, args: &[&str]) -> String {
    common::succeeds(&mut command(dir, args))
}

/// `sweep create` of `yaml` (written to `dir/sweep.yaml`) on queue `default`; the sweep id.
fn create(dir: &Path, yaml: &str, extra: &[&str]) -> String {
    std::fs::write(dir.join("sweep.yaml"), yaml).unwrap();
    let mut args = vec!["sweep", "create", "sweep.yaml", "--queue", "default"];
    args.extend_from_slice(extra);
    let id = launch(dir, &args).trim().to_owned();
    assert_eq!(id.len(), 8, "{id:?}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    id
}

/// An agent in the background, stopped (SIGTERM, then waited for) on drop.
struct Agent(Child);

impl Agent {
    fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut args = vec!["agent", "--poll", "100ms", "--grace", "5s"];
        args.extend_from_slice(extra);
        let mut cmd = command(dir, &args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Agent(cmd.stdout(Stdio::null()).spawn().unwrap())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sweep controller ID` started with 100 ms ticks and `--max-pending max_pending`.
fn spawn_controller(dir: &Path, id: &str, max_pending: &str) -> Child {
    let args = [
        "sweep",
        "controller",
        id,
        "--poll",
        "100ms",
        "--max-pending",
        max_pending,
    ];
    command(dir, &args).stdout(Stdio::null()).spawn().unwrap()
}

/// Runs `sweep controller ID` until it exits (the sweep is done), at most [`SWEEP_BOUND`].
fn control(dir: &Path, id: &str, max_pending: &str) {
    let mut child = spawn_controller(dir, id, max_pending);
    let deadline = Instant::now() + SWEEP_BOUND;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "sweep controller: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sweep {id} not done within {SWEEP_BOUND:?}:\n{}",
                launch(dir, &["list"])
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(dir: &Path, id: &str) -> Value {
    let out = launch(dir, &["sweep", "status", id, "--json"]);
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["type"], "status");
    line["data"].clone()
}

/// The run folders of run `run_id` under `dir/wandb/`.
fn run_dirs(dir: &Path, run_id: &str) -> Vec<PathBuf> {
    wandb_launch::runlink::find_run_dirs(dir, run_id)
}

/// Every record of the run's `.wandb` file(s).
fn records(dir: &Path, run_id: &str) -> Vec<RecordType> {
    let mut out = Vec::new();
    for run_dir in run_dirs(dir, run_id) {
        for entry in std::fs::read_dir(&run_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wandb") {
                let log = LogFile::open(&path).unwrap();
                for entry in log.records(Recovery::SkipCorrupt) {
                    if let Ok(Entry::Record { record, .. }) = entry
                        && let Some(kind) = record.record_type
                    {
                        out.push(kind);
                    }
                }
            }
        }
    }
    out
}

/// The run record's sweep id and config (keys to values) of a run.
fn run_record(dir: &Path, run_id: &str) -> (String, serde_json::Map<String, Value>) {
    let mut sweep_id = String::new();
    let mut config = serde_json::Map::new();
    for record in records(dir, run_id) {
        match record {
            RecordType::Run(run) => {
                sweep_id = run.sweep_id.clone();
                for item in run.config.map(|c| c.update).unwrap_or_default() {
                    config.insert(item.key, serde_json::from_str(&item.value_json).unwrap());
                }
            }
            RecordType::Config(c) => {
                for item in c.update {
                    config.insert(item.key, serde_json::from_str(&item.value_json).unwrap());
                }
            }
            _ => {}
        }
    }
    (sweep_id, config)
}

/// The value of a W&B-form config entry (`{"value": v}` or `v`).
fn unwrap_value(v: &Value) -> &Value {
    v.get("value").unwrap_or(v)
}

/// Syncs the sweep's runs to a fresh test backend: it must hold one sweep in `project`, created
/// from `sweep.yaml`, with every run of `st` (a `sweep status --json`) attached, each with its
/// parameters in its config.
fn synced_as_one_sweep(d: &Path, id: &str, st: &Value, project: &str) {
    let runs = st["runs"].as_array().unwrap();
    let dirs: Vec<PathBuf> = runs
        .iter()
        .flat_map(|r| run_dirs(d, r["id"].as_str().unwrap()))
        .collect();
    assert_eq!(dirs.len(), runs.len());
    let backend = TestBackend::start().unwrap();
    let mut options = SyncOptions::new(
        dirs,
        backend.base_url(),
        Some(Secret::new(backend.api_key())),
    );
    options.retry = RetryPolicy::fast();
    let report = sync_paths(&options).unwrap();
    assert_eq!(report.runs.len(), runs.len(), "{report:?}");
    let state = backend.state();
    assert_eq!(state.sweeps.len(), 1, "{:#?}", state.sweeps);
    let sweep = &state.sweeps[0];
    assert_eq!(sweep.project, project);
    let mut want: Vec<String> = runs
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    want.sort();
    assert_eq!(sweep.runs, want, "every run attached");
    let yaml = std::fs::read_to_string(
        d.join("wandb")
            .join(format!("sweep-{id}"))
            .join("sweep.yaml"),
    )
    .unwrap();
    assert_eq!(sweep.config.as_deref(), Some(yaml.as_str()));
    for run in runs {
        let synced = backend.find_run(run["id"].as_str().unwrap()).unwrap();
        let config = synced.config.clone().unwrap();
        for (key, value) in run["params"].as_object().unwrap() {
            assert_eq!(&config[key]["value"], value, "{key} of {}", run["id"]);
        }
    }
}

const RECORD_SH: &str = "mkdir -p out\n\
    { echo \"$WANDB_SWEEP_ID\"; echo \"$WANDB_SWEEP_PARAM_PATH\"; echo \"$*\"; cat \"$WANDB_SWEEP_PARAM_PATH\"; } > \"out/$WANDB_RUN_ID.txt\"\n";

#[test]
fn a_grid_of_3x3_runs_9_runs_with_their_params() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("record.sh"), RECORD_SH).unwrap();
    let id = create(
        d,
        "program: record.sh\n\
         command: [\"${env}\", \"sh\", \"${program}\", \"${args}\"]\n\
         method: grid\n\
         parameters:\n  a:\n    values: [1, 2, 3]\n  b:\n    values: [p, q, r]\n",
        &["--project", "grid"],
    );
    // The contract with wandb-sync: the configuration and the sweep's identity, before any run.
    let sweep_dir = d.join("wandb").join(format!("sweep-{id}"));
    let yaml = std::fs::read_to_string(sweep_dir.join("sweep.yaml")).unwrap();
    assert!(yaml.contains("method: grid"), "{yaml}");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(sweep_dir.join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(meta["id"], id.as_str());
    assert_eq!(meta["project"], "grid");
    assert_eq!(meta["method"], "grid");
    assert!(meta["created_at"].is_string());

    let _agent = Agent::start(d, &["--max-jobs", "3"], &[]);
    control(d, &id, "3");
    let st = status(d, &id);
    assert_eq!(st["state"], "finished", "{st:#}");
    assert_eq!(st["runs_by_state"]["finished"], 9, "{st:#}");
    let runs = st["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 9);
    let mut seen = BTreeSet::new();
    for run in runs {
        let run_id = run["id"].as_str().unwrap();
        let text = std::fs::read_to_string(d.join("out").join(format!("{run_id}.txt"))).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], id, "WANDB_SWEEP_ID of {run_id}");
        assert_eq!(
            lines[1],
            sweep_dir
                .join(format!("config-{run_id}.yaml"))
                .to_str()
                .unwrap(),
            "WANDB_SWEEP_PARAM_PATH"
        );
        let (a, b) = (&run["params"]["a"], run["params"]["b"].as_str().unwrap());
        assert_eq!(lines[2], format!("--a={a} --b={b}"), "argv of {run_id}");
        let param_file = lines[3..].join("\n");
        assert_eq!(
            param_file,
            format!("wandb_version: 1\n\na:\n  value: {a}\nb:\n  value: {b}"),
            "param file of {run_id}"
        );
        seen.insert(lines[2].to_owned());
    }
    assert_eq!(seen.len(), 9, "every combination once: {seen:?}");
}

#[test]
fn random_search_stops_at_its_run_cap_and_a_seed_repeats_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("json.sh"),
        "mkdir -p out\ncat \"$1\" > \"out/$WANDB_RUN_ID.json\"\n",
    )
    .unwrap();
    let yaml = "program: json.sh\n\
         command: [sh, \"${program}\", \"${args_json_file}\"]\n\
         method: random\nrun_cap: 4\n\
         parameters:\n  lr:\n    distribution: log_uniform_values\n    min: 0.0001\n    max: 0.1\n  \
         layers:\n    values: [1, 2, 3]\n";
    let id = create(d, yaml, &["--seed", "7"]);
    let _agent = Agent::start(d, &["--max-jobs", "2"], &[]);
    control(d, &id, "2");
    let st = status(d, &id);
    assert_eq!(st["state"], "finished", "{st:#}");
    assert_eq!(st["runs_by_state"]["finished"], 4, "run_cap 4: {st:#}");
    let mut params = Vec::new();
    for run in st["runs"].as_array().unwrap() {
        let run_id = run["id"].as_str().unwrap();
        let file: Value = serde_json::from_str(
            &std::fs::read_to_string(d.join("out").join(format!("{run_id}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(file, run["params"], "${{args_json_file}} of {run_id}");
        let lr = run["params"]["lr"].as_f64().unwrap();
        assert!((0.0001..=0.1).contains(&lr), "{lr}");
        params.push(run["params"].clone());
    }
    // The same seed proposes the same runs in the same order.
    let again = create(d, yaml, &["--seed", "7"]);
    launch(
        d,
        &[
            "sweep",
            "controller",
            &again,
            "--once",
            "--max-pending",
            "4",
        ],
    );
    let st2 = status(d, &again);
    let params2: Vec<Value> = st2["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["params"].clone())
        .collect();
    assert_eq!(params, params2);
}

#[test]
fn pause_resume_stop_and_cancel_as_wandb() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = create(
        d,
        "command: [\"true\"]\nmethod: grid\nparameters:\n  a:\n    values: [1, 2, 3, 4, 5]\n",
        &[],
    );
    // No agent: the runs stay queued.
    let once = |d: &Path| {
        launch(
            d,
            &["sweep", "controller", &id, "--once", "--max-pending", "2"],
        );
    };
    once(d);
    assert_eq!(status(d, &id)["runs_by_state"]["pending"], 2);
    launch(d, &["sweep", "pause", &id]);
    assert_eq!(status(d, &id)["state"], "paused");
    launch(
        d,
        &["sweep", "controller", &id, "--once", "--max-pending", "5"],
    );
    assert_eq!(status(d, &id)["n_proposals"], 2, "paused: no new runs");
    launch(d, &["sweep", "resume", &id]);
    launch(
        d,
        &["sweep", "controller", &id, "--once", "--max-pending", "3"],
    );
    let st = status(d, &id);
    assert_eq!(
        (st["state"].clone(), st["n_proposals"].clone()),
        ("running".into(), 3.into())
    );
    let out = launch(d, &["sweep", "cancel", &id, "--json"]);
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["data"]["state"], "cancelled");
    assert_eq!(line["data"]["cancelled_runs"].as_array().unwrap().len(), 3);
    let st = status(d, &id);
    assert_eq!(st["runs_by_state"]["killed"], 3, "{st:#}");
    launch(d, &["sweep", "controller", &id, "--once"]);
    assert_eq!(status(d, &id)["n_proposals"], 3, "cancelled: no new runs");

    let other = create(
        d,
        "command: [\"true\"]\nmethod: grid\nparameters:\n  a:\n    values: [1, 2]\n",
        &[],
    );
    launch(d, &["sweep", "stop", &other]);
    launch(d, &["sweep", "controller", &other, "--once"]);
    let st = status(d, &other);
    assert_eq!(
        (st["state"].clone(), st["n_proposals"].clone()),
        ("finished".into(), 0.into())
    );
}

#[test]
fn a_bad_configuration_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.yaml"),
        "method: grid\nparameters:\n  lr:\n    min: 0.1\n    max: abc\n",
    )
    .unwrap();
    let out = command(d, &["sweep", "create", "bad.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:5: parameters.lr.max"), "{stderr}");
    let out = command(d, &["sweep", "status", "nosuch12"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sweep nosuch12"));
}

/// A sweep whose program is this test binary's [`sweep_logger_child`] (`wandb-logger`).
fn logger_sweep_yaml(body: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    format!(
        "command: [\"{}\", \"sweep_logger_child\", \"--exact\", \"--nocapture\", \"--test-threads=1\"]\n{body}",
        exe.display()
    )
}

/// Runs `agent --sweeps` with up to `max_jobs` jobs until the queue is empty, the jobs being
/// the `quadratic` logger program; it must succeed.
fn run_quadratic_sweep(dir: &Path, max_jobs: &str) {
    let args = [
        "agent",
        "--poll",
        "100ms",
        "--max-jobs",
        max_jobs,
        "--sweeps",
        "--exit-when-empty",
    ];
    common::succeeds(command(dir, &args).env(CHILD, "quadratic"));
}

#[test]
fn a_wandb_logger_program_gets_its_params_and_syncs_as_one_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = create(
        d,
        &logger_sweep_yaml(
            "method: grid\nmetric:\n  name: loss\n  goal: minimize\n\
             parameters:\n  x:\n    values: [1, 2, 3]\n  y:\n    value: 0.5\n",
        ),
        &["--project", "logged"],
    );
    // The agent drives the sweep itself and exits once it is over.
    run_quadratic_sweep(d, "3");
    let st = status(d, &id);
    assert_eq!(st["state"], "finished", "{st:#}");
    assert_eq!(st["runs_by_state"]["finished"], 3, "{st:#}");
    assert_eq!(st["best"]["params"]["x"], 2, "{st:#}");
    assert_eq!(st["best"]["metric"], 0.5, "{st:#}");
    let text = launch(d, &["sweep", "status", &id]);
    assert!(text.contains("best: run"), "{text}");
    assert!(text.contains("loss=0.5"), "{text}");
    for run in st["runs"].as_array().unwrap() {
        let run_id = run["id"].as_str().unwrap();
        let (sweep_id, config) = run_record(d, run_id);
        assert_eq!(
            unwrap_value(&config["x"]),
            &run["params"]["x"],
            "{config:?}"
        );
        assert_eq!(unwrap_value(&config["y"]), 0.5, "{config:?}");
        // The logger's reading of WANDB_SWEEP_ID puts the sweep id in the run record.
        assert_eq!(sweep_id, id, "run {run_id}");
    }
    synced_as_one_sweep(d, &id, &st, "logged");
}

#[test]
fn bayes_search_runs_to_its_run_cap_on_the_finished_runs_metric() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = create(
        d,
        &logger_sweep_yaml(
            "method: bayes\nrun_cap: 5\nmetric:\n  name: loss\n\
             parameters:\n  x:\n    min: 0.0\n    max: 4.0\n  y:\n    value: 0.0\n",
        ),
        &["--seed", "3"],
    );
    run_quadratic_sweep(d, "1");
    let st = status(d, &id);
    assert_eq!(st["state"], "finished", "{st:#}");
    assert_eq!(st["runs_by_state"]["finished"], 5, "{st:#}");
    // Every run's metric was read from its .wandb file: the best is the least of them.
    let metrics: Vec<f64> = st["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"].as_f64().unwrap())
        .collect();
    let least = metrics.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(st["best"]["metric"].as_f64(), Some(least), "{st:#}");
    for run in st["runs"].as_array().unwrap() {
        let x = run["params"]["x"].as_f64().unwrap();
        assert!((0.0..=4.0).contains(&x), "{x}");
        assert!((run["metric"].as_f64().unwrap() - (x - 2.0).powi(2)).abs() < 1e-9);
    }
}

#[test]
fn hyperband_stops_the_worse_run_with_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = create(
        d,
        &logger_sweep_yaml(
            "method: grid\nmetric:\n  name: loss\n\
             early_terminate:\n  type: hyperband\n  min_iter: 2\n  eta: 3\n\
             parameters:\n  level:\n    values: [1, 3]\n",
        ),
        &[],
    );
    let _agent = Agent::start(d, &["--max-jobs", "2"], &[(CHILD, "curve")]);
    control(d, &id, "2");
    let st = status(d, &id);
    let runs = st["runs"].as_array().unwrap();
    let by_level = |level: i64| {
        runs.iter()
            .find(|r| r["params"]["level"] == level)
            .unwrap_or_else(|| panic!("{st:#}"))
    };
    assert_eq!(by_level(1)["state"], "finished", "{st:#}");
    let stopped = by_level(3);
    assert_eq!(stopped["state"], "killed", "{st:#}");
    let records = records(d, stopped["id"].as_str().unwrap());
    assert!(
        records
            .iter()
            .any(|r| matches!(r, RecordType::Preempting(_))),
        "a preempting record"
    );
    let exit = records.iter().find_map(|r| match r {
        RecordType::Exit(e) => Some(e.exit_code),
        _ => None,
    });
    assert_eq!(exit, Some(143), "an exit record of SIGTERM");
    let history = records
        .iter()
        .filter(|r| matches!(r, RecordType::History(_)))
        .count();
    assert!(history < 200, "stopped early: {history} steps of 200");
}

/// Not a test of its own: the job of the `wandb-logger` sweeps above (they run this binary
/// with this filter and [`CHILD`] set). Its parameters come in `WANDB_CONFIG` (read by the
/// logger, and here by the test to script its metric).
#[test]
fn sweep_logger_child() {
    let Ok(kind) = std::env::var(CHILD) else {
        return;
    };
    let config: Value = serde_json::from_str(&std::env::var("WANDB_CONFIG").unwrap()).unwrap();
    let run = wandb_logger::init(wandb_logger::InitOptions::new()).unwrap();
    assert_eq!(run.id(), std::env::var("WANDB_RUN_ID").unwrap());
    if kind == "curve" {
        // level 1 logs 10 values fast and finishes; level 3 logs 200 values over 20 s unless
        // stopped (which Hyperband does after its first few).
        let level = config["level"].as_f64().unwrap();
        let (steps, pause) = if level < 2.0 { (10, 20) } else { (200, 100) };
        for _ in 0..steps {
            run.log(wandb_logger::row! {"loss" => level}).unwrap();
            std::thread::sleep(Duration::from_millis(pause));
        }
    } else {
        let x = config["x"].as_f64().unwrap();
        let y = config["y"].as_f64().unwrap();
        for step in 0..3 {
            let loss = (x - 2.0).powi(2) + y + f64::from(2 - step);
            run.log(wandb_logger::row! {"loss" => loss}).unwrap();
        }
    }
    run.finish().unwrap();
}

/// Writes `train_py` to `dir/train.py` and creates the sweep of `yaml` with `python` as its
/// interpreter and `project` as its runs' project; the sweep id.
fn create_sdk_sweep(
    dir: &Path,
    python: &Path,
    train_py: &str,
    yaml: &str,
    project: &str,
) -> String {
    std::fs::write(dir.join("train.py"), train_py).unwrap();
    let interpreter = python.to_str().unwrap();
    create(
        dir,
        yaml,
        &["--interpreter", interpreter, "--project", project],
    )
}

#[test]
fn an_official_sdk_script_finds_its_params_in_wandb_config() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = create_sdk_sweep(
        d,
        &python,
        "import wandb\n\
         run = wandb.init()\n\
         for step in range(3):\n    run.log({'loss': run.config.lr * (3 - step)})\n\
         print('sweep', run.sweep_id, 'lr', run.config.lr, 'layers', run.config.layers)\n\
         run.finish()\n",
        "program: train.py\nmethod: grid\nmetric:\n  name: loss\n\
         parameters:\n  lr:\n    values: [0.1, 0.2]\n  layers:\n    value: 4\n",
        "sdk-sweep",
    );
    let _agent = Agent::start(d, &["--max-jobs", "2"], &[]);
    control(d, &id, "2");
    let st = status(d, &id);
    assert_eq!(
        st["runs_by_state"]["finished"],
        2,
        "{st:#}\n{}",
        launch(d, &["list"])
    );
    assert_eq!(st["best"]["params"]["lr"], 0.1, "{st:#}");
    assert!((st["best"]["metric"].as_f64().unwrap() - 0.1).abs() < 1e-12);
    for run in st["runs"].as_array().unwrap() {
        let run_id = run["id"].as_str().unwrap();
        let (sweep_id, config) = run_record(d, run_id);
        assert_eq!(sweep_id, id, "the run record carries the sweep id");
        assert_eq!(
            unwrap_value(&config["lr"]),
            &run["params"]["lr"],
            "{config:?}"
        );
        assert_eq!(unwrap_value(&config["layers"]), 4, "{config:?}");
    }
    synced_as_one_sweep(d, &id, &st, "sdk-sweep");
}

#[test]
fn a_sweep_runs_on_slurm() {
    let Some(cluster) = wandb_testkit::slurm_cluster() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("record.sh"), RECORD_SH).unwrap();
    let id = create(
        d,
        "program: record.sh\ncommand: [sh, \"${program}\", \"${args}\"]\nmethod: grid\n\
         parameters:\n  a:\n    values: [1, 2]\n",
        &["--resource", "slurm", "--resource-args", "time=00:05:00"],
    );
    let conf = cluster.conf().to_str().unwrap().to_owned();
    let _agent = Agent::start(d, &["--max-jobs", "2"], &[("SLURM_CONF", &conf)]);
    control(d, &id, "2");
    let st = status(d, &id);
    assert_eq!(
        st["runs_by_state"]["finished"],
        2,
        "{st:#}\n{}",
        launch(d, &["list"])
    );
    for run in st["runs"].as_array().unwrap() {
        let run_id = run["id"].as_str().unwrap();
        let text = std::fs::read_to_string(d.join("out").join(format!("{run_id}.txt"))).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], id);
        assert_eq!(lines[2], format!("--a={}", run["params"]["a"]));
    }
}

#[test]
fn the_param_files_read_back_in_the_sdk_as_the_params() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Strings YAML 1.1 would read as other types, floats in exponent form, nested parameters.
    let id = create(
        d,
        "command: [\"true\"]\nmethod: grid\nparameters:\n  \
         word:\n    values: [\"on\", \"y\", \"a b\", \"x: y\", \"1e-5\", \"\", \"null\", \"#c\", \"é\"]\n  \
         lr:\n    values: [0.00001, 1.5e16, 3]\n  \
         opt:\n    parameters:\n      name:\n        value: adam\n      betas:\n        value: [0.9, 0.999]\n",
        &[],
    );
    launch(
        d,
        &["sweep", "controller", &id, "--once", "--max-pending", "27"],
    );
    let st = status(d, &id);
    let runs = st["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 27, "{st:#}");
    let sweep_dir = d.join("wandb").join(format!("sweep-{id}"));
    let script = "import json, sys\n\
        from wandb.sdk.lib import config_util\n\
        print(json.dumps({p: config_util.dict_from_config_file(p) for p in sys.argv[1:]}))\n";
    let paths: Vec<String> = runs
        .iter()
        .map(|r| {
            let run_id = r["id"].as_str().unwrap();
            sweep_dir
                .join(format!("config-{run_id}.yaml"))
                .display()
                .to_string()
        })
        .collect();
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (run, path) in runs.iter().zip(&paths) {
        assert_eq!(read[path.as_str()], run["params"], "{path}");
    }
}

/// As a new user would: the basic example of W&B's documentation ("Define a sweep
/// configuration": bayes, no run cap) run offline with an official-SDK `train.py`, stopped by
/// `sweep stop` after three runs; `sweep status` shows the best run, and the sync the sweep.
#[test]
fn the_documentation_example_runs_offline_until_stopped() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml = include_str!("../../sweeps/tests/configs/docs_basic.yaml");
    let id = create_sdk_sweep(
        d,
        &python,
        "import wandb\n\
         run = wandb.init()\n\
         c = run.config\n\
         for epoch in range(3):\n    \
             run.log({'validation_loss': abs(c.learning_rate - 0.05) + c.batch_size / 1000 + 0.1 / (epoch + 1)})\n\
         run.finish()\n",
        yaml,
        "docs",
    );
    let _agent = Agent::start(d, &["--max-jobs", "2"], &[]);
    let mut controller = spawn_controller(d, &id, "2");
    let deadline = Instant::now() + SWEEP_BOUND;
    while status(d, &id)["runs_by_state"]["finished"]
        .as_u64()
        .unwrap_or(0)
        < 3
    {
        assert!(Instant::now() < deadline, "{}", launch(d, &["list"]));
        std::thread::sleep(Duration::from_millis(200));
    }
    launch(d, &["sweep", "stop", &id]);
    // The controller ends once the runs in flight have finished.
    loop {
        if let Some(code) = controller.try_wait().unwrap() {
            assert!(code.success());
            break;
        }
        if Instant::now() > deadline {
            let _ = controller.kill();
            panic!("the controller did not end after stop");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = status(d, &id);
    assert_eq!(st["state"], "finished", "{st:#}");
    let runs = st["runs"].as_array().unwrap();
    assert!(runs.iter().all(|r| r["state"] == "finished"), "{st:#}");
    let best = &st["best"];
    let least = runs
        .iter()
        .map(|r| r["metric"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best["metric"].as_f64(), Some(least), "{st:#}");
    let text = launch(d, &["sweep", "status", &id]);
    assert!(
        text.contains("best: run") && text.contains("validation_loss="),
        "{text}"
    );
    synced_as_one_sweep(d, &id, &st, "docs");
}

//! Resuming offline runs: `allow`, `must`, `never` and `auto` against the fragments in the local
//! wandb folder, continuing the step, summary, config and run time; a run killed with `kill -9`
//! continues from its last durable step.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use wandb_format::json;
use wandb_format::proto::record::RecordType;
use wandb_logger::{Error, InitOptions, Setup, SetupOptions, row};

use crate::common::{
    context, history, log_path, read_records, read_records_tolerant, replay_summary, spawn_child,
};

/// A setup rooted at `dir` with environment `vars`.
fn setup_in(dir: &Path, vars: &[(&str, &str)]) -> Setup {
    Setup::new(SetupOptions::default().context(context(dir, vars))).unwrap()
}

/// The run record of a file.
fn run_record(path: &Path) -> wandb_format::proto::RunRecord {
    read_records(path)
        .into_iter()
        .find_map(|r| match r.record_type {
            Some(RecordType::Run(run)) => Some(run),
            _ => None,
        })
        .unwrap()
}

/// The run record's config, without `_wandb`.
fn record_config(path: &Path) -> json::Map {
    let run = run_record(path);
    let mut map = json::Map::new();
    for item in run.config.unwrap().update {
        if item.key != "_wandb" {
            map.insert(item.key, json::parse(&item.value_json).unwrap());
        }
    }
    map
}

/// Writes a first fragment of run `id`: steps 0..5 of `loss`, an explicit summary value, a
/// config; finished with `exit_code`.
fn first_fragment(setup: &Setup, id: &str, exit_code: i32) -> PathBuf {
    let mut config = std::collections::BTreeMap::new();
    config.insert("lr", 0.1);
    config.insert("layers", 4.0);
    let run = setup
        .init(InitOptions::new().id(id).config(&config))
        .unwrap();
    assert!(!run.resumed());
    for i in 0..5 {
        run.log(row! {"loss" => 1.0 / f64::from(i + 1)}).unwrap();
    }
    run.summary_set("best", &"first").unwrap();
    run.config_set("phase", &"one").unwrap();
    let path = log_path(&run);
    run.finish_with_code(exit_code).unwrap();
    path
}

fn runtime_of(row: &crate::common::HistoryRow) -> f64 {
    row.items["_runtime"].as_f64().unwrap()
}

#[test]
fn allow_continues_step_summary_config_and_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_in(dir.path(), &[]);
    let first = first_fragment(&setup, "resume01", 1);
    let first_rows = history(&read_records(&first));
    let first_runtime = runtime_of(first_rows.last().unwrap());

    let mut config = std::collections::BTreeMap::new();
    config.insert("lr", 0.2);
    let run = setup
        .init(
            InitOptions::new()
                .id("resume01")
                .resume("allow")
                .config(&config),
        )
        .unwrap();
    assert!(run.resumed());
    assert_eq!(run.starting_step(), 5);
    assert_eq!(run.step().unwrap(), 5);
    // The carried summary is the run's until the keys are logged again.
    assert_eq!(
        run.summary_get("best").unwrap(),
        Some(json::Value::from("first"))
    );
    assert!(run.summary_get("loss").unwrap().is_some());
    run.log(row! {"loss" => 0.01}).unwrap();
    run.log(row! {"acc" => 0.5}).unwrap();
    let second = log_path(&run);
    assert_ne!(first.parent(), second.parent(), "a new fragment folder");
    run.finish().unwrap();

    let records = read_records(&second);
    let rows = history(&records);
    assert_eq!(
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        [5, 6],
        "_step continues after the last step"
    );
    assert!(
        runtime_of(&rows[0]) >= first_runtime,
        "_runtime continues: {} < {first_runtime}",
        runtime_of(&rows[0])
    );
    let run = run_record(&second);
    assert!(run.resumed);
    assert_eq!(run.starting_step, 5);
    let config = record_config(&second);
    assert_eq!(config.get("lr").and_then(json::Value::as_f64), Some(0.2));
    assert_eq!(
        config.get("layers").and_then(json::Value::as_f64),
        Some(4.0)
    );
    assert_eq!(
        config.get("phase").and_then(json::Value::as_str),
        Some("one")
    );
    let summary = replay_summary(&records);
    assert_eq!(summary["best"].as_str(), Some("first"));
    assert_eq!(summary["loss"].as_f64(), Some(0.01));
    assert_eq!(summary["acc"].as_f64(), Some(0.5));
    assert_eq!(summary["_step"].as_i64(), Some(6));
}

#[test]
fn allow_without_an_earlier_fragment_starts_a_new_run() {
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_in(dir.path(), &[]);
    let run = setup
        .init(InitOptions::new().id("fresh001").resume("allow"))
        .unwrap();
    assert!(!run.resumed());
    assert_eq!(run.starting_step(), 0);
    let path = log_path(&run);
    run.log(row! {"a" => 1}).unwrap();
    run.finish().unwrap();
    assert_eq!(history(&read_records(&path))[0].step, 0);
    assert!(!run_record(&path).resumed);
}

#[test]
fn must_without_an_earlier_fragment_names_the_run_and_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_in(dir.path(), &[]);
    let err = setup
        .init(InitOptions::new().id("missing1").resume("must"))
        .unwrap_err();
    let Error::ResumeNotFound { run_id, wandb_dir } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(run_id, "missing1");
    assert_eq!(wandb_dir, &dir.path().join("wandb"));
    let message = err.to_string();
    assert!(message.contains("missing1"), "{message}");
    assert!(
        message.contains(&wandb_dir.display().to_string()),
        "{message}"
    );
    // Nothing was created for it.
    assert!(
        !dir.path().join("wandb").exists()
            || std::fs::read_dir(dir.path().join("wandb"))
                .unwrap()
                .all(|e| !e
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("missing1"))
    );

    // With a fragment, must resumes.
    first_fragment(&setup, "missing1", 0);
    let run = setup
        .init(InitOptions::new().id("missing1").resume("must"))
        .unwrap();
    assert_eq!(run.starting_step(), 5);
    run.finish().unwrap();
}

#[test]
fn never_with_an_earlier_fragment_names_the_run_and_the_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_in(dir.path(), &[]);
    let first = first_fragment(&setup, "exists01", 0);
    let err = setup
        .init(InitOptions::new().id("exists01").resume("never"))
        .unwrap_err();
    let Error::ResumeExists { run_id, fragment } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(run_id, "exists01");
    assert_eq!(fragment, &first);
    assert!(
        err.to_string().contains(&first.display().to_string()),
        "{err}"
    );
    // A new id is fine.
    let run = setup
        .init(InitOptions::new().id("exists02").resume("never"))
        .unwrap();
    assert!(!run.resumed());
    run.finish().unwrap();
}

#[test]
fn auto_resumes_the_run_named_in_the_resume_file_until_it_finishes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_in(dir.path(), &[]);
    let resume_file = dir.path().join("wandb").join("wandb-resume.json");
    let run = setup.init(InitOptions::new().resume("auto")).unwrap();
    let id = run.id().to_owned();
    let text = std::fs::read_to_string(&resume_file).unwrap();
    assert_eq!(
        json::parse(&text)
            .unwrap()
            .get("run_id")
            .and_then(json::Value::as_str),
        Some(id.as_str())
    );
    run.log(row! {"x" => 1}).unwrap();
    // A failed run stays the candidate.
    run.finish_with_code(2).unwrap();
    assert!(resume_file.exists());

    let run = setup.init(InitOptions::new().resume("auto")).unwrap();
    assert_eq!(run.id(), id);
    assert!(run.resumed());
    assert_eq!(run.starting_step(), 1);
    run.finish().unwrap();
    assert!(
        !resume_file.exists(),
        "a clean finish removes the resume file"
    );

    let run = setup.init(InitOptions::new().resume("auto")).unwrap();
    assert_ne!(run.id(), id, "nothing to resume: a new run");
    assert!(!run.resumed());
    run.finish().unwrap();
}

#[test]
fn requeued_job_resumes_through_the_environment() {
    // What a SLURM requeue or the launch agent does: the same WANDB_RUN_ID, WANDB_RESUME=allow.
    let dir = tempfile::tempdir().unwrap();
    let vars = [("WANDB_RUN_ID", "requeue1"), ("WANDB_RESUME", "allow")];
    for round in 0..3u64 {
        let setup = setup_in(dir.path(), &vars);
        let run = setup.init(InitOptions::new()).unwrap();
        assert_eq!(run.id(), "requeue1");
        assert_eq!(run.starting_step(), round * 2);
        run.log(row! {"round" => round}).unwrap();
        run.log(row! {"round" => round}).unwrap();
        run.finish_with_code(if round < 2 { 143 } else { 0 })
            .unwrap();
    }
    let mut steps = Vec::new();
    let fragments: Vec<PathBuf> = std::fs::read_dir(dir.path().join("wandb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .map(|p| p.join("run-requeue1.wandb"))
        .collect();
    assert_eq!(fragments.len(), 3);
    for fragment in fragments {
        steps.extend(history(&read_records(&fragment)).iter().map(|r| r.step));
    }
    steps.sort_unstable();
    assert_eq!(steps, [0, 1, 2, 3, 4, 5]);
}

#[test]
fn a_damaged_fragment_resumes_after_its_last_intact_step() {
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_in(dir.path(), &[]);
    let first = first_fragment(&setup, "damaged1", 0);
    // Cut the file inside its last records: the exit record and the last summary are lost.
    let len = std::fs::metadata(&first).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    file.set_len(len - 40).unwrap();
    drop(file);
    let (records, torn) = read_records_tolerant(&first);
    assert!(torn);
    let last = history(&records).last().unwrap().step;
    let run = setup
        .init(InitOptions::new().id("damaged1").resume("must"))
        .unwrap();
    assert_eq!(run.starting_step(), u64::try_from(last).unwrap() + 1);
    run.finish().unwrap();
}

#[test]
fn kill_dash_nine_then_resume_continues_from_the_last_durable_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child("kill9", dir.path(), &[]);
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        if line
            .unwrap()
            .strip_prefix("FLUSHED ")
            .is_some_and(|n| n.parse::<u64>().unwrap() >= 10_000)
        {
            break;
        }
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    let first = crate::common::find_run(dir.path(), "killnine");
    let (records, _torn) = read_records_tolerant(&first);
    let rows = history(&records);
    assert!(rows.len() >= 10_000);
    assert!(!records.iter().any(|r| crate::common::kind(r) == "exit"));
    let last = rows.last().unwrap();
    assert_eq!(last.step, rows.len() as i64 - 1);

    let setup = setup_in(dir.path(), &[("WANDB_RESUME", "allow")]);
    let run = setup.init(InitOptions::new().id("killnine")).unwrap();
    assert!(run.resumed());
    assert_eq!(run.starting_step(), rows.len() as u64);
    // The carried summary is the last one the killed run wrote.
    let carried = replay_summary(&records);
    assert_eq!(
        run.summary_get("i").unwrap().and_then(|v| v.as_i64()),
        carried.get("i").and_then(json::Value::as_i64)
    );
    run.log(row! {"i" => -1}).unwrap();
    let second = log_path(&run);
    run.finish().unwrap();
    let rows2 = history(&read_records(&second));
    assert_eq!(rows2[0].step, rows.len() as i64);
    assert!(runtime_of(&rows2[0]) >= runtime_of(last));
}

#[test]
fn a_run_written_by_the_official_sdk_resumes_too() {
    // fixtures/sdk-0.31.0/plain: 50 rows (steps 0..49), a config and a summary, by SDK 0.31.0.
    let dir = tempfile::tempdir().unwrap();
    let fragment = dir
        .path()
        .join("wandb/offline-run-20261122_032118-fxplain0");
    std::fs::create_dir_all(&fragment).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/sdk-0.31.0/plain/run-fxplain0.wandb");
    std::fs::copy(&fixture, fragment.join("run-fxplain0.wandb")).unwrap();
    let sdk_summary = replay_summary(&read_records(&fixture));

    let setup = setup_in(dir.path(), &[]);
    let run = setup
        .init(InitOptions::new().id("fxplain0").resume("must"))
        .unwrap();
    assert_eq!(run.starting_step(), 50);
    assert_eq!(
        run.summary_get("acc").unwrap().and_then(|v| v.as_f64()),
        sdk_summary.get("acc").and_then(json::Value::as_f64)
    );
    let path = log_path(&run);
    run.log(row! {"loss" => 0.0}).unwrap();
    run.finish().unwrap();
    let config = record_config(&path);
    assert_eq!(
        config.get("arch").and_then(json::Value::as_str),
        Some("mlp")
    );
    assert_eq!(
        config
            .get("optimizer")
            .and_then(|o| o.get("name"))
            .and_then(json::Value::as_str),
        Some("adam")
    );
    assert_eq!(history(&read_records(&path))[0].step, 50);
}

#[test]
fn metric_definitions_carry_over_and_a_minimum_continues() {
    use wandb_logger::{Metric, SummaryStat};
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_in(dir.path(), &[]);
    let run = setup.init(InitOptions::new().id("metric01")).unwrap();
    run.define_metric(Metric::new("loss").summary(SummaryStat::Min))
        .unwrap();
    for loss in [0.9, 0.2, 0.4] {
        run.log(row! {"loss" => loss}).unwrap();
    }
    run.finish_with_code(143).unwrap();

    let run = setup
        .init(InitOptions::new().id("metric01").resume("allow"))
        .unwrap();
    run.log(row! {"loss" => 0.5}).unwrap();
    let min = |run: &wandb_logger::Run| {
        run.summary_get_path(&["loss", "min"])
            .unwrap()
            .and_then(|v| v.as_f64())
    };
    assert_eq!(min(&run), Some(0.2), "the earlier minimum holds");
    run.log(row! {"loss" => 0.1}).unwrap();
    assert_eq!(min(&run), Some(0.1));
    let path = log_path(&run);
    run.finish().unwrap();
    let records = read_records(&path);
    assert!(
        records
            .iter()
            .any(|r| matches!(&r.record_type, Some(RecordType::Metric(m)) if m.name == "loss")),
        "the definition is in the new fragment"
    );
    let summary = replay_summary(&records);
    assert_eq!(
        summary["loss"].get("min").and_then(json::Value::as_f64),
        Some(0.1)
    );
}

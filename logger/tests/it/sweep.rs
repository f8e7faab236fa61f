//! A run started by a sweep agent (`WANDB_SWEEP_ID`, `WANDB_SWEEP_PARAM_PATH`) ends up as with the
//! official SDK: the same environment given to an SDK script (offline) and to our logger yields
//! the same run id, project, sweep id in the run record and config (the sweep's values beat the
//! script's and stay locked against a later update).

use std::path::Path;

use wandb_format::json;
use wandb_format::proto::record::RecordType;
use wandb_logger::{InitOptions, Setup, SetupOptions};

use crate::common::{context, read_records, sdk_script_log};
use crate::launch::{canonical, log_script_program};

/// The script, run by the official SDK offline: `init` with a project, an id and a config, then
/// an update of a swept key and a new one. Prints the run folder.
const SDK_SCRIPT: &str = r#"
import wandb
run = wandb.init(mode="offline", project="scriptproj", id="scriptid0",
                 config={"lr": 0.1, "batch": 32, "nested": {"a": 1}})
run.config.update({"lr": 0.5, "extra": 7}, allow_val_change=True)
d = run.dir
run.finish()
print("RUNDIR", d)
"#;

/// The sweep agent's parameter file, as `wandb agent` writes it (`yaml.dump` of
/// `{name: {value: v}}`).
const PARAMS: &str = "lr:\n  value: 0.01\nnested:\n  value:\n    b: 2\noptimizer:\n  value: adam\nwd:\n  value: 1.0e-05\n";

/// What a run ended up with: run id, project, the run record's sweep id, config without
/// `_wandb` (canonical text) and the `_wandb` keys.
#[derive(Debug, PartialEq)]
struct Outcome {
    run_id: String,
    project: String,
    sweep_id: String,
    config: String,
    wandb_keys: Vec<String>,
}

fn outcome(path: &Path) -> Outcome {
    let mut config = json::Map::new();
    let mut out = Outcome {
        run_id: String::new(),
        project: String::new(),
        sweep_id: String::new(),
        config: String::new(),
        wandb_keys: Vec::new(),
    };
    let apply = |record: &wandb_format::proto::ConfigRecord, config: &mut json::Map| {
        for item in &record.update {
            config.insert(item.key.clone(), json::parse(&item.value_json).unwrap());
        }
    };
    for record in read_records(path) {
        match &record.record_type {
            Some(RecordType::Run(run)) => {
                out.run_id.clone_from(&run.run_id);
                out.project.clone_from(&run.project);
                out.sweep_id.clone_from(&run.sweep_id);
                if let Some(c) = &run.config {
                    apply(c, &mut config);
                }
            }
            Some(RecordType::Config(c)) => apply(c, &mut config),
            _ => {}
        }
    }
    // Keys the SDK fills in at the end (runtime, versions, telemetry) are not the sweep's.
    let mut keys: Vec<String> = config
        .remove("_wandb")
        .and_then(|w| w.into_object().ok())
        .map(|w| w.keys().map(str::to_owned).collect())
        .unwrap_or_default();
    keys.retain(|k| k.contains("sweep"));
    out.wandb_keys = keys;
    out.config = canonical(&json::Value::Object(config));
    out
}

fn sdk_outcome(python: &Path, vars: &[(&str, &str)], cwd: &Path) -> Outcome {
    outcome(&sdk_script_log(python, SDK_SCRIPT, cwd, vars))
}

fn our_outcome(vars: &[(&str, &str)], cwd: &Path) -> Outcome {
    let setup = Setup::new(SetupOptions::default().context(context(cwd, vars))).unwrap();
    let (path, _) = log_script_program(&setup, r#"{"a": 1}"#);
    outcome(&path)
}

#[test]
fn a_sweep_run_gets_its_id_and_parameters_as_with_the_sdk() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let params = files.path().join("config-agentrun.yaml");
    std::fs::write(&params, PARAMS).unwrap();
    let params = params.to_str().unwrap();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "sweep agent",
            vec![
                ("WANDB_SWEEP_ID", "swp12345"),
                ("WANDB_SWEEP_PARAM_PATH", params),
                ("WANDB_RUN_ID", "agentrun1"),
                ("WANDB_PROJECT", "sweepproj"),
            ],
        ),
        (
            "sweep id without parameters",
            vec![
                ("WANDB_SWEEP_ID", "swp12345"),
                ("WANDB_RUN_ID", "agentrun2"),
            ],
        ),
        (
            "sweep and launch: launch wins on a key both set",
            vec![
                ("WANDB_SWEEP_ID", "swp12345"),
                ("WANDB_SWEEP_PARAM_PATH", params),
                ("WANDB_RUN_ID", "agentrun3"),
                ("WANDB_LAUNCH", "True"),
                ("WANDB_CONFIG", r#"{"lr": 0.9, "nested": {"c": 3}}"#),
            ],
        ),
    ];
    for (name, vars) in cases {
        let sdk_dir = tempfile::tempdir().unwrap();
        let ours_dir = tempfile::tempdir().unwrap();
        let sdk = sdk_outcome(&python, &vars, sdk_dir.path());
        let ours = our_outcome(&vars, ours_dir.path());
        // The SDK names a project nobody gave "uncategorized" in the run record; ours leaves it
        // empty (the server's default is the same). That is not about sweeps.
        let ours = Outcome {
            project: if ours.project.is_empty() {
                "uncategorized".to_owned()
            } else {
                ours.project
            },
            ..ours
        };
        assert_eq!(ours, sdk, "case {name:?}");
        assert_eq!(sdk.sweep_id, "swp12345", "case {name:?}");
        let lr = match name {
            "sweep agent" => r#""lr":0.01"#,
            "sweep id without parameters" => r#""lr":0.5"#,
            _ => r#""lr":0.9"#,
        };
        assert!(sdk.config.contains(lr), "case {name:?}: {}", sdk.config);
    }
}

#[test]
fn a_missing_or_bad_parameters_file_fails_init_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let missing_text = missing.to_str().unwrap();
    let setup = Setup::new(SetupOptions::default().context(context(
        dir.path(),
        &[
            ("WANDB_SWEEP_ID", "s1"),
            ("WANDB_SWEEP_PARAM_PATH", missing_text),
        ],
    )));
    let message = match setup {
        Err(e) => e.to_string(),
        Ok(setup) => setup.init(InitOptions::new()).err().unwrap().to_string(),
    };
    assert!(message.contains(missing_text), "{message}");
    assert!(message.contains("WANDB_SWEEP_PARAM_PATH"), "{message}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "lr: 0.1\n").unwrap();
    let setup = Setup::new(SetupOptions::default().context(context(
        dir.path(),
        &[
            ("WANDB_SWEEP_ID", "s1"),
            ("WANDB_SWEEP_PARAM_PATH", bad.to_str().unwrap()),
        ],
    )))
    .unwrap();
    let err = setup.init(InitOptions::new()).err().unwrap();
    let message = err.to_string();
    assert!(
        message.contains("bad.yaml") && message.contains("\"lr\""),
        "{message}"
    );
}

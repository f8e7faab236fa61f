//! Against the official SDK's Python (`WANDB_SDK_PYTHON`): our command arguments against the
//! SDK's own (`wandb.sdk.launch.sweeps.utils.create_sweep_command_args`, which W&B's agent uses),
//! our float formatting against Python's `repr`, and our reading of the example configurations
//! against PyYAML's (which `wandb sweep` uses).

use std::process::Command;

use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};
use wandb_sweeps::SweepConfig;
use wandb_sweeps::command::expand;
use wandb_sweeps::pyfmt::python_float;

const SCRIPT: &str = r#"
import json, sys
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
doc = json.load(sys.stdin)
out = {"cases": [], "floats": [repr(f) for f in doc["floats"]]}
for params in doc["cases"]:
    args = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    del args["args_dict"]
    out["cases"].append(args)
json.dump(out, sys.stdout)
"#;

const MACROS: &[&str] = &[
    "args",
    "args_no_equals",
    "args_no_hyphens",
    "args_no_boolean_flags",
    "args_json",
    "args_append_hydra",
    "args_override_hydra",
];

#[test]
fn arguments_match_the_sdk_agent() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let cases = vec![
        json!({"lr": 0.00001, "batch_size": 64, "optimizer": "adam", "flag": true, "off": false}),
        json!({"big": 1e16, "small": 1.5e-7, "neg": -0.0, "whole": 3.0, "int": 12345678901234_i64, "none": null}),
        json!({"quote": "it's", "both": "say \"hi\" it's", "path": "a\\b", "uni": "é-ü", "empty": ""}),
        json!({"layers": [64, 128.5, "x", null, true], "opt": {"name": "adam", "betas": [0.9, 0.999], "nested": {"eps": 1e-8}}}),
    ];
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let mut floats: Vec<f64> = (0..2000)
        .map(|_| {
            let mantissa: f64 = rng.random_range(-10.0..10.0);
            let exponent: i32 = rng.random_range(-30..30);
            mantissa * 10f64.powi(exponent)
        })
        .collect();
    floats.extend([
        0.1,
        0.2 + 0.1,
        1e-4,
        1e-5,
        9.999e15,
        1e16,
        123456789.125,
        5e-324,
        f64::MAX,
    ]);
    let input = json!({"cases": cases, "floats": floats});
    let stdout = wandb_testkit::python_script(&python, SCRIPT, input.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("the SDK's script: {e}"));
    let sdk: Value = serde_json::from_slice(&stdout).unwrap();

    let ours: Vec<String> = floats.iter().map(|f| python_float(*f)).collect();
    let theirs: Vec<String> = serde_json::from_value(sdk["floats"].clone()).unwrap();
    let mismatches: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("ours {a} python {b}"))
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    for (case, expected) in cases.iter().zip(sdk["cases"].as_array().unwrap()) {
        let params: Map<String, Value> = case.as_object().cloned().unwrap();
        for macro_name in MACROS {
            let config = SweepConfig::from_yaml_str(
                &format!("method: random\nparameters:\n  a:\n    value: 1\ncommand:\n  - ${{{macro_name}}}\n"),
                None,
            )
            .unwrap();
            let no_env = |_: &str| None;
            let argv = expand(
                &config,
                &params,
                &wandb_sweeps::CommandContext::unix(&no_env),
            )
            .unwrap();
            let want: Vec<String> = serde_json::from_value(expected[*macro_name].clone()).unwrap();
            assert_eq!(argv, want, "${{{macro_name}}} for {case}");
        }
    }
}

const PYYAML: &str = r#"
import json, sys, yaml
out = {}
for path in sys.argv[1:]:
    with open(path) as f:
        out[path] = yaml.safe_load(f)
json.dump(out, sys.stdout)
"#;

/// Every example configuration reads as W&B's CLI reads it (PyYAML, YAML 1.1), except where
/// YAML 1.2 deliberately differs: `1e-5` without a dot is a number for us, a string for PyYAML.
#[test]
fn examples_read_as_pyyaml_reads_them() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let dir = crate::config_path("");
    let mut paths: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    paths.sort();
    let output = Command::new(&python)
        .args(["-c", PYYAML])
        .args(&paths)
        .output()
        .unwrap();
    assert!(output.status.success(), "PyYAML failed");
    let theirs: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut differing = Vec::new();
    for path in &paths {
        let name = path.rsplit('/').next().unwrap();
        let ours = crate::load(name);
        if ours.to_json() != &theirs[path.as_str()] {
            differing.push(name.to_owned());
        }
    }
    assert_eq!(differing, ["docs_bayes_hyperband.yaml"]);
    let hb = &theirs[paths
        .iter()
        .find(|p| p.ends_with("docs_bayes_hyperband.yaml"))
        .unwrap()
        .as_str()];
    assert_eq!(
        hb["parameters"]["decay"]["values"],
        json!(["1e-5", "1e-6", "1e-7"])
    );
    let ours = crate::load("docs_bayes_hyperband.yaml");
    let mut ours = ours.to_json().clone();
    ours["parameters"]["decay"]["values"] = json!(["1e-5", "1e-6", "1e-7"]);
    assert_eq!(&ours, hb);
}

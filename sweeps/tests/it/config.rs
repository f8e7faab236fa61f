//! The sweep configuration: every example configuration of W&B's sweep documentation and of the
//! `wandb/sweeps` examples parses with W&B's defaults; bad configurations fail with the message
//! naming the file, line and key.

use serde_json::json;
use wandb_sweeps::config::DISTRIBUTIONS;
use wandb_sweeps::{
    Brackets, ConfigErrorKind, Distribution, Goal, Impute, Method, Parameter, Quantum, SweepConfig,
};

use crate::load;

fn param<'a>(config: &'a SweepConfig, name: &str) -> &'a Parameter {
    &config
        .parameters
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
        .1
}

fn dist<'a>(config: &'a SweepConfig, name: &str) -> &'a Distribution {
    match param(config, name) {
        Parameter::Value(d) => d,
        Parameter::Nested(_) => panic!("{name} is nested"),
    }
}

#[test]
fn every_example_configuration_parses() {
    let dir = crate::config_path("");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 18, "{names:?}");
    for name in &names {
        let config = load(name);
        assert!(!config.parameters.is_empty(), "{name}");
    }
}

#[test]
fn basic_example_yaml_and_json_agree() {
    let yaml = load("docs_basic.yaml");
    let json = load("docs_basic.json");
    assert_eq!(yaml.method, Method::Bayes);
    assert_eq!(yaml.name.as_deref(), Some("sweepdemo"));
    assert_eq!(yaml.program.as_deref(), Some("train.py"));
    assert_eq!(json.program, None);
    let metric = yaml.metric.as_ref().unwrap();
    assert_eq!(metric.name, "validation_loss");
    assert_eq!(metric.goal, Goal::Minimize);
    assert_eq!(metric.impute, Impute::Worst);
    for config in [&yaml, &json] {
        // min and max as floats: uniform, as W&B infers it.
        assert_eq!(
            dist(config, "learning_rate"),
            &Distribution::Uniform {
                min: 0.0001,
                max: 0.1
            }
        );
        assert_eq!(
            dist(config, "batch_size"),
            &Distribution::Categorical {
                values: vec![json!(16), json!(32), json!(64)],
                probabilities: None
            }
        );
    }
    // The configuration as written is kept for UpsertSweep, keys in their order.
    let keys: Vec<&String> = yaml.to_json().as_object().unwrap().keys().collect();
    assert_eq!(keys, ["program", "name", "method", "metric", "parameters"]);
}

#[test]
fn nested_example_keeps_its_tree() {
    let config = load("docs_nested.yaml");
    let Parameter::Nested(children) = param(&config, "nested_category_3") else {
        panic!("not nested");
    };
    assert_eq!(children.len(), 2);
    assert_eq!(
        children[0].1,
        Parameter::Value(Distribution::Uniform { min: 0.5, max: 0.7 })
    );
    // An integer q makes integer values.
    assert_eq!(
        dist(&config, "batch_size"),
        &Distribution::QLogUniform {
            min: 32.0,
            max: 256.0,
            values: true,
            q: Quantum {
                q: 8.0,
                integer: true
            }
        }
    );
    assert_eq!(
        dist(&config, "epochs"),
        &Distribution::Constant { value: json!(1) }
    );
    // min 0 (an integer) and max 0.1 (a float): uniform.
    assert_eq!(
        dist(&config, "learning_rate"),
        &Distribution::Uniform { min: 0.0, max: 0.1 }
    );
    let json = load("docs_nested_run_config.json");
    assert!(matches!(param(&json, "nested_param"), Parameter::Nested(_)));
}

#[test]
fn defaults_and_inference_follow_wandb() {
    let config = load("all_distributions.yaml");
    assert_eq!(config.run_cap, Some(50));
    assert_eq!(config.metric.as_ref().unwrap().target, Some(0.01));
    assert_eq!(
        dist(&config, "defaults_normal"),
        &Distribution::Normal {
            mu: 0.0,
            sigma: 1.0
        }
    );
    assert_eq!(
        dist(&config, "int_uniform"),
        &Distribution::IntUniform { min: 1, max: 10 }
    );
    assert_eq!(
        dist(&config, "weighted"),
        &Distribution::Categorical {
            values: vec![json!("x"), json!("y")],
            probabilities: Some(vec![0.25, 0.75])
        }
    );
    // Every distribution of the documentation's table appears, under its own name.
    let names: Vec<&str> = config
        .parameters
        .iter()
        .map(|(_, p)| match p {
            Parameter::Value(d) => d.name(),
            Parameter::Nested(_) => "nested",
        })
        .collect();
    for known in DISTRIBUTIONS {
        assert!(names.contains(known), "{known} missing from {names:?}");
    }
    // W&B deprecates the exponent forms; they parse, with a warning naming the parameter.
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "parameters.log_uniform: log_uniform takes min and max as base-e exponents"
        )
    );
}

#[test]
fn scientific_notation_and_tags() {
    // YAML 1.2: `1e-5` is a float (PyYAML, YAML 1.1, would read a string); `!!float` is too.
    let hb = load("docs_bayes_hyperband.yaml");
    assert_eq!(
        dist(&hb, "decay"),
        &Distribution::Categorical {
            values: vec![json!(1e-5), json!(1e-6), json!(1e-7)],
            probabilities: None
        }
    );
    let cmd = load("docs_command_example.yaml");
    assert_eq!(
        dist(&cmd, "optimizer.config.learning_rate"),
        &Distribution::Uniform {
            min: 1e-5,
            max: 0.1
        }
    );
}

#[test]
fn early_terminate_defaults() {
    let hb = load("docs_bayes_hyperband.yaml");
    let et = hb.early_terminate.as_ref().unwrap();
    assert_eq!(et.brackets, Brackets::MaxIter { max_iter: 27, s: 2 });
    assert_eq!(et.eta, 3.0);
    // W&B's reference implementation fills strict: true.
    assert!(et.strict);
    let min = load("docs_early_terminate_min_iter.yaml");
    assert_eq!(
        min.early_terminate.as_ref().unwrap().brackets,
        Brackets::MinIter(3)
    );
}

/// Parses `text` as `sweep.yaml` and returns the error's message.
fn error_of(text: &str) -> String {
    match SweepConfig::from_yaml_str(text, Some("sweep.yaml")) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = "program: train.py\nmethod: random\nmetric:\n  name: loss\nparameters:\n";

#[test]
fn bad_configurations_name_line_and_key() {
    let cases: &[(String, &str)] = &[
        (
            format!("{HEAD}  lr:\n    min: abc\n    max: 0.1\n"),
            r#"sweep.yaml:7: parameters.lr.min: expected a number, found "abc""#,
        ),
        (
            format!("{HEAD}  lr:\n    min: 0.5\n    max: 0.1\n"),
            "sweep.yaml:8: parameters.lr: min 0.5 is not less than max 0.1",
        ),
        (
            format!("{HEAD}  lr:\n    distribution: log_uniformm\n    min: 0.1\n    max: 1\n"),
            "sweep.yaml:7: parameters.lr.distribution: unknown distribution \"log_uniformm\" (known: constant, categorical, int_uniform, uniform, q_uniform, log_uniform, log_uniform_values, q_log_uniform, q_log_uniform_values, inv_log_uniform, inv_log_uniform_values, normal, q_normal, log_normal, q_log_normal, beta, q_beta, categorical_w_probabilities)",
        ),
        (
            "program: t.py\nmethod: grid\nparameters:\n  a:\n    values: [1, 2]\n  lr:\n    distribution: uniform\n    min: 0.0\n    max: 1.0\n".to_owned(),
            "sweep.yaml:7: parameters.lr: grid search needs a finite set of values: use value, values, int_uniform or q_uniform, not uniform",
        ),
        (
            "program: t.py\nmethod: grid\nparameters:\n  lr:\n    min: 0.1\n    max: 1.0\n".to_owned(),
            "sweep.yaml:5: parameters.lr: grid search needs a finite set of values: use value, values, int_uniform or q_uniform, not uniform",
        ),
        (
            "program: t.py\nmethod: grid\nparameters:\n  a:\n    values: [1, 2]\n    probabilities: [0.5, 0.5]\n".to_owned(),
            "sweep.yaml:5: parameters.a: grid search needs a finite set of values: use value, values, int_uniform or q_uniform, not categorical with probabilities",
        ),
        (
            format!("{HEAD}  epochs:\n    distribution: int_uniform\n    min: 1.5\n    max: 10\n"),
            "sweep.yaml:8: parameters.epochs.min: expected an integer, found 1.5",
        ),
        (
            format!("{HEAD}  lr:\n    distribution: uniform\n    min: 0\n    max: 1\n    q: 2\n"),
            "sweep.yaml:10: parameters.lr.q: `q` does not apply to distribution uniform (its keys: min, max)",
        ),
        (
            format!("{HEAD}  opt:\n    values: [a, b]\n    probabilities: [0.5, 0.6]\n"),
            "sweep.yaml:8: parameters.opt.probabilities: probabilities sum to 1.1, not 1",
        ),
        (
            format!("{HEAD}  opt:\n    values: [a, b]\n    probabilities: [1.0]\n"),
            "sweep.yaml:8: parameters.opt.probabilities: 1 probabilities for 2 values",
        ),
        (
            format!("{HEAD}  lr:\n    distribution: normal\n    sigma: -1\n"),
            "sweep.yaml:8: parameters.lr.sigma: -1 is out of range: must be at least 0",
        ),
        (
            format!("{HEAD}  lr:\n    distribution: log_uniform_values\n    min: 0\n    max: 1\n"),
            "sweep.yaml:8: parameters.lr.min: 0 is out of range: must be greater than 0",
        ),
        (
            format!("{HEAD}  lr:\n    min: 0\n    max: 0.1\n"),
            "sweep.yaml:7: parameters.lr: min and max mix an integer and a float: write both as floats (uniform) or both as integers (int_uniform), or give `distribution`",
        ),
        (
            format!("{HEAD}  lr:\n    mu: 1\n"),
            "sweep.yaml:7: parameters.lr: cannot tell the distribution: give `value`, `values`, `min` and `max`, `parameters`, or `distribution`",
        ),
        (
            format!("{HEAD}  lr:\n    values: []\n"),
            "sweep.yaml:7: parameters.lr.values: must not be empty",
        ),
        (
            format!("{HEAD}  9lr:\n    value: 1\n"),
            "sweep.yaml:6: parameters.9lr: expected a parameter name of letters, digits, `_`, `.` and `-`, not starting with a digit, found \"9lr\"",
        ),
        (
            "program: t.py\nmethod: grid\nparameters:\n  n:\n    min: 0\n    max: 10000000\n".to_owned(),
            "sweep.yaml:3: parameters: the grid has 10000001 combinations, more than the 1000000 a sweep may have",
        ),
        (
            "program: t.py\nmethod: random\nparamters:\n  a:\n    value: 1\n".to_owned(),
            "sweep.yaml:3: paramters: unknown key (known keys here: program, command, method, metric, parameters, run_cap, early_terminate, name, description, project, entity, controller, apiVersion, kind, job, image_uri)",
        ),
        (
            "program: t.py\nparameters:\n  a:\n    value: 1\n".to_owned(),
            "sweep.yaml:1: required key `method` is missing",
        ),
        (
            "program: t.py\nmethod: grdi\nparameters:\n  a:\n    value: 1\n".to_owned(),
            "sweep.yaml:2: method: unknown value \"grdi\" (expected one of: grid, random, bayes)",
        ),
        (
            "program: t.py\nmethod: bayes\nparameters:\n  a:\n    min: 0.0\n    max: 1.0\n".to_owned(),
            "sweep.yaml:2: method: method: bayes needs a `metric` with a `name`",
        ),
        (
            "program: t.py\nmethod: bayes\nmetric:\n  name: loss\nparameters:\n  a:\n    value: 1\n".to_owned(),
            "sweep.yaml:6: parameters: bayes search needs at least one parameter that is not a constant",
        ),
        (
            "program: t.py\nmethod: random\nmetric:\n  name: loss\n  goal: minimise\nparameters:\n  a:\n    value: 1\n".to_owned(),
            "sweep.yaml:5: metric.goal: unknown value \"minimise\" (expected one of: minimize, maximize)",
        ),
        (
            format!("{HEAD}  a:\n    value: 1\nearly_terminate:\n  type: hyperband\n  max_iter: 27\n"),
            "sweep.yaml:10: early_terminate: required key `s` is missing",
        ),
        (
            format!("{HEAD}  a:\n    value: 1\nearly_terminate:\n  type: hyperband\n  min_iter: 3\n  eta: 1\n"),
            "sweep.yaml:11: early_terminate.eta: 1 is out of range: must be greater than 1",
        ),
        (
            "program: t.py\nmethod: random\nparameters:\n  a:\n    value: 1\nearly_terminate:\n  type: hyperband\n  min_iter: 3\n".to_owned(),
            "sweep.yaml:6: early_terminate: early_terminate needs a `metric` with a `name`",
        ),
        (
            format!("{HEAD}  a:\n    value: 1\ncommand:\n  - ${{env}}\n  - ${{args_json_files}}\n"),
            "sweep.yaml:10: command[1]: unknown command macro ${args_json_files} (known: env, interpreter, program, args, args_no_equals, args_no_hyphens, args_no_boolean_flags, args_json, args_json_file, args_append_hydra, args_override_hydra)",
        ),
        (
            format!("{HEAD}  a:\n    value: 1\nrun_cap: 0\n"),
            "sweep.yaml:8: run_cap: 0 is out of range: must be greater than 0",
        ),
        (
            "program: t.py\nmethod: custom\nparameters:\n  a:\n    value: 1\n".to_owned(),
            "sweep.yaml:2: method: method: custom is not supported offline",
        ),
        (
            format!("{HEAD}  a: 3\n"),
            "sweep.yaml:6: parameters.a: expected a mapping, found 3",
        ),
        (
            format!("{HEAD}  a:\n    value: 1\n  a:\n    value: 2\n"),
            "sweep.yaml:8: not valid YAML: duplicated key in mapping",
        ),
        (
            format!("{HEAD}  a:\n    value: [1\n"),
            "sweep.yaml:8: not valid YAML: while parsing a flow sequence, expected ',' or ']'",
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = error_of(text);
        if got != *want {
            failures.push(format!("config:\n{text}\n want: {want}\n  got: {got}\n"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_are_structured() {
    let err = SweepConfig::from_yaml_str(
        &format!("{HEAD}  lr:\n    min: 0.5\n    max: 0.1\n"),
        Some("sweep.yaml"),
    )
    .unwrap_err();
    assert_eq!(err.file.as_deref(), Some("sweep.yaml"));
    assert_eq!(err.line, 8);
    assert_eq!(err.key, "parameters.lr");
    assert_eq!(
        err.kind,
        ConfigErrorKind::MinNotLessThanMax {
            min: "0.5".into(),
            max: "0.1".into()
        }
    );
    // A JSON value has no lines: the message leaves the line out.
    let err = SweepConfig::from_json_value(
        &json!({"method": "grid", "parameters": {"a": {"min": 2, "max": 1}}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameters.a: min 2 is not less than max 1"
    );
}

#[test]
fn json_with_tabs_still_parses() {
    let text = "{\n\t\"method\": \"random\",\n\t\"parameters\": {\"a\": {\"values\": [1, 2]}}\n}\n";
    let config = SweepConfig::from_yaml_str(text, Some("sweep.json")).unwrap();
    assert_eq!(config.method, Method::Random);
}

#[test]
fn serde_round_trip_keeps_the_configuration() {
    let config = load("docs_nested.yaml");
    let text = serde_json::to_string(&config).unwrap();
    let back: SweepConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, config);
    // A persisted configuration that no longer validates is refused on load.
    let bad = serde_json::from_str::<SweepConfig>(r#"{"method": "grid"}"#);
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("`parameters` is missing")
    );
}

#[test]
fn mixed_bounds_nested_are_uniform() {
    // The SDK checks only top-level parameters; the controller infers uniform below them.
    let config = SweepConfig::from_yaml_str(
        "method: random\nparameters:\n  opt:\n    parameters:\n      lr:\n        min: 0\n        max: 0.1\n",
        None,
    )
    .unwrap();
    let Parameter::Nested(children) = param(&config, "opt") else {
        panic!("not nested");
    };
    assert_eq!(
        children[0].1,
        Parameter::Value(Distribution::Uniform { min: 0.0, max: 0.1 })
    );
}

#[test]
fn upsert_yaml_is_the_configuration_with_distributions_filled() {
    let config = load("docs_basic.yaml");
    let yaml = config.upsert_yaml();
    assert_eq!(
        yaml,
        "program: train.py\nname: sweepdemo\nmethod: bayes\nmetric:\n  goal: minimize\n  name: validation_loss\nparameters:\n  learning_rate:\n    min: 0.0001\n    max: 0.1\n    distribution: uniform\n  batch_size:\n    values:\n      - 16\n      - 32\n      - 64\n  epochs:\n    values:\n      - 5\n      - 10\n      - 15\n  optimizer:\n    values:\n      - adam\n      - sgd\n"
    );
    // It reads back as the same sweep.
    let back = SweepConfig::from_yaml_str(&yaml, None).unwrap();
    assert_eq!(back.parameters, config.parameters);
    let cmd = load("docs_command_example.yaml");
    let back = SweepConfig::from_yaml_str(&cmd.upsert_yaml(), None).unwrap();
    assert_eq!(back.command, cmd.command);
    assert_eq!(back.parameters, cmd.parameters);
    let ints = SweepConfig::from_yaml_str(
        "method: random\nparameters:\n  n:\n    min: 1\n    max: 4\n  s:\n    value: 'yes'\n",
        None,
    )
    .unwrap();
    let yaml = ints.upsert_yaml();
    assert!(yaml.contains("distribution: int_uniform"), "{yaml}");
    // A string YAML 1.1 reads as a boolean stays quoted.
    assert!(yaml.contains("value: \"yes\""), "{yaml}");
}

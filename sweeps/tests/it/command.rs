//! The argv a run is started with, expanded from the command macros as W&B's agent does.

use std::path::Path;

use serde_json::{Map, Value, json};
use wandb_sweeps::command::{args_json, args_json_file_path, expand};
use wandb_sweeps::{CommandContext, SweepError};

use crate::load;

fn params(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn default_command_is_env_python_program_args() {
    let config = load("docs_basic.yaml");
    let p = params(
        json!({"batch_size": 16, "epochs": 5, "learning_rate": 0.00001, "optimizer": "adam"}),
    );
    let argv = expand(&config, &p, &CommandContext::unix(&no_env)).unwrap();
    assert_eq!(
        argv,
        [
            "/usr/bin/env",
            "python",
            "train.py",
            "--batch_size=16",
            "--epochs=5",
            "--learning_rate=1e-05",
            "--optimizer=adam"
        ]
    );
    // Without ${env} (Windows, or a caller that runs the interpreter itself).
    let ctx = CommandContext {
        env: None,
        interpreter: "python3",
        args_json_file: None,
        getenv: &no_env,
    };
    assert_eq!(
        expand(&config, &p, &ctx).unwrap()[..2],
        ["python3", "train.py"]
    );
}

#[test]
fn hydra_style_and_literal_items() {
    let config = load("docs_command_example.yaml");
    let p = params(
        json!({"experiment": "expt001", "optimizer": "sgd", "optimizer.config.learning_rate": 0.01}),
    );
    let argv = expand(&config, &p, &CommandContext::unix(&no_env)).unwrap();
    assert_eq!(
        argv,
        [
            "/usr/bin/env",
            "python",
            "main.py",
            "experiment=expt001",
            "optimizer=sgd",
            "optimizer.config.learning_rate=0.01"
        ]
    );
    // Items that are not exactly a macro are passed as written, as the agent does.
    let config = load("docs_macro_example.yaml");
    let argv = expand(
        &config,
        &params(json!({"learning_rate": 0.05})),
        &CommandContext::unix(&no_env),
    )
    .unwrap();
    assert_eq!(
        argv,
        [
            "/usr/bin/env",
            "python",
            "run.py",
            "--batch_size=${batch_size}",
            "--optimizer=${optimizer}",
            "--test=True"
        ]
    );
}

#[test]
fn python_formatting_of_values() {
    let config = wandb_sweeps::SweepConfig::from_yaml_str(
        "program: p.py\nmethod: random\nparameters:\n  a:\n    value: 1\ncommand:\n  - ${args}\n  - ${args_no_boolean_flags}\n  - ${args_no_equals}\n  - ${args_json}\n  - ${args_append_hydra}\n  - ${args_override_hydra}\n",
        None,
    )
    .unwrap();
    let p = params(
        json!({"flag": true, "off": false, "layers": [64, 128], "opt": {"name": "adam", "lr": 0.1}, "none": null}),
    );
    let argv = expand(&config, &p, &CommandContext::unix(&no_env)).unwrap();
    let want: Vec<&str> = vec![
        "--flag=True",
        "--off=False",
        "--layers=[64, 128]",
        "--opt={'name': 'adam', 'lr': 0.1}",
        "--none=None",
        "--flag",
        "--layers=[64, 128]",
        "--opt={'name': 'adam', 'lr': 0.1}",
        "--none=None",
        "--flag",
        "True",
        "--off",
        "False",
        "--layers",
        "[64, 128]",
        "--opt",
        "{'name': 'adam', 'lr': 0.1}",
        "--none",
        "None",
        r#"{"flag": true, "off": false, "layers": [64, 128], "opt": {"name": "adam", "lr": 0.1}, "none": null}"#,
        "+flag=True",
        "+off=False",
        "+layers=[64, 128]",
        "+opt={'name': 'adam', 'lr': 0.1}",
        "+none=None",
        "++flag=True",
        "++off=False",
        "++layers=[64, 128]",
        "++opt={'name': 'adam', 'lr': 0.1}",
        "++none=None",
    ];
    assert_eq!(argv, want);
    assert_eq!(args_json(&p), want[19]);
}

#[test]
fn args_json_file_and_envvars() {
    let config = wandb_sweeps::SweepConfig::from_yaml_str(
        "program: p.py\nmethod: random\nparameters:\n  a:\n    value: 1\ncommand:\n  - ${envvar:PYBIN}\n  - --data=${envvar:DATA_DIR}/x\n  - ${args_json_file}\n",
        None,
    )
    .unwrap();
    assert!(config.wants_args_json_file());
    let file = args_json_file_path(Path::new("/runs"), "sw1", "run9");
    assert_eq!(file, Path::new("/runs/wandb/sweep-sw1/config-run9.json"));
    let env = |name: &str| (name == "PYBIN").then(|| "/opt/py/bin/python".to_owned());
    let mut ctx = CommandContext::unix(&env);
    let p = params(json!({"a": 1}));
    assert!(matches!(
        expand(&config, &p, &ctx),
        Err(SweepError::CommandNeeds { .. })
    ));
    ctx.args_json_file = Some(&file);
    assert_eq!(
        expand(&config, &p, &ctx).unwrap(),
        [
            "/opt/py/bin/python",
            "--data=DATA_DIR/x",
            "/runs/wandb/sweep-sw1/config-run9.json"
        ]
    );
}

#[test]
fn program_missing_is_an_error_at_expansion() {
    let config = load("docs_basic.json");
    let err = expand(
        &config,
        &params(json!({"a": 1})),
        &CommandContext::unix(&no_env),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "command item ${program} needs `program` in the configuration"
    );
}

//! The SDK fixtures synced by us reconstruct the same run as the official `wandb sync`
//! (needs `WANDB_SDK_PYTHON`), and sane runs without Python.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::TestBackend;

use crate::common::{
    assert_clean, assert_same, copy_fixture, essence, normalize_config, options, sdk_python,
};

const SCENARIOS: [&str; 5] = [
    "plain",
    "multiblock",
    "define_metric",
    "console",
    "saved_files",
];

fn expected_rows(scenario: &str) -> u64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/sdk-0.31.0")
        .join(scenario)
        .join("expected.json");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    value["by_type"]["history"].as_u64().unwrap()
}

#[test]
fn fixtures_sync_completely() {
    for scenario in SCENARIOS {
        let home = tempfile::tempdir().unwrap();
        let run_dir = copy_fixture(&home.path().join("wandb"), scenario);
        let backend = TestBackend::start().unwrap();
        let report = sync_paths(&options(&backend, vec![run_dir.clone()])).unwrap();
        assert_eq!(report.runs.len(), 1);
        let run_report = &report.runs[0];
        assert_eq!(
            run_report.result,
            RunResult::Synced,
            "{scenario}: {run_report:?}"
        );
        assert_eq!(run_report.rows, expected_rows(scenario), "{scenario}");
        let state = backend.state();
        let run = &state.runs[0];
        assert_clean(run);
        assert_eq!(run.history.len() as u64, expected_rows(scenario));
        for name in [
            "config.yaml",
            "wandb-summary.json",
            "wandb-metadata.json",
            "requirements.txt",
        ] {
            assert!(run.file(name).is_some(), "{scenario}: {name} missing");
            assert!(
                run.uploaded.iter().any(|u| u == name),
                "{scenario}: {name} not listed"
            );
        }
        let synced = std::fs::read_dir(&run_dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wandb.synced")
        });
        assert!(synced, "{scenario}: no .synced marker");
    }
}

#[test]
fn fixtures_match_the_official_wandb_sync() {
    let Some(python) = sdk_python() else {
        return;
    };
    for scenario in SCENARIOS {
        let home = tempfile::tempdir().unwrap();
        let theirs_dir = copy_fixture(&home.path().join("a/wandb"), scenario);
        let ours_dir = copy_fixture(&home.path().join("b/wandb"), scenario);

        let official = TestBackend::start().unwrap();
        let mut cmd = Command::new(&python);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WANDB_") {
                cmd.env_remove(key);
            }
        }
        let status = cmd
            .current_dir(home.path())
            .env("HOME", home.path())
            .env("WANDB_DIR", home.path())
            .env("WANDB_CONFIG_DIR", home.path().join("config"))
            .env("WANDB_CACHE_DIR", home.path().join("cache"))
            .env("WANDB_DATA_DIR", home.path().join("data"))
            .env("WANDB_BASE_URL", official.base_url())
            .env("WANDB_API_KEY", official.api_key())
            .args(["-m", "wandb", "sync", "--include-synced"])
            .arg(&theirs_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{scenario}: official wandb sync failed");

        let ours = TestBackend::start().unwrap();
        let report = sync_paths(&options(&ours, vec![ours_dir])).unwrap();
        assert_eq!(report.runs[0].result, RunResult::Synced, "{scenario}");

        let theirs_state = official.state();
        let ours_state = ours.state();
        let want = essence(&theirs_state.runs[0]);
        let got = essence(&ours_state.runs[0]);
        assert_same(&want, &got, scenario);
        assert_clean(&ours_state.runs[0]);
        // config.yaml: same content once parsed (the YAML layout may differ).
        let yaml = |text: &str| {
            let out = Command::new(&python)
                .args([
                    "-c",
                    "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write as _;
                    child.stdin.take().unwrap().write_all(text.as_bytes())?;
                    child.wait_with_output()
                })
                .unwrap();
            normalize_config(serde_json::from_slice(&out.stdout).unwrap())
        };
        let theirs_yaml = yaml(
            theirs_state.runs[0]
                .file("config.yaml")
                .unwrap()
                .text()
                .unwrap(),
        );
        let ours_yaml = yaml(
            ours_state.runs[0]
                .file("config.yaml")
                .unwrap()
                .text()
                .unwrap(),
        );
        assert_eq!(theirs_yaml, ours_yaml, "{scenario}: config.yaml");
    }
}

//! `summary`: text and JSON for every fixture, counts per type against expected.json, damage.

use insta::assert_snapshot;
use wandb_inspect::Exit;

use crate::util::{
    SCENARIOS, damaged_copy, exit_record, expected_by_type, fixture, history_record, inspect,
    json_lines, redact, run_record, write_file,
};

#[test]
fn text_summary_of_every_fixture() {
    for scenario in SCENARIOS {
        let output = inspect(&[&"summary", &fixture(scenario)]);
        assert_eq!(output.exit, Exit::Ok);
        assert_snapshot!(
            format!("summary_text_{scenario}"),
            redact(&output.stdout, None)
        );
    }
}

#[test]
fn json_summary_counts_match_expected_json() {
    for scenario in SCENARIOS {
        let output = inspect(&[&"summary", &"--json", &fixture(scenario)]);
        assert_eq!(output.exit, Exit::Ok);
        let lines = json_lines(&output.stdout);
        assert_eq!(lines.len(), 1);
        let summary = &lines[0];
        let counts: serde_json::Map<String, serde_json::Value> = summary["by_type"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, entry)| (name.clone(), entry["count"].clone()))
            .collect();
        assert_eq!(counts, expected_by_type(scenario), "{scenario}");
        let bytes: u64 = summary["by_type"]
            .as_object()
            .unwrap()
            .values()
            .map(|entry| entry["bytes"].as_u64().unwrap())
            .sum();
        // Every byte after the header belongs to a record, except block padding.
        let file_bytes = summary["bytes"].as_u64().unwrap();
        assert!(bytes <= file_bytes - 7 && bytes + 6 * (file_bytes / 32_768 + 1) >= file_bytes - 7);
    }
    let output = inspect(&[&"summary", &"--json", &fixture("define_metric")]);
    assert_snapshot!("summary_json_define_metric", redact(&output.stdout, None));
}

#[test]
fn summary_of_our_own_file_and_of_an_unfinished_one() {
    let tmp = tempfile::tempdir().unwrap();
    let finished = tmp.path().join("run-ours.wandb");
    let mut records = vec![run_record(1, "ours")];
    for step in 0..5 {
        records.push(history_record(
            step + 2,
            step,
            &[
                ("train.loss", format!("{}", 1.0 / (step as f64 + 1.0))),
                ("_runtime", format!("{}", step as f64 * 1.5)),
            ],
        ));
    }
    let mut unfinished_records = records.clone();
    records.push(exit_record(7, 3));
    write_file(&finished, &records);
    let output = inspect(&[&"summary", &finished]);
    assert_eq!(output.exit, Exit::Ok);
    assert_snapshot!(
        "summary_text_ours",
        redact(&output.stdout, Some(tmp.path()))
    );

    let unfinished = tmp.path().join("run-unfinished.wandb");
    unfinished_records.truncate(3);
    write_file(&unfinished, &unfinished_records);
    let output = inspect(&[&"summary", &"--json", &unfinished]);
    let summary = &json_lines(&output.stdout)[0];
    assert!(summary["exit_code"].is_null());
    assert_eq!(summary["history"]["last_step"], 1);
}

#[test]
fn summary_reports_damage_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let flipped = damaged_copy(tmp.path(), "plain", "flipped.wandb", |bytes| {
        bytes[1000] ^= 0x10
    });
    let output = inspect(&[&"summary", &"--json", &flipped]);
    assert_eq!(output.exit, Exit::Damage);
    let summary = &json_lines(&output.stdout)[0];
    assert_eq!(summary["records"], 161);
    assert_eq!(summary["damage"][0]["offset"], 859);
    assert_eq!(summary["damage"][0]["torn_tail"], false);
}

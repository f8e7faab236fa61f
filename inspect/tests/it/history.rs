//! `history`: CSV and JSON Lines tables.

use insta::assert_snapshot;
use wandb_inspect::Exit;

use crate::util::{
    damaged_copy, fixture, fixtures, history_record, inspect, json_lines, write_file,
};

#[test]
fn csv_of_define_metric() {
    let output = inspect(&[&"history", &fixture("define_metric")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_snapshot!("history_csv_define_metric", output.stdout);
}

#[test]
fn csv_writes_nan_and_infinity_as_pandas_reads_them() {
    let output = inspect(&[
        &"history",
        &"--keys",
        &"x,special,count",
        &fixture("multiblock"),
    ]);
    assert_eq!(output.exit, Exit::Ok);
    let lines: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(lines[0], "_step,x,special,count");
    assert_eq!(lines.len(), 1001);
    assert!(
        lines.contains(&"13,3.25,NaN,13"),
        "{}",
        &output.stdout[..2000]
    );
    assert!(lines.iter().any(|line| line.ends_with(",inf,110")));
    assert!(lines.iter().any(|line| line.contains(",-inf,")));
    assert_snapshot!("history_csv_multiblock_keys", lines[..20].join("\n"));
}

#[test]
fn jsonl_rows_have_step_first_and_sorted_keys() {
    let output = inspect(&[&"history", &"--format", &"jsonl", &fixture("plain")]);
    assert_eq!(output.exit, Exit::Ok);
    let rows = json_lines(&output.stdout);
    assert_eq!(rows.len(), 50);
    assert_snapshot!(
        "history_jsonl_plain",
        output.stdout.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    let output = inspect(&[
        &"history",
        &"--format",
        &"jsonl",
        &"--keys",
        &"loss",
        &fixture("plain"),
    ]);
    assert_eq!(
        output.stdout.lines().next(),
        Some(r#"{"_step":0,"loss":2}"#)
    );
}

#[test]
fn nested_keys_are_dotted_and_missing_cells_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run-nested.wandb");
    write_file(
        &path,
        &[
            history_record(
                1,
                0,
                &[
                    ("train.loss", "0.5".into()),
                    ("note", r#""a, \"quoted\" note""#.into()),
                ],
            ),
            history_record(
                2,
                1,
                &[
                    ("val.acc", "0.75".into()),
                    ("img", r#"{"_type":"image-file","size":[2,3]}"#.into()),
                ],
            ),
            history_record(
                3,
                2,
                &[
                    ("train.loss", "NaN".into()),
                    ("flag", "true".into()),
                    ("none", "null".into()),
                ],
            ),
        ],
    );
    let output = inspect(&[&"history", &path]);
    assert_eq!(output.exit, Exit::Ok);
    assert_snapshot!("history_csv_nested", output.stdout);
    let output = inspect(&[&"history", &"--format", &"jsonl", &path]);
    assert_snapshot!("history_jsonl_nested", output.stdout);
}

#[test]
fn history_needs_exactly_one_file() {
    let output = inspect(&[&"history", &fixtures()]);
    assert_eq!(output.exit, Exit::Error);
    assert_eq!(output.stdout, "");
    assert!(
        output.stderr.contains("history reads one file"),
        "{}",
        output.stderr
    );
}

#[test]
fn damage_goes_to_stderr_and_sets_the_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let flipped = damaged_copy(tmp.path(), "plain", "flipped.wandb", |bytes| {
        bytes[2000] ^= 0x10
    });
    let output = inspect(&[&"history", &flipped]);
    assert_eq!(output.exit, Exit::Damage);
    assert_eq!(output.stdout.lines().count(), 1 + 49);
    assert!(
        output.stderr.contains("damage: offset"),
        "{}",
        output.stderr
    );
    let truncated = damaged_copy(tmp.path(), "plain", "cut.wandb", |bytes| {
        bytes.truncate(21_000)
    });
    let output = inspect(&[&"history", &"--format", &"jsonl", &truncated]);
    assert_eq!(output.exit, Exit::Ok);
    assert!(output.stderr.contains("warning: "), "{}", output.stderr);
    // The cut falls in the last history row.
    assert_eq!(json_lines(&output.stdout).len(), 49);
}

#[test]
fn rows_whose_other_fields_do_not_decode_are_damage() {
    // Every part of a history record is checked, not only its items: here `_info.stream_id` is
    // not UTF-8, which prost (and so `wandb sync`) refuses.
    use prost::Message as _;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run-bad-info.wandb");
    let mut writer = wandb_format::Writer::create(&path).unwrap();
    for step in 0..3 {
        let mut record = history_record(step + 1, step, &[("loss", "0.5".to_string())]);
        if let Some(wandb_format::proto::record::RecordType::History(history)) =
            &mut record.record_type
        {
            history.info = Some(wandb_format::proto::RecordInfo {
                stream_id: "QQQQ".to_string(),
                ..Default::default()
            });
        }
        let mut payload = record.encode_to_vec();
        if step == 1 {
            let at = payload.windows(4).position(|w| w == b"QQQQ").unwrap();
            payload[at] = 0xFF;
        }
        writer.append(&payload).unwrap();
    }
    writer.close().unwrap();
    for format in ["csv", "jsonl"] {
        let output = inspect(&[&"history", &"--format", &format, &path]);
        assert_eq!(output.exit, Exit::Damage, "{format}: {}", output.stderr);
        let rows = output.stdout.lines().count() - usize::from(format == "csv");
        assert_eq!(rows, 2, "{format}: {}", output.stdout);
        assert!(
            output.stderr.contains("damage: offset"),
            "{}",
            output.stderr
        );
    }
}

//! The official SDK's reader (wandb-core's, through `fixtures/sdk_read.py`) accepts a file written by
//! our writer: multi-block records, a zero-length FIRST chunk, padding, every common record type.
//!
//! Needs a Python with wandb 0.31.0 installed, named by `WANDB_SDK_PYTHON` (`.ci/run` sets it up). Without
//! it the test passes vacuously on a developer machine, but fails under CI (`CI=true`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use prost::Message;
use wandb_format::proto::{self, record::RecordType};
use wandb_format::{BLOCK_SIZE, Framer, Writer};

use wandb_testkit::sdk_python;

fn history(step: i64, pad: usize) -> proto::Record {
    let item = |key: &str, value: String| proto::HistoryItem {
        nested_key: vec![key.to_owned()],
        value_json: value,
        ..Default::default()
    };
    let mut items = vec![
        item("_step", step.to_string()),
        item("loss", format!("{}", 1.0 / (step + 1) as f64)),
    ];
    if pad > 0 {
        items.push(item("text", format!("\"{}\"", "x".repeat(pad))));
    }
    proto::Record {
        record_type: Some(RecordType::History(proto::HistoryRecord {
            item: items,
            step: Some(proto::HistoryStep { num: step }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[test]
fn official_reader_accepts_our_file() {
    let Some(python) = sdk_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-ours0001.wandb");
    let mut writer = Writer::create(&path).unwrap();
    let mut framer = Framer::new();
    let mut num = 0;
    let append =
        |writer: &mut Writer, framer: &mut Framer, num: &mut i64, mut record: proto::Record| {
            *num += 1;
            record.num = *num;
            let payload = record.encode_to_vec();
            framer.frame(&payload, &mut Vec::new());
            writer.append(&payload).unwrap();
        };
    let header = proto::Record {
        record_type: Some(RecordType::Header(proto::HeaderRecord {
            version_info: Some(proto::VersionInfo {
                producer: "test".into(),
                min_consumer: "0.70.0".into(),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    append(&mut writer, &mut framer, &mut num, header);
    let run = proto::Record {
        record_type: Some(RecordType::Run(proto::RunRecord {
            run_id: "ours0001".into(),
            project: "p".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    append(&mut writer, &mut framer, &mut num, run);
    let mut steps = Vec::new();
    let mut step = 0;
    let mut forced_empty_first = false;
    while framer.offset() < 6 * BLOCK_SIZE {
        // Once, pad a record so that exactly 7 bytes are left in its block (an empty FIRST chunk follows).
        let mut pad = if step % 50 == 7 { 70_000 } else { 0 };
        if !forced_empty_first && framer.offset() > 2 * BLOCK_SIZE {
            let left = BLOCK_SIZE - framer.offset() % BLOCK_SIZE;
            pad = (0..40_000)
                .find(|&p| {
                    let record = proto::Record {
                        num: num + 1,
                        ..history(step, p)
                    };
                    let len = record.encoded_len() as u64;
                    left > 14 && len + 7 == left - 7
                })
                .unwrap_or(0);
            forced_empty_first = pad > 0;
        }
        append(&mut writer, &mut framer, &mut num, history(step, pad));
        steps.push(step);
        step += 1;
    }
    assert!(
        forced_empty_first,
        "the test should force a zero-length FIRST chunk"
    );
    let output = proto::Record {
        record_type: Some(RecordType::OutputRaw(proto::OutputRawRecord {
            line: "hello\n".into(),
            output_type: 1,
            ..Default::default()
        })),
        ..Default::default()
    };
    append(&mut writer, &mut framer, &mut num, output);
    let exit = proto::Record {
        record_type: Some(RecordType::Exit(proto::RunExitRecord::default())),
        ..Default::default()
    };
    append(&mut writer, &mut framer, &mut num, exit);
    writer.close().unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sdk_read.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK rejected our file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"].as_i64().unwrap(), num);
    assert_eq!(
        report["by_type"]["history"].as_u64().unwrap(),
        steps.len() as u64
    );
    assert_eq!(report["by_type"]["output_raw"], 1);
    assert_eq!(report["by_type"]["exit"], 1);
    let sdk_steps: Vec<i64> = report["history_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_i64().unwrap())
        .collect();
    assert_eq!(sdk_steps, steps);
    assert!(report["chunks"]["zero_length_first"].as_u64().unwrap() >= 1);
    assert!(report["chunks"]["middle"].as_u64().unwrap() >= 1);
}

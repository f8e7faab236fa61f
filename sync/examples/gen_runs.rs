//! Writes synthetic offline runs shaped like the SDK's (a summary pair and a history record per
//! step, 10 floats per row) for benchmarks: `gen_runs <wandb dir> <runs> <rows>`.

use std::path::PathBuf;
use std::process::ExitCode;

use wandb_format::Writer;
use wandb_format::proto::record::RecordType;
use wandb_format::proto::{
    ConfigItem, ConfigRecord, HeaderRecord, HistoryItem, HistoryRecord, HistoryStep, Record,
    RunExitRecord, RunRecord, SummaryItem, SummaryRecord,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(runs), Some(rows)) = (
        args.get(1),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
        args.get(3).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: gen_runs <wandb dir> <runs> <rows>");
        return ExitCode::from(2);
    };
    for i in 0..runs {
        if let Err(e) = write_run(&PathBuf::from(dir), &format!("bench{i:04}"), rows) {
            eprintln!("gen_runs: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn float(f: f64) -> String {
    let mut s = String::new();
    wandb_format::json::format_f64(f, &mut s);
    s
}

fn item(key: &str, value: String) -> HistoryItem {
    HistoryItem {
        nested_key: vec![key.to_owned()],
        value_json: value,
        ..Default::default()
    }
}

/// Writes run `id` with `rows` rows under `wandb_dir`.
pub fn write_run(
    wandb_dir: &std::path::Path,
    id: &str,
    rows: u64,
) -> Result<(), wandb_format::Error> {
    let dir = wandb_dir.join(format!("offline-run-20260101_000000-{id}"));
    let _ = std::fs::create_dir_all(dir.join("files"));
    let mut w = Writer::create(dir.join(format!("run-{id}.wandb")))?;
    let mut num = 0;
    let mut put = |w: &mut Writer, kind: RecordType| {
        num += 1;
        w.append_record(&Record {
            num,
            record_type: Some(kind),
            ..Default::default()
        })
        .map(|_| ())
    };
    put(&mut w, RecordType::Header(HeaderRecord::default()))?;
    put(
        &mut w,
        RecordType::Run(RunRecord {
            run_id: id.to_owned(),
            project: "bench".into(),
            start_time: Some(prost_types::Timestamp {
                seconds: 1_795_000_000,
                nanos: 0,
            }),
            config: Some(ConfigRecord {
                update: vec![ConfigItem {
                    key: "lr".into(),
                    value_json: "0.001".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
    )?;
    for step in 0..rows {
        let mut items = vec![
            item("_step", step.to_string()),
            item("_runtime", float(0.43 + step as f64 * 0.0013)),
            item(
                "_timestamp",
                float(1_795_000_000.123_4 + step as f64 * 0.0013),
            ),
        ];
        for k in 0..10 {
            items.push(item(
                &format!("metric_{k}"),
                float((step as f64 * 1.37 + k as f64).sin()),
            ));
        }
        put(
            &mut w,
            RecordType::Summary(SummaryRecord {
                update: vec![
                    SummaryItem {
                        nested_key: vec!["_wandb".into(), "runtime".into()],
                        value_json: (step / 1000).to_string(),
                        ..Default::default()
                    },
                    SummaryItem {
                        key: "_runtime".into(),
                        value_json: (step / 1000).to_string(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
        )?;
        put(
            &mut w,
            RecordType::Summary(SummaryRecord {
                update: items
                    .iter()
                    .map(|i| SummaryItem {
                        nested_key: i.nested_key.clone(),
                        value_json: i.value_json.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
        )?;
        put(
            &mut w,
            RecordType::History(HistoryRecord {
                item: items,
                step: Some(HistoryStep { num: step as i64 }),
                ..Default::default()
            }),
        )?;
    }
    put(
        &mut w,
        RecordType::Exit(RunExitRecord {
            exit_code: 0,
            ..Default::default()
        }),
    )?;
    w.close()
}

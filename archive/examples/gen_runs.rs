//! Writes synthetic offline runs shaped like the SDK's (a summary record and a history row of 13
//! values per step) for the benchmarks: `cargo run --release -p wandb-archive --example gen_runs
//! -- <wandb dir> <runs> <rows>`. The benchmark includes this file as a module.

#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::path::Path;

use wandb_format::Writer;
use wandb_format::proto::record::RecordType;
use wandb_format::proto::{
    HeaderRecord, HistoryItem, HistoryRecord, HistoryStep, Record, RunExitRecord, RunRecord,
    SummaryItem, SummaryRecord,
};

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

/// One SDK-shaped run of `rows` rows.
pub(crate) fn write_run(root: &Path, id: &str, rows: u64) {
    let dir = root.join(format!("offline-run-20260101_000000-{id}"));
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(
        dir.join("files/requirements.txt"),
        "numpy==2.0\ntorch==2.5\n",
    )
    .unwrap();
    let mut w = Writer::create(dir.join(format!("run-{id}.wandb"))).unwrap();
    let mut num = 0;
    let mut put = |w: &mut Writer, kind: RecordType| {
        num += 1;
        w.append_record(&Record {
            num,
            record_type: Some(kind),
            ..Default::default()
        })
        .unwrap();
    };
    put(&mut w, RecordType::Header(HeaderRecord::default()));
    put(
        &mut w,
        RecordType::Run(RunRecord {
            run_id: id.to_owned(),
            project: "bench".into(),
            ..Default::default()
        }),
    );
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
                float((step as f64 * 1.37 + k as f64 + id.len() as f64).sin()),
            ));
        }
        put(
            &mut w,
            RecordType::Summary(SummaryRecord {
                update: vec![SummaryItem {
                    key: "_runtime".into(),
                    value_json: (step / 1000).to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
        put(
            &mut w,
            RecordType::History(HistoryRecord {
                item: items,
                step: Some(HistoryStep { num: step as i64 }),
                ..Default::default()
            }),
        );
    }
    put(&mut w, RecordType::Exit(RunExitRecord::default()));
    w.persist(wandb_format::Durability::Flush).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(runs), Some(rows)) = (
        args.get(1),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
        args.get(3).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: gen_runs <wandb dir> <runs> <rows>");
        std::process::exit(2);
    };
    for i in 0..runs {
        write_run(Path::new(dir), &format!("bench{i:04}"), rows);
    }
}

//! Throughput of `wandb-inspect` on a large, realistic run file (generated here, about 80 MB).
//!
//! Targets: `verify` at least 1 GB/s; `dump --json` and `history --format csv` at least one million
//! records per second. Output goes to `io::sink()`. The file holds history rows as wandb-core
//! writes them: `_step`, `_runtime`, `_timestamp` and 10 float metrics, every key a `nested_key`
//! item, some keys nested two levels (`train.loss`).
//!
//! Run with `cargo bench -p wandb-inspect --bench inspect`. Set `WANDB_INSPECT_BENCH_FILE=PATH` to
//! keep the generated file at PATH (and reuse it on later runs), e.g. to profile the binary on it.

use std::io;
use std::path::Path;
use std::time::Duration;

use clap::Parser as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wandb_format::proto::{self, Record, record::RecordType};
use wandb_inspect::{Cli, Console, Exit, run};

/// Size of the generated file.
const TARGET_BYTES: u64 = 80 << 20;

const METRICS: [&str; 10] = [
    "train.loss",
    "train.acc",
    "val.loss",
    "val.acc",
    "lr",
    "grad_norm",
    "epoch",
    "throughput",
    "gpu.mem",
    "gpu.util",
];

fn history(step: i64) -> Record {
    let item = |key: &str, json: String| proto::HistoryItem {
        nested_key: key.split('.').map(str::to_string).collect(),
        value_json: json,
        ..Default::default()
    };
    let x = step as f64;
    let mut items = vec![
        item("_step", step.to_string()),
        item("_runtime", format!("{}", 12.5 + x * 0.0137)),
        item(
            "_timestamp",
            format!("{}", 1_795_317_679.065_626 + x * 0.0137),
        ),
    ];
    for (index, key) in METRICS.iter().enumerate() {
        let value = (x * 0.001 + index as f64).sin() * 0.75 + 1.0 / (x + 1.0);
        items.push(item(key, format!("{value}")));
    }
    Record {
        num: step + 1,
        record_type: Some(RecordType::History(proto::HistoryRecord {
            item: items,
            step: Some(proto::HistoryStep { num: step }),
            info: Some(proto::RecordInfo {
                stream_id: "benchrun".to_string(),
                ..Default::default()
            }),
        })),
        ..Default::default()
    }
}

/// Writes the file; returns its size and number of records.
fn generate(path: &Path) -> (u64, u64) {
    let mut writer = wandb_format::Writer::create(path).expect("create the bench file");
    let mut n_records = 0;
    while writer.len() < TARGET_BYTES {
        writer
            .append_record(&history(n_records as i64))
            .expect("append");
        n_records += 1;
    }
    let len = writer.len();
    writer.close().expect("close");
    (len, n_records)
}

fn inspect(args: &[&str]) -> Exit {
    let cli = Cli::try_parse_from(std::iter::once("wandb-inspect").chain(args.iter().copied()))
        .expect("bench arguments should parse");
    let mut out = io::sink();
    let mut err = io::sink();
    run(&cli, &mut Console::new(&mut out, &mut err))
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = match std::env::var_os("WANDB_INSPECT_BENCH_FILE") {
        Some(path) => std::path::PathBuf::from(path),
        None => dir.path().join("run-bench.wandb"),
    };
    let _ = std::fs::remove_file(&path);
    let (len, n_records) = generate(&path);
    let path = path.to_str().expect("UTF-8 temp path");
    eprintln!("bench file: {len} bytes, {n_records} records");

    let mut group = c.benchmark_group("inspect");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    group.throughput(Throughput::Bytes(len));
    group.bench_function("verify", |b| {
        b.iter(|| assert_eq!(inspect(&["verify", path]), Exit::Ok));
    });

    group.throughput(Throughput::Elements(n_records));
    group.bench_function("dump_json", |b| {
        b.iter(|| assert_eq!(inspect(&["dump", "--json", path]), Exit::Ok));
    });
    group.bench_function("dump_text", |b| {
        b.iter(|| assert_eq!(inspect(&["dump", path]), Exit::Ok));
    });
    group.bench_function("history_csv", |b| {
        b.iter(|| assert_eq!(inspect(&["history", "--format", "csv", path]), Exit::Ok));
    });
    group.bench_function("history_jsonl", |b| {
        b.iter(|| assert_eq!(inspect(&["history", "--format", "jsonl", path]), Exit::Ok));
    });
    group.bench_function("summary", |b| {
        b.iter(|| assert_eq!(inspect(&["summary", path]), Exit::Ok));
    });
    group.finish();
}

criterion_group!(inspect_benches, benches);
criterion_main!(inspect_benches);

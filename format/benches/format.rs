//! Benchmarks for the `.wandb` format: framing + CRC append of pre-encoded payloads (in memory and
//! into a file), a verified scan of an ~80 MB file, and decoding typical history records.
//!
//! Targets on the project's 2-core machine: append >= 1 GB/s, scan >= 1 GB/s, >= 2 million history
//! records decoded per second. Run with `cargo bench -p wandb-format`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use wandb_format::proto::{self, record::RecordType};
use wandb_format::{Framer, LogFile, Recovery, ScanItem, Writer, frame_all};

/// A history record shaped like wandb-core's: `_step`, `_runtime`, `_timestamp` and ten float metrics,
/// every item with a one-element `nested_key`.
fn history_record(step: i64) -> proto::Record {
    let item = |key: String, value: String| proto::HistoryItem {
        nested_key: vec![key],
        value_json: value,
        ..Default::default()
    };
    let mut items = vec![
        item("_step".into(), step.to_string()),
        item(
            "_runtime".into(),
            format!("{}", 0.001 * step as f64 + 0.434_747_343),
        ),
        item(
            "_timestamp".into(),
            format!("{:e}", 1.795_314_910_668_329_2e9 + step as f64).replace('e', "e+0"),
        ),
    ];
    for metric in 0..10 {
        let value = ((step * 31 + metric) as f64).sin() * 0.9;
        items.push(item(format!("metric_{metric}"), format!("{value}")));
    }
    proto::Record {
        num: step + 1,
        record_type: Some(RecordType::History(proto::HistoryRecord {
            item: items,
            step: Some(proto::HistoryStep { num: step }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n as i64)
        .map(|step| history_record(step).encode_to_vec())
        .collect()
}

fn append(c: &mut Criterion) {
    let payloads = payloads(10_000);
    let total: usize = payloads.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("frame_in_memory", |b| {
        let mut out = Vec::with_capacity(total * 2);
        b.iter(|| {
            out.clear();
            let mut framer = Framer::new();
            for payload in &payloads {
                black_box(framer.frame(payload, &mut out));
            }
        });
    });
    group.bench_function("writer_to_file", |b| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut n_file = 0;
        b.iter(|| {
            n_file += 1;
            let mut writer =
                Writer::create(dir.path().join(format!("run-{n_file}.wandb"))).expect("create");
            for payload in &payloads {
                black_box(writer.append(payload).expect("append"));
            }
            writer
                .persist(wandb_format::Durability::Flush)
                .expect("flush");
        });
    });
    group.finish();
}

fn scan(c: &mut Criterion) {
    // ~80 MB of history records.
    let payloads = payloads(10_000);
    let mut all = Vec::new();
    while all.iter().map(|p: &&Vec<u8>| p.len()).sum::<usize>() < 80_000_000 {
        all.extend(payloads.iter());
    }
    let bytes = frame_all(all.iter().map(|p| p.as_slice()));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("run-scan.wandb");
    std::fs::write(&path, &bytes).expect("write");
    let file = LogFile::open(&path).expect("open");
    let mut group = c.benchmark_group("scan");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("verified_scan_80MB", |b| {
        b.iter(|| {
            let mut n_records = 0u64;
            for item in file.scan(Recovery::Strict) {
                if let Ok(ScanItem::Record(record)) = item {
                    n_records += record.payload.len() as u64;
                }
            }
            black_box(n_records)
        });
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let payloads = payloads(10_000);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function("history_records", |b| {
        b.iter(|| {
            for payload in &payloads {
                black_box(proto::Record::decode(payload.as_slice()).expect("decode"));
            }
        });
    });
    group.bench_function("history_records_zero_copy_view", |b| {
        b.iter(|| {
            for payload in &payloads {
                let view = wandb_format::RecordView::parse(payload).expect("view");
                let history = view.history().expect("history");
                black_box(history.step().expect("step"));
                for item in history.items() {
                    let item = item.expect("item");
                    black_box((item.path().next(), item.value_json));
                }
            }
        });
    });
    // Records decode independently: both cores of the target machine, one half of the records each.
    group.bench_function("history_records_zero_copy_view_2_threads", |b| {
        let (left, right) = payloads.split_at(payloads.len() / 2);
        b.iter(|| {
            std::thread::scope(|scope| {
                for half in [left, right] {
                    scope.spawn(move || {
                        for payload in half {
                            let view = wandb_format::RecordView::parse(payload).expect("view");
                            let history = view.history().expect("history");
                            black_box(history.step().expect("step"));
                            for item in history.items() {
                                let item = item.expect("item");
                                black_box((item.path().next(), item.value_json));
                            }
                        }
                    });
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, append, scan, decode);
criterion_main!(benches);

//! Speed of the viewer: `plot` of long histories to PNG, and `report` of many runs.
//!
//! Targets (issue 16): `plot` of a 1M-row, 10-metric history at most 1 s to PNG on 2 cores; a
//! 10M-row history in about a second; `report` of 50 runs of 10k rows at most 5 s, the page under
//! ~2 MB. The files are generated here, rows as wandb-core writes them (`_step`, `_runtime`,
//! `_timestamp` and float metrics as `nested_key` items).
//!
//! Run with `cargo bench -p wandb-inspect --bench viewer`; `VIEWER_BENCH_10M_10=1` adds `plot` of
//! a 10M-row, 10-metric history (a 4.4 GB file in the temp folder). `benches/viewer_plot.sh` times
//! the release binary on such files and counts its instructions.

use std::io;
use std::path::Path;
use std::time::Duration;

use clap::Parser as _;
use criterion::{Criterion, criterion_group, criterion_main};
use wandb_format::proto::{self, Record, record::RecordType};
use wandb_inspect::{Cli, Console, Exit, run};

const METRICS: [&str; 10] = [
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "lr",
    "grad_norm",
    "epoch",
    "throughput",
    "gpu/mem",
    "gpu/util",
];

fn history(step: i64, n_metrics: usize) -> Record {
    let item = |key: &str, json: String| proto::HistoryItem {
        nested_key: vec![key.to_string()],
        value_json: json,
        ..Default::default()
    };
    let x = step as f64;
    let mut items = vec![
        item("_step", step.to_string()),
        item("_runtime", format!("{}", 12.5 + x * 0.0137)),
        item("_timestamp", format!("{}", 1_795_317_679.5 + x * 0.0137)),
    ];
    for (index, key) in METRICS.iter().take(n_metrics).enumerate() {
        let value = (x * 0.001 + index as f64).sin() * 0.75 + 1.0 / (x + 1.0);
        items.push(item(key, format!("{value}")));
    }
    Record {
        num: step + 1,
        record_type: Some(RecordType::History(proto::HistoryRecord {
            item: items,
            step: Some(proto::HistoryStep { num: step }),
            info: None,
        })),
        ..Default::default()
    }
}

fn generate(path: &Path, rows: i64, n_metrics: usize) {
    let mut writer = wandb_format::Writer::create(path).expect("create the bench file");
    for step in 0..rows {
        writer
            .append_record(&history(step, n_metrics))
            .expect("append");
    }
    writer.close().expect("close");
}

fn inspect(args: &[&str]) -> Exit {
    let cli = Cli::try_parse_from(std::iter::once("wandb-inspect").chain(args.iter().copied()))
        .expect("bench arguments should parse");
    let (mut out, mut err) = (io::sink(), io::sink());
    run(&cli, &mut Console::new(&mut out, &mut err))
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let million = dir.path().join("run-1m.wandb");
    generate(&million, 1_000_000, 10);
    let ten_million = dir.path().join("run-10m.wandb");
    generate(&ten_million, 10_000_000, 1);
    let many = dir.path().join("many");
    for index in 0..50 {
        let run_dir = many.join(format!("run-{index:02}"));
        std::fs::create_dir_all(&run_dir).expect("run folder");
        generate(&run_dir.join(format!("run-r{index:02}.wandb")), 10_000, 10);
    }
    let png = dir.path().join("out.png");
    let html = dir.path().join("report.html");
    let (png, html) = (png.to_str().expect("UTF-8"), html.to_str().expect("UTF-8"));
    let paths = |p: &Path| p.to_str().expect("UTF-8").to_string();

    let mut group = c.benchmark_group("viewer");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    let path = paths(&million);
    group.bench_function("plot_1M_rows_10_metrics_png", |b| {
        b.iter(|| assert_eq!(inspect(&["plot", &path, "-o", png]), Exit::Ok));
    });
    let path = paths(&million);
    group.bench_function("plot_1M_rows_1_of_10_metrics_png", |b| {
        b.iter(|| {
            let args = ["plot", &path, "--metrics", "train/loss", "-o", png];
            assert_eq!(inspect(&args), Exit::Ok);
        });
    });
    let path = paths(&ten_million);
    group.bench_function("plot_10M_rows_1_metric_png", |b| {
        b.iter(|| assert_eq!(inspect(&["plot", &path, "-o", png]), Exit::Ok));
    });
    if std::env::var_os("VIEWER_BENCH_10M_10").is_some() {
        let big = dir.path().join("run-10m-10.wandb");
        generate(&big, 10_000_000, 10);
        let path = paths(&big);
        group.bench_function("plot_10M_rows_10_metrics_png", |b| {
            b.iter(|| assert_eq!(inspect(&["plot", &path, "-o", png]), Exit::Ok));
        });
        let _ = std::fs::remove_file(&big);
    }
    let path = paths(&many);
    group.bench_function("report_50_runs_10k_rows", |b| {
        b.iter(|| assert_eq!(inspect(&["report", &path, "-o", html]), Exit::Ok));
    });
    group.finish();
    let size = std::fs::metadata(html).map(|m| m.len()).unwrap_or(0);
    eprintln!("report of 50 runs: {size} bytes");
}

criterion_group!(viewer, benches);
criterion_main!(viewer);

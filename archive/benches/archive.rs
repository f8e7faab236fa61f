//! Benchmarks of `wandb-archive`: `pack` throughput on 50 runs of 10k rows (SDK-shaped records:
//! a summary pair and a history row of 10 floats per step, `sync/examples/gen_runs.rs`), the compression ratio of SDK-written
//! fixtures, of our logger's files and of the synthetic runs, and reading one run out of the
//! 50-run archive (which must decompress only that run's frames).
//!
//! `cargo bench -p wandb-archive --bench archive`

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wandb_archive::{Archive, PackOptions, pack};

// The same synthetic runs as sync's benchmarks.
#[path = "../../sync/examples/gen_runs.rs"]
#[allow(dead_code, unreachable_pub)]
mod gen_runs;
use gen_runs::write_run;

const N_RUNS: usize = 50;
const N_ROWS: u64 = 10_000;

fn size_of_tree(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            total += size_of_tree(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

fn opts(inputs: Vec<PathBuf>, output: &Path, level: i32) -> PackOptions {
    PackOptions {
        inputs,
        output: output.to_path_buf(),
        level,
        threads: 2,
        remove_source: false,
        repack: false,
        progress: None,
    }
}

fn ratio(name: &str, inputs: Vec<PathBuf>, dir: &Path) {
    let out = dir.join(format!("{name}.tar.zst"));
    let _ = std::fs::remove_file(&out);
    let report = pack(&opts(inputs, &out, wandb_archive::DEFAULT_LEVEL)).unwrap();
    eprintln!(
        "ratio {name}: {} bytes -> {} bytes: {:.2}x",
        report.bytes_in,
        report.bytes_out,
        report.bytes_in as f64 / report.bytes_out as f64
    );
}

fn logger_run(dir: &Path) -> PathBuf {
    use wandb_logger::{Env, InitOptions, LoadContext, Setup, SetupOptions, row};
    let env = Env::from_pairs([
        ("WANDB_MODE", "offline"),
        ("WANDB_X_HANDLE_SIGTERM", "false"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB_X_DISABLE_STATS", "true"),
        ("WANDB_SILENT", "true"),
    ]);
    let context = LoadContext::new(env, dir)
        .with_home(dir)
        .with_hostname("bench");
    let setup = Setup::new(SetupOptions::default().context(context)).unwrap();
    let run = setup.init(InitOptions::new().project("bench")).unwrap();
    let mut x = 0.5f64;
    for i in 0..N_ROWS {
        // A logistic-map walk: less regular than sines, like real metrics.
        x = 3.9 * x * (1.0 - x);
        run.log(row! {
            "loss" => 1.0 / (i as f64 + 1.0) + x * 0.01,
            "acc" => x,
            "lr" => 3e-4 * (1.0 - i as f64 / N_ROWS as f64),
            "epoch" => i / 1000,
        })
        .unwrap();
    }
    let run_dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    run_dir
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("wandb");
    for i in 0..N_RUNS {
        write_run(&runs, &format!("bench{i:04}"), N_ROWS).unwrap();
    }
    let input_bytes = size_of_tree(&runs);
    eprintln!("input: {N_RUNS} runs of {N_ROWS} rows, {input_bytes} bytes");

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sdk-0.31.0");
    let sdk: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    ratio("sdk-fixtures", sdk, dir.path());
    ratio(
        "logger-10k-rows",
        vec![logger_run(&dir.path().join("logger"))],
        dir.path(),
    );
    ratio("synthetic-50x10k", vec![runs.clone()], dir.path());

    let out = dir.path().join("bench.tar.zst");
    let mut group = c.benchmark_group("pack");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(input_bytes));
    for level in [1, 3] {
        group.bench_function(format!("50x10k/level-{level}/2-threads"), |b| {
            b.iter(|| {
                let _ = std::fs::remove_file(&out);
                pack(&opts(vec![runs.clone()], &out, level)).unwrap()
            });
        });
    }
    group.finish();

    // CPU time of one pack (this process's user + system time), which a loaded machine does
    // not inflate as it does wall-clock time: the rate two free cores would give at best.
    for level in [1, 3] {
        let _ = std::fs::remove_file(&out);
        let before = wandb_testkit::cpu_seconds();
        let wall = std::time::Instant::now();
        pack(&opts(vec![runs.clone()], &out, level)).unwrap();
        let cpu = wandb_testkit::cpu_seconds() - before;
        eprintln!(
            "pack level {level}: {:.2} s CPU, {:.2} s wall; {:.0} MB/s of input per CPU second, {:.0} MB/s on 2 free cores",
            cpu,
            wall.elapsed().as_secs_f64(),
            input_bytes as f64 / 1e6 / cpu,
            input_bytes as f64 / 1e6 / (cpu / 2.0)
        );
    }

    let _ = std::fs::remove_file(&out);
    pack(&opts(
        vec![runs.clone()],
        &out,
        wandb_archive::DEFAULT_LEVEL,
    ))
    .unwrap();
    let probe = Archive::open(&out).unwrap();
    let n_frames = probe.frames().len();
    let run = probe.index().unwrap().runs[N_RUNS / 2].clone();
    let start = run.files.first().unwrap().header_offset;
    let end = run
        .files
        .iter()
        .map(|f| f.data_offset + f.size)
        .max()
        .unwrap();
    let expected = probe
        .frames()
        .iter()
        .filter(|f| f.d_offset < end && start < f.d_offset + f.d_len)
        .count() as u64;
    drop(probe);
    let mut group = c.benchmark_group("read");
    group.bench_function("one-run-of-50", |b| {
        b.iter(|| {
            let archive = Archive::open(&out).unwrap();
            let opened = archive.n_decompressed();
            for member in archive.members().iter().filter(|m| m.run() == run.name) {
                archive.verify_member(member).unwrap();
            }
            let run_frames = archive.n_decompressed() - opened;
            assert!(
                run_frames <= expected,
                "one run read {run_frames} frames, not {expected}"
            );
            (opened, run_frames)
        });
    });
    group.finish();
    let archive = Archive::open(&out).unwrap();
    let opened = archive.n_decompressed();
    for member in archive.members().iter().filter(|m| m.run() == run.name) {
        archive.verify_member(member).unwrap();
    }
    eprintln!(
        "read one run of {N_RUNS}: {} frames for the index, {} for the run, of {n_frames} frames",
        opened,
        archive.n_decompressed() - opened
    );
}

criterion_group!(archive, benches);
criterion_main!(archive);

//! Criterion benchmarks of the logger's speed targets (run with
//! `cargo bench -p wandb-logger --bench log`):
//!
//! * `log/caller_10_floats`: one `log` call of a 10-float row, caller side, into a live run
//!   writing a real file (target: median ≤ 1 µs), against `log/disabled_baseline`, the same
//!   call on a disabled run. The writer is given time to catch up between batches (the
//!   `flush` is not timed), so this is the cost a training loop sees while the writer keeps
//!   up; the per-call percentiles printed after it come from individually timed calls.
//! * `log/end_to_end_1M_rows`: 1,000,000 rows logged and written into the run's file: the time
//!   runs from the first `log` to the return of a `flush` barrier, when the writer thread has
//!   encoded, framed and written every row to the file (target: ≥ 1,000,000 rows/s). The
//!   `finish` that follows (final summary, exit record, `fdatasync`) is timed apart and its
//!   median printed: it waits for the disk to take what is still unwritten, so it measures the
//!   disk more than this code. It also prints the file bytes per row (target ≤ 450) and the
//!   resident memory after 1 M and 3 M rows (target: flat).
//! * `run/init_finish_empty`: `init` to `finish` of an empty run (target ≤ 20 ms).
//! * `run/resume_init_1M_rows`: `init` with `resume="must"` over an earlier fragment of
//!   1,000,000 rows of 10 floats (reading it back for the last step, summary, config and run
//!   time is all the work); the new fragment is finished and removed untimed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wandb_logger::{
    DEFAULT_QUEUE_CAPACITY, Env, InitOptions, LoadContext, Run, Setup, SetupOptions, row,
};

/// Rows logged between two catch-ups of the writer: a quarter of the queue, below the fill at
/// which `log` starts sharing the writer's work.
const BATCH: u64 = DEFAULT_QUEUE_CAPACITY as u64 / 4;

const KEYS: [&str; 10] = ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"];

fn setup_in(dir: &std::path::Path) -> Setup {
    let env = Env::from_pairs([("WANDB_MODE", "offline")]);
    let context = LoadContext::new(env, dir).with_home(dir);
    Setup::new(
        SetupOptions::default()
            .context(context)
            .handle_sigterm(false),
    )
    .expect("setup")
}

fn log_row(run: &Run, i: u64) {
    let x = i as f64 * 1e-3;
    run.log(row! {
        KEYS[0] => x, KEYS[1] => x + 0.1, KEYS[2] => x + 0.2, KEYS[3] => x + 0.3,
        KEYS[4] => x + 0.4, KEYS[5] => x + 0.5, KEYS[6] => x + 0.6, KEYS[7] => x + 0.7,
        KEYS[8] => x + 0.8, KEYS[9] => x + 0.9,
    })
    .expect("log");
}

/// Resident set size in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

fn caller_side(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = setup_in(dir.path());
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(1));

    let run = setup
        .init(InitOptions::new().project("bench"))
        .expect("init");
    let mut i = 0u64;
    group.bench_function("caller_10_floats", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(BATCH);
                let start = Instant::now();
                for _ in 0..batch {
                    log_row(&run, i);
                    i += 1;
                }
                total += start.elapsed();
                run.flush().expect("flush");
                left -= batch;
            }
            total
        });
    });
    // Per-call latency: 512 batches of `BATCH` individually timed calls.
    let mut latencies = Vec::with_capacity(512 * BATCH as usize);
    for _ in 0..512 {
        for _ in 0..BATCH {
            let start = Instant::now();
            log_row(&run, i);
            latencies.push(start.elapsed());
            i += 1;
        }
        run.flush().expect("flush");
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "caller_10_floats per call: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    let summary = run.finish().expect("finish");
    eprintln!(
        "caller_10_floats: {} rows, {:.1} bytes/row",
        summary.rows,
        summary.bytes as f64 / summary.rows.max(1) as f64
    );

    let disabled = setup
        .init(InitOptions::new().mode("disabled"))
        .expect("init disabled");
    group.bench_function("disabled_baseline", |b| {
        b.iter(|| {
            log_row(&disabled, i);
            i += 1;
        });
    });
    group.finish();
}

fn end_to_end(c: &mut Criterion) {
    const ROWS: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = setup_in(dir.path());
    let mut group = c.benchmark_group("log");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(ROWS));
    let mut reported = false;
    let mut finishes = Vec::new();
    group.bench_function("end_to_end_1M_rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let run = setup
                    .init(InitOptions::new().project("bench"))
                    .expect("init");
                let start = Instant::now();
                for i in 0..ROWS {
                    log_row(&run, i);
                }
                run.flush().expect("flush");
                total += start.elapsed();
                let rss_1m = rss_kib();
                let finish_start = Instant::now();
                let summary = black_box(run.finish().expect("finish"));
                finishes.push(finish_start.elapsed());
                if !reported {
                    reported = true;
                    eprintln!(
                        "end_to_end: {} rows, {:.1} file bytes/row, RSS after 1M rows {} KiB",
                        summary.rows,
                        summary.bytes as f64 / summary.rows as f64,
                        rss_1m
                    );
                    // Memory must not grow with the number of rows: log 3x more and compare.
                    let run = setup
                        .init(InitOptions::new().project("bench"))
                        .expect("init");
                    for i in 0..3 * ROWS {
                        log_row(&run, i);
                    }
                    let rss_3m = rss_kib();
                    run.finish().expect("finish");
                    eprintln!("end_to_end: RSS after 3M rows {rss_3m} KiB");
                }
                if let Some(path) = summary.run_dir {
                    let _ = std::fs::remove_dir_all(path);
                }
            }
            total
        });
    });
    group.finish();
    finishes.sort_unstable();
    if let Some(median) = finishes.get(finishes.len() / 2) {
        eprintln!(
            "end_to_end: finish after 1M rows (summary, exit record, fdatasync of what the disk \
             has not taken yet): median {median:?} over {} runs",
            finishes.len()
        );
    }
}

fn init_finish(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = setup_in(dir.path());
    let mut group = c.benchmark_group("run");
    group.sample_size(30);
    group.bench_function("init_finish_empty", |b| {
        b.iter(|| {
            let run = setup
                .init(InitOptions::new().project("bench"))
                .expect("init");
            black_box(run.finish().expect("finish"));
        });
    });
    group.finish();
}

fn resume_init(c: &mut Criterion) {
    const ROWS: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = setup_in(dir.path());
    let run = setup
        .init(InitOptions::new().project("bench").id("resume00"))
        .expect("init");
    for i in 0..ROWS {
        log_row(&run, i);
    }
    let first = run.dir().expect("run folder").to_path_buf();
    run.finish().expect("finish");
    let mut group = c.benchmark_group("run");
    group.sample_size(10);
    group.bench_function("resume_init_1M_rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let run = setup
                    .init(InitOptions::new().id("resume00").resume("must"))
                    .expect("resume");
                total += start.elapsed();
                assert_eq!(run.starting_step(), ROWS);
                let second = run.dir().expect("run folder").to_path_buf();
                run.finish().expect("finish");
                assert_ne!(second, first);
                std::fs::remove_dir_all(&second).expect("remove the new fragment");
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, caller_side, end_to_end, init_finish, resume_init);
criterion_main!(benches);

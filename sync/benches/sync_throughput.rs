//! Sync throughput against the `wandb-testkit` backend on loopback (criterion).
//!
//! * `fifty_runs_10k_rows`: 50 runs × 10,000 rows × 10 floats (target: 10× faster than
//!   `wandb sync` 0.31, i.e. ≤ 3.3 s on the 2-core reference machine).
//! * `one_run_100k_rows`: one run of 100,000 rows (target ≤ 1.45 s).
//!
//! Each iteration removes the `.synced` markers and ledgers and resets the backend, so every
//! iteration uploads everything. Peak memory is measured on the built binary instead (see the
//! crate's notes): `/usr/bin/time -v target/release/wandb-sync ...`.

#![allow(missing_docs, clippy::unwrap_used, unreachable_pub, dead_code)]

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wandb_settings::Secret;
use wandb_sync::{SyncOptions, sync_paths};
use wandb_testkit::{BackendConfig, TestBackend};

#[path = "../examples/gen_runs.rs"]
mod gen_runs;

fn reset(dir: &Path) {
    for run in std::fs::read_dir(dir).unwrap() {
        for file in std::fs::read_dir(run.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let name = path.to_string_lossy();
            if name.ends_with(".synced") || name.ends_with(".ledger.json") {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
}

fn bench_sync(c: &mut Criterion, name: &str, runs: usize, rows: u64) {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    for i in 0..runs {
        gen_runs::write_run(&wandb, &format!("bench{i:04}"), rows).unwrap();
    }
    let backend = TestBackend::start_with(BackendConfig {
        record_variables: false,
        ..BackendConfig::default()
    })
    .unwrap();
    let opts = SyncOptions::new(
        vec![wandb.clone()],
        backend.base_url(),
        Some(Secret::new(backend.api_key())),
    );
    let mut group = c.benchmark_group("sync");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                reset(&wandb);
                backend.reset_state();
            },
            |()| {
                let report = sync_paths(&opts).unwrap();
                assert_eq!(report.exit_code(), 0);
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn fifty_runs(c: &mut Criterion) {
    bench_sync(c, "fifty_runs_10k_rows", 50, 10_000);
}

fn one_big_run(c: &mut Criterion) {
    bench_sync(c, "one_run_100k_rows", 1, 100_000);
}

criterion_group!(benches, fifty_runs, one_big_run);
criterion_main!(benches);

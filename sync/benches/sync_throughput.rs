//! Sync throughput against the `wandb-testkit` backend on loopback (criterion).
//!
//! * `fifty_runs_10k_rows`: 50 runs × 10,000 rows × 10 floats (target: 10× faster than
//!   `wandb sync` 0.31, i.e. ≤ 3.3 s on the 2-core reference machine).
//! * `one_run_100k_rows`: one run of 100,000 rows (target ≤ 1.45 s).
//! * `sync_archive/{folders,archive}`: the 50 runs of 10,000 rows synced from their folders and
//!   from their `wandb-archive` archive (read in place; target: within 10% of the folders).
//!   The machine is shared, so before criterion's samples the pair is also timed in alternation
//!   (`SYNC_ARCHIVE_PAIRS` pairs, default 6, the first one a warm-up) and each pair's ratio
//!   archive / folders is printed with their median.
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

fn folders_vs_archive(c: &mut Criterion) {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    for i in 0..50 {
        gen_runs::write_run(&wandb, &format!("bench{i:04}"), 10_000).unwrap();
    }
    let archive = home.path().join("runs.tar.zst");
    wandb_archive::pack(&wandb_archive::PackOptions {
        inputs: vec![wandb.clone()],
        output: archive.clone(),
        level: wandb_archive::DEFAULT_LEVEL,
        threads: 2,
        remove_source: false,
        repack: false,
        progress: None,
    })
    .unwrap();
    let state = wandb_archive::tools::state_dir(&archive);
    let backend = TestBackend::start_with(BackendConfig {
        record_variables: false,
        ..BackendConfig::default()
    })
    .unwrap();
    let options = |path: &Path| {
        SyncOptions::new(
            vec![path.to_path_buf()],
            backend.base_url(),
            Some(Secret::new(backend.api_key())),
        )
    };
    let from_folders = options(&wandb);
    let from_archive = options(&archive);
    // Wall time, and CPU time of the process (sync and the in-process backend; steadier than
    // wall time on a shared machine).
    let once = |opts: &SyncOptions| {
        reset(&wandb);
        let _ = std::fs::remove_dir_all(&state);
        backend.reset_state();
        let (started, cpu) = (std::time::Instant::now(), wandb_testkit::cpu_seconds());
        let report = sync_paths(opts).unwrap();
        assert_eq!(report.exit_code(), 0);
        assert_eq!(report.runs.len(), 50);
        (
            started.elapsed().as_secs_f64(),
            wandb_testkit::cpu_seconds() - cpu,
        )
    };
    let pairs: usize = std::env::var("SYNC_ARCHIVE_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    for pair in 0..pairs {
        // Alternate which goes first, so drift on the shared machine hits both alike.
        let (folders, archived) = if pair % 2 == 0 {
            let f = once(&from_folders);
            (f, once(&from_archive))
        } else {
            let a = once(&from_archive);
            (once(&from_folders), a)
        };
        eprintln!(
            "pair {pair}: folders {:.3} s ({:.2} s CPU), archive {:.3} s ({:.2} s CPU), \
             ratio {:.3} (CPU {:.3}){}",
            folders.0,
            folders.1,
            archived.0,
            archived.1,
            archived.0 / folders.0,
            archived.1 / folders.1,
            if pair == 0 { " (warm-up)" } else { "" }
        );
        if pair > 0 {
            ratios.push(archived.0 / folders.0);
            cpu_ratios.push(archived.1 / folders.1);
        }
    }
    for (what, ratios) in [("wall", &mut ratios), ("CPU", &mut cpu_ratios)] {
        if ratios.is_empty() {
            continue;
        }
        ratios.sort_by(f64::total_cmp);
        eprintln!(
            "archive / folders, {what} time: median {:.3} over {} pairs (min {:.3}, max {:.3})",
            ratios[ratios.len() / 2],
            ratios.len(),
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    let mut group = c.benchmark_group("sync_archive");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    for (name, opts) in [("folders", &from_folders), ("archive", &from_archive)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    reset(&wandb);
                    let _ = std::fs::remove_dir_all(&state);
                    backend.reset_state();
                },
                |()| {
                    let report = sync_paths(opts).unwrap();
                    assert_eq!(report.exit_code(), 0);
                },
                criterion::BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, fifty_runs, one_big_run, folders_vs_archive);
criterion_main!(benches);

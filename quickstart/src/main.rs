//! The quickstart: a simulated training loop logged offline with `wandb-logger` (config,
//! `define_metric`, a few thousand rows, summary values and console lines). Writes one offline
//! run under `./wandb/` (or `$WANDB_DIR/wandb/`), reads its `.wandb` file back, and prints the
//! run folder and what to do next.
//!
//! ```sh
//! cargo build --release && target/release/wandb-quickstart
//! target/release/wandb-inspect summary wandb/latest-run
//! target/release/wandb-sync wandb/latest-run        # or: wandb sync wandb/latest-run
//! ```

use std::time::Instant;

use serde::Serialize;
use wandb_logger::{Goal, InitOptions, Metric, SummaryStat, row};

#[derive(Serialize)]
struct Config {
    learning_rate: f64,
    batch_size: u32,
    epochs: u32,
    optimizer: Optimizer,
}

#[derive(Serialize)]
struct Optimizer {
    name: &'static str,
    betas: [f64; 2],
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config {
        learning_rate: 3e-4,
        batch_size: 64,
        epochs: 5,
        optimizer: Optimizer {
            name: "adam",
            betas: [0.9, 0.999],
        },
    };
    let run = wandb_logger::init(
        InitOptions::new()
            .project("quickstart")
            .name("simulated-training")
            .tags(["example", "rust"])
            .config(&config),
    )?;
    run.define_metric(Metric::new("epoch"))?;
    run.define_metric(
        Metric::new("train/loss")
            .summary(SummaryStat::Min)
            .goal(Goal::Minimize),
    )?;
    run.define_metric(
        Metric::new("val/*")
            .step_metric("epoch")
            .summary(SummaryStat::Max),
    )?;

    let started = Instant::now();
    let steps_per_epoch = 1000;
    let mut best_acc: f64 = 0.0;
    for epoch in 0..config.epochs {
        for batch in 0..steps_per_epoch {
            let step = f64::from(epoch * steps_per_epoch + batch);
            let loss = 2.5 * (-step / 2000.0).exp() + 0.05 * (step / 7.0).sin().abs();
            run.log(row! {
                "train/loss" => loss,
                "train/lr" => config.learning_rate * (1.0 - step / 5000.0),
                "epoch" => epoch,
            })?;
        }
        let val_acc = 1.0 - 0.6 * (-f64::from(epoch + 1) / 2.0).exp();
        best_acc = best_acc.max(val_acc);
        run.log(row! {"val/acc" => val_acc, "val/loss" => 1.0 - val_acc, "epoch" => epoch})?;
        println!("epoch {epoch}: val/acc={val_acc:.4}");
    }
    run.summary_set("best_val_acc", &best_acc)?;
    let dir = run.dir().map(|d| d.to_path_buf()).unwrap_or_default();
    let summary = run.finish()?;
    println!(
        "wrote {} rows ({} records, {} bytes) in {:.2?}",
        summary.rows,
        summary.records,
        summary.bytes,
        started.elapsed()
    );
    println!("{}", dir.display());
    inspect(&dir)?;
    println!(
        "next: target/release/wandb-inspect summary {dir}\n      \
         target/release/wandb-sync {dir}   (WANDB_BASE_URL and WANDB_API_KEY, or --base-url)",
        dir = dir.display()
    );
    Ok(())
}

/// Reads the run's `.wandb` file back, as `wandb-inspect summary` would, and prints what it holds.
fn inspect(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use wandb_format::{Entry, LogFile, Recovery};
    let Some(path) = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "wandb"))
    else {
        return Err(format!("no .wandb file in {}", dir.display()).into());
    };
    let file = LogFile::open(&path)?;
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    for entry in file.records(Recovery::Strict) {
        if let Entry::Record { record, .. } = entry? {
            *counts.entry(record.type_name()).or_default() += 1;
        }
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!(
        "read back {} ({} bytes, no damage): {}",
        path.display(),
        file.len(),
        counts.join(", ")
    );
    Ok(())
}

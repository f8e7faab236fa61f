//! `wandb-inspect plot`: line charts of history metrics, to PNG or SVG.
//!
//! One panel per selected metric, in a grid of up to three columns, each run a line with a
//! legend by run name. The runs are read in parallel (`data.rs`), their series put on the x axis,
//! smoothed and downsampled to the plot's pixel columns as they are read (`series.rs`), and drawn
//! with plotters (`draw.rs`). Reading dominates: drawing handles at most four points per pixel
//! column and run.
//! Damaged files are plotted from their intact records, and their damage is reported on stderr.

pub(crate) mod data;
pub(crate) mod draw;
pub(crate) mod series;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::cli::PlotArgs;
use crate::console::Console;
use crate::error::Error;
use crate::exit::Exit;
use crate::plot::data::RunData;
use crate::plot::draw::Format;
use crate::plot::series::{ChartOptions, ReadOptions, selected};

/// Splits `--metrics` into patterns (comma-separated, trimmed, empty ones dropped).
pub(crate) fn patterns(metrics: &[String]) -> Vec<String> {
    metrics
        .iter()
        .flat_map(|m| m.split(','))
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads `files` in parallel, keeping the history keys `keep` wants, the series reduced as
/// `options` says; reports read errors and damage on the console. Returns the runs read and the
/// exit status so far.
pub(crate) fn load_runs(
    files: &[PathBuf],
    keep: &(dyn Fn(&str) -> bool + Sync),
    with_extras: bool,
    options: &ReadOptions,
    console: &mut Console<'_>,
) -> (Vec<RunData>, Exit) {
    // One file: its records in parallel slices; several: the files in parallel.
    let results: Vec<Result<RunData, Error>> = match files {
        [file] => vec![data::load_run(file, keep, with_extras, true, options)],
        _ => files
            .par_iter()
            .map(|path| data::load_run(path, keep, with_extras, false, options))
            .collect(),
    };
    report_runs(results, console)
}

/// Reports the read errors and damage of `results` on the console; returns the runs read and the
/// exit status.
pub(crate) fn report_runs(
    results: Vec<Result<RunData, Error>>,
    console: &mut Console<'_>,
) -> (Vec<RunData>, Exit) {
    let mut exit = Exit::Ok;
    let mut runs = Vec::new();
    for result in results {
        match result {
            Ok(run) => {
                let name = run.path.display().to_string();
                for reported in &run.damage {
                    crate::run::report_damage(console, &name, reported);
                    if !reported.torn_tail {
                        exit = exit.merge(Exit::Damage);
                    }
                }
                runs.push(run);
            }
            Err(error) => {
                console.error(&error);
                exit = exit.merge(Exit::Error);
            }
        }
    }
    (runs, exit)
}

/// Runs `plot` over resolved `files`.
pub(crate) fn plot_files(
    args: &PlotArgs,
    files: &[PathBuf],
    console: &mut Console<'_>,
) -> io::Result<Exit> {
    let Some(format) = Format::of(&args.output) else {
        console.error(&Error::Usage(format!(
            "{}: the output must end in .png or .svg",
            args.output.display()
        )));
        return Ok(Exit::Error);
    };
    if !(0.0..1.0).contains(&args.smooth) {
        console.error(&Error::Usage(format!(
            "--smooth {} is outside 0 <= W < 1",
            args.smooth
        )));
        return Ok(Exit::Error);
    }
    let options = ChartOptions {
        metrics: patterns(&args.metrics),
        x: args.x.clone(),
        smooth: args.smooth,
        log_y: args.log_y,
        columns: draw::PLOT_COLUMNS,
    };
    let x = options.x.clone();
    let keep = |key: &str| selected(&options.metrics, key) || x.as_deref() == Some(key);
    let (runs, exit) = load_runs(files, &keep, false, &options.read(), console);
    let panels = series::panels(&runs, &options);
    if panels.is_empty() {
        console.warning(&"no numeric history metric matched; the chart is empty");
    }
    if let Err(message) = draw::draw(&panels, options.log_y, &args.output, format) {
        console.error(&Error::Draw {
            path: args.output.clone(),
            message,
        });
        return Ok(exit.merge(Exit::Error));
    }
    Ok(exit)
}

//! Snapshot tests of the data behind each chart (the downsampled series) on the SDK fixtures and
//! on a damaged copy of one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::plot::data::load_run;
use crate::plot::series::{ChartOptions, Panel, panels};

fn fixture(scenario: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/sdk-0.31.0")
        .join(scenario);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wandb"))
        .collect();
    files.sort();
    files
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no .wandb in {}", dir.display()))
}

/// One line per panel and run, then one per segment: `x:y` points.
fn render(panels: &[Panel]) -> String {
    let mut out = String::new();
    for panel in panels {
        let _ = writeln!(out, "panel {} (x = {})", panel.metric, panel.x);
        for line in &panel.lines {
            let drawn: usize = line.segments.iter().map(Vec::len).sum();
            let _ = writeln!(
                out,
                "  run {}: {} points, {} drawn in {} segments",
                line.run,
                line.points,
                drawn,
                line.segments.len()
            );
            for segment in &line.segments {
                let points: Vec<String> = segment.iter().map(|(x, y)| format!("{x}:{y}")).collect();
                let _ = writeln!(out, "    {}", points.join(" "));
            }
        }
    }
    out
}

fn options(columns: usize) -> ChartOptions {
    ChartOptions {
        metrics: Vec::new(),
        x: None,
        smooth: 0.0,
        log_y: false,
        columns,
    }
}

fn chart_data(path: &Path, options: &ChartOptions) -> String {
    let run =
        load_run(path, &|_| true, false, true, &options.read()).unwrap_or_else(|e| panic!("{e}"));
    let mut text = render(&panels(std::slice::from_ref(&run), options));
    for damage in &run.damage {
        let _ = writeln!(text, "damage {}", damage.describe());
    }
    text
}

#[test]
fn chart_data_of_every_fixture() {
    for scenario in [
        "console",
        "define_metric",
        "multiblock",
        "plain",
        "saved_files",
    ] {
        // 40 columns: the 100-row fixtures are downsampled too.
        let text = chart_data(&fixture(scenario), &options(40));
        insta::assert_snapshot!(format!("chart_data_{scenario}"), text);
    }
}

#[test]
fn chart_data_smoothed_on_log_axis_against_a_metric() {
    let options = ChartOptions {
        metrics: vec!["loss".to_string(), "val/*".to_string()],
        x: Some("step_x".to_string()),
        smooth: 0.6,
        log_y: true,
        columns: 20,
    };
    insta::assert_snapshot!(chart_data(&fixture("define_metric"), &options));
}

#[test]
fn chart_data_of_a_damaged_file() {
    let bytes = std::fs::read(fixture("define_metric")).unwrap_or_default();
    let mut damaged = bytes.clone();
    // A flipped byte in the middle (a bad checksum) and the last 100 bytes cut (a torn tail).
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    damaged.truncate(damaged.len() - 100);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("run-damaged.wandb");
    std::fs::write(&path, &damaged).unwrap_or_else(|e| panic!("{e}"));
    let text = chart_data(&path, &options(40));
    assert!(text.contains("damage offset"), "{text}");
    insta::assert_snapshot!(text);
}

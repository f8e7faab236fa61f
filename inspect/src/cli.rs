//! The command line, declared with clap's derive API; the doc comments are the `--help` texts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::jsonout::NonFinite;

/// Dump, verify, summarize and export W&B `.wandb` record files.
///
/// PATH can be a `.wandb` file, a run folder (`wandb/latest-run` too), a `wandb/` folder, the
/// folder holding `wandb/` (run folders are searched two levels down) or a glob pattern such as
/// 'wandb/*/run-*.wandb'. A file reached twice (for example through the `latest-run` link) is read
/// once; a path that is not a regular file (a FIFO, a device, a folder named `*.wandb`) is refused
/// without being opened. Damaged files are read as far as possible: every intact record
/// is shown and each damaged span is reported.
#[derive(Debug, Parser)]
#[command(
    name = "wandb-inspect",
    version,
    about,
    long_about,
    after_help = "Exit status: 0 when no damage was found (a torn tail is only a warning), 1 when \
                  some file is damaged or no input held a .wandb file, 2 for usage errors and \
                  unreadable or refused inputs, 130 when \
                  --follow is interrupted. A closed output pipe (| head) ends quietly with 0.\n\
                  Data goes to stdout, diagnostics to stderr; colour only on a terminal and never \
                  with NO_COLOR set. RAYON_NUM_THREADS limits the threads used."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print each record: offset, number, type and a compact view of its content.
    ///
    /// Text lines read `OFFSET NUM TYPE key=value ...`, with nested fields flattened into dotted
    /// paths and long strings cut. With --json, each line is one JSON object with `file`, `offset`,
    /// `length`, `num`, `type` and the record's fields under their proto names, every `value_json`
    /// decoded into a JSON value. Damaged spans are printed in place, as
    /// {"type":"damage","file":..,"offset":..,"length":..,"reason":..,"torn_tail":..} with --json.
    Dump(DumpArgs),
    /// Check files for damage: header, chunk checksums, chunk order and record decoding.
    ///
    /// Prints each damaged span (file, offset, length, reason) and one status line per file.
    /// Exits with 0 when every file is clean, 1 when damage was found and 2 when a file could not
    /// be read. A torn tail (the file ends inside a record, as a crash or a running writer leaves
    /// it) is reported as a warning, unless --strict.
    Verify(VerifyArgs),
    /// Describe each run: id, project, entity, name, start time, duration, exit code, step range,
    /// metric names, final summary, and record counts and bytes per type.
    Summary(SummaryArgs),
    /// Export the history rows as a table (CSV or JSON Lines), ready for pandas.
    ///
    /// Columns are `_step`, then every other key in byte order (nested keys joined with `.`), or
    /// exactly the --keys given. In CSV a missing value is an empty cell, NaN is written `NaN` and
    /// infinities `inf` and `-inf` (what pandas.read_csv parses as floats), strings are quoted when
    /// needed, and lists and objects are written as JSON text.
    History(HistoryArgs),
    /// Draw line charts of history metrics to a PNG or SVG file.
    ///
    /// One panel per metric (in a grid), one line per run, with a legend by run name. The x axis
    /// is each metric's define_metric step metric, else _step, unless --x says otherwise. NaN and
    /// infinities are gaps. Long histories are downsampled to the pixels drawn (the lowest and
    /// highest value of each pixel column kept), so every spike stays visible.
    Plot(PlotArgs),
    /// Write one self-contained HTML page about runs, readable offline in any browser.
    ///
    /// A chart per metric grouped by prefix (train/, val/), with the values under the pointer,
    /// drag to zoom and double-click to reset; system metrics; summary and config tables; the
    /// console's last lines; thumbnails of logged images; the damage found. Nothing is loaded from
    /// the network: style, script and images are inside the file.
    Report(ReportArgs),
}

/// Arguments of `dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// `.wandb` files, run folders, `wandb/` folders or glob patterns.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print JSON Lines (one object per record or damaged span) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only records of these types: comma-separated proto names (history, summary, run, exit,
    /// output_raw, ..., or unknown), e.g. --type history,summary. Damaged spans are always
    /// printed.
    #[arg(long = "type", value_delimiter = ',', value_name = "TYPES")]
    pub types: Vec<String>,
    /// Keep printing records as the file grows, until its exit record arrives (exit 0) or Ctrl-C
    /// (exit 130). Takes exactly one file.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// With --follow, how often to look for new records, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub poll_ms: u64,
    /// How NaN and ±Infinity appear in --json output: as the strings "NaN", "Infinity",
    /// "-Infinity" (valid JSON), as bare tokens like W&B's own files, or as null.
    #[arg(long, value_enum, value_name = "AS", default_value_t)]
    pub non_finite: NonFinite,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// `.wandb` files, run folders, `wandb/` folders or glob patterns.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Count a torn tail as damage too (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// `.wandb` files, run folders, `wandb/` folders or glob patterns.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print one JSON object per file (JSON Lines) instead of text.
    #[arg(long)]
    pub json: bool,
    /// How NaN and ±Infinity appear in --json output.
    #[arg(long, value_enum, value_name = "AS", default_value_t)]
    pub non_finite: NonFinite,
}

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// One `.wandb` file, or a run folder holding one.
    #[arg(required = true, value_name = "PATH")]
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: TableFormat,
    /// Only these columns (comma-separated; nested keys joined with `.`), in this order after
    /// `_step`. Rows holding none of them are left out.
    #[arg(long, value_delimiter = ',', value_name = "KEYS")]
    pub keys: Vec<String>,
    /// How NaN and ±Infinity appear in JSON Lines output (CSV always writes NaN, inf, -inf).
    #[arg(long, value_enum, value_name = "AS", default_value_t)]
    pub non_finite: NonFinite,
}

/// Arguments of `plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// `.wandb` files, run folders, `wandb/` folders or glob patterns; each run is one line.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The image to write: `*.png` or `*.svg`.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Only these metrics: comma-separated names or globs (`*` matches any text), e.g.
    /// 'train/*,val/acc'. Default: every numeric metric.
    #[arg(long, value_delimiter = ',', value_name = "GLOBS")]
    pub metrics: Vec<String>,
    /// The x axis: _step, _runtime, _timestamp or another metric. Default: each metric's
    /// define_metric step metric, else _step.
    #[arg(long, value_name = "KEY")]
    pub x: Option<String>,
    /// Smoothing weight in [0, 1): W&B's exponential moving average with debiasing (0: none).
    #[arg(long, value_name = "W", default_value_t = 0.0)]
    pub smooth: f64,
    /// Logarithmic y axis (values <= 0 are left out).
    #[arg(long)]
    pub log_y: bool,
}

/// Arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// `.wandb` files, run folders, `wandb/` folders or glob patterns.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Rewrite the page as the runs grow, until every run's exit record arrives (exit 0) or
    /// Ctrl-C (exit 130).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// With --follow, how often to rewrite the page, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub poll_ms: u64,
}

/// Table formats of `history`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    /// Comma-separated values with a header row (RFC 4180 quoting).
    #[default]
    Csv,
    /// JSON Lines: one object per row, `_step` first.
    Jsonl,
}

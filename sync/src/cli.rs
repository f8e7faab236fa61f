//! The `wandb-sync` command line: argument parsing, settings and credentials from the syncing
//! machine, progress bars, and printing the report. `main.rs` only calls [`run`].
//!
//! Output: the report goes to stdout (a table, or JSON Lines with `--json`, see
//! [`crate::Report`]); progress, warnings and errors go to stderr. On a terminal, an overall line
//! (runs done/total, rows, bytes, rate, ETA) sits above one bar per running run, each named
//! `entity/project/run-id`, redrawn at most 10 times a second; they are drawn only when stderr is
//! a terminal and neither `--json`, `--quiet`, `--verbose`, `NO_COLOR` nor
//! `WANDB_SYNC_NO_PROGRESS` asks otherwise. Elsewhere each finished run is one plain line.
//!
//! Exit codes: 0 every run synced (or was skipped); 1 some run failed or was only partly
//! synced (damaged data skipped, files refused), a path was refused (not a regular file, not a
//! `.wandb` log), or no run was found at all; 2 usage error (a path that does not exist, a
//! pattern matching nothing) or nothing could run.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use wandb_settings::{Env, LoadContext, LoadOptions, Overrides};

use crate::error::Error;
use crate::http::RetryPolicy;
use crate::options::{Observer, PlannedRun, SyncOptions, default_jobs};
use crate::report::RunReport;
use crate::sync::sync_paths;

/// Test-only: makes retry waits tiny and `--live` polling fast.
pub const WANDB_SYNC_TEST_FAST_RETRY: &str = "WANDB_SYNC_TEST_FAST_RETRY";

/// Turns progress bars off.
pub const WANDB_SYNC_NO_PROGRESS: &str = "WANDB_SYNC_NO_PROGRESS";

/// Extra CA bundle (PEM) used by the Python SDK's HTTP stack; honoured here too.
pub const REQUESTS_CA_BUNDLE: &str = "REQUESTS_CA_BUNDLE";

/// Parallel, resumable, exactly-once upload of offline W&B runs.
///
/// PATH is a .wandb file, a run folder (wandb/latest-run too), a wandb/ folder, the folder holding
/// wandb/, or a glob of those; each file is synced once. Only runs in offline-run-* folders are
/// synced unless --include-online. The server comes from --base-url, else WANDB_BASE_URL or
/// base_url in the settings files; the API key from WANDB_API_KEY or the netrc entry for the
/// server's host.
#[derive(Debug, Parser)]
#[command(name = "wandb-sync", version, about, long_about)]
pub struct Cli {
    /// Files or folders to sync.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// The server's API URL (default: WANDB_BASE_URL, base_url in the settings files, else
    /// https://api.wandb.ai).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Upload to this entity instead of the run's.
    #[arg(short, long)]
    pub entity: Option<String>,
    /// Upload to this project instead of the run's.
    #[arg(short, long)]
    pub project: Option<String>,
    /// Upload into this run id instead of the run's.
    #[arg(long = "id", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Override the job type.
    #[arg(long, alias = "job_type")]
    pub job_type: Option<String>,
    /// Rename tags: "old=new,old2=new2" (an empty new name removes the tag).
    #[arg(long, value_name = "OLD=NEW,...")]
    pub replace_tags: Option<String>,
    /// Also sync runs already marked synced (resumes from the ledger; nothing is sent twice).
    #[arg(long)]
    pub include_synced: bool,
    /// Also sync online runs (folders not starting with `offline-`).
    #[arg(long)]
    pub include_online: bool,
    /// Runs to sync at once (default: twice the cores, 2 to 8).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Let the runs at once rise up to N while requests wait on a slow link (a server far away;
    /// a near server keeps them at --jobs). Default 32, or --jobs when that is given.
    #[arg(long = "max-jobs", value_name = "N")]
    pub max_jobs: Option<usize>,
    /// Follow runs still being written and upload new records until their exit record.
    #[arg(long)]
    pub live: bool,
    /// Show what would be sent; send nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait for runs another wandb-sync is syncing instead of skipping them.
    #[arg(long)]
    pub wait_locked: bool,
    /// Print the report as JSON Lines.
    #[arg(long)]
    pub json: bool,
    /// Time budget per run, in seconds (all requests and retries).
    #[arg(long, value_name = "SECONDS", default_value_t = 6 * 3600)]
    pub timeout: u64,
    /// No progress bars and no per-run lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Debug messages (retries, skipped files) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Send file_stream bodies uncompressed even to a server that accepts gzip (by default they
    /// are gzipped when the server advertises FILESTREAM_GZIP, which pays on a slow link and costs
    /// CPU on a fast one). WANDB_X_FILE_STREAM_NO_GZIP=true (W&B's setting) does the same;
    /// =false keeps gzip.
    #[arg(long)]
    pub no_gzip: bool,
    /// Speak HTTP/1.1 even to a server that offers HTTP/2. By default HTTPS offers both, as
    /// wandb sync does; on a long link a server's small HTTP/2 flow-control windows can hold
    /// large bodies back, which HTTP/1.1 over several connections is not.
    #[arg(long)]
    pub http1: bool,
    /// Bytes of output per file_stream request (tuning and tests).
    #[arg(long, hide = true)]
    pub chunk_bytes: Option<usize>,
    /// Refuse saved files whose symlink leads out of the run folder. By default such a link (what
    /// `wandb.save` makes) is followed when its target is a regular file owned by the link's owner
    /// or readable by everyone; either way, files of other users, devices, FIFOs and files on
    /// /proc or /sys are refused and named in the report.
    #[arg(long)]
    pub no_follow_links: bool,
    /// Seconds a server may stay unreachable (connection refused, DNS failure) before giving up
    /// (tuning and tests).
    #[arg(long, hide = true, value_name = "SECONDS")]
    pub unreachable_timeout: Option<u64>,
    /// Artifact files of at least this many bytes go up in parts (default 2 GiB, as wandb-core;
    /// tests).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub multipart_threshold: Option<u64>,
    /// Bytes per part of a multipart artifact upload (default: wandb-core's rule; tests).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub multipart_part_size: Option<u64>,
}

/// Runs the command: parses nothing (clap already did), syncs, prints, returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    if cli.verbose {
        static LOGGER: StderrLogger = StderrLogger;
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    }
    let opts = match options_from(&cli) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("wandb-sync: {e}");
            return ExitCode::from(2);
        }
    };
    let progress = Progress::new(show_progress(&cli), cli.quiet || cli.json);
    let mut opts = opts;
    opts.observer = progress.clone();
    let result = sync_paths(&opts);
    progress.clear();
    match result {
        Ok(report) => {
            for warning in &report.warnings {
                eprintln!("wandb-sync: warning: {warning}");
            }
            if report.runs.is_empty() {
                eprintln!("wandb-sync: no run found");
            }
            let text = if cli.json {
                report.to_json_lines()
            } else {
                report.to_text()
            };
            print_stdout(&text);
            ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
        }
        Err(Error::Inputs(problems)) => {
            for problem in &problems {
                eprintln!("wandb-sync: error: {problem}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("wandb-sync: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`wandb-sync ... | head`) is not an error.
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

fn show_progress(cli: &Cli) -> bool {
    !cli.quiet
        && !cli.json
        && !cli.verbose
        && std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
        && std::env::var_os(WANDB_SYNC_NO_PROGRESS).is_none()
}

/// Runs at once on a far server when neither `-j` nor `--max-jobs` is given.
const DEFAULT_MAX_JOBS: usize = 32;

/// Builds the options from the arguments, the settings files and the environment.
fn options_from(cli: &Cli) -> Result<SyncOptions, Error> {
    let ctx = LoadContext::from_process().map_err(|source| Error::WorkingDir { source })?;
    let env = ctx.env.clone();
    let mut load = LoadOptions::default();
    if let Some(url) = &cli.base_url {
        // The flag wins over WANDB_BASE_URL and the settings files, as an explicit argument.
        load.init_args = Overrides::default().base_url(url.trim_end_matches('/'));
    }
    let loaded = wandb_settings::load(&ctx, &load).map_err(|source| Error::Settings { source })?;
    let settings = loaded.settings;
    let base_url = settings.base_url.clone();
    let api_key = match wandb_settings::lookup_api_key(&base_url, &env) {
        Ok(lookup) => {
            for warning in &lookup.warnings {
                eprintln!("wandb-sync: warning: {warning}");
            }
            lookup.found.map(|f| f.key)
        }
        Err(e) => return Err(Error::ApiKey(e)),
    };
    if api_key.is_none() && !cli.dry_run {
        return Err(Error::NoApiKey {
            host: wandb_settings::netloc(&base_url)
                .unwrap_or(&base_url)
                .to_owned(),
            base_url,
        });
    }
    let mut opts = SyncOptions::new(cli.paths.clone(), base_url, api_key);
    opts.include_synced = cli.include_synced;
    opts.include_online = cli.include_online;
    opts.entity.clone_from(&cli.entity);
    opts.project.clone_from(&cli.project);
    opts.run_id.clone_from(&cli.run_id);
    opts.job_type.clone_from(&cli.job_type);
    if let Some(spec) = &cli.replace_tags {
        opts.replace_tags = parse_replace_tags(spec)?;
    }
    if cli.jobs == Some(0) {
        return Err(Error::Usage {
            option: "--jobs",
            problem: "must be at least 1".into(),
        });
    }
    opts.jobs = cli.jobs.unwrap_or_else(default_jobs);
    // `-j` alone is an upper bound; without it the runs may rise to 32 on a far server.
    let default_max = if cli.jobs.is_some() {
        opts.jobs
    } else {
        DEFAULT_MAX_JOBS
    };
    opts.max_jobs = cli.max_jobs.unwrap_or(default_max).max(opts.jobs);
    opts.live = cli.live;
    opts.dry_run = cli.dry_run;
    opts.wait_locked = cli.wait_locked;
    opts.run_timeout = Duration::from_secs(cli.timeout.max(1));
    opts.host = Some(settings.host.clone());
    opts.program = std::env::args().next();
    opts.ca_bundle = ca_bundle(&env);
    if let Some(bytes) = cli.chunk_bytes {
        opts.chunk_bytes = bytes.max(1);
    }
    if env
        .get(WANDB_SYNC_TEST_FAST_RETRY)
        .is_some_and(|v| !v.is_empty() && v != "0")
    {
        opts.retry = RetryPolicy::fast();
        opts.live_poll = Duration::from_millis(50);
    }
    opts.no_follow_links = cli.no_follow_links;
    opts.http1_only = cli.http1;
    opts.no_gzip = cli.no_gzip || settings.x_file_stream_no_gzip == Some(true);
    if let Some(bytes) = cli.multipart_threshold {
        opts.multipart_threshold = bytes;
    }
    if let Some(bytes) = cli.multipart_part_size {
        opts.multipart_part_size = bytes;
    }
    if let Some(secs) = cli.unreachable_timeout {
        opts.retry.unreachable_budget = Duration::from_secs(secs);
    }
    Ok(opts)
}

fn ca_bundle(env: &Env) -> Option<PathBuf> {
    [REQUESTS_CA_BUNDLE, "SSL_CERT_FILE"]
        .iter()
        .filter_map(|name| env.get_os(name))
        .map(PathBuf::from)
        .find(|p| !p.as_os_str().is_empty() && p.is_file())
}

/// Parses `old=new,old2=new2`.
pub(crate) fn parse_replace_tags(spec: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((old, new)) = part.split_once('=') else {
            return Err(Error::Usage {
                option: "--replace-tags",
                problem: format!("{part:?} is not OLD=NEW"),
            });
        };
        out.push((old.trim().to_owned(), new.trim().to_owned()));
    }
    Ok(out)
}

/// Progress on a terminal (an overall line above one bar per running run), or one line per
/// finished run (stderr), or nothing.
struct Progress {
    bars: Option<MultiProgress>,
    quiet: bool,
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    overall: Option<ProgressBar>,
    /// Names of the planned runs, by `.wandb` path.
    names: HashMap<PathBuf, String>,
    /// Running runs: their bar, the bytes counted so far, the rows read so far.
    running: HashMap<PathBuf, (ProgressBar, u64, u64)>,
    runs_total: usize,
    runs_done: usize,
    /// Rows sent by the finished runs.
    rows_finished: u64,
}

impl ProgressState {
    fn name(&self, path: &Path) -> String {
        self.names
            .get(path)
            .cloned()
            .unwrap_or_else(|| path.display().to_string())
    }

    fn update_overall(&self) {
        if let Some(overall) = &self.overall {
            overall.set_prefix(format!("{}/{}", self.runs_done, self.runs_total));
            // At most `--jobs` runs are running: a short sum.
            let running: u64 = self.running.values().map(|(_, _, rows)| rows).sum();
            overall.set_message(format!("{} rows", self.rows_finished + running));
        }
    }
}

impl Progress {
    fn new(bars: bool, quiet: bool) -> Arc<Self> {
        Arc::new(Progress {
            // At most 10 redraws a second, however often the runs report.
            bars: bars
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))),
            quiet,
            state: Mutex::new(ProgressState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn clear(&self) {
        if let Some(overall) = self.state().overall.take() {
            overall.finish_and_clear();
        }
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
    }
}

impl Observer for Progress {
    fn sync_planned(&self, runs: &[PlannedRun]) {
        let mut state = self.state();
        state.names = runs
            .iter()
            .map(|run| (run.path.clone(), run.name.clone()))
            .collect();
        state.runs_total = runs.len();
        let Some(bars) = &self.bars else {
            return;
        };
        let total: u64 = runs.iter().map(|run| run.bytes).sum();
        let overall = bars.add(ProgressBar::new(total));
        if let Ok(style) = ProgressStyle::with_template(
            "runs {prefix} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        ) {
            overall.set_style(style);
        }
        state.overall = Some(overall);
        state.update_overall();
    }

    fn run_started(&self, path: &Path, bytes: u64) {
        let Some(bars) = &self.bars else {
            return;
        };
        let bar = bars.add(ProgressBar::new(bytes));
        if let Ok(style) = ProgressStyle::with_template("  {bar:30} {bytes}/{total_bytes} {msg}") {
            bar.set_style(style);
        }
        let mut state = self.state();
        bar.set_message(state.name(path));
        state.running.insert(path.to_path_buf(), (bar, 0, 0));
    }

    fn run_progress(&self, path: &Path, bytes_done: u64) {
        let mut state = self.state();
        let Some((bar, counted, _)) = state.running.get_mut(path) else {
            return;
        };
        bar.set_position(bytes_done);
        let delta = bytes_done.saturating_sub(*counted);
        *counted = (*counted).max(bytes_done);
        if let Some(overall) = &state.overall {
            overall.inc(delta);
        }
    }

    fn run_rows(&self, path: &Path, rows: u64) {
        let mut state = self.state();
        if let Some((_, _, counted)) = state.running.get_mut(path) {
            *counted = rows;
            state.update_overall();
        }
    }

    fn run_finished(&self, report: &RunReport) {
        let mut state = self.state();
        if let Some((bar, counted, _)) = state.running.remove(&report.path) {
            bar.finish_and_clear();
            if let Some(overall) = &state.overall {
                overall.inc(bar.length().unwrap_or(counted).saturating_sub(counted));
            }
        }
        state.runs_done += 1;
        state.rows_finished += report.rows;
        state.update_overall();
        if self.quiet {
            return;
        }
        let name = crate::sync::run_name(
            report.entity.as_deref(),
            report.project.as_deref(),
            &report.run_id,
        );
        let line = format!(
            "{} {name} ({} rows, {})",
            report.result.as_str(),
            report.rows,
            report.path.display()
        );
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug && metadata.target().starts_with("wandb_sync")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("wandb-sync: {}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replace_tags_spec() {
        assert_eq!(
            parse_replace_tags("a=b, c=").unwrap(),
            vec![("a".into(), "b".into()), ("c".into(), String::new())]
        );
        assert!(parse_replace_tags("nope").is_err());
    }

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from(["wandb-sync", "-j", "3", "--json", "a", "b"]).unwrap();
        assert_eq!(cli.jobs, Some(3));
        assert_eq!(cli.paths.len(), 2);
        assert!(Cli::try_parse_from(["wandb-sync"]).is_err());
    }
}

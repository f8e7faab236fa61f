//! [`SyncOptions`]: everything a sync needs, already validated, so tests can call
//! [`crate::sync_paths`] without a command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wandb_settings::Secret;

use crate::http::RetryPolicy;
use crate::report::RunReport;

/// A run about to be synced, as [`Observer::sync_planned`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedRun {
    /// The `.wandb` file.
    pub path: PathBuf,
    /// `entity/project/run-id` as far as known before the server answers (the entity is left out
    /// when the run does not name one).
    pub name: String,
    /// The size of the `.wandb` file.
    pub bytes: u64,
}

/// Progress notifications (the CLI draws progress bars from them).
pub trait Observer: Send + Sync {
    /// Every run that will be synced, before the first starts (skipped runs are not listed).
    fn sync_planned(&self, _runs: &[PlannedRun]) {}
    /// A run started syncing; `bytes` is the size of its `.wandb` file.
    fn run_started(&self, _path: &std::path::Path, _bytes: u64) {}
    /// Bytes of the `.wandb` file processed so far.
    fn run_progress(&self, _path: &std::path::Path, _bytes_done: u64) {}
    /// History rows read from the `.wandb` file so far (reported with each `run_progress`).
    fn run_rows(&self, _path: &std::path::Path, _rows: u64) {}
    /// A run finished (any result).
    fn run_finished(&self, _report: &RunReport) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Observer for NoProgress {}

/// Options of one sync.
#[derive(Clone)]
#[non_exhaustive]
pub struct SyncOptions {
    /// `.wandb` files, run folders, `wandb/` folders or globs.
    pub paths: Vec<PathBuf>,
    /// Sync runs that already have a `.synced` marker.
    pub include_synced: bool,
    /// Sync online runs (folders not starting with `offline-`).
    pub include_online: bool,
    /// Entity override.
    pub entity: Option<String>,
    /// Project override.
    pub project: Option<String>,
    /// Run id override.
    pub run_id: Option<String>,
    /// Job type override.
    pub job_type: Option<String>,
    /// Tag renames (`old`, `new`); an empty `new` removes the tag.
    pub replace_tags: Vec<(String, String)>,
    /// Runs synced at once while the link is fast (requests answered at once).
    pub jobs: usize,
    /// Most runs synced at once while requests wait on the network (`jobs` by default: no rise;
    /// the CLI's `--max-jobs`, up to [`MAX_JOBS`] is sensible). On a near server the replies
    /// wait for the processors rather than the link, and more runs only add to that.
    pub max_jobs: usize,
    /// Follow runs still being written until their exit record.
    pub live: bool,
    /// How often `live` looks for new records.
    pub live_poll: Duration,
    /// Read and report, send nothing.
    pub dry_run: bool,
    /// Wait for runs locked by another process instead of skipping them.
    pub wait_locked: bool,
    /// Server API URL, without trailing slash.
    pub base_url: String,
    /// API key (`None` is allowed only for `dry_run`).
    pub api_key: Option<Secret>,
    /// PEM bundle added to the system's root certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Retry timing.
    pub retry: RetryPolicy,
    /// Time budget for one run (all its requests and retries).
    pub run_timeout: Duration,
    /// This machine's host name (sent as `host` in the first UpsertBucket, as W&B does).
    pub host: Option<String>,
    /// This program (sent as `program`).
    pub program: Option<String>,
    /// Output gathered per file_stream request before it is sent (bytes). Smaller values give
    /// more, smaller requests (tests use this to get many requests from small runs).
    pub chunk_bytes: usize,
    /// Send file_stream bodies uncompressed even to a server that advertises `FILESTREAM_GZIP`
    /// (`--no-gzip`, or the setting `x_file_stream_no_gzip`): on a fast link the compression
    /// costs more CPU than the bytes it saves.
    pub no_gzip: bool,
    /// Speak HTTP/1.1 even to a server that offers HTTP/2 (`--http1`). By default HTTPS offers
    /// both, as wandb-core does; a server's small HTTP/2 flow-control windows can slow large
    /// bodies on a long link, where HTTP/1.1 over several connections is not held back.
    pub http1_only: bool,
    /// Refuse saved files whose symlink (or hard link) leads out of the run folder, instead of
    /// following it under the owner rule (`--no-follow-links`).
    pub no_follow_links: bool,
    /// Artifact files of at least this many bytes go up as multipart uploads (wandb-core's
    /// 2 GiB by default; tests lower it with the hidden `--multipart-threshold`).
    pub multipart_threshold: u64,
    /// Bytes per part of a multipart upload; 0 is wandb-core's rule (100 MiB, more when a
    /// file would need over 10,000 parts). Tests set it with the hidden `--multipart-part-size`.
    pub multipart_part_size: u64,
    /// Progress notifications.
    pub observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("paths", &self.paths)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("jobs", &self.jobs)
            .field("live", &self.live)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Most runs synced at once on a slow link when `-j` is not given.
pub const MAX_JOBS: usize = 32;

/// The default number of runs synced at once: twice the cores, between 2 and 8 (each run
/// pipelines reading with network I/O, so a little more than one per core keeps both busy).
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    (cores * 2).clamp(2, 8)
}

impl SyncOptions {
    /// Options with W&B's defaults for the given paths and server.
    pub fn new(paths: Vec<PathBuf>, base_url: impl Into<String>, api_key: Option<Secret>) -> Self {
        SyncOptions {
            paths,
            include_synced: false,
            include_online: false,
            entity: None,
            project: None,
            run_id: None,
            job_type: None,
            replace_tags: Vec::new(),
            jobs: default_jobs(),
            max_jobs: default_jobs(),
            live: false,
            live_poll: Duration::from_secs(1),
            dry_run: false,
            wait_locked: false,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            ca_bundle: None,
            retry: RetryPolicy::default(),
            run_timeout: Duration::from_secs(6 * 3600),
            host: None,
            program: None,
            chunk_bytes: crate::runsync::CHUNK_BYTES,
            no_gzip: false,
            http1_only: false,
            no_follow_links: false,
            multipart_threshold: crate::artifacts::MULTIPART_THRESHOLD,
            multipart_part_size: 0,
            observer: Arc::new(NoProgress),
        }
    }
}

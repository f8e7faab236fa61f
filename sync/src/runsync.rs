//! Syncing one `.wandb` file, exactly once.
//!
//! Three threads work on a file:
//!
//! * the **reader** (the calling worker thread) decodes records in order, feeds the
//!   [`Processor`], and cuts its output into chunks of about [`CHUNK_BYTES`] at record
//!   boundaries;
//! * the **sender** posts each chunk to file_stream (at most [`MAX_REQUEST_BYTES`] per request,
//!   one request in flight), then records in the ledger what the server acknowledged: the
//!   offset of the first record not yet covered and the line counts up to it;
//! * the **uploader** creates upload URLs and PUTs the run's files while the history streams.
//!
//! On a restart the reader replays the records before the ledger's offset without emitting
//! anything, so the server receives each line at the same offset exactly once (a retried
//! request rewrites identical lines). The `.synced` marker is written only after the final
//! request (`complete`, `exitcode`) and every upload were acknowledged.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use wandb_format::proto::Record;
use wandb_format::proto::record::RecordType;
use wandb_format::{Damage, Entry, Follower, LogFile, Recovery, ScanItem, decode};

use crate::api::{Api, UploadSlot, UpsertParams, escape_segment};
use crate::artifacts;
use crate::error::{Error, Result};
use crate::fastrec::{self, FastRecord};
use crate::files::{
    self, Candidate, FollowPolicy, Refusal, RefusalKind, RunFiles, RunFolder, SeenFiles, Snapshot,
};
use crate::ledger::{Destination, Ledger, LedgerData, UploadedFile, write_marker};
use crate::lock;
use crate::options::SyncOptions;
use crate::process::{Carry, Chunk, FileRequest, Processor};
use crate::report::{DamageReport, RefusedFile, RunReport, RunResult};
use crate::source::{self, ArchiveRun, RunSource};
use crate::yaml::to_yaml;
use wandb_format::json::write_str;

/// Output gathered before a chunk is handed to the sender.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;

/// Largest file_stream request body (W&B's limit: 10 MiB).
pub(crate) const MAX_REQUEST_BYTES: usize = 10 << 20;

/// Records larger than this are skipped as damage rather than decoded (hostile input guard).
const MAX_RECORD_BYTES: usize = 64 << 20;

/// Parallel PUTs per run.
const UPLOAD_THREADS: usize = 4;

/// Snapshot bytes (memory and temp files) an uploader holds before it sends them: a batch of
/// many saved files is snapshotted and sent in groups of about this size, so memory and temp
/// space stay bounded (one file larger than this is a group of its own).
const HELD_SNAPSHOT_BYTES: u64 = 64 << 20;

/// One `.wandb` file to sync, as planned.
#[derive(Debug, Clone)]
pub(crate) struct FilePlan {
    /// The `.wandb` file (for a run in an archive, `<archive>:<run folder>/<file>`).
    pub(crate) path: PathBuf,
    /// Where its ledger, lock and `.synced` marker derive from (`path` for a file on disk).
    pub(crate) state: PathBuf,
    /// Where its records and files are read from.
    pub(crate) source: RunSource,
    /// Run id after overrides.
    pub(crate) run_id: String,
    /// Entity after overrides (`None`: the server's default).
    pub(crate) entity: Option<String>,
    /// Project after overrides.
    pub(crate) project: Option<String>,
    /// Start time (microseconds), for ordering fragments.
    pub(crate) start_micros: i64,
    /// File size when planned.
    pub(crate) size: u64,
}

/// The `.synced` marker of a file.
pub(crate) fn synced_marker(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".synced");
    PathBuf::from(name)
}

/// Syncs one file. Returns the report and the state to carry to the run's next fragment.
pub(crate) fn sync_file(
    opts: &SyncOptions,
    api: Option<&Api>,
    plan: &FilePlan,
    carry: Carry,
) -> (RunReport, Carry) {
    let started = Instant::now();
    let mut report = RunReport::new(plan.path.clone(), plan.run_id.clone(), RunResult::Failed);
    report.entity.clone_from(&plan.entity);
    report.project.clone_from(&plan.project);
    let _lock = if opts.dry_run {
        None
    } else {
        if let RunSource::Archive(_) = &plan.source
            && let Err(e) = source::prepare_state(&plan.state)
        {
            report.error =
                Some(Error::io(&plan.state, "create the archive's state folder", e).to_string());
            return (report, carry);
        }
        match lock::acquire(&plan.state, opts.wait_locked) {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => {
                report.result = RunResult::Locked;
                report.error = Some("another wandb-sync process is syncing this run".into());
                return (report, carry);
            }
            Err(e) => {
                report.error = Some(e.to_string());
                return (report, carry);
            }
        }
    };
    if !opts.dry_run && !opts.include_synced && synced_marker(&plan.state).exists() {
        report.result = RunResult::SkippedSynced;
        return (report, carry);
    }
    opts.observer.run_started(&plan.path, plan.size);
    let mut run = RunSync::new(opts, api, plan, carry, started);
    let outcome = run.load_ledger().and_then(|()| run.drive());
    let carry = run.finish_report(outcome, &mut report);
    report.seconds = started.elapsed().as_secs_f64();
    opts.observer.run_finished(&report);
    (report, carry)
}

/// What the sender and uploader share with the reader.
#[derive(Debug)]
struct Shared {
    ledger: Mutex<Ledger>,
    error: Mutex<Option<Error>>,
    failed: AtomicBool,
    bytes_sent: AtomicU64,
    rows_sent: AtomicU64,
    uploaded: Mutex<Vec<String>>,
    /// Files the uploader refused after opening them.
    refused: Mutex<Vec<RefusedFile>>,
}

impl Shared {
    fn fail(&self, error: Error) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    fn take_error(&self) -> Option<Error> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn refuse(&self, refusal: Refusal) {
        log::debug!("refused file {:?}: {}", refusal.path, refusal.reason);
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if !refused.iter().any(|r| r.path == refusal.path) {
            refused.push(RefusedFile {
                path: refusal.path,
                reason: refusal.reason,
            });
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A run's last chunk, held back to go with the final file_stream request.
struct LastChunk {
    chunk: Chunk,
    record_offset: u64,
    history_end: u64,
    events_end: u64,
}

/// What the final file_stream request adds after the files: the uploaded names, and the exit.
struct Ending<'a> {
    uploaded: &'a [String],
    exit_code: Option<i32>,
}

/// Work for the sender thread, in order.
enum Work {
    Chunk {
        chunk: Chunk,
        summary: Option<String>,
        record_offset: u64,
        history_end: u64,
        events_end: u64,
    },
    Upsert(Box<UpsertParams>),
    Final {
        /// The run's last lines, sent in the same request when they fit (see
        /// [`RunSync::take_last_chunk`]).
        last: Option<Box<LastChunk>>,
        summary: String,
        uploaded: Vec<String>,
        exit_code: Option<i32>,
    },
}

/// A file for the uploader.
enum UploadJob {
    /// A file in the run's `files/`, opened and checked by the uploader.
    File(Candidate),
    /// A file this process wrote (the console spool).
    Own { name: String, path: PathBuf },
    /// Bytes built in memory.
    Bytes { name: String, bytes: bytes::Bytes },
    /// Jobs that go up together (one `CreateRunFiles` for all): the files of the run's end.
    Many(Vec<UploadJob>),
}

impl UploadJob {
    fn name(&self) -> &str {
        match self {
            UploadJob::File(candidate) => &candidate.name,
            UploadJob::Own { name, .. } | UploadJob::Bytes { name, .. } => name,
            UploadJob::Many(_) => "",
        }
    }
}

/// What the uploader needs to open a run's files.
#[derive(Debug, Clone)]
struct UploadContext {
    run: Option<RunFiles>,
    policy: FollowPolicy,
}

/// Where this file's lines go on the server.
#[derive(Debug, Clone)]
struct Target {
    dest: Destination,
    history_base: u64,
    events_base: u64,
    console_base: u64,
}

struct Threads {
    sender: Option<SyncSender<Work>>,
    sender_handle: Option<JoinHandle<()>>,
    uploader: Option<SyncSender<UploadJob>>,
    uploader_handle: Option<JoinHandle<()>>,
}

struct RunSync<'a> {
    opts: &'a SyncOptions,
    api: Option<&'a Api>,
    plan: &'a FilePlan,
    deadline: Instant,
    processor: Processor,
    chunk: Chunk,
    /// The fast path's item list, reused from record to record.
    spare_items: Vec<fastrec::FastItem<'static>>,
    shared: Arc<Shared>,
    /// Records starting before this offset were acknowledged earlier: replay only.
    skip_until: u64,
    /// Counts the ledger expects at `skip_until`.
    expect_history: u64,
    expect_events: u64,
    alerts_sent: u64,
    crossed: bool,
    next_offset: u64,
    target: Option<Target>,
    threads: Threads,
    pending_files: Vec<FileRequest>,
    end_files: Vec<FileRequest>,
    /// While the run's end files are gathered: the uploads held back to go up as one batch.
    end_batch: Option<Vec<UploadJob>>,
    seen_files: SeenFiles,
    upload_context: UploadContext,
    refused: Vec<RefusedFile>,
    refused_seen: HashSet<String>,
    /// Notes about artifacts for the report.
    artifact_warnings: Vec<String>,
    /// The server's sweep the run attaches to (see `sweep.rs`), once resolved.
    sweep: Option<crate::sweep::ServerSweep>,
    /// Notes about the run's sweep for the report.
    sweep_warnings: Vec<String>,
    /// Artifacts committed (or checked, in a dry run) for the report.
    artifact_reports: Vec<crate::report::ArtifactReport>,
    damage: Vec<DamageReport>,
    dry_files: BTreeSet<String>,
    summary_sent_version: u64,
    config_sent_version: u64,
    rows_dry: u64,
    last_config_upsert: Instant,
    last_progress: u64,
}

impl<'a> RunSync<'a> {
    fn new(
        opts: &'a SyncOptions,
        api: Option<&'a Api>,
        plan: &'a FilePlan,
        carry: Carry,
        started: Instant,
    ) -> Self {
        let ledger = Ledger::empty(&plan.state);
        let run_files = match &plan.source {
            RunSource::Folder => RunFolder::of_record_file(&plan.path)
                .ok()
                .map(RunFiles::Folder),
            RunSource::Archive(run) => Some(RunFiles::Archive(Arc::clone(run))),
        };
        RunSync {
            opts,
            api,
            plan,
            deadline: started + opts.run_timeout,
            processor: Processor::new(carry),
            chunk: Chunk::default(),
            spare_items: Vec::new(),
            shared: Arc::new(Shared {
                ledger: Mutex::new(ledger),
                error: Mutex::new(None),
                failed: AtomicBool::new(false),
                bytes_sent: AtomicU64::new(0),
                rows_sent: AtomicU64::new(0),
                uploaded: Mutex::new(Vec::new()),
                refused: Mutex::new(Vec::new()),
            }),
            skip_until: 0,
            expect_history: 0,
            expect_events: 0,
            alerts_sent: 0,
            crossed: false,
            next_offset: 0,
            target: None,
            threads: Threads {
                sender: None,
                sender_handle: None,
                uploader: None,
                uploader_handle: None,
            },
            pending_files: Vec::new(),
            end_files: Vec::new(),
            end_batch: None,
            seen_files: SeenFiles::default(),
            upload_context: UploadContext {
                run: run_files,
                policy: FollowPolicy::from_options(opts),
            },
            refused: Vec::new(),
            refused_seen: HashSet::new(),
            artifact_warnings: Vec::new(),
            sweep: None,
            sweep_warnings: Vec::new(),
            artifact_reports: Vec::new(),
            damage: Vec::new(),
            dry_files: BTreeSet::new(),
            summary_sent_version: 0,
            config_sent_version: u64::MAX,
            rows_dry: 0,
            last_config_upsert: Instant::now(),
            last_progress: 0,
        }
    }

    fn files_dir(&self) -> PathBuf {
        match &self.upload_context.run {
            Some(run) => run.files_dir(),
            None => self
                .plan
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join("files"),
        }
    }

    /// Loads the ledger and decides where emission starts.
    fn load_ledger(&mut self) -> Result<()> {
        if self.opts.dry_run {
            return Ok(());
        }
        let loaded = Ledger::load(&self.plan.state)?;
        let Some(data) = loaded.data.clone() else {
            *self.shared.ledger() = loaded;
            return Ok(());
        };
        let d = &data.destination;
        let same = d.base_url == self.opts.base_url
            && d.run_id == self.plan.run_id
            && self.plan.entity.as_ref().is_none_or(|e| *e == d.entity)
            && self.plan.project.as_ref().is_none_or(|p| *p == d.project);
        if same {
            self.skip_until = data.record_offset;
            self.expect_history = data.history_acked;
            self.expect_events = data.events_acked;
            self.alerts_sent = data.alerts_sent;
            *self.shared.ledger() = loaded;
        } else {
            log::debug!(
                "{}: ledger is for another destination; starting over",
                self.plan.path.display()
            );
            *self.shared.ledger() = Ledger::empty(&self.plan.state);
        }
        Ok(())
    }

    fn drive(&mut self) -> Result<()> {
        match &self.plan.source {
            RunSource::Archive(run) => {
                // An archive holds finished runs: live mode reads it as it is.
                let run = Arc::clone(run);
                self.drive_member(&run)?;
            }
            RunSource::Folder if self.opts.live => self.drive_live()?,
            RunSource::Folder => self.drive_file()?,
        }
        self.finish()
    }

    fn drive_file(&mut self) -> Result<()> {
        let file = LogFile::open(&self.plan.path)?;
        for item in file.scan(Recovery::SkipCorrupt) {
            self.scan_item(item?)?;
            if self.shared.failed() {
                break;
            }
        }
        Ok(())
    }

    /// The records of a run in an archive, scanned in place; parts lost to archive damage are
    /// reported as damage of the `.wandb` file, naming the archive's damage.
    fn drive_member(&mut self, run: &ArchiveRun) -> Result<()> {
        use wandb_archive::tools::{MemberItem, scan_member};
        let archive = run.handle();
        scan_member::<Error>(&archive, &run.record, Recovery::SkipCorrupt, |item| {
            match item {
                MemberItem::Item(item) => self.scan_item(item)?,
                MemberItem::Lost {
                    offset,
                    length,
                    reason,
                } => self.damage.push(DamageReport {
                    offset,
                    length,
                    reason: format!(
                        "lost to damage in the archive {} (member {:?}): {reason}",
                        run.archive_path.display(),
                        run.record_name()
                    ),
                }),
            }
            Ok(!self.shared.failed())
        })
        .map_err(|e| e.in_archive(&run.archive_path))
    }

    /// One item of a scan: a record (the fast path for plain history and summary records) or
    /// a damaged span.
    fn scan_item(&mut self, item: ScanItem<'_>) -> Result<()> {
        match item {
            ScanItem::Damage(damage) => self.damage(&damage),
            ScanItem::Record(raw) => {
                if raw.payload.len() > MAX_RECORD_BYTES {
                    self.damage.push(DamageReport {
                        offset: raw.offset,
                        length: raw.length,
                        reason: format!(
                            "record of {} bytes is larger than the {} byte limit",
                            raw.payload.len(),
                            MAX_RECORD_BYTES
                        ),
                    });
                    return Ok(());
                }
                let mut spare = std::mem::take(&mut self.spare_items);
                if let Some(fast) = fastrec::parse_reusing(&raw.payload, &mut spare) {
                    let outcome = self.fast_record(raw.offset, raw.length, &fast);
                    fast.recycle(&mut spare);
                    self.spare_items = spare;
                    outcome?;
                } else {
                    self.spare_items = spare;
                    match decode(&raw) {
                        Ok(record) => self.record(raw.offset, raw.length, &record)?,
                        Err(damage) => self.damage(&damage),
                    }
                }
            }
        }
        Ok(())
    }

    fn drive_live(&mut self) -> Result<()> {
        let mut follower = Follower::open(&self.plan.path, Recovery::SkipCorrupt)?;
        loop {
            let entries = follower.poll()?;
            if entries.is_empty() {
                if self.processor.exit.is_some() || self.shared.failed() {
                    break;
                }
                if Instant::now() >= self.deadline {
                    return Err(Error::Timeout(self.opts.run_timeout));
                }
                if self.target.is_some() {
                    self.flush(self.next_offset)?;
                    self.maybe_upsert_config(false);
                }
                std::thread::sleep(self.opts.live_poll);
                continue;
            }
            for entry in entries {
                match entry {
                    Entry::Record {
                        offset,
                        length,
                        record,
                    } => self.record(offset, length, &record)?,
                    Entry::Damage(damage) => self.damage(&damage),
                }
                if self.processor.exit.is_some() {
                    break;
                }
            }
            if self.processor.exit.is_some() || self.shared.failed() {
                break;
            }
        }
        Ok(())
    }

    fn damage(&mut self, damage: &Damage) {
        self.damage.push(DamageReport {
            offset: damage.offset,
            length: damage.length,
            reason: damage.reason.to_string(),
        });
    }

    /// A history or summary record decoded without allocations; the same as [`Self::record`]
    /// on the fully decoded record.
    fn fast_record(&mut self, offset: u64, length: u64, record: &FastRecord<'_>) -> Result<()> {
        let emit = self.before_record(offset, length, record.history)?;
        self.processor.apply_fast(record, emit, &mut self.chunk);
        self.after_record(offset, length)
    }

    /// Checks the replay position and makes room for a record producing lines; returns whether
    /// the record's output is emitted.
    fn before_record(&mut self, offset: u64, length: u64, makes_lines: bool) -> Result<bool> {
        let emit = offset >= self.skip_until;
        if emit && !self.crossed {
            self.check_replay()?;
        }
        if emit
            && self.target.is_some()
            && makes_lines
            && self.chunk.size() + (length as usize).saturating_mul(2) > MAX_REQUEST_BYTES
        {
            self.flush(offset)?;
        }
        Ok(emit)
    }

    fn record(&mut self, offset: u64, length: u64, record: &Record) -> Result<()> {
        let makes_lines = matches!(
            record.record_type,
            Some(RecordType::History(_) | RecordType::Stats(_) | RecordType::OutputRaw(_))
        );
        let emit = self.before_record(offset, length, makes_lines)?;
        let overridden;
        let record = match &record.record_type {
            Some(RecordType::Run(run)) if self.processor.run.is_none() => {
                let mut run = run.clone();
                self.apply_overrides(&mut run);
                overridden = Record {
                    record_type: Some(RecordType::Run(run)),
                    ..Default::default()
                };
                &overridden
            }
            _ => record,
        };
        self.processor
            .apply(record, emit, self.alerts_sent, &mut self.chunk);
        self.after_record(offset, length)
    }

    /// After a record: starts the run, routes file requests, cuts chunks, reports progress.
    fn after_record(&mut self, offset: u64, length: u64) -> Result<()> {
        self.next_offset = offset + length;
        if self.target.is_none() && self.processor.run.is_some() {
            self.start()?;
        }
        if !self.processor.new_files.is_empty() {
            let requests = std::mem::take(&mut self.processor.new_files);
            for request in requests {
                if request.at_end {
                    self.end_files.push(request.clone());
                }
                if request.now {
                    self.pending_files.push(request);
                }
            }
            if self.target.is_some() {
                self.route_pending_files()?;
            }
        }
        if self.target.is_some()
            && self.chunk.size() >= self.opts.chunk_bytes.min(MAX_REQUEST_BYTES / 2)
        {
            self.flush(self.next_offset)?;
        }
        if self.next_offset >= self.last_progress + (1 << 20) {
            self.last_progress = self.next_offset;
            self.opts
                .observer
                .run_progress(&self.plan.path, self.next_offset);
            self.opts
                .observer
                .run_rows(&self.plan.path, self.processor.n_history);
        }
        Ok(())
    }

    /// Called when emission starts: the replayed records must give the ledger's counts.
    fn check_replay(&mut self) -> Result<()> {
        self.crossed = true;
        if self.skip_until == 0 {
            return Ok(());
        }
        if self.processor.n_history != self.expect_history
            || self.processor.n_events != self.expect_events
        {
            return Err(Error::Ledger {
                path: self.shared.ledger().path().to_path_buf(),
                problem: format!(
                    "does not match the .wandb file: it records {} history and {} events lines \
                     before offset {}, the file has {} and {} (delete the ledger to sync from scratch)",
                    self.expect_history,
                    self.expect_events,
                    self.skip_until,
                    self.processor.n_history,
                    self.processor.n_events
                ),
            });
        }
        Ok(())
    }

    fn apply_overrides(&self, run: &mut wandb_format::proto::RunRecord) {
        let opts = self.opts;
        run.run_id.clone_from(&self.plan.run_id);
        if let Some(entity) = &opts.entity {
            run.entity.clone_from(entity);
        }
        if let Some(project) = &opts.project {
            run.project.clone_from(project);
        }
        if let Some(job_type) = &opts.job_type {
            run.job_type.clone_from(job_type);
        }
        if !opts.replace_tags.is_empty() {
            let mut tags = Vec::with_capacity(run.tags.len());
            for tag in &run.tags {
                match opts.replace_tags.iter().find(|(old, _)| old == tag) {
                    Some((_, new)) if new.is_empty() => {}
                    Some((_, new)) => tags.push(new.clone()),
                    None => tags.push(tag.clone()),
                }
            }
            run.tags = tags;
        }
    }

    fn upsert_params(&self, first: bool) -> UpsertParams {
        let run = self.processor.run.clone().unwrap_or_default();
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let target = self.target.as_ref();
        UpsertParams {
            storage_id: None,
            run_id: self.plan.run_id.clone(),
            entity: target
                .map(|t| t.dest.entity.clone())
                .or_else(|| text(&run.entity))
                .or_else(|| self.sweep.as_ref().and_then(|s| s.key.entity.clone())),
            project: target
                .map(|t| t.dest.project.clone())
                .or_else(|| text(&run.project))
                .or_else(|| self.sweep.as_ref().and_then(|s| s.key.project.clone())),
            group: text(&run.run_group),
            display_name: text(&run.display_name),
            notes: text(&run.notes),
            commit: run.git.as_ref().and_then(|g| text(&g.commit)),
            repo: run.git.as_ref().and_then(|g| text(&g.remote_url)),
            config: Some(self.processor.config.to_json()),
            host: if first { self.opts.host.clone() } else { None },
            program: if first {
                self.opts.program.clone()
            } else {
                None
            },
            job_type: text(&run.job_type),
            sweep: self.sweep.as_ref().map(|s| s.name.clone()),
            tags: (!run.tags.is_empty()).then(|| run.tags.clone()),
        }
    }

    /// A run record with a sweep id: the server's sweep to attach the run to, created from the
    /// sweep's files if needed (`sweep.rs`); warnings for the report otherwise.
    fn resolve_sweep(&mut self, api: &Api) -> Result<()> {
        let Some(run) = &self.processor.run else {
            return Ok(());
        };
        if run.sweep_id.is_empty() {
            return Ok(());
        }
        let local = match &self.plan.source {
            RunSource::Archive(archive_run) => {
                crate::sweep::LocalSweep::for_archive_run(archive_run, &run.sweep_id)
            }
            RunSource::Folder => crate::sweep::LocalSweep::for_run(&self.plan.path, &run.sweep_id),
        };
        let (json_entity, json_project) = local.entity_project();
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let key = crate::sweep::SweepKey {
            base_url: self.opts.base_url.clone(),
            entity: text(&run.entity).or(json_entity),
            project: text(&run.project).or(json_project),
        };
        let (resolved, warnings) = crate::sweep::resolve(api, &local, &key, self.deadline)?;
        self.sweep_warnings.extend(warnings);
        match resolved {
            crate::sweep::Resolved::Attach(sweep) => {
                log::debug!(
                    "run {}: sweep {} is {} on the server",
                    self.plan.run_id,
                    local.id,
                    sweep.name
                );
                self.sweep = Some(sweep);
            }
            crate::sweep::Resolved::Skip(warning) => self.sweep_warnings.push(warning),
        }
        Ok(())
    }

    /// First run record seen: create the run on the server, fix the line bases, start threads.
    fn start(&mut self) -> Result<()> {
        if let Some(api) = self.api.filter(|_| !self.opts.dry_run) {
            self.resolve_sweep(api)?;
        }
        let params = self.upsert_params(true);
        self.config_sent_version = self.processor.config.version();
        self.last_config_upsert = Instant::now();
        let Some(api) = self.api.filter(|_| !self.opts.dry_run) else {
            self.target = Some(Target {
                dest: Destination {
                    base_url: self.opts.base_url.clone(),
                    entity: params.entity.unwrap_or_default(),
                    project: params.project.unwrap_or_default(),
                    run_id: self.plan.run_id.clone(),
                },
                history_base: 0,
                events_base: 0,
                console_base: 0,
            });
            return self.route_pending_files();
        };
        let bucket = api.upsert_bucket(&params, self.deadline)?;
        let dest = Destination {
            base_url: self.opts.base_url.clone(),
            entity: bucket.entity.clone(),
            project: bucket.project.clone(),
            run_id: bucket.run_id.clone(),
        };
        let target = {
            let mut ledger = self.shared.ledger();
            match &ledger.data {
                Some(data) if data.destination == dest => Target {
                    dest,
                    history_base: data.history_base,
                    events_base: data.events_base,
                    console_base: data.console_base,
                },
                Some(data) if self.skip_until > 0 => {
                    return Err(Error::Ledger {
                        path: ledger.path().to_path_buf(),
                        problem: format!(
                            "was written for {}/{}/{} but the server resolved {}/{}/{} \
                             (delete the ledger to sync from scratch)",
                            data.destination.entity,
                            data.destination.project,
                            data.destination.run_id,
                            dest.entity,
                            dest.project,
                            dest.run_id
                        ),
                    });
                }
                _ => {
                    let bases = [
                        bucket.history_line_count,
                        bucket.events_line_count,
                        bucket.log_line_count,
                    ];
                    ledger.store(LedgerData::new(
                        dest.clone(),
                        bucket.storage_id.clone(),
                        bases,
                    ))?;
                    Target {
                        dest,
                        history_base: bases[0],
                        events_base: bases[1],
                        console_base: bases[2],
                    }
                }
            }
        };
        self.target = Some(target.clone());

        let (work_tx, work_rx) = sync_channel::<Work>(1);
        let shared = Arc::clone(&self.shared);
        let sender_api = api.clone();
        let sender_target = target.clone();
        let deadline = self.deadline;
        self.threads.sender = Some(work_tx);
        self.threads.sender_handle = Some(
            std::thread::Builder::new()
                .name("wandb-sync-send".into())
                .spawn(move || {
                    sender_loop(&sender_api, &sender_target, &work_rx, &shared, deadline)
                })
                .map_err(|e| Error::Internal {
                    what: "start a thread",
                    detail: e.to_string(),
                })?,
        );
        let (job_tx, job_rx) = sync_channel::<UploadJob>(256);
        let shared = Arc::clone(&self.shared);
        let uploader_api = api.clone();
        let context = self.upload_context.clone();
        self.threads.uploader = Some(job_tx);
        self.threads.uploader_handle = Some(
            std::thread::Builder::new()
                .name("wandb-sync-upload".into())
                .spawn(move || {
                    uploader_loop(&uploader_api, &target, &context, &job_rx, &shared, deadline)
                })
                .map_err(|e| Error::Internal {
                    what: "start a thread",
                    detail: e.to_string(),
                })?,
        );
        self.route_pending_files()
    }

    fn route_pending_files(&mut self) -> Result<()> {
        let requests = std::mem::take(&mut self.pending_files);
        for request in requests {
            self.resolve_and_queue(&request.path)?;
        }
        Ok(())
    }

    fn resolve_and_queue(&mut self, requested: &str) -> Result<()> {
        let Some(run) = self.upload_context.run.clone() else {
            return Ok(());
        };
        let (found, refused) = run.resolve(requested);
        for refusal in refused {
            self.note_refusal(refusal)?;
        }
        for candidate in found {
            if !self.seen_files.admit(&candidate) {
                log::debug!(
                    "{}: the same file was already queued under another name",
                    candidate.name
                );
                continue;
            }
            if self.opts.dry_run {
                // Open it as a real sync would, to report what would be refused.
                match run.open(&candidate, &self.upload_context.policy) {
                    Ok(_) => {
                        self.dry_files.insert(candidate.name);
                    }
                    Err(refusal) => self.note_refusal(refusal)?,
                }
                continue;
            }
            self.queue_upload(UploadJob::File(candidate))?;
        }
        Ok(())
    }

    /// Records a refused file in the report; an I/O error fails the run instead.
    fn note_refusal(&mut self, refusal: Refusal) -> Result<()> {
        match refusal.kind {
            RefusalKind::Policy => {
                if self.refused_seen.insert(refusal.path.clone()) {
                    log::debug!("refused file {:?}: {}", refusal.path, refusal.reason);
                    self.refused.push(RefusedFile {
                        path: refusal.path,
                        reason: refusal.reason,
                    });
                }
                Ok(())
            }
            RefusalKind::Io(io::ErrorKind::NotFound) => Ok(()),
            RefusalKind::Io(_) => Err(refusal_error(&self.files_dir(), refusal)),
        }
    }

    fn queue_upload(&mut self, job: UploadJob) -> Result<()> {
        if self.opts.dry_run {
            self.dry_files.insert(job.name().to_owned());
            return Ok(());
        }
        if let Some(batch) = &mut self.end_batch {
            batch.push(job);
            return Ok(());
        }
        let Some(tx) = &self.threads.uploader else {
            return Ok(());
        };
        if tx.send(job).is_err() {
            return Err(self.thread_error());
        }
        Ok(())
    }

    fn thread_error(&self) -> Error {
        self.shared.take_error().unwrap_or_else(|| Error::Internal {
            what: "sync a run",
            detail: "a worker thread stopped".into(),
        })
    }

    /// Hands the current chunk to the sender; `record_offset` is the first record not in it.
    fn flush(&mut self, record_offset: u64) -> Result<()> {
        let summary_changed = self.processor.summary_version != self.summary_sent_version;
        if self.chunk.is_empty() && !summary_changed {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        let summary = summary_changed.then(|| self.processor.summary_json());
        self.summary_sent_version = self.processor.summary_version;
        if self.opts.dry_run {
            self.rows_dry += chunk.n_history;
            return Ok(());
        }
        let Some(tx) = &self.threads.sender else {
            return Ok(());
        };
        let work = Work::Chunk {
            chunk,
            summary,
            record_offset,
            history_end: self.processor.n_history,
            events_end: self.processor.n_events,
        };
        if tx.send(work).is_err() {
            return Err(self.thread_error());
        }
        Ok(())
    }

    /// The run's last chunk, when it can go in the final file_stream request: one request fewer a
    /// run. Not when it holds alerts (they are sent before its lines), console lines in more
    /// than one stretch (more than one request), or more than half a request's budget (the
    /// final request adds the summary and the uploaded names); not in a dry run. `None` leaves
    /// the chunk to [`Self::flush`].
    fn take_last_chunk(&mut self) -> Option<Box<LastChunk>> {
        if self.opts.dry_run || self.target.is_none() || self.threads.sender.is_none() {
            return None;
        }
        let chunk = &self.chunk;
        if chunk.is_empty()
            || !chunk.alerts.is_empty()
            || console_stretches(&chunk.console).len() > 1
            || chunk.size() > MAX_REQUEST_BYTES / 2
        {
            return None;
        }
        self.summary_sent_version = self.processor.summary_version;
        Some(Box::new(LastChunk {
            chunk: std::mem::take(&mut self.chunk),
            record_offset: self.next_offset.max(self.skip_until),
            history_end: self.processor.n_history,
            events_end: self.processor.n_events,
        }))
    }

    /// Sends the config again if it changed (in live mode at most every 5 s unless `force`).
    fn maybe_upsert_config(&mut self, force: bool) {
        if self.processor.config.version() == self.config_sent_version {
            return;
        }
        if !force && self.last_config_upsert.elapsed() < std::time::Duration::from_secs(5) {
            return;
        }
        self.config_sent_version = self.processor.config.version();
        self.last_config_upsert = Instant::now();
        let params = self.upsert_params(false);
        if let Some(tx) = &self.threads.sender {
            let _ = tx.send(Work::Upsert(Box::new(params)));
        }
    }

    /// End of input: last chunk, generated files, uploads, final request, marker.
    fn finish(&mut self) -> Result<()> {
        if self.shared.failed() {
            return Err(self.thread_error());
        }
        if self.target.is_none() {
            return Err(Error::NoRunRecord {
                path: self.plan.path.clone(),
            });
        }
        if !self.crossed {
            // The file ends before the ledger's offset (everything was acknowledged).
            self.check_replay()?;
        }
        let emitting = self.next_offset >= self.skip_until;
        self.processor.finish_console(emitting, &mut self.chunk);
        if let Some(e) = self.processor.spool_error.take() {
            return Err(Error::io(std::env::temp_dir(), "write console spool", e));
        }
        let last = self.take_last_chunk();
        if last.is_none() {
            self.flush(self.next_offset.max(self.skip_until))?;
        }

        // Generated files, and the files saved with policy "end": one batch, so one
        // `CreateRunFiles` and the PUTs in parallel.
        self.end_batch = Some(Vec::new());
        let summary = self.processor.summary_json();
        self.queue_upload(UploadJob::Bytes {
            name: "wandb-summary.json".into(),
            bytes: bytes::Bytes::from(summary.clone().into_bytes()),
        })?;
        let config_yaml = to_yaml(&self.processor.config.to_tree().to_value());
        self.queue_upload(UploadJob::Bytes {
            name: "config.yaml".into(),
            bytes: bytes::Bytes::from(config_yaml.into_bytes()),
        })?;
        if let Some(env) = self.processor.config.merged_environment() {
            let text = crate::metadata::environment_json(&env, Some(2));
            self.queue_upload(UploadJob::Bytes {
                name: "wandb-metadata.json".into(),
                bytes: bytes::Bytes::from(text.into_bytes()),
            })?;
        }
        if self.processor.has_console() {
            self.processor
                .spool
                .flush()
                .map_err(|e| Error::io(std::env::temp_dir(), "write console spool", e))?;
            if let Some(path) = self.processor.spool.path() {
                let path = path.to_path_buf();
                self.queue_upload(UploadJob::Own {
                    name: "output.log".into(),
                    path,
                })?;
            }
        }
        let end_files = std::mem::take(&mut self.end_files);
        for request in end_files {
            self.resolve_and_queue(&request.path)?;
        }
        if let Some(batch) = self.end_batch.take()
            && !batch.is_empty()
        {
            self.queue_upload(UploadJob::Many(batch))?;
        }
        self.maybe_upsert_config(true);

        // Wait for the uploads.
        self.threads.uploader = None;
        if let Some(handle) = self.threads.uploader_handle.take()
            && handle.join().is_err()
        {
            self.shared.fail(Error::Internal {
                what: "upload files",
                detail: "the upload thread panicked".into(),
            });
        }
        if self.shared.failed() {
            self.stop_sender();
            return Err(self.thread_error());
        }
        // Artifacts, before the final request (as wandb-core waits for them).
        if let Err(e) = self.sync_artifacts() {
            self.stop_sender();
            return Err(e);
        }

        let exit_code = match &self.processor.exit {
            Some(exit) if exit.not_complete => None,
            Some(exit) => Some(exit.exit_code),
            None => Some(1),
        };
        if !self.opts.dry_run {
            let uploaded: Vec<String> = {
                let ledger = self.shared.ledger();
                let mut names: Vec<String> = ledger
                    .data
                    .as_ref()
                    .map(|d| d.files.keys().cloned().collect())
                    .unwrap_or_default();
                let this_run = self
                    .shared
                    .uploaded
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for name in this_run.iter() {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
                names
            };
            if let Some(tx) = &self.threads.sender
                && tx
                    .send(Work::Final {
                        last,
                        summary,
                        uploaded,
                        exit_code,
                    })
                    .is_err()
            {
                self.stop_sender();
                return Err(self.thread_error());
            }
            self.stop_sender();
            if self.shared.failed() {
                return Err(self.thread_error());
            }
            write_marker(&synced_marker(&self.plan.state))?;
        }
        Ok(())
    }

    /// Uploads the file's artifacts and sends its `use_artifact` records (see
    /// [`crate::artifacts`]); refused staged files go into the report.
    fn sync_artifacts(&mut self) -> Result<()> {
        let items = std::mem::take(&mut self.processor.artifacts);
        let Some(target) = &self.target else {
            return Ok(());
        };
        if items.is_empty() {
            return Ok(());
        }
        let ctx = artifacts::Context {
            api: self.api.filter(|_| !self.opts.dry_run),
            dest: &target.dest,
            ledger: &self.shared.ledger,
            policy: &self.upload_context.policy,
            owner_uid: self
                .upload_context
                .run
                .as_ref()
                .and_then(RunFiles::owner_uid),
            run_dir: match &self.upload_context.run {
                Some(RunFiles::Folder(run)) => run.files_dir.parent(),
                _ => None,
            },
            archive: match &self.plan.source {
                RunSource::Archive(run) => Some(run),
                RunSource::Folder => None,
            },
            deadline: self.deadline,
            multipart: artifacts::Multipart {
                threshold: self.opts.multipart_threshold,
                part_size: self.opts.multipart_part_size,
            },
        };
        let mut outcome = artifacts::Outcome::default();
        let result = artifacts::sync_all(&ctx, &items, &mut outcome);
        for refused in outcome.refused {
            if self.refused_seen.insert(refused.path.clone()) {
                self.refused.push(refused);
            }
        }
        self.artifact_warnings.extend(outcome.warnings);
        self.artifact_reports.extend(outcome.artifacts);
        result
    }

    fn stop_sender(&mut self) {
        self.threads.sender = None;
        if let Some(handle) = self.threads.sender_handle.take()
            && handle.join().is_err()
        {
            self.shared.fail(Error::Internal {
                what: "stream records",
                detail: "the file_stream thread panicked".into(),
            });
        }
    }

    /// Fills the report and returns the state for the next fragment.
    fn finish_report(mut self, outcome: Result<()>, report: &mut RunReport) -> Carry {
        // Make sure the threads are gone, whatever happened.
        self.threads.uploader = None;
        if let Some(handle) = self.threads.uploader_handle.take() {
            let _ = handle.join();
        }
        self.stop_sender();
        if let Some(target) = &self.target {
            report.entity = Some(target.dest.entity.clone()).filter(|e| !e.is_empty());
            report.project = Some(target.dest.project.clone()).filter(|p| !p.is_empty());
            report.run_id.clone_from(&target.dest.run_id);
            if !self.opts.dry_run {
                report.url = Some(run_url(&self.opts.base_url, &target.dest));
            }
        }
        let p = &self.processor;
        report.rows_total = p.n_history;
        report.events = p.n_events;
        report.console_lines = p.n_console_lines();
        report.bytes = self.shared.bytes_sent.load(Ordering::SeqCst);
        report.rows = if self.opts.dry_run {
            self.rows_dry
        } else {
            self.shared.rows_sent.load(Ordering::SeqCst)
        };
        report.exit_code = match &p.exit {
            Some(exit) => Some(exit.exit_code),
            None if self.target.is_some() => Some(1),
            None => None,
        };
        if p.exit.is_none() && self.target.is_some() {
            report.warnings.push(
                "no exit record (the run crashed or is still running): marked as failed with exit code 1"
                    .into(),
            );
        }
        if p.n_invalid_values > 0 || p.config.n_invalid > 0 {
            report.warnings.push(format!(
                "{} value(s) were not valid JSON and were left out",
                p.n_invalid_values + p.config.n_invalid
            ));
        }
        if p.n_oversize_lines > 0 {
            report.warnings.push(format!(
                "{} line(s) longer than 10 MiB were dropped, as W&B does",
                p.n_oversize_lines
            ));
        }
        report.warnings.append(&mut self.artifact_warnings);
        report.warnings.append(&mut self.sweep_warnings);
        report.artifacts = std::mem::take(&mut self.artifact_reports);
        report.damage = std::mem::take(&mut self.damage);
        report.refused = std::mem::take(&mut self.refused);
        for refusal in self
            .shared
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            if !report.refused.iter().any(|r| r.path == refusal.path) {
                report.refused.push(refusal);
            }
        }
        report.files = if self.opts.dry_run {
            self.dry_files.iter().cloned().collect()
        } else {
            self.shared
                .uploaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        };
        report.result = match outcome {
            Err(e) => {
                report.error = Some(e.to_string());
                RunResult::Failed
            }
            Ok(()) if self.opts.dry_run => RunResult::DryRun,
            Ok(()) if !report.damage.is_empty() || !report.refused.is_empty() => RunResult::Partial,
            Ok(()) => RunResult::Synced,
        };
        self.processor.into_carry()
    }
}

/// The run's page: `{app}/{entity}/{project}/runs/{id}`.
fn run_url(base_url: &str, dest: &Destination) -> String {
    let app = if base_url.contains("://api.wandb.") {
        base_url.replacen("api.", "", 1)
    } else if base_url.contains("://api.") {
        base_url.replacen("://api.", "://app.", 1)
    } else {
        base_url.to_owned()
    };
    format!(
        "{app}/{}/{}/runs/{}",
        escape_segment(&dest.entity),
        escape_segment(&dest.project),
        escape_segment(&dest.run_id)
    )
}

fn sender_loop(
    api: &Api,
    target: &Target,
    rx: &Receiver<Work>,
    shared: &Shared,
    deadline: Instant,
) {
    for work in rx {
        if shared.failed() {
            continue;
        }
        if let Err(e) = handle_work(api, target, work, shared, deadline) {
            shared.fail(e);
        }
    }
}

fn handle_work(
    api: &Api,
    target: &Target,
    work: Work,
    shared: &Shared,
    deadline: Instant,
) -> Result<()> {
    let dest = &target.dest;
    match work {
        Work::Chunk {
            mut chunk,
            summary,
            record_offset,
            history_end,
            events_end,
        } => {
            let alerts = std::mem::take(&mut chunk.alerts);
            for (index, alert) in &alerts {
                api.notify_alert(&dest.entity, &dest.project, &dest.run_id, alert, deadline)?;
                let sent = index + 1;
                shared
                    .ledger()
                    .update(|d| d.alerts_sent = d.alerts_sent.max(sent))?;
            }
            let n_history = chunk.n_history;
            let bodies = chunk_bodies(&mut chunk, summary.as_deref(), target, None);
            drop(chunk);
            send_bodies(api, dest, shared, bodies, n_history, deadline)?;
            shared.ledger().update(|d| {
                d.record_offset = d.record_offset.max(record_offset);
                d.history_acked = d.history_acked.max(history_end);
                d.events_acked = d.events_acked.max(events_end);
            })?;
        }
        Work::Upsert(mut params) => {
            params.entity = Some(dest.entity.clone());
            params.project = Some(dest.project.clone());
            api.upsert_bucket(&params, deadline)?;
        }
        Work::Final {
            last,
            summary,
            uploaded,
            exit_code,
        } => {
            let ending = Ending {
                uploaded: &uploaded,
                exit_code,
            };
            let (mut chunk, acked) = match last {
                Some(last) => {
                    let LastChunk {
                        chunk,
                        record_offset,
                        history_end,
                        events_end,
                    } = *last;
                    (chunk, Some((record_offset, history_end, events_end)))
                }
                None => (Chunk::default(), None),
            };
            let n_history = chunk.n_history;
            // One body: the chunk was held back only when its lines fit one request.
            let bodies = chunk_bodies(&mut chunk, Some(&summary), target, Some(&ending));
            send_bodies(api, dest, shared, bodies, n_history, deadline)?;
            let update = |d: &mut crate::ledger::LedgerData| {
                if let Some((record_offset, history_end, events_end)) = acked {
                    d.record_offset = d.record_offset.max(record_offset);
                    d.history_acked = d.history_acked.max(history_end);
                    d.events_acked = d.events_acked.max(events_end);
                }
                d.complete = true;
                d.exit_code = exit_code;
            };
            if acked.is_some() {
                shared.ledger().update(update)?;
            } else {
                shared.ledger().update_relaxed(update)?;
            }
        }
    }
    Ok(())
}

/// A chunk's console lines (`Chunk::console`) in stretches of consecutive line numbers: each stretch goes in one
/// file_stream request.
fn console_stretches(
    console: &std::collections::BTreeMap<u64, String>,
) -> Vec<Vec<(&u64, &String)>> {
    let mut runs: Vec<Vec<(&u64, &String)>> = Vec::new();
    for (line_no, text) in console {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|(n, _)| **n + 1 == *line_no) => {
                run.push((line_no, text));
            }
            _ => runs.push(vec![(line_no, text)]),
        }
    }
    runs
}

/// Posts file_stream `bodies` in order and counts their bytes and the `rows` they carry.
fn send_bodies(
    api: &Api,
    dest: &Destination,
    shared: &Shared,
    bodies: Vec<String>,
    rows: u64,
    deadline: Instant,
) -> Result<()> {
    for body in bodies {
        let len = body.len() as u64;
        api.file_stream(
            &dest.entity,
            &dest.project,
            &dest.run_id,
            bytes::Bytes::from(body.into_bytes()),
            deadline,
        )?;
        shared.bytes_sent.fetch_add(len, Ordering::SeqCst);
    }
    shared.rows_sent.fetch_add(rows, Ordering::SeqCst);
    Ok(())
}

/// The file_stream bodies for one chunk: history, events, summary and the first consecutive
/// run of console lines in the first body; further console runs in bodies of their own. The
/// first body is built in the history text's own buffer (the header moved in front of it), so
/// the megabytes of a chunk are not copied into fresh memory.
///
/// With an `ending` (the final request), the first body also holds the uploaded names and the
/// exit, and is sent even when it has no lines.
fn chunk_bodies(
    chunk: &mut Chunk,
    summary: Option<&str>,
    target: &Target,
    ending: Option<&Ending<'_>>,
) -> Vec<String> {
    let mut runs = console_stretches(&chunk.console).into_iter();
    let mut bodies = Vec::new();
    let mut first = true;
    let mut body = if chunk.n_history > 0 {
        first = false;
        let mut body = std::mem::take(&mut chunk.history);
        let header = format!(
            "{{\"files\":{{\"wandb-history.jsonl\":{{\"offset\":{},\"content\":[",
            target.history_base + chunk.history_start
        );
        body.insert_str(0, &header);
        body.push_str("]}");
        body
    } else {
        let mut body = String::with_capacity(chunk.size() + 256);
        body.push_str("{\"files\":{");
        body
    };
    let mut section = |body: &mut String, name: &str, offset: u64, content: &str| {
        if !first {
            body.push(',');
        }
        first = false;
        body.push_str(&format!("\"{name}\":{{\"offset\":{offset},\"content\":["));
        body.push_str(content);
        body.push_str("]}");
    };
    if chunk.n_events > 0 {
        section(
            &mut body,
            "wandb-events.jsonl",
            target.events_base + chunk.events_start,
            &chunk.events,
        );
    }
    if let Some(summary) = summary {
        let mut content = String::with_capacity(summary.len() + 16);
        write_str(&mut content, summary);
        section(&mut body, "wandb-summary.json", 0, &content);
    }
    if let Some(run) = runs.next() {
        let (content, offset) = console_content(&run, target);
        section(&mut body, "output.log", offset, &content);
    }
    let mut header_only = first;
    body.push('}');
    if chunk.preempting {
        body.push_str(",\"preempting\":true");
        header_only = false;
    }
    if let Some(ending) = ending {
        body.push_str(",\"uploaded\":[");
        for (i, name) in ending.uploaded.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            write_str(&mut body, name);
        }
        body.push(']');
        if let Some(code) = ending.exit_code {
            body.push_str(&format!(",\"complete\":true,\"exitcode\":{code}"));
        }
        header_only = false;
    }
    body.push('}');
    if !header_only {
        bodies.push(body);
    }
    for run in runs {
        let (content, offset) = console_content(&run, target);
        let mut body = String::with_capacity(content.len() + 64);
        body.push_str(&format!(
            "{{\"files\":{{\"output.log\":{{\"offset\":{offset},\"content\":["
        ));
        body.push_str(&content);
        body.push_str("]}}}");
        bodies.push(body);
    }
    bodies
}

fn console_content(run: &[(&u64, &String)], target: &Target) -> (String, u64) {
    let mut content = String::new();
    for (i, (_, text)) in run.iter().enumerate() {
        if i > 0 {
            content.push(',');
        }
        write_str(&mut content, text);
    }
    let offset = target.console_base + run.first().map_or(0, |(n, _)| **n);
    (content, offset)
}

fn uploader_loop(
    api: &Api,
    target: &Target,
    context: &UploadContext,
    rx: &Receiver<UploadJob>,
    shared: &Shared,
    deadline: Instant,
) {
    let push = |batch: &mut Vec<UploadJob>, job: UploadJob| match job {
        UploadJob::Many(jobs) => batch.extend(jobs),
        job => batch.push(job),
    };
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        push(&mut batch, first);
        while let Ok(job) = rx.try_recv() {
            push(&mut batch, job);
        }
        if shared.failed() {
            continue;
        }
        if let Err(e) = upload_batch(api, target, context, batch, shared, deadline) {
            shared.fail(e);
        }
    }
}

/// One file ready to PUT.
struct Prepared {
    name: String,
    snapshot: Snapshot,
}

/// The run error for a file that could not be read.
fn refusal_error(files_dir: &Path, refusal: Refusal) -> Error {
    let kind = match refusal.kind {
        RefusalKind::Io(kind) => kind,
        RefusalKind::Policy => io::ErrorKind::PermissionDenied,
    };
    Error::io(
        files_dir.join(&refusal.path),
        "read file to upload",
        io::Error::new(kind, refusal.reason),
    )
}

fn upload_batch(
    api: &Api,
    target: &Target,
    context: &UploadContext,
    batch: Vec<UploadJob>,
    shared: &Shared,
    deadline: Instant,
) -> Result<()> {
    // Later jobs for the same name win.
    let mut prepared: Vec<Prepared> = Vec::new();
    for job in batch {
        let name = job.name().to_owned();
        let opened = match job {
            UploadJob::Bytes { name, bytes } => Snapshot::from_bytes(&name, bytes, &context.policy),
            UploadJob::Own { name, path } => {
                files::snapshot_own_file(&path, &name, &context.policy)
            }
            UploadJob::File(candidate) => match &context.run {
                Some(run) => run.open(&candidate, &context.policy),
                None => continue,
            },
            // Flattened by the uploader loop.
            UploadJob::Many(_) => continue,
        };
        let snapshot = match opened {
            Ok(snapshot) => snapshot,
            Err(refusal) => match refusal.kind {
                RefusalKind::Policy => {
                    shared.refuse(refusal);
                    continue;
                }
                RefusalKind::Io(io::ErrorKind::NotFound) => {
                    log::debug!("{name}: gone before it could be uploaded");
                    continue;
                }
                RefusalKind::Io(_) => {
                    let files_dir = context
                        .run
                        .as_ref()
                        .map_or_else(PathBuf::new, RunFiles::files_dir);
                    return Err(refusal_error(&files_dir, refusal));
                }
            },
        };
        prepared.retain(|p| p.name != name);
        // Snapshots hold memory or temp-file space: send what is held before holding more.
        let held: u64 = prepared.iter().map(|p| p.snapshot.len()).sum();
        if !prepared.is_empty() && held + snapshot.len() > HELD_SNAPSHOT_BYTES {
            send_prepared(api, target, std::mem::take(&mut prepared), shared, deadline)?;
        }
        prepared.push(Prepared { name, snapshot });
    }
    send_prepared(api, target, prepared, shared, deadline)
}

/// Asks for upload URLs for the files the ledger does not already hold, and PUTs them.
fn send_prepared(
    api: &Api,
    target: &Target,
    mut prepared: Vec<Prepared>,
    shared: &Shared,
    deadline: Instant,
) -> Result<()> {
    {
        let ledger = shared.ledger();
        if let Some(data) = &ledger.data {
            prepared.retain(|p| {
                data.files
                    .get(&p.name)
                    .is_none_or(|f| f.sha256 != p.snapshot.sha256() || f.size != p.snapshot.len())
            });
        }
    }
    if prepared.is_empty() {
        return Ok(());
    }
    let dest = &target.dest;
    let names: Vec<String> = prepared.iter().map(|p| p.name.clone()).collect();
    let (slots, headers) =
        api.create_run_files(&dest.entity, &dest.project, &dest.run_id, &names, deadline)?;
    let work: Vec<(Prepared, UploadSlot)> = prepared.into_iter().zip(slots).collect();
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<Result<(String, UploadedFile)>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..UPLOAD_THREADS.min(work.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst) as usize;
                    let Some((file, slot)) = work.get(index) else {
                        break;
                    };
                    if shared.failed() {
                        break;
                    }
                    let outcome = api
                        .upload(slot, &headers, &file.snapshot, deadline)
                        .map(|()| {
                            (
                                file.name.clone(),
                                UploadedFile {
                                    size: file.snapshot.len(),
                                    sha256: file.snapshot.sha256().to_owned(),
                                },
                            )
                        });
                    results
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(outcome);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut done = Vec::new();
    let mut first_error = None;
    for result in results {
        match result {
            Ok(entry) => done.push(entry),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if !done.is_empty() {
        for (name, file) in &done {
            shared.bytes_sent.fetch_add(file.size, Ordering::SeqCst);
            let mut uploaded = shared
                .uploaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !uploaded.contains(name) {
                uploaded.push(name.clone());
            }
        }
        shared.ledger().update_relaxed(|d| {
            for (name, file) in done {
                d.files.insert(name, file);
            }
        })?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

//! The run's writer thread: the only code that touches the run's `.wandb` file.
//!
//! # Design
//!
//! The training thread sends typed [`Command`]s through a bounded crossbeam channel; this
//! thread owns the [`wandb_format::Writer`] and everything derived from history (step state,
//! key table, summaries). It plays the part of wandb-core's handler and writer:
//!
//! * **Steps.** `log` commands are merged into a pending row and written as one history record
//!   when committed, with W&B's step and commit rules (see [`crate::LogOptions`]).
//! * **Derived summaries** are coalesced: each written row only marks its keys dirty; at every
//!   flush point the writer emits a runtime summary (`_wandb.runtime`, `_runtime`) and one
//!   summary record with the current value of every dirty key. The summary is exact at finish.
//! * **Flush points** happen at most `flush_interval` after data was appended (1 s by default),
//!   on `flush()`/`sync()`, on explicit summary changes (to keep their order) and at finish.
//!   A flush point hands the buffered bytes to the operating system.
//! * **fsync** (`fdatasync`) every `fsync_interval` while data keeps coming, on `sync()`, on
//!   SIGTERM and at finish.
//! * **Batching.** After a burst the thread parks briefly instead of blocking on the channel,
//!   so that a fast producer's sends do not each have to wake it.
//! * **Errors.** The first I/O error is stored in [`Shared`]; every later call on the run
//!   returns it. The thread keeps draining the queue (so producers never hang) but writes
//!   nothing more: the file keeps every record written before the failure. A panic of this
//!   thread is recorded the same way by a drop guard.

pub(crate) mod encode;
pub(crate) mod keys;
mod output_log;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use prost::Message;
use wandb_format::json;
use wandb_format::{Durability, proto};

use crate::error::{Error, Result};
use crate::options::{Metric, SavePolicy, WriterOptions};
use crate::records;
use crate::value::{Key, Value};
pub(crate) use crate::writer::encode::FloatText;
use crate::writer::encode::HistoryEncoder;
use crate::writer::keys::{KeyId, KeyTable, SummaryState};
use crate::writer::output_log::OutputLog;

/// After a burst of at least this many commands, the thread parks for [`LINGER`] before
/// looking at the queue again.
const LINGER_THRESHOLD: usize = 32;

/// How long the thread parks after a burst.
const LINGER: Duration = Duration::from_micros(500);

/// Commands processed between two timer checks while draining a long queue.
const TICK_EVERY: usize = 4096;

/// Emptied row buffers kept for reuse by the producer.
pub(crate) const ROW_POOL: usize = 256;

/// Row buffers larger than this are freed rather than reused.
const ROW_POOL_MAX_CAPACITY: usize = 64;

/// A row's entries, as sent from the producer.
pub(crate) type RowBuf = Vec<(Key, Value, FloatText)>;

/// A unit of work for the writer thread.
pub(crate) enum Command {
    /// A `log` call.
    Log(LogCmd),
    /// A ready-made record (stats, console output, alert, files, environment, ...); the writer
    /// numbers it.
    Record(Box<proto::Record>),
    /// A config update.
    Config {
        /// Keys to set, with plain JSON values.
        update: json::Map,
        /// Keys to remove.
        remove: Vec<String>,
    },
    /// Explicit summary values (key paths and values).
    SummarySet(Vec<(Vec<String>, json::Value)>),
    /// Summary keys to remove.
    SummaryRemove(Vec<Vec<String>>),
    /// A metric definition.
    Metric(Box<Metric>),
    /// `save`: copy a file into `files/` and announce it.
    Save(SaveCmd),
    /// A media file (image, table): write it under `files/` and announce it.
    MediaFile {
        /// Destination relative to `files/`, with `/` separators.
        rel: String,
        /// The file's content.
        bytes: Arc<[u8]>,
    },
    /// A table's `run_table` artifact: stage its entry's file and write its record (before the
    /// table's own `MediaFile`, as the SDK orders them).
    Artifact {
        /// Where the entry's file is staged (the record's `local_path`).
        staged: PathBuf,
        /// The file's content.
        bytes: Arc<[u8]>,
        /// The `artifact` record.
        record: Box<proto::ArtifactRecord>,
    },
    /// A question about the run's state.
    Query(Query),
    /// A flush barrier: answered once everything sent before is written as far as asked.
    Flush {
        /// How far to push the data.
        durability: Durability,
        /// Where the answer goes.
        reply: Sender<Result<()>>,
    },
    /// SIGTERM: write a preempting record and sync.
    Preempt {
        /// The process is about to die: also write the pending row.
        terminate: bool,
        /// Where the acknowledgement goes.
        reply: Sender<()>,
    },
    /// Finish the run: write the pending row, the final summaries and the exit record, sync,
    /// and stop.
    Finish {
        /// The exit code to record.
        exit_code: i32,
        /// Where the outcome goes.
        reply: Sender<FinishOutcome>,
    },
}

/// One `log` call.
pub(crate) struct LogCmd {
    pub(crate) row: RowBuf,
    pub(crate) step: Option<u64>,
    pub(crate) commit: Option<bool>,
    /// Wall-clock time of the call, in nanoseconds since the Unix epoch.
    pub(crate) time_ns: u64,
    /// `time_ns` in seconds as `_timestamp`'s text, formatted by the caller (see `FloatText`).
    pub(crate) time_text: FloatText,
    /// The run time at `time_ns` in seconds as `_runtime`'s text, formatted by the caller.
    pub(crate) runtime_text: FloatText,
}

/// A `save` call.
pub(crate) struct SaveCmd {
    pub(crate) src: PathBuf,
    /// Destination relative to `files/`, with `/` separators.
    pub(crate) rel: String,
    pub(crate) policy: SavePolicy,
    pub(crate) reply: Sender<Result<PathBuf>>,
}

/// Questions the writer answers.
pub(crate) enum Query {
    /// The whole summary.
    Summary(Sender<json::Map>),
    /// One summary value by key path.
    SummaryGet(Vec<String>, Sender<Option<json::Value>>),
    /// The current step.
    Step(Sender<u64>),
}

/// What the writer reports when the run finishes.
#[derive(Debug, Clone, Default)]
pub(crate) struct FinishOutcome {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) rows: u64,
    pub(crate) out_of_order: u64,
    pub(crate) error: Option<Error>,
}

/// State shared between the run's handles and its writer thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set once the writer has failed; `error` then holds why.
    pub(crate) failed: AtomicBool,
    error: Mutex<Option<Error>>,
    /// Rows dropped by the backpressure policy.
    pub(crate) dropped: AtomicU64,
}

impl Shared {
    /// The stored failure (the first one).
    pub(crate) fn error(&self) -> Option<Error> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records a failure; only the first is kept.
    pub(crate) fn fail(&self, error: Error) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
        }
        self.failed.store(true, Ordering::Release);
    }
}

/// Everything the writer thread needs to start.
pub(crate) struct WorkerConfig {
    pub(crate) run_id: String,
    pub(crate) files_dir: PathBuf,
    pub(crate) start: SystemTime,
    pub(crate) options: WriterOptions,
    /// Records to write first, in order (header, run).
    pub(crate) initial: Vec<proto::Record>,
    /// Builds more records to write right after the initial ones (the environment), off the
    /// caller's thread.
    pub(crate) deferred: Option<Box<dyn FnOnce() -> Vec<proto::Record> + Send>>,
    /// Where emptied row buffers go back to the producer (so that rows are allocated and freed
    /// on the same thread, without contention on the allocator).
    pub(crate) pool: Sender<RowBuf>,
    /// The first step (after the last step of the fragments a resumed run continues).
    pub(crate) first_step: u64,
    /// The summary a resumed run carries over: written first and kept until the keys are
    /// logged again.
    pub(crate) carried_summary: json::Map,
    /// The metric definitions a resumed run carries over: written first and applied.
    pub(crate) carried_metrics: Vec<Metric>,
}

/// Starts the writer thread for `file`.
pub(crate) fn spawn(
    file: wandb_format::Writer,
    config: WorkerConfig,
    shared: Arc<Shared>,
) -> Result<(Sender<Command>, thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded(config.options.queue_capacity.max(1));
    let name = format!("wandb-writer-{}", config.run_id);
    let path = file.path().to_path_buf();
    let handle = thread::Builder::new()
        .name(name)
        .spawn(move || {
            let guard = PanicGuard {
                shared: Arc::clone(&shared),
                run_id: config.run_id.clone(),
            };
            let mut worker = Worker::new(file, config, shared, rx);
            worker.run();
            drop(guard);
        })
        .map_err(|e| Error::io(path, "start writer thread", e))?;
    Ok((tx, handle))
}

/// Marks the run failed if the writer thread unwinds.
struct PanicGuard {
    shared: Arc<Shared>,
    run_id: String,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if thread::panicking() {
            self.shared.fail(Error::WriterGone {
                run_id: std::mem::take(&mut self.run_id),
            });
        }
    }
}

/// The writer thread's state.
struct Worker {
    rx: Receiver<Command>,
    shared: Arc<Shared>,
    file: wandb_format::Writer,
    failed: bool,
    run_id: String,
    files_dir: PathBuf,
    options: WriterOptions,
    start_ns: u64,
    deferred: Option<Box<dyn FnOnce() -> Vec<proto::Record> + Send>>,
    pool: Sender<RowBuf>,

    num: i64,
    records: u64,
    rows: u64,
    out_of_order: u64,

    keys: KeyTable,
    step: u64,
    pending: Vec<(KeyId, Value, FloatText)>,
    pending_gen: u64,
    pending_time_ns: u64,
    /// Key ids of the row being written directly (see `Worker::direct_keys`).
    direct: Vec<KeyId>,
    /// `_timestamp` and `_runtime` texts for `pending_time_ns` (see `LogCmd`).
    pending_time_texts: (FloatText, FloatText),
    dirty: Vec<KeyId>,
    id_step: KeyId,
    id_runtime: KeyId,
    id_timestamp: KeyId,

    enc: HistoryEncoder,
    out: Vec<u8>,
    text: String,
    path_buf: Vec<String>,

    unflushed_since: Option<Instant>,
    unsynced: bool,
    last_fsync: Instant,
    resave: Vec<(PathBuf, PathBuf)>,
    output_log: OutputLog,
}

impl Worker {
    fn new(
        file: wandb_format::Writer,
        config: WorkerConfig,
        shared: Arc<Shared>,
        rx: Receiver<Command>,
    ) -> Worker {
        let mut keys = KeyTable::default();
        let id_step = keys.intern(&Key::from_static("_step"));
        let id_runtime = keys.intern(&Key::from_static("_runtime"));
        let id_timestamp = keys.intern(&Key::from_static("_timestamp"));
        let mut worker = Worker {
            rx,
            shared,
            file,
            failed: false,
            run_id: config.run_id,
            files_dir: config.files_dir.clone(),
            options: config.options,
            start_ns: unix_nanos(config.start),
            deferred: config.deferred,
            pool: config.pool,
            num: 0,
            records: 0,
            rows: 0,
            out_of_order: 0,
            keys,
            step: config.first_step,
            pending: Vec::new(),
            pending_gen: 0,
            pending_time_ns: 0,
            direct: Vec::new(),
            pending_time_texts: (FloatText::NONE, FloatText::NONE),
            dirty: Vec::new(),
            id_step,
            id_runtime,
            id_timestamp,
            enc: HistoryEncoder::default(),
            out: Vec::with_capacity(1024),
            text: String::with_capacity(64),
            path_buf: Vec::new(),
            unflushed_since: None,
            unsynced: false,
            last_fsync: Instant::now(),
            resave: Vec::new(),
            output_log: OutputLog::new(config.files_dir.join("output.log")),
        };
        for record in config.initial {
            worker.write_record(record);
        }
        for metric in config.carried_metrics {
            worker.define_metric(&metric);
        }
        if let Some(mut record) = crate::resume::carried_summary_record(&config.carried_summary) {
            record.info = Some(worker.stream_info());
            worker.write_record(record);
            for (key, value) in config.carried_summary {
                let id = worker.keys.intern_path(std::slice::from_ref(&key));
                if let Some(info) = worker.keys.get_mut(id) {
                    info.state = SummaryState::Carried(value);
                }
            }
        }
        worker
    }

    fn run(&mut self) {
        if let Some(deferred) = self.deferred.take() {
            for record in deferred() {
                self.write_record(record);
            }
        }
        loop {
            let first = match self.next_deadline() {
                Some(deadline) => self
                    .rx
                    .recv_timeout(deadline.saturating_duration_since(Instant::now())),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match first {
                Ok(cmd) => {
                    if self.handle(cmd) {
                        return;
                    }
                    let mut n_handled = 1;
                    loop {
                        match self.rx.try_recv() {
                            Ok(cmd) => {
                                if self.handle(cmd) {
                                    return;
                                }
                                n_handled += 1;
                                if n_handled % TICK_EVERY == 0 {
                                    self.tick();
                                }
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                self.abandon();
                                return;
                            }
                        }
                    }
                    self.tick();
                    if n_handled >= LINGER_THRESHOLD {
                        thread::park_timeout(LINGER);
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.tick(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.abandon();
                    return;
                }
            }
        }
    }

    /// Every handle is gone without a finish (only possible if they were leaked): keep what
    /// was logged, as after a crash, but write no exit record.
    fn abandon(&mut self) {
        self.flush_point(Durability::SyncData);
    }

    /// Handles one command; returns whether the thread must stop.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Log(log) => {
                if !self.failed {
                    self.log(log);
                }
            }
            Command::Record(mut record) => {
                if let Some(proto::record::RecordType::OutputRaw(output)) = &record.record_type {
                    let stdout =
                        output.output_type == proto::output_raw_record::OutputType::Stdout as i32;
                    self.output_log.add(stdout, &output.line);
                }
                if record.info.is_none() && wants_stream_id(&record) {
                    record.info = Some(self.stream_info());
                }
                self.write_record(*record);
            }
            Command::Config { update, remove } => {
                let record = records::config(&update, &remove, self.stream_info());
                self.write_record(record);
            }
            Command::SummarySet(items) => self.summary_set(items),
            Command::SummaryRemove(paths) => self.summary_remove(paths),
            Command::Metric(metric) => self.define_metric(&metric),
            Command::Save(save) => {
                let result = self.save(&save);
                let _ = save.reply.send(result);
            }
            Command::MediaFile { rel, bytes } => self.write_media(&rel, &bytes),
            Command::Artifact {
                staged,
                bytes,
                record,
            } => self.write_artifact(&staged, &bytes, *record),
            Command::Query(query) => self.answer(query),
            Command::Flush { durability, reply } => {
                self.flush_point(durability);
                let _ = reply.send(self.status());
            }
            Command::Preempt { terminate, reply } => {
                let info = self.stream_info();
                self.write_record(records::preempting(info));
                if terminate {
                    self.flush_row();
                }
                self.flush_point(Durability::SyncData);
                let _ = reply.send(());
            }
            Command::Finish { exit_code, reply } => {
                let outcome = self.finish(exit_code);
                let _ = reply.send(outcome);
                return true;
            }
        }
        false
    }

    /// Writes a metric definition's record and applies it.
    fn define_metric(&mut self, metric: &Metric) {
        let mut record = records::wrap(proto::record::RecordType::Metric(metric.to_record()));
        record.info = Some(self.stream_info());
        self.write_record(record);
        self.keys.define(metric);
    }

    fn status(&self) -> Result<()> {
        match self.shared.error() {
            Some(error) if self.failed => Err(error),
            _ => Ok(()),
        }
    }

    fn stream_info(&self) -> proto::RecordInfo {
        proto::RecordInfo {
            stream_id: self.run_id.clone(),
            ..Default::default()
        }
    }

    // ---------------------------------------------------------------------------------------
    // History
    // ---------------------------------------------------------------------------------------

    fn log(&mut self, mut cmd: LogCmd) {
        if let Some(step) = cmd.step {
            if step < self.step {
                self.out_of_order += 1;
                if self.out_of_order <= 10 || self.out_of_order.is_power_of_two() {
                    crate::diag::warning!(
                        "run {}: step {step} is less than the current step {}; the row is dropped \
                         (steps must be monotonically increasing; {} dropped so far)",
                        self.run_id,
                        self.step,
                        self.out_of_order
                    );
                }
                return;
            }
            if step > self.step {
                self.flush_row();
                self.step = step;
            }
        }
        let commit = cmd.commit.unwrap_or(cmd.step.is_none());
        if commit && self.pending.is_empty() && self.direct_keys(&cmd.row) {
            // The common case, a whole row in one call: written straight from the command,
            // without copying its values into the pending row.
            self.pending_time_ns = cmd.time_ns;
            self.pending_time_texts = (cmd.time_text, cmd.runtime_text);
            self.write_row(&cmd.row);
            self.recycle(cmd.row);
            return;
        }
        for (key, value, text) in cmd.row.drain(..) {
            match value {
                Value::Json(json) if is_nested_object(&json) => {
                    self.path_buf.clear();
                    self.path_buf.push(key.as_str().to_owned());
                    if let Ok(map) = json.into_object() {
                        self.merge_object(map);
                    }
                }
                value => {
                    let id = self.keys.intern(&key);
                    self.put(id, value, text);
                }
            }
        }
        self.recycle(cmd.row);
        self.pending_time_ns = cmd.time_ns;
        self.pending_time_texts = (cmd.time_text, cmd.runtime_text);
        if commit {
            self.flush_row();
        }
    }

    /// Hands a row buffer back to the producers for reuse (emptied here, so a big value is
    /// freed on this thread).
    fn recycle(&mut self, mut row: RowBuf) {
        if row.capacity() <= ROW_POOL_MAX_CAPACITY {
            row.clear();
            let _ = self.pool.try_send(row);
        }
    }

    /// Interns the keys of `row` into `self.direct` and marks them as in the pending row, when
    /// the row can be written directly: the pending row is empty, no key has a step metric to
    /// synchronize, and the row has no nested object, no key twice and none of `_step`,
    /// `_runtime` and `_timestamp`. Returns `false` (and leaves no key marked) otherwise.
    fn direct_keys(&mut self, row: &RowBuf) -> bool {
        self.direct.clear();
        if self.failed || self.keys.any_step_sync() {
            return false;
        }
        let reserved = [self.id_step, self.id_runtime, self.id_timestamp];
        for (key, value, _) in row {
            let nested = matches!(value, Value::Json(json) if is_nested_object(json));
            let id = self.keys.intern(key);
            let fresh = match self.keys.get_mut(id) {
                Some(info) if !nested && !reserved.contains(&id) => {
                    let fresh = info.pending_gen != self.pending_gen;
                    info.pending_gen = self.pending_gen;
                    info.pending_idx = usize::MAX;
                    fresh
                }
                _ => false,
            };
            if !fresh {
                // Forget the marks: the pending row is empty, so a new generation clears them.
                self.pending_gen += 1;
                self.direct.clear();
                return false;
            }
            self.direct.push(id);
        }
        true
    }

    /// Merges a nested object under the path in `path_buf`.
    fn merge_object(&mut self, map: json::Map) {
        for (key, value) in map {
            self.path_buf.push(key);
            if is_nested_object(&value) {
                if let Ok(inner) = value.into_object() {
                    self.merge_object(inner);
                }
            } else {
                let id = self.keys.intern_path(&self.path_buf);
                self.put(id, Value::from(value), FloatText::NONE);
            }
            self.path_buf.pop();
        }
    }

    /// Puts a value into the pending row (replacing the key's earlier value, if any).
    #[inline]
    fn put(&mut self, id: KeyId, value: Value, text: FloatText) {
        let Some(info) = self.keys.get_mut(id) else {
            return;
        };
        if info.pending_gen == self.pending_gen
            && let Some(slot) = self.pending.get_mut(info.pending_idx)
        {
            slot.1 = value;
            slot.2 = text;
            return;
        }
        info.pending_gen = self.pending_gen;
        info.pending_idx = self.pending.len();
        self.pending.push((id, value, text));
    }

    fn in_pending(&self, id: KeyId) -> bool {
        self.keys
            .get(id)
            .is_some_and(|info| info.pending_gen == self.pending_gen)
    }

    /// Writes the pending row at the current step and advances the step. An empty row is not
    /// written, but the step still advances.
    fn flush_row(&mut self) {
        self.direct.clear();
        self.write_row(&[]);
    }

    /// Writes a row at the current step and advances the step: the entries of `direct` (whose
    /// key ids are in `self.direct`, see [`Worker::direct_keys`]) followed by the pending row.
    fn write_row(&mut self, direct: &[(Key, Value, FloatText)]) {
        if self.pending.is_empty() && direct.is_empty() {
            self.step += 1;
            return;
        }
        if self.failed {
            self.clear_pending();
            self.step += 1;
            return;
        }
        if self.keys.any_step_sync() {
            self.sync_step_metrics();
        }
        let (time_text, runtime_text) = self.pending_time_texts;
        if !self.in_pending(self.id_timestamp) {
            let ts = self.pending_time_ns as f64 / 1e9;
            self.put(self.id_timestamp, Value::Float(ts), time_text);
        }
        let runtime = self.pending_time_ns.saturating_sub(self.start_ns) as f64 / 1e9;
        self.put(self.id_runtime, Value::Float(runtime), runtime_text);
        let step = i64::try_from(self.step).unwrap_or(i64::MAX);
        self.put(self.id_step, Value::Int(step), FloatText::NONE);

        self.enc.clear();
        self.num += 1;
        for ((_, value, text), id) in direct.iter().zip(&self.direct) {
            if let Some(info) = self.keys.get(*id) {
                self.enc.push(&info.prefix, value, text);
            }
        }
        for (id, value, text) in &self.pending {
            if let Some(info) = self.keys.get(*id) {
                self.enc.push(&info.prefix, value, text);
            }
        }
        match self.file.append(self.enc.finish(self.num, step)) {
            Ok(_) => {
                self.records += 1;
                self.rows += 1;
                self.appended();
            }
            Err(e) => self.fail(Error::write(e)),
        }

        let direct_values = direct
            .iter()
            .zip(&self.direct)
            .map(|((_, value, _), id)| (id, value));
        let pending_values = self.pending.iter().map(|(id, value, _)| (id, value));
        for (id, value) in direct_values.chain(pending_values) {
            let Some(info) = self.keys.get_mut(*id) else {
                continue;
            };
            if info.track_latest {
                info.latest = Some(value.clone());
            }
            if info.observe(value) {
                self.dirty.push(*id);
            }
        }
        self.direct.clear();
        self.pending.clear();
        self.pending_gen += 1;
        self.step += 1;
    }

    fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_gen += 1;
    }

    /// `step_sync`: adds the latest value of a key's step metric to rows that lack it.
    fn sync_step_metrics(&mut self) {
        let mut idx = 0;
        while idx < self.pending.len() {
            let Some((id, _, _)) = self.pending.get(idx) else {
                break;
            };
            idx += 1;
            let Some(step_path) = self
                .keys
                .get(*id)
                .and_then(|info| info.sync_step_metric.clone())
            else {
                continue;
            };
            let step_id = self.keys.intern_path(&step_path);
            if self.in_pending(step_id) {
                continue;
            }
            let latest = self.keys.get(step_id).and_then(|info| info.latest.clone());
            if let Some(value) = latest {
                self.put(step_id, value, FloatText::NONE);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Summaries
    // ---------------------------------------------------------------------------------------

    /// Writes the coalesced derived summary: a runtime summary, then the current value of every
    /// key whose summary changed.
    fn flush_summaries(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let runtime = self.runtime_secs();
        self.write_record(records::runtime_summary(runtime));
        let mut record = proto::SummaryRecord::default();
        for id in std::mem::take(&mut self.dirty) {
            let Some(info) = self.keys.get_mut(id) else {
                continue;
            };
            info.dirty = false;
            self.text.clear();
            if info.write_summary_json(&mut self.text) {
                record.update.push(proto::SummaryItem {
                    nested_key: info.path.clone(),
                    value_json: self.text.clone(),
                    ..Default::default()
                });
            }
        }
        if !record.update.is_empty() {
            self.write_record(records::wrap(proto::record::RecordType::Summary(record)));
        }
    }

    fn summary_set(&mut self, items: Vec<(Vec<String>, json::Value)>) {
        // Derived values written later must not override the explicit ones.
        self.flush_summaries();
        let mut record = proto::SummaryRecord::default();
        for (path, value) in items {
            record.update.push(records::summary_item(&path, &value));
            let id = self.keys.intern_path(&path);
            if let Some(info) = self.keys.get_mut(id) {
                info.state = SummaryState::Explicit(value);
                info.dirty = false;
            }
        }
        self.write_summary_with_info(record);
    }

    fn write_summary_with_info(&mut self, summary: proto::SummaryRecord) {
        let mut record = records::wrap(proto::record::RecordType::Summary(summary));
        record.info = Some(self.stream_info());
        self.write_record(record);
    }

    fn summary_remove(&mut self, paths: Vec<Vec<String>>) {
        self.flush_summaries();
        let mut record = proto::SummaryRecord::default();
        for path in paths {
            record
                .remove
                .push(records::summary_item(&path, &json::Value::Null));
            if let Some(id) = self.keys.lookup_path(&path)
                && let Some(info) = self.keys.get_mut(id)
            {
                info.state = SummaryState::Unset;
                info.dirty = false;
            }
        }
        self.write_summary_with_info(record);
    }

    fn summary_snapshot(&self) -> json::Map {
        let mut root = json::Map::new();
        for info in self.keys.iter() {
            if let Some(value) = info.summary_json() {
                insert_path(&mut root, &info.path, value);
            }
        }
        root
    }

    fn answer(&self, query: Query) {
        match query {
            Query::Summary(reply) => {
                let _ = reply.send(self.summary_snapshot());
            }
            Query::SummaryGet(path, reply) => {
                let value = self
                    .keys
                    .lookup_path(&path)
                    .and_then(|id| self.keys.get(id))
                    .and_then(|info| info.summary_json())
                    .or_else(|| {
                        // A prefix of nested keys: answer with the sub-object.
                        let snapshot = self.summary_snapshot();
                        let mut current = snapshot.get(path.first()?)?;
                        for part in path.get(1..).unwrap_or_default() {
                            current = current.get(part)?;
                        }
                        Some(current.clone())
                    });
                let _ = reply.send(value);
            }
            Query::Step(reply) => {
                let _ = reply.send(self.step);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Files
    // ---------------------------------------------------------------------------------------

    fn save(&mut self, save: &SaveCmd) -> Result<PathBuf> {
        if self.failed {
            return self.status().map(|()| PathBuf::new());
        }
        let dest = self.files_dir.join(&save.rel);
        copy_file(&save.src, &dest)?;
        let record = records::files(&save.rel, save.policy, self.stream_info());
        self.write_record(record);
        if save.policy != SavePolicy::Now && !self.resave.iter().any(|(_, d)| *d == dest) {
            self.resave.push((save.src.clone(), dest.clone()));
        }
        self.status().map(|()| dest)
    }

    /// Writes a media file under `files/` and its `files` record (policy `now`, as the SDK
    /// announces media); a failure is the run's failure, like any other write.
    fn write_media(&mut self, rel: &str, bytes: &[u8]) {
        if self.failed {
            return;
        }
        let dest = self.files_dir.join(rel);
        let written = dest
            .parent()
            .map_or(Ok(()), |parent| {
                fs::create_dir_all(parent)
                    .map_err(|e| Error::io(parent, "create folder in files/", e))
            })
            .and_then(|()| {
                fs::write(&dest, bytes).map_err(|e| Error::io(&dest, "write media file", e))
            });
        match written {
            Ok(()) => {
                let record = records::files(rel, SavePolicy::Now, self.stream_info());
                self.write_record(record);
            }
            Err(e) => self.fail(e),
        }
    }

    /// Stages an artifact entry's file and writes the artifact's record; a file that cannot be
    /// staged fails the run like any other I/O error (no record then points at it).
    fn write_artifact(&mut self, staged: &Path, bytes: &[u8], record: proto::ArtifactRecord) {
        if self.failed {
            return;
        }
        let written = staged
            .parent()
            .map_or(Ok(()), |parent| {
                fs::create_dir_all(parent)
                    .map_err(|e| Error::io(parent, "create the artifact staging folder", e))
            })
            .and_then(|()| {
                fs::write(staged, bytes).map_err(|e| Error::io(staged, "stage artifact file", e))
            });
        match written {
            Ok(()) => {
                let mut record = records::wrap(proto::record::RecordType::Artifact(record));
                record.info = Some(self.stream_info());
                self.write_record(record);
            }
            Err(e) => self.fail(e),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Writing, flushing, finishing
    // ---------------------------------------------------------------------------------------

    /// Numbers and appends a record.
    fn write_record(&mut self, mut record: proto::Record) {
        if self.failed {
            return;
        }
        self.num += 1;
        record.num = self.num;
        self.out.clear();
        record.encode_raw(&mut self.out);
        match self.file.append(&self.out) {
            Ok(_) => {
                self.records += 1;
                self.appended();
            }
            Err(e) => self.fail(Error::write(e)),
        }
    }

    fn appended(&mut self) {
        if self.unflushed_since.is_none() {
            self.unflushed_since = Some(Instant::now());
        }
        self.unsynced = true;
    }

    fn fail(&mut self, error: Error) {
        crate::diag::report_error!("run {}: {error}", self.run_id);
        self.failed = true;
        self.shared.fail(error);
    }

    /// Writes the coalesced summary and pushes everything to the operating system (and to the
    /// disk for the sync durabilities).
    fn flush_point(&mut self, durability: Durability) {
        self.flush_summaries();
        self.output_log.flush();
        self.persist(durability);
    }

    fn persist(&mut self, durability: Durability) {
        if self.failed {
            return;
        }
        let durability = match durability {
            Durability::Flush => Durability::Flush,
            _ if !self.unsynced => Durability::Flush,
            other => other,
        };
        match self.file.persist(durability) {
            Ok(()) => {
                self.unflushed_since = None;
                if durability != Durability::Flush {
                    self.unsynced = false;
                    self.last_fsync = Instant::now();
                }
            }
            Err(e) => self.fail(Error::write(e)),
        }
    }

    /// Runs the timers: hand data to the OS after `flush_interval`, sync after `fsync_interval`.
    fn tick(&mut self) {
        let now = Instant::now();
        if let Some(since) = self.unflushed_since
            && now.saturating_duration_since(since) >= self.options.flush_interval
        {
            self.flush_point(Durability::Flush);
        }
        if let Some(interval) = self.options.fsync_interval
            && self.unsynced
            && now.saturating_duration_since(self.last_fsync) >= interval
        {
            self.flush_point(Durability::SyncData);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let flush = self
            .unflushed_since
            .map(|t| t + self.options.flush_interval);
        let sync = match self.options.fsync_interval {
            Some(interval) if self.unsynced => Some(self.last_fsync + interval),
            _ => None,
        };
        match (flush, sync) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn runtime_secs(&self) -> u64 {
        unix_nanos(SystemTime::now()).saturating_sub(self.start_ns) / 1_000_000_000
    }

    fn finish(&mut self, exit_code: i32) -> FinishOutcome {
        if !self.pending.is_empty() {
            self.flush_row();
        }
        self.flush_summaries();
        for (src, dest) in std::mem::take(&mut self.resave) {
            if let Err(e) = copy_file(&src, &dest) {
                crate::diag::warning!(
                    "run {}: could not copy {} again at finish: {e}",
                    self.run_id,
                    src.display()
                );
            }
        }
        self.output_log.finish();
        let runtime = self.runtime_secs();
        self.write_record(records::runtime_summary(runtime));
        let info = self.stream_info();
        self.write_record(records::exit(exit_code, runtime, info));
        self.persist(Durability::SyncData);
        FinishOutcome {
            records: self.records,
            bytes: self.file.len(),
            rows: self.rows,
            out_of_order: self.out_of_order,
            error: if self.failed {
                self.shared.error()
            } else {
                None
            },
        }
    }
}

/// Whether a record from outside gets the run id as `_info.stream_id`, as the SDK does for the
/// records its client sends (not for stats, which wandb-core makes itself).
fn wants_stream_id(record: &proto::Record) -> bool {
    use proto::record::RecordType;
    !matches!(
        record.record_type,
        Some(RecordType::Stats(_) | RecordType::Environment(_))
    )
}

/// Whether a value is an object that must be logged as nested keys (empty objects are values).
fn is_nested_object(value: &json::Value) -> bool {
    matches!(value, json::Value::Object(map) if !map.is_empty())
}

/// Sets `value` at `path` in a tree of objects.
pub(crate) fn insert_path(root: &mut json::Map, path: &[String], value: json::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = root;
    for part in parents {
        if !matches!(current.get(part), Some(json::Value::Object(_))) {
            current.insert(part.clone(), json::Value::Object(json::Map::new()));
        }
        match current.get_mut(part) {
            Some(json::Value::Object(map)) => current = map,
            _ => return,
        }
    }
    current.insert(last.clone(), value);
}

/// Copies `src` to `dest`, creating `dest`'s folder.
fn copy_file(src: &Path, dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create folder in files/", e))?;
    }
    fs::copy(src, dest).map_err(|e| Error::io(src, "copy saved file into files/", e))?;
    Ok(())
}

/// Nanoseconds since the Unix epoch (0 before it).
pub(crate) fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

//! [`Run`], the handle training code logs through, and [`RunSink`], the handle other components
//! (system metrics, console capture) send records through.
//!
//! A run is created by `init`: it makes the run folder and the `.wandb` file, writes nothing
//! itself, and starts the run's writer thread (see `writer/mod.rs`). Every method sends a
//! command to that thread; the caller never does file I/O. `finish` (or dropping the `Run`)
//! writes the final records, syncs the file and joins the thread.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use serde::Serialize;
use wandb_format::json;
use wandb_format::proto::record::RecordType;
use wandb_format::{Durability, proto};
use wandb_settings::{RunPaths, Settings};

use crate::error::{Error, FinishError, Result};
use crate::fork;
use crate::media::FileMedia;
use crate::options::{
    Alert, Backpressure, LogOptions, Metric, SavePolicy, WriterOptions, config_map,
};
use crate::records;
use crate::registry;
use crate::resume::Resumed;
use crate::value::{Row, Value};
use crate::writer::{
    self, Command, FinishOutcome, FloatText, LogCmd, Query, ROW_POOL, RowBuf, SaveCmd, Shared,
    WorkerConfig,
};

/// What a finished run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FinishSummary {
    /// The run's id.
    pub run_id: String,
    /// The run folder (`None` for a disabled run).
    pub run_dir: Option<PathBuf>,
    /// The exit code recorded.
    pub exit_code: i32,
    /// Records in the `.wandb` file.
    pub records: u64,
    /// Size of the `.wandb` file in bytes.
    pub bytes: u64,
    /// History rows written.
    pub rows: u64,
    /// Rows dropped because the queue was full (only with a dropping [`Backpressure`]).
    pub dropped: u64,
    /// Rows dropped because their step was lower than the current step.
    pub out_of_order: u64,
}

/// The stream a chunk of console output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// State shared by a run's handles ([`Run`], [`RunSink`]), the setup, and the signal and panic
/// hooks.
pub(crate) struct RunCore {
    pub(crate) run_id: String,
    pub(crate) settings: Settings,
    paths: Option<RunPaths>,
    start_time: SystemTime,
    /// `start_time` in nanoseconds since the Unix epoch (for `_runtime`).
    start_ns: u64,
    fork_gen: u64,
    tx: Option<Sender<Command>>,
    pool: Option<Receiver<RowBuf>>,
    writer_thread: Option<thread::Thread>,
    join: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    backpressure: Backpressure,
    finishing: AtomicBool,
    finish_result: Mutex<Option<std::result::Result<FinishSummary, FinishError>>>,
    attachments: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    pub(crate) handle_sigterm: bool,
    /// Config keys set by the sweep or the launch config, with which (`"sweep"`, `"launch"`):
    /// updates to them are ignored (see `launch.rs`, `sweep.rs`).
    locked_config: BTreeMap<String, &'static str>,
    /// For a resumed run, the first step of this fragment.
    starting_step: Option<u64>,
}

impl fmt::Debug for RunCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunCore")
            .field("run_id", &self.run_id)
            .field("run_dir", &self.paths.as_ref().map(|p| &p.run_dir))
            .field("finishing", &self.finishing)
            .finish_non_exhaustive()
    }
}

/// Everything `Setup::init` hands over to start a run.
pub(crate) struct StartArgs {
    pub(crate) settings: Settings,
    pub(crate) start_time: SystemTime,
    pub(crate) config: json::Map,
    pub(crate) writer: WriterOptions,
    pub(crate) handle_sigterm: bool,
    /// Builds records written right after the run record (the environment), on the writer
    /// thread.
    pub(crate) deferred: Option<Box<dyn FnOnce() -> Vec<proto::Record> + Send>>,
    /// Config keys the sweep or the launch config locked, with which.
    pub(crate) locked_config: BTreeMap<String, &'static str>,
    /// What a resumed run continues from (see `resume.rs`).
    pub(crate) resumed: Option<Resumed>,
}

impl RunCore {
    /// A run that does nothing (`mode = "disabled"`).
    pub(crate) fn disabled(settings: Settings) -> Arc<RunCore> {
        let run_id = settings.run_id_or_generate();
        Arc::new(RunCore {
            run_id,
            settings,
            paths: None,
            start_time: SystemTime::now(),
            start_ns: 0,
            fork_gen: fork::generation(),
            tx: None,
            pool: None,
            writer_thread: None,
            join: Mutex::new(None),
            shared: Arc::new(Shared::default()),
            backpressure: Backpressure::Block,
            finishing: AtomicBool::new(false),
            finish_result: Mutex::new(None),
            attachments: Mutex::new(Vec::new()),
            handle_sigterm: false,
            locked_config: BTreeMap::new(),
            starting_step: None,
        })
    }

    /// Creates the run folder and file and starts the writer thread.
    pub(crate) fn start(args: StartArgs) -> Result<Arc<RunCore>> {
        let StartArgs {
            settings,
            start_time,
            config,
            writer: writer_options,
            handle_sigterm,
            deferred,
            locked_config,
            resumed,
        } = args;
        let run_id = settings.run_id_or_generate();
        let mut settings = settings;
        let mut paths = settings.run_paths(&run_id, start_time);
        // Two starts of one run id within a second (a quick resume) would share a folder name:
        // the SDK adds a numbered suffix then, and so do we.
        let base_suffix = settings.x_sync_dir_suffix.clone();
        let mut index = 1;
        while paths.run_dir.exists() {
            settings.x_sync_dir_suffix = if base_suffix.is_empty() {
                index.to_string()
            } else {
                format!("{base_suffix}-{index}")
            };
            paths = settings.run_paths(&run_id, start_time);
            index += 1;
        }
        for dir in [&paths.files_dir, &paths.logs_dir] {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create run directory", e))?;
        }
        let file = wandb_format::Writer::create(&paths.transaction_log).map_err(Error::write)?;
        link_latest_run(&settings.wandb_dir, &paths.run_dir);

        let mut run_record = records::run(&run_id, &settings, start_time, &config);
        let carried_metrics = resumed
            .as_ref()
            .map(|resumed| resumed.metrics.clone())
            .unwrap_or_default();
        let (first_step, runtime_offset, carried_summary) = match &resumed {
            Some(resumed) => {
                if let Some(RecordType::Run(run)) = &mut run_record.record_type {
                    run.resumed = true;
                    run.resume = true;
                    run.starting_step = i64::try_from(resumed.next_step).unwrap_or(i64::MAX);
                    run.runtime = i32::try_from(resumed.runtime.as_secs()).unwrap_or(i32::MAX);
                }
                (resumed.next_step, resumed.runtime, resumed.summary.clone())
            }
            None => (0, Duration::ZERO, json::Map::new()),
        };
        // `_runtime` continues from the run time the earlier fragments reached.
        let runtime_start = start_time.checked_sub(runtime_offset).unwrap_or(start_time);
        let initial = vec![records::header(&run_id), run_record];
        let shared = Arc::new(Shared::default());
        let backpressure = writer_options.backpressure;
        let (pool_tx, pool_rx) = crossbeam_channel::bounded(ROW_POOL);
        let (tx, join) = writer::spawn(
            file,
            WorkerConfig {
                run_id: run_id.clone(),
                files_dir: paths.files_dir.clone(),
                start: runtime_start,
                options: writer_options,
                initial,
                deferred,
                pool: pool_tx,
                first_step,
                carried_summary,
                carried_metrics,
            },
            Arc::clone(&shared),
        )?;
        let writer_thread = join.thread().clone();
        let core = Arc::new(RunCore {
            run_id,
            settings,
            paths: Some(paths),
            start_time,
            start_ns: writer::unix_nanos(runtime_start),
            fork_gen: fork::generation(),
            tx: Some(tx),
            pool: Some(pool_rx),
            writer_thread: Some(writer_thread),
            join: Mutex::new(Some(join)),
            shared,
            backpressure,
            finishing: AtomicBool::new(false),
            finish_result: Mutex::new(None),
            attachments: Mutex::new(Vec::new()),
            handle_sigterm,
            locked_config,
            starting_step: resumed.as_ref().map(|r| r.next_step),
        });
        registry::register(&core);
        Ok(core)
    }

    /// Whether the sweep or the launch config locked config key `key` (warns once per call if
    /// so, naming which, as W&B's `Config item 'lr' was locked by 'sweep' (ignored update).`).
    fn is_locked(&self, key: &str) -> bool {
        let by = self.locked_config.get(key);
        if let Some(by) = by {
            crate::diag::warning!("config item {key:?} was locked by {by} (ignored update)");
        }
        by.is_some()
    }

    /// Whether this is a no-op run.
    pub(crate) fn is_disabled(&self) -> bool {
        self.tx.is_none()
    }

    /// Whether the run was created in another process (this one is a forked child).
    pub(crate) fn is_foreign(&self) -> bool {
        self.fork_gen != fork::generation()
    }

    /// Whether `finish` has started.
    pub(crate) fn is_finishing(&self) -> bool {
        self.finishing.load(Ordering::Acquire)
    }

    /// Runs `stop` when the run finishes (before the final records are written).
    pub(crate) fn attach(&self, stop: Box<dyn FnOnce() + Send>) {
        self.attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stop);
    }

    /// The checks every call makes: right process, writer healthy, run not finished.
    #[inline]
    fn check(&self) -> Result<()> {
        if self.fork_gen != fork::generation() {
            return Err(Error::ForkedChild {
                run_id: self.run_id.clone(),
            });
        }
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        if self.finishing.load(Ordering::Acquire) {
            return Err(Error::Finished {
                run_id: self.run_id.clone(),
            });
        }
        Ok(())
    }

    /// Why the channel to the writer is closed.
    fn closed_error(&self) -> Error {
        if let Some(error) = self.shared.error() {
            return error;
        }
        if self.finishing.load(Ordering::Acquire) {
            return Error::Finished {
                run_id: self.run_id.clone(),
            };
        }
        Error::WriterGone {
            run_id: self.run_id.clone(),
        }
    }

    /// Sends a command that must not be dropped.
    pub(crate) fn send(&self, cmd: Command) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        self.check()?;
        tx.send(cmd).map_err(|_| self.closed_error())
    }

    /// Sends a command, waiting at most `timeout` for room in the queue.
    pub(crate) fn send_timeout(&self, cmd: Command, timeout: Duration) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        self.check()?;
        match tx.send_timeout(cmd, timeout) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(SendTimeoutError::Disconnected(_)) => Err(self.closed_error()),
        }
    }

    /// Sends a history row under the backpressure policy.
    #[inline]
    fn send_row(&self, cmd: Command) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        self.check()?;
        match self.backpressure {
            Backpressure::Block => match tx.try_send(cmd) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(cmd)) => {
                    wait_for_room(tx, || self.writer_running());
                    tx.send(cmd).map_err(|_| self.closed_error())
                }
                Err(TrySendError::Disconnected(_)) => Err(self.closed_error()),
            },
            Backpressure::BlockFor(wait) => match tx.send_timeout(cmd, wait) {
                Ok(()) => Ok(()),
                Err(SendTimeoutError::Timeout(_)) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(SendTimeoutError::Disconnected(_)) => Err(self.closed_error()),
            },
            Backpressure::Drop => match tx.try_send(cmd) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(TrySendError::Disconnected(_)) => Err(self.closed_error()),
            },
        }
    }

    /// Whether the writer has fallen behind: a quarter of its queue is waiting.
    #[inline]
    fn writer_behind(&self) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.len() >= tx.capacity().unwrap_or(usize::MAX) / 4)
    }

    /// Whether the writer thread is still running (it stops only after `finish`, or by a bug).
    fn writer_running(&self) -> bool {
        match self.join.lock() {
            Ok(join) => join.as_ref().is_some_and(|handle| !handle.is_finished()),
            Err(_) => false,
        }
    }

    /// Sends a command built around a reply channel and waits for the answer.
    fn request<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<Option<T>> {
        if self.tx.is_none() {
            return Ok(None);
        }
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.send(make(reply_tx))?;
        self.wake_writer();
        reply_rx.recv().map(Some).map_err(|_| self.closed_error())
    }

    /// Cuts the writer's post-burst pause short (for barriers).
    fn wake_writer(&self) {
        if let Some(thread) = &self.writer_thread {
            thread.unpark();
        }
    }

    /// Waits until everything sent before is written as far as `durability` says.
    pub(crate) fn flush(&self, durability: Durability) -> Result<()> {
        match self.request(|reply| Command::Flush { durability, reply })? {
            Some(result) => result,
            None => Ok(()),
        }
    }

    /// Like `flush`, but gives up after `timeout` (for the panic hook).
    pub(crate) fn flush_with_timeout(&self, timeout: Duration) {
        let Some(tx) = &self.tx else {
            return;
        };
        if self.check().is_err() {
            return;
        }
        let (reply, reply_rx) = crossbeam_channel::bounded(1);
        let cmd = Command::Flush {
            durability: Durability::Flush,
            reply,
        };
        if tx.send_timeout(cmd, timeout).is_ok() {
            self.wake_writer();
            let _ = reply_rx.recv_timeout(timeout);
        }
    }

    /// SIGTERM: writes a preempting record (and, when the process is about to die, the pending
    /// row), syncs, and waits at most `timeout`. Returns whether the writer acknowledged it in
    /// time (a writer that did not may be stuck on the disk: finishing would wait on it too).
    pub(crate) fn preempt(&self, terminate: bool, timeout: Duration) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        if self.check().is_err() {
            return false;
        }
        let (reply, reply_rx) = crossbeam_channel::bounded(1);
        if tx
            .send_timeout(Command::Preempt { terminate, reply }, timeout)
            .is_ok()
        {
            self.wake_writer();
            return reply_rx.recv_timeout(timeout).is_ok();
        }
        false
    }

    /// Finishes the run once; later calls return the first outcome.
    pub(crate) fn finish(&self, exit_code: i32) -> std::result::Result<FinishSummary, FinishError> {
        if self.is_foreign() {
            return Err(FinishError {
                summary: Box::new(self.empty_summary(exit_code)),
                error: Error::ForkedChild {
                    run_id: self.run_id.clone(),
                },
            });
        }
        let mut slot = self
            .finish_result
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(result) = slot.as_ref() {
            return result.clone();
        }
        let result = self.finish_now(exit_code);
        *slot = Some(result.clone());
        result
    }

    /// `finish` from a hook: gives up instead of waiting if another thread is finishing.
    pub(crate) fn finish_from_hook(&self, exit_code: i32) {
        if self.is_foreign() {
            return;
        }
        if let Ok(mut slot) = self.finish_result.try_lock()
            && slot.is_none()
        {
            *slot = Some(self.finish_now(exit_code));
        }
    }

    fn empty_summary(&self, exit_code: i32) -> FinishSummary {
        FinishSummary {
            run_id: self.run_id.clone(),
            run_dir: self.paths.as_ref().map(|p| p.run_dir.clone()),
            exit_code,
            ..Default::default()
        }
    }

    fn finish_now(&self, exit_code: i32) -> std::result::Result<FinishSummary, FinishError> {
        let attachments = std::mem::take(
            &mut *self
                .attachments
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for stop in attachments {
            stop();
        }
        let mut summary = self.empty_summary(exit_code);
        let Some(tx) = &self.tx else {
            self.finishing.store(true, Ordering::Release);
            return Ok(summary);
        };
        let (reply, reply_rx) = crossbeam_channel::bounded(1);
        // Anything sent before this point is written before the exit record (the queue is
        // FIFO); anything after is refused with `Finished`.
        let sent = tx.send(Command::Finish { exit_code, reply });
        self.finishing.store(true, Ordering::Release);
        self.wake_writer();
        let outcome = match sent {
            Ok(()) => reply_rx.recv().ok(),
            Err(_) => None,
        };
        if let Some(join) = self
            .join
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = join.join();
        }
        registry::unregister(self);
        summary.dropped = self.shared.dropped.load(Ordering::Relaxed);
        let error = match outcome {
            Some(FinishOutcome {
                records,
                bytes,
                rows,
                out_of_order,
                error,
            }) => {
                summary.records = records;
                summary.bytes = bytes;
                summary.rows = rows;
                summary.out_of_order = out_of_order;
                error
            }
            None => Some(self.shared.error().unwrap_or(Error::WriterGone {
                run_id: self.run_id.clone(),
            })),
        };
        if exit_code == 0 && error.is_none() {
            crate::resume::finished_cleanly(&self.settings.resume_file(), &self.run_id);
        }
        match error {
            None => Ok(summary),
            Some(error) => Err(FinishError {
                summary: Box::new(summary),
                error,
            }),
        }
    }
}

/// Points `<wandb_dir>/latest-run` at the run folder: a relative symlink created as
/// `latest-run.<pid>` and renamed over the old one, as W&B does. Failures only cost the
/// convenience link, so they are logged, not returned.
fn link_latest_run(wandb_dir: &Path, run_dir: &Path) {
    #[cfg(unix)]
    {
        let Some(name) = run_dir.file_name() else {
            return;
        };
        let tmp = wandb_dir.join(format!("latest-run.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let result = std::os::unix::fs::symlink(name, &tmp)
            .and_then(|()| fs::rename(&tmp, wandb_dir.join("latest-run")));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            log::debug!("could not update {}/latest-run: {e}", wandb_dir.display());
        }
    }
    #[cfg(not(unix))]
    let _ = (wandb_dir, run_dir);
}

/// Nanoseconds since the Unix epoch, now.
#[inline]
/// Sleeps until the writer has emptied half of the full queue `tx`, or `running` says it has
/// stopped.
///
/// Waiting for one free slot at a time would have the producer spin on every row while the queue
/// is full, taking CPU time the writer needs (on two cores, or on two hyperthreads of one core,
/// that slows the writer down by as much as a third). Sleeping in short naps until half the queue
/// is free costs the producer no CPU, and the writer still has thousands of rows to work on
/// when the producer comes back.
#[cold]
fn wait_for_room(tx: &Sender<Command>, running: impl Fn() -> bool) {
    let capacity = tx.capacity().unwrap_or(0);
    while tx.len() > capacity / 2 && running() {
        thread::sleep(ROOM_NAP);
    }
}

/// One nap of [`wait_for_room`]: a few hundred rows of writer work.
const ROOM_NAP: Duration = Duration::from_micros(200);

fn now_ns() -> u64 {
    writer::unix_nanos(SystemTime::now())
}

/// A key path from a top-level key.
fn key_path(key: &str) -> Vec<String> {
    vec![key.to_owned()]
}

/// A run being logged to: created by [`crate::init`], finished by [`Run::finish`] or when
/// dropped.
///
/// Every method is cheap on the calling thread: it validates, builds a command and queues it
/// for the run's writer thread. Errors from the writer (a full disk, a read-only folder) come
/// back from the next call and from `finish`; everything written before them stays readable.
/// A `Run` can be shared between threads (`&Run` is enough to log).
///
/// Dropping an unfinished run finishes it, with exit code 1 if the thread is panicking. In a
/// forked child, a run inherited from the parent refuses every call with
/// [`Error::ForkedChild`] and is never finished by the child.
#[must_use = "dropping a Run finishes it at once"]
pub struct Run {
    core: Arc<RunCore>,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("id", &self.core.run_id)
            .field("dir", &self.dir())
            .finish()
    }
}

impl Run {
    pub(crate) fn from_core(core: Arc<RunCore>) -> Run {
        Run { core }
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.core.run_id
    }

    /// The run folder, `<dir>/wandb/offline-run-<time>-<id>` (`None` when disabled).
    pub fn dir(&self) -> Option<&Path> {
        self.core.paths.as_ref().map(|p| p.run_dir.as_path())
    }

    /// The run's `.wandb` file (`None` when disabled).
    pub fn log_path(&self) -> Option<&Path> {
        self.core
            .paths
            .as_ref()
            .map(|p| p.transaction_log.as_path())
    }

    /// The run's `files/` folder (`None` when disabled).
    pub fn files_dir(&self) -> Option<&Path> {
        self.core.paths.as_ref().map(|p| p.files_dir.as_path())
    }

    /// Whether this run continues earlier fragments of its run id (see `resume` in
    /// [`crate::InitOptions::resume`]).
    pub fn resumed(&self) -> bool {
        self.core.starting_step.is_some()
    }

    /// The first step of this fragment: the step after the last one the earlier fragments
    /// wrote for a resumed run, 0 otherwise.
    pub fn starting_step(&self) -> u64 {
        self.core.starting_step.unwrap_or(0)
    }

    /// The settings the run was started with.
    pub fn settings(&self) -> &Settings {
        &self.core.settings
    }

    /// When the run started.
    pub fn start_time(&self) -> SystemTime {
        self.core.start_time
    }

    /// Whether the run is a no-op (`mode = "disabled"`).
    pub fn is_disabled(&self) -> bool {
        self.core.is_disabled()
    }

    /// Logs a row at the current step and advances the step (W&B's `run.log(row)`).
    ///
    /// # Errors
    ///
    /// The writer's first failure, [`Error::Finished`], or [`Error::ForkedChild`].
    #[inline]
    pub fn log(&self, row: impl Into<Row>) -> Result<()> {
        self.log_with(row, LogOptions::new())
    }

    /// Logs values for step `step` without committing: they are written when a later call
    /// moves past the step, commits, or the run finishes (W&B's `run.log(row, step=step)`).
    #[inline]
    pub fn log_at(&self, step: u64, row: impl Into<Row>) -> Result<()> {
        self.log_with(row, LogOptions::new().step(step))
    }

    /// Logs with explicit step and commit options; see [`LogOptions`] for the rules.
    #[inline]
    pub fn log_with(&self, row: impl Into<Row>, options: LogOptions) -> Result<()> {
        if self.core.is_disabled() {
            return Ok(());
        }
        let mut entries = row.into().entries;
        // Reuse a buffer the writer has emptied; the caller's own vector is freed here, on the
        // thread that allocated it.
        let mut buf = match &self.core.pool {
            Some(pool) => pool.try_recv().unwrap_or_default(),
            None => RowBuf::new(),
        };
        buf.reserve(entries.len());
        let time_ns = now_ns();
        let (time_text, runtime_text) = if self.core.writer_behind() {
            // Share the formatting with the writer while it is behind: see `FloatText`.
            buf.extend(
                entries
                    .drain(..)
                    .map(|(key, value)| (key, value, FloatText::NONE)),
            );
            FloatText::format_row(&mut buf);
            (
                FloatText::of_f64(time_ns as f64 / 1e9),
                FloatText::of_f64(time_ns.saturating_sub(self.core.start_ns) as f64 / 1e9),
            )
        } else {
            buf.extend(
                entries
                    .drain(..)
                    .map(|(key, value)| (key, value, FloatText::NONE)),
            );
            (FloatText::NONE, FloatText::NONE)
        };
        let cmd = Command::Log(LogCmd {
            row: buf,
            step: options.step,
            commit: options.commit,
            time_ns,
            time_text,
            runtime_text,
        });
        self.core.send_row(cmd)
    }

    /// Logs any value that serializes as a map or struct, each field a key (nested structs and
    /// maps become nested keys).
    pub fn log_serialize<T: Serialize + ?Sized>(&self, row: &T) -> Result<()> {
        if self.core.is_disabled() {
            return Ok(());
        }
        self.log(Row::serialize(row)?)
    }

    /// Stores a media file (an [`Image`](crate::media::Image) or a
    /// [`Table`](crate::media::Table)) logged under `key` at the current step, and returns the
    /// value to log under `key` (see [`crate::media`]). Log it in the next call, before
    /// anything else moves the step.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a key that cannot name a file, the writer's first
    /// failure, [`Error::Finished`], or [`Error::ForkedChild`].
    pub fn media(&self, key: &str, media: &dyn FileMedia) -> Result<Value> {
        let step = self.step()?;
        self.media_at(key, step, media)
    }

    /// [`Run::media`] for a known step (the step the value is logged at: the `step` of
    /// [`Run::log_at`], or the current step).
    pub fn media_at(&self, key: &str, step: u64, media: &dyn FileMedia) -> Result<Value> {
        use crate::media::artifact::{RunNames, RunTable};
        let rel = crate::media::media_path(key, step, media)?;
        let paths = self
            .core
            .paths
            .as_ref()
            .filter(|_| !self.core.is_disabled());
        let value = match (media.as_table(), paths) {
            (Some(table), Some(paths)) => {
                // As the SDK: the table is also a `run_table` artifact, written first.
                let settings = &self.core.settings;
                let names = RunNames {
                    run_id: &self.core.run_id,
                    project: settings.project.as_deref().unwrap_or_default(),
                    entity: settings.entity.as_deref().unwrap_or_default(),
                    run_dir: &paths.run_dir,
                };
                let artifact = RunTable::new(&names, key, table);
                let value = table.value_with_artifact(
                    &rel,
                    artifact.artifact_path,
                    artifact.latest_artifact_path,
                );
                self.core.send(Command::Artifact {
                    staged: artifact.staged,
                    bytes: artifact.bytes,
                    record: Box::new(artifact.record),
                })?;
                Value::from(value)
            }
            _ => Value::from(media.value_for(&rel)),
        };
        if !self.core.is_disabled() {
            self.core.send(Command::MediaFile {
                rel,
                bytes: Arc::clone(media.bytes()),
            })?;
        }
        Ok(value)
    }

    /// The current step (the step the next committed row gets).
    pub fn step(&self) -> Result<u64> {
        Ok(self
            .core
            .request(|r| Command::Query(Query::Step(r)))?
            .map_or(0, |s| s))
    }

    /// The whole summary: the latest value (or the `define_metric` statistics) of every key,
    /// and the values set explicitly.
    pub fn summary(&self) -> Result<json::Map> {
        Ok(self
            .core
            .request(|r| Command::Query(Query::Summary(r)))?
            .unwrap_or_default())
    }

    /// The summary value of a top-level key.
    pub fn summary_get(&self, key: &str) -> Result<Option<json::Value>> {
        self.summary_get_path(&[key])
    }

    /// The summary value at a nested key path.
    pub fn summary_get_path(&self, path: &[&str]) -> Result<Option<json::Value>> {
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        Ok(self
            .core
            .request(|reply| Command::Query(Query::SummaryGet(path, reply)))?
            .flatten())
    }

    /// Sets a summary value explicitly (it replaces the derived value and its statistics
    /// until the key is logged again).
    pub fn summary_set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let value = json::to_value(value).map_err(|source| Error::Serialize { source })?;
        self.core
            .send(Command::SummarySet(vec![(key_path(key), value)]))
    }

    /// Sets several top-level summary values from a map or struct.
    pub fn summary_update<T: Serialize + ?Sized>(&self, values: &T) -> Result<()> {
        let map = config_map(values)?;
        if map.is_empty() {
            return Ok(());
        }
        let items = map.into_iter().map(|(k, v)| (vec![k], v)).collect();
        self.core.send(Command::SummarySet(items))
    }

    /// Removes a top-level key from the summary.
    pub fn summary_remove(&self, key: &str) -> Result<()> {
        self.core.send(Command::SummaryRemove(vec![key_path(key)]))
    }

    /// Updates the config from a map or struct (values are stored as plain JSON).
    ///
    /// Keys the launch config set are locked: their updates are ignored with a warning, as in
    /// W&B.
    pub fn config_update<T: Serialize + ?Sized>(&self, values: &T) -> Result<()> {
        let mut update = config_map(values)?;
        if !self.core.locked_config.is_empty() {
            let locked: Vec<String> = update
                .keys()
                .filter(|key| self.core.is_locked(key))
                .map(str::to_owned)
                .collect();
            for key in locked {
                update.remove(&key);
            }
        }
        self.core.send(Command::Config {
            update,
            remove: Vec::new(),
        })
    }

    /// Sets one config value.
    ///
    /// A key the launch config set is locked: the value is ignored with a warning, as in W&B.
    pub fn config_set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        if self.core.is_locked(key) {
            return Ok(());
        }
        let value = json::to_value(value).map_err(|source| Error::Serialize { source })?;
        let mut update = json::Map::new();
        update.insert(key, value);
        self.core.send(Command::Config {
            update,
            remove: Vec::new(),
        })
    }

    /// Removes a config key.
    pub fn config_remove(&self, key: &str) -> Result<()> {
        self.core.send(Command::Config {
            update: json::Map::new(),
            remove: vec![key.to_owned()],
        })
    }

    /// Defines a metric: its step metric, summary statistics, goal and visibility.
    pub fn define_metric(&self, metric: Metric) -> Result<()> {
        metric.validate()?;
        self.core.send(Command::Metric(Box::new(metric)))
    }

    /// Records an alert (sent to W&B when the run is synced).
    pub fn alert(&self, alert: Alert) -> Result<()> {
        let record = records::wrap(proto::record::RecordType::Alert(alert.to_record()));
        self.core.send(Command::Record(Box::new(record)))
    }

    /// Saves a file with the run: copies it into `files/<file name>` and records it for upload.
    /// `End` and `Live` files are copied again when the run finishes, so the last version is
    /// uploaded. Returns the copy's path.
    pub fn save(&self, path: impl AsRef<Path>, policy: SavePolicy) -> Result<PathBuf> {
        let path = path.as_ref();
        let rel = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::InvalidArgument {
                what: "path to save",
                reason: format!("{} has no file name", path.display()),
            })?;
        self.save_as(path, &rel, policy)
    }

    /// Saves a file under its path relative to `base` (W&B's `base_path`): `save_relative(
    /// "out/sub/a.txt", "out", ...)` stores `files/sub/a.txt`.
    pub fn save_relative(
        &self,
        path: impl AsRef<Path>,
        base: impl AsRef<Path>,
        policy: SavePolicy,
    ) -> Result<PathBuf> {
        let (path, base) = (path.as_ref(), base.as_ref());
        let absolute =
            |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, "resolve path", e));
        let (abs_path, abs_base) = (absolute(path)?, absolute(base)?);
        let rel = abs_path
            .strip_prefix(&abs_base)
            .map_err(|_| Error::InvalidArgument {
                what: "path to save",
                reason: format!("{} is not inside {}", path.display(), base.display()),
            })?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.is_empty() || parts.iter().any(|p| p == "..") {
            return Err(Error::InvalidArgument {
                what: "path to save",
                reason: format!("{} is not a file inside {}", path.display(), base.display()),
            });
        }
        self.save_as(&abs_path, &parts.join("/"), policy)
    }

    fn save_as(&self, src: &Path, rel: &str, policy: SavePolicy) -> Result<PathBuf> {
        let src = src.to_path_buf();
        let rel = rel.to_owned();
        match self.core.request(|reply| {
            Command::Save(SaveCmd {
                src,
                rel,
                policy,
                reply,
            })
        })? {
            Some(result) => result,
            None => Ok(PathBuf::new()),
        }
    }

    /// Records that the run is about to be preempted (W&B's `mark_preempting`).
    pub fn mark_preempting(&self) -> Result<()> {
        let record = records::preempting(records::stream_info(&self.core.run_id));
        self.core.send(Command::Record(Box::new(record)))
    }

    /// Waits until everything logged so far is handed to the operating system (it then
    /// survives a crash of this process).
    pub fn flush(&self) -> Result<()> {
        self.core.flush(Durability::Flush)
    }

    /// Waits until everything logged so far is on disk (`fdatasync`; it then survives a power
    /// loss).
    pub fn sync(&self) -> Result<()> {
        self.core.flush(Durability::SyncData)
    }

    /// A handle for other components to send records into this run.
    pub fn sink(&self) -> RunSink {
        RunSink {
            core: Arc::clone(&self.core),
        }
    }

    /// Rows dropped so far because the queue was full (only with a dropping
    /// [`Backpressure`]).
    pub fn dropped(&self) -> u64 {
        self.core.shared.dropped.load(Ordering::Relaxed)
    }

    /// The writer's first error, if it failed.
    pub fn error(&self) -> Option<Error> {
        self.core.shared.error()
    }

    /// Finishes the run with exit code 0: writes the pending row, the final summary and the
    /// exit record, syncs the file and stops the writer.
    ///
    /// # Errors
    ///
    /// A [`FinishError`] holding the first error the run met and what was written anyway.
    pub fn finish(self) -> std::result::Result<FinishSummary, FinishError> {
        self.finish_with_code(0)
    }

    /// Finishes the run with an exit code (non-zero marks the run failed).
    pub fn finish_with_code(
        self,
        exit_code: i32,
    ) -> std::result::Result<FinishSummary, FinishError> {
        self.core.finish(exit_code)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.core.is_foreign() || self.core.is_disabled() {
            return;
        }
        let exit_code = i32::from(thread::panicking());
        if let Err(e) = self.core.finish(exit_code) {
            crate::diag::report_error!("{e}");
        }
    }
}

/// A cloneable handle that sends records into a run's queue: what system-metrics sampling and
/// console capture use. Records are numbered and written in the order they arrive.
#[derive(Clone)]
pub struct RunSink {
    core: Arc<RunCore>,
}

impl fmt::Debug for RunSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunSink")
            .field("run_id", &self.core.run_id)
            .finish()
    }
}

impl RunSink {
    pub(crate) fn from_core(core: Arc<RunCore>) -> RunSink {
        RunSink { core }
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.core.run_id
    }

    /// The run's settings.
    pub fn settings(&self) -> &Settings {
        &self.core.settings
    }

    /// Whether the run has finished (or is finishing); sends then fail with
    /// [`Error::Finished`].
    pub fn is_closed(&self) -> bool {
        self.core.is_finishing() || self.core.is_disabled()
    }

    /// Sends any record (its `num` is set by the writer). Waits if the queue is full.
    pub fn send(&self, record: proto::Record) -> Result<()> {
        self.core.send(Command::Record(Box::new(record)))
    }

    /// Sends a record, waiting at most `timeout` for room in the queue (then it is dropped and
    /// counted).
    pub(crate) fn send_timeout(&self, record: proto::Record, timeout: Duration) -> Result<()> {
        self.core
            .send_timeout(Command::Record(Box::new(record)), timeout)
    }

    /// Identifies the run this sink feeds.
    pub(crate) fn core_ptr(&self) -> usize {
        Arc::as_ptr(&self.core) as usize
    }

    /// Sends a chunk of console output as an `output_raw` record, stamped now.
    pub fn output(&self, stream: OutputStream, text: &str) -> Result<()> {
        self.send(records::output_raw(
            stream == OutputStream::Stdout,
            text,
            SystemTime::now(),
        ))
    }

    /// Sends a system metrics sample as a `stats` record, stamped now.
    pub fn stats<I, K>(&self, items: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        let item = items
            .into_iter()
            .map(|(key, value)| {
                let mut value_json = String::new();
                writer::encode::write_value(&value, &mut value_json);
                proto::StatsItem {
                    key: key.into(),
                    value_json,
                }
            })
            .collect();
        self.send(records::wrap(proto::record::RecordType::Stats(
            proto::StatsRecord {
                timestamp: Some(records::timestamp(SystemTime::now())),
                item,
                ..Default::default()
            },
        )))
    }

    /// Runs `stop` when the run finishes, before its final records are written (to stop a
    /// sampler thread or console capture feeding this sink).
    pub fn on_finish(&self, stop: impl FnOnce() + Send + 'static) {
        self.core.attach(Box::new(stop));
    }
}

//! Where a run meets the components that feed it from outside the training thread: the machine
//! snapshot and system metrics sampler (`system/`) and console capture (`console.rs`). Each
//! sends records through a [`RunSink`] and is stopped by a hook that runs when the run
//! finishes, before the run's final records.
//!
//! * **Environment.** Built on the writer thread right after the run record (git detection can
//!   take a moment), so `init` stays fast. The GPU part, if any, comes later from the sampler,
//!   with the same writer id, as in the SDK's files.
//! * **System metrics.** One sampler thread per run, every `x_stats_sampling_interval` seconds
//!   (15 by default), unless `x_disable_stats`.
//! * **Console.** Capture is process-wide (file descriptors 1 and 2), so one capture is shared:
//!   every chunk goes to every live run whose `console` setting is not `off`. The capture
//!   starts with the first such run and stops (draining what was written) when the last one
//!   finishes. Every capture method W&B names (`wrap`, `redirect`, `wrap_raw`, `wrap_emu`)
//!   means this fd-level capture here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wandb_format::proto;
use wandb_format::proto::record::RecordType;
use wandb_settings::{Console, Settings};

use crate::console::{ConsoleCapture, OutputDecoder, Sink};
use crate::fork;
use crate::records;
use crate::run::{RunCore, RunSink};
use crate::system::{
    EnvironmentInputs, MonitorConfig, SystemMonitor, SystemRecord, default_disk_paths,
    environment_record, spawn_sampler,
};

/// How long a console chunk may wait for room in a run's queue before it is dropped. Output
/// must never wait forever: the writer itself may be blocked writing a log line to the very
/// stderr pipe whose reader is waiting.
const CONSOLE_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// This process's writer id (W&B uses a UUIDv7 per process): ties the environment record to
/// the GPU record the sampler sends.
pub(crate) fn writer_id() -> String {
    static ID: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let generation = fork::generation();
    let mut id = ID.lock().unwrap_or_else(PoisonError::into_inner);
    match id.as_ref() {
        Some((id_generation, value)) if *id_generation == generation => value.clone(),
        _ => {
            // First use, or a forked child: a new writer.
            let value = new_uuid_v7();
            *id = Some((generation, value.clone()));
            value
        }
    }
}

/// A UUIDv7-shaped id: 48 bits of milliseconds, then random bits from the standard library's
/// per-process random hasher keys.
fn new_uuid_v7() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut random = [0u64; 2];
    for (i, slot) in random.iter_mut().enumerate() {
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        hasher.write_usize(i);
        *slot = hasher.finish();
    }
    let rand_a = random[0] & 0x0fff;
    let rand_b = (random[1] & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        millis >> 16,
        millis & 0xffff,
        rand_a,
        rand_b >> 48,
        rand_b & 0xffff_ffff_ffff
    )
}

/// Records written right after the run record: the machine snapshot, built on the writer
/// thread.
pub(crate) fn deferred_records(
    settings: &Settings,
    start: SystemTime,
) -> Option<Box<dyn FnOnce() -> Vec<proto::Record> + Send>> {
    let root = settings.root_dir.clone();
    let host = settings.host.clone();
    let program = settings.program.clone();
    let writer_id = writer_id();
    Some(Box::new(move || {
        let disk_paths = default_disk_paths();
        let mut inputs = EnvironmentInputs::new(&writer_id, start, &root, &disk_paths);
        inputs.host = Some(&host);
        inputs.program = program.as_deref();
        let environment = environment_record(&inputs);
        vec![records::wrap(RecordType::Environment(environment))]
    }))
}

/// Starts what feeds a new run: the system metrics sampler and console capture.
pub(crate) fn attach(core: &Arc<RunCore>) {
    if !core.settings.x_disable_stats {
        start_sampler(core);
    }
    if core.settings.console != Console::Off {
        join_console(core);
    }
}

fn start_sampler(core: &Arc<RunCore>) {
    let sink = RunSink::from_core(Arc::clone(core));
    let monitor = SystemMonitor::new(MonitorConfig::new(writer_id()));
    let interval = core.settings.stats_sampling_interval();
    let handle = spawn_sampler(interval, monitor, move |record| {
        let record = match record {
            SystemRecord::Stats(stats) => records::wrap(RecordType::Stats(stats)),
            SystemRecord::Environment(environment) => {
                records::wrap(RecordType::Environment(*environment))
            }
        };
        // After finish the run refuses records; the sampler is being stopped anyway.
        let _ = sink.send(record);
    });
    match handle {
        Ok(handle) => core.attach(Box::new(move || handle.stop())),
        Err(e) => crate::diag::warning!("run {}: no system metrics: {e}", core.run_id),
    }
}

/// The shared console capture and the runs it feeds.
struct ConsoleFanout {
    capture: Option<ConsoleCapture>,
    runs: Arc<RwLock<Vec<RunSink>>>,
    decoder: Arc<Mutex<OutputDecoder>>,
    generation: u64,
}

static CONSOLE: Mutex<Option<ConsoleFanout>> = Mutex::new(None);

fn join_console(core: &Arc<RunCore>) {
    let mut state = CONSOLE.lock().unwrap_or_else(PoisonError::into_inner);
    if state
        .as_ref()
        .is_some_and(|fanout| fanout.generation != fork::generation())
    {
        // Inherited from the parent through fork: put the descriptors back and start anew.
        if let Some(fanout) = state.take()
            && let Some(capture) = fanout.capture
        {
            let _ = capture.stop();
        }
    }
    if state.is_none() {
        let runs: Arc<RwLock<Vec<RunSink>>> = Arc::new(RwLock::new(Vec::new()));
        let decoder = Arc::new(Mutex::new(OutputDecoder::default()));
        let sink_decoder = Arc::clone(&decoder);
        let sink_runs = Arc::clone(&runs);
        // Runs on the capture's reader threads: never print or log here.
        let sink: Sink = Arc::new(move |stream, bytes, time| {
            let record = sink_decoder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(stream, bytes, time);
            let Some(record) = record else {
                return;
            };
            let runs = sink_runs.read().unwrap_or_else(PoisonError::into_inner);
            for run in runs.iter() {
                let record = records::wrap(RecordType::OutputRaw(record.clone()));
                let _ = run.send_timeout(record, CONSOLE_SEND_TIMEOUT);
            }
        });
        let capture = match ConsoleCapture::start(sink) {
            Ok(capture) => capture,
            Err(e) => {
                crate::diag::warning!("run {}: console output is not captured: {e}", core.run_id);
                return;
            }
        };
        *state = Some(ConsoleFanout {
            capture: Some(capture),
            runs,
            decoder,
            generation: fork::generation(),
        });
    }
    let Some(fanout) = state.as_ref() else {
        return;
    };
    fanout
        .runs
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .push(RunSink::from_core(Arc::clone(core)));
    let run_ptr = Arc::as_ptr(core) as usize;
    core.attach(Box::new(move || leave_console(run_ptr)));
}

/// Removes a finishing run from the console fan-out; stops the capture with the last one.
fn leave_console(run_ptr: usize) {
    let mut state = CONSOLE.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(fanout) = state.as_mut() else {
        return;
    };
    if fanout.generation != fork::generation() {
        return;
    }
    let last = {
        let runs = fanout.runs.read().unwrap_or_else(PoisonError::into_inner);
        runs.iter().all(|run| run.core_ptr() == run_ptr)
    };
    if last {
        // Stopping drains the pipes into the sink, so this run still gets its last output.
        if let Some(capture) = fanout.capture.take()
            && let Err(e) = capture.stop()
        {
            crate::diag::warning!("console capture did not stop cleanly: {e}");
        }
        // An unfinished UTF-8 character at the very end of the output.
        let rest = fanout
            .decoder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish(SystemTime::now());
        for run in fanout
            .runs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            for record in &rest {
                let _ = run.send(records::wrap(RecordType::OutputRaw(record.clone())));
            }
        }
        *state = None;
    } else {
        fanout
            .runs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|run| run.core_ptr() != run_ptr);
    }
}

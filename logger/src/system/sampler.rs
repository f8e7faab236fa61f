//! The sampler thread: runs a [`SystemMonitor`] every interval and hands the records to a sink.
//!
//! Timeline: the thread first loads NVML (through [`SystemMonitor::gpu_environment`]) and, if
//! it finds GPUs, emits one GPU-only [`SystemRecord::Environment`]; then it emits a
//! [`SystemRecord::Stats`] at once (the baselines: counters at `0.0`, no CPU percentages yet,
//! like the SDK's first sample) and one more every interval after that.
//!
//! Stopping is prompt: the thread waits on a channel with `recv_timeout`, so
//! [`SamplerHandle::stop`] wakes it at once instead of waiting out the interval. If the thread
//! is stuck in something slow that cannot be interrupted (NVML initialisation on a machine with
//! many GPUs, or a blocking sink), `stop` waits at most [`STOP_WAIT`], then drops the sink and
//! lets the thread finish on its own: after `stop` returns the sink is never called again.
//! A panic in the sink or the monitor ends sampling, is logged, and never reaches the caller.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wandb_format::proto::{EnvironmentRecord, StatsRecord};

use crate::system::SystemMonitor;

/// Shortest sampling interval; shorter requests are raised to it (W&B rejects intervals below
/// 0.1 s).
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How long [`SamplerHandle::stop`] waits for the thread before detaching it.
pub(crate) const STOP_WAIT: Duration = Duration::from_millis(500);

/// A record produced by the sampler thread.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SystemRecord {
    /// The GPU part of the environment (same `writer_id` as the main environment record), sent
    /// once, first, and only when NVML finds GPUs.
    Environment(Box<EnvironmentRecord>),
    /// One system metrics sample.
    Stats(StatsRecord),
}

/// Why the sampler could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SamplerError {
    /// The OS refused to create the thread.
    #[error("could not start the system metrics thread")]
    Spawn(#[source] std::io::Error),
}

/// The boxed sink.
type BoxedSink = Box<dyn FnMut(SystemRecord) + Send>;

/// The sink, shared so that `stop` can take it away from a thread it stops waiting for.
type SharedSink = Arc<Mutex<Option<BoxedSink>>>;

/// The running sampler. Stop it with [`SamplerHandle::stop`]; dropping it stops it too.
#[must_use = "dropping the handle stops the sampler at once"]
pub(crate) struct SamplerHandle {
    /// Dropping this wakes the thread and tells it to exit.
    stop_tx: Option<mpsc::Sender<()>>,
    /// Disconnects when the thread ends (its sender is dropped on exit, even by a panic).
    done_rx: mpsc::Receiver<()>,
    sink: SharedSink,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SamplerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerHandle")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

/// Starts a thread named `wandb-system-monitor` that samples `monitor` every `interval`
/// (at least [`MIN_INTERVAL`]) and passes each record to `sink`.
///
/// `sink` runs on the sampler thread; it should hand the record over (to the writer's queue,
/// for instance) and return quickly, and it must not block forever.
pub(crate) fn spawn_sampler(
    interval: Duration,
    monitor: SystemMonitor,
    sink: impl FnMut(SystemRecord) + Send + 'static,
) -> Result<SamplerHandle, SamplerError> {
    let interval = interval.max(MIN_INTERVAL);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let sink: SharedSink = Arc::new(Mutex::new(Some(Box::new(sink))));
    let thread_sink = Arc::clone(&sink);
    let thread = std::thread::Builder::new()
        .name("wandb-system-monitor".to_owned())
        .spawn(move || {
            let _done = done_tx;
            let result = catch_unwind(AssertUnwindSafe(|| {
                run(interval, monitor, &stop_rx, &thread_sink);
            }));
            if result.is_err() {
                crate::diag::report_error!("system metrics sampling stopped after a panic");
            }
        })
        .map_err(SamplerError::Spawn)?;
    Ok(SamplerHandle {
        stop_tx: Some(stop_tx),
        done_rx,
        sink,
        thread: Some(thread),
    })
}

/// The thread's loop.
fn run(
    interval: Duration,
    mut monitor: SystemMonitor,
    stop_rx: &mpsc::Receiver<()>,
    sink: &SharedSink,
) {
    if let Some(environment) = monitor.gpu_environment()
        && !emit(sink, SystemRecord::Environment(Box::new(environment)))
    {
        return;
    }
    loop {
        if !matches!(stop_rx.try_recv(), Err(mpsc::TryRecvError::Empty)) {
            return;
        }
        let started = Instant::now();
        if !emit(sink, SystemRecord::Stats(monitor.sample())) {
            return;
        }
        let wait = (started + interval).saturating_duration_since(Instant::now());
        match stop_rx.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Calls the sink; `false` when it is gone (stopped) or panicked.
fn emit(sink: &SharedSink, record: SystemRecord) -> bool {
    let mut guard = lock(sink);
    let Some(callback) = guard.as_mut() else {
        return false;
    };
    if catch_unwind(AssertUnwindSafe(|| callback(record))).is_err() {
        crate::diag::report_error!("the system metrics sink panicked; sampling stops");
        *guard = None;
        return false;
    }
    true
}

fn lock(sink: &SharedSink) -> MutexGuard<'_, Option<BoxedSink>> {
    sink.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SamplerHandle {
    /// Stops sampling and waits for the thread (at most [`STOP_WAIT`], see the module docs).
    /// After it returns, the sink is never called again and has been dropped.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        drop(self.stop_tx.take());
        match self.done_rx.recv_timeout(STOP_WAIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            Err(RecvTimeoutError::Timeout) => {
                // Waits for a sink call in progress, then removes the sink: the detached
                // thread finds it gone and exits.
                drop(lock(&self.sink).take());
                log::debug!("system metrics thread still busy; detached");
            }
        }
    }
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::MonitorConfig;

    fn monitor() -> SystemMonitor {
        let mut config = MonitorConfig::new("w");
        config.nvidia_gpus = false;
        SystemMonitor::new(config)
    }

    #[test]
    fn samples_at_once_then_stops_promptly() {
        let (tx, rx) = mpsc::channel();
        let handle = spawn_sampler(Duration::from_secs(3600), monitor(), move |record| {
            let _ = tx.send(record);
        })
        .unwrap();
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(first, SystemRecord::Stats(_)));
        let start = Instant::now();
        handle.stop();
        assert!(
            start.elapsed() < Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
        // The sink (and so the sender) is gone: the channel disconnects.
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn samples_every_interval() {
        let (tx, rx) = mpsc::channel();
        let handle = spawn_sampler(Duration::from_millis(1), monitor(), move |record| {
            let _ = tx.send(record);
        })
        .unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        // Raised to the 100 ms minimum: three samples take at least two intervals.
        assert!(start.elapsed() >= 2 * MIN_INTERVAL - Duration::from_millis(20));
        drop(handle);
    }

    #[test]
    fn a_panicking_sink_ends_sampling_quietly() {
        let handle = spawn_sampler(MIN_INTERVAL, monitor(), |_| panic!("sink bug")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        handle.stop();
    }

    #[test]
    fn a_blocked_sink_does_not_block_stop_forever() {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let handle = spawn_sampler(MIN_INTERVAL, monitor(), move |_| {
            let _ = entered_tx.send(());
            let _ = lock_rx(&release_rx).recv_timeout(Duration::from_millis(800));
        })
        .unwrap();
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let start = Instant::now();
        handle.stop();
        // It waited STOP_WAIT, then for the sink call in progress (released after 800 ms).
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        drop(release_tx);
    }

    fn lock_rx(rx: &Mutex<mpsc::Receiver<()>>) -> MutexGuard<'_, mpsc::Receiver<()>> {
        rx.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

//! Process-level safety nets: the SIGTERM handler and the panic hook.
//!
//! **SIGTERM** (what SLURM and Kubernetes send before killing a job): a thread, started with
//! the first run that wants it, waits for the signal through signal-hook. On SIGTERM it writes
//! a preempting record into every live run that has the handler on and syncs it; if SIGTERM's
//! previous disposition was the default (terminate), it also writes each run's pending row,
//! finishes the run with exit code 143 (128 + SIGTERM: final summary, exit record, fsync) and
//! then terminates the process as the default action would. A previous handler function is
//! chained by signal-hook and runs as before, and the process then keeps running. An ignored
//! SIGTERM is left alone (no handler is installed). In a forked child the parent's disposition
//! is restored (see `fork.rs`) and a run started in the child installs the handler again.
//!
//! **Panics**: a chained panic hook flushes every live run (so nothing logged is lost if the
//! panic ends the process) and, when the panic will end the process (the main thread, or
//! `panic = "abort"`), finishes every run with exit code 1. A panic that unwinds through the
//! owner of a [`crate::Run`] finishes that run with exit code 1 in `Run`'s `Drop` in any case.

use std::sync::{Mutex, Once, PoisonError};
use std::thread;
use std::time::Duration;

use signal_hook::consts::SIGTERM;
use signal_hook::iterator::Signals;

use crate::fork::{self, Disposition};
use crate::registry;

/// How long the SIGTERM handler waits for each run's writer.
const PREEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// The exit code recorded for runs ended by SIGTERM: what a shell reports for a process killed by
/// signal 15.
pub(crate) const SIGTERM_EXIT_CODE: i32 = 128 + SIGTERM;

/// How long the panic hook waits for each run's writer.
const PANIC_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Fork generation in which the SIGTERM thread runs (`None`: not started).
static SIGTERM_THREAD: Mutex<Option<u64>> = Mutex::new(None);

/// Makes sure this process answers SIGTERM (idempotent; cheap after the first call).
pub(crate) fn ensure_sigterm_handler() {
    let generation = fork::generation();
    let mut started = SIGTERM_THREAD
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if *started == Some(generation) {
        return;
    }
    let installed_before = fork::previous_sigterm().is_some();
    if installed_before {
        // A forked child: our disposition was reset at fork; put it back.
        if fork::previous_sigterm() == Some(Disposition::Ignore) {
            *started = Some(generation);
            return;
        }
        if let Err(e) = fork::reinstall_sigterm() {
            crate::diag::warning!("cannot reinstall the SIGTERM handler: {e}");
            return;
        }
    } else {
        match fork::sigterm_disposition() {
            Ok(Disposition::Ignore) => {
                log::debug!("SIGTERM is ignored by this process; not installing a handler");
                *started = Some(generation);
                return;
            }
            Ok(previous) => {
                if let Err(e) = start_thread() {
                    crate::diag::warning!("cannot install a SIGTERM handler: {e}");
                    return;
                }
                if let Err(e) = fork::remember_sigterm(previous) {
                    crate::diag::warning!("cannot read the SIGTERM handler back: {e}");
                }
                *started = Some(generation);
                return;
            }
            Err(e) => {
                crate::diag::warning!("cannot read SIGTERM's disposition: {e}");
                return;
            }
        }
    }
    if let Err(e) = start_thread() {
        crate::diag::warning!("cannot install a SIGTERM handler: {e}");
        return;
    }
    *started = Some(generation);
}

fn start_thread() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM])?;
    thread::Builder::new()
        .name("wandb-sigterm".to_owned())
        .spawn(move || {
            for _ in signals.forever() {
                on_sigterm();
            }
        })?;
    Ok(())
}

fn on_sigterm() {
    let terminate = fork::previous_sigterm() == Some(Disposition::Default);
    let runs = registry::active(true);
    crate::diag::warning!(
        "SIGTERM: marking {} run(s) as preempting{}",
        runs.len(),
        if terminate { " and terminating" } else { "" }
    );
    for run in runs.iter().filter(|run| run.handle_sigterm) {
        let acknowledged = run.preempt(terminate, PREEMPT_TIMEOUT);
        if terminate && acknowledged {
            // The process is about to end: the run ends with it, as a process killed by SIGTERM
            // reports (128 + 15), so its fragment is complete and a requeued job resumes after it.
            run.finish_from_hook(SIGTERM_EXIT_CODE);
        }
    }
    if terminate {
        // Resets SIGTERM to its default action and raises it: the process ends as it would
        // have without us.
        if let Err(e) = signal_hook::low_level::emulate_default_handler(SIGTERM) {
            crate::diag::report_error!("cannot terminate after SIGTERM: {e}");
        }
    }
}

static PANIC_HOOK: Once = Once::new();

/// Installs the panic hook (once per process), chained before the previous hook.
pub(crate) fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            on_panic();
            previous(info);
        }));
    });
}

fn on_panic() {
    let current = thread::current();
    let name = current.name().unwrap_or_default();
    // A panic in one of our own threads must not wait for that same thread.
    if name.starts_with("wandb-") {
        return;
    }
    let fatal = cfg!(panic = "abort") || name == "main";
    for run in registry::active(false) {
        if fatal {
            run.finish_from_hook(1);
        } else {
            run.flush_with_timeout(PANIC_FLUSH_TIMEOUT);
        }
    }
}

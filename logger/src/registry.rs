//! The process-wide list of live runs, for the SIGTERM handler and the panic hook (which must
//! reach runs owned anywhere in the program).
//!
//! Entries are weak: the registry never keeps a run alive. Runs made before a fork are skipped
//! in the child (they belong to the parent).

use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::run::RunCore;

static RUNS: Mutex<Vec<Weak<RunCore>>> = Mutex::new(Vec::new());

/// Adds a run.
pub(crate) fn register(core: &Arc<RunCore>) {
    let mut runs = RUNS.lock().unwrap_or_else(PoisonError::into_inner);
    runs.retain(|w| w.strong_count() > 0);
    runs.push(Arc::downgrade(core));
}

/// Removes a finished run.
pub(crate) fn unregister(core: &RunCore) {
    if let Ok(mut runs) = RUNS.try_lock() {
        runs.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), core));
    }
}

/// The live, unfinished runs of this process. With `blocking` false (from a hook that may run
/// while this thread holds the lock), gives up rather than wait.
pub(crate) fn active(blocking: bool) -> Vec<Arc<RunCore>> {
    let runs = if blocking {
        RUNS.lock().unwrap_or_else(PoisonError::into_inner)
    } else {
        match RUNS.try_lock() {
            Ok(runs) => runs,
            Err(_) => return Vec::new(),
        }
    };
    runs.iter()
        .filter_map(Weak::upgrade)
        .filter(|core| !core.is_foreign() && !core.is_finishing() && !core.is_disabled())
        .collect()
}

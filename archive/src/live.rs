//! Whether a run is still being written: locked by a running syncer or logger (an OS lock on
//! `<file>.wandb.lock`, see `sync/src/lock.rs`), or without an exit record and modified in the
//! last minute.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::SystemTime;

use crate::pack::QUIET_PERIOD;

/// Why the run of `record_file` must be treated as still being written, or `None`.
pub fn is_live(record_file: &Path) -> Option<String> {
    is_live_given(record_file, || has_exit_record(record_file))
}

/// [`is_live`], with `has_exit` telling whether the file holds an exit record (asked only when
/// the file is not locked).
pub fn is_live_given(record_file: &Path, has_exit: impl FnOnce() -> bool) -> Option<String> {
    let mut lock = record_file.as_os_str().to_owned();
    lock.push(".lock");
    // Only an existing lock file is looked at (opened read-only): packing never creates one.
    if let Ok(file) = File::open(&lock) {
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Some(format!(
                    "{}: locked by a running process",
                    Path::new(&lock).display()
                ));
            }
            Err(TryLockError::Error(_)) => {}
        }
    }
    if has_exit() {
        return None;
    }
    let modified = std::fs::metadata(record_file)
        .and_then(|m| m.modified())
        .ok()?;
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    (age < QUIET_PERIOD).then(|| {
        format!(
            "{}: no exit record and modified {}s ago",
            record_file.display(),
            age.as_secs()
        )
    })
}

/// Whether the file holds an exit record.
pub fn has_exit_record(record_file: &Path) -> bool {
    crate::records::scan(record_file).has_exit
}

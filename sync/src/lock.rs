//! Advisory locks so that two `wandb-sync` processes never sync the same `.wandb` file at once.
//!
//! The lock is an exclusive OS file lock (`flock` on Unix, `LockFileEx` on Windows, through
//! `std::fs::File::lock`) on `<name>.wandb.lock` next to the file. The OS releases it when the
//! process exits, even after `kill -9`, so a crashed syncer never leaves a stale lock. The lock
//! file itself is left in place: deleting it would race with a process about to lock it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

/// The lock file path for a `.wandb` file.
pub(crate) fn lock_path(wandb_file: &Path) -> PathBuf {
    let mut name = wandb_file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `wandb_file`. Without `wait`, returns `None` when another process holds
/// it; with `wait`, blocks until it is free.
pub(crate) fn acquire(wandb_file: &Path, wait: bool) -> Result<Option<RunLock>> {
    let path = lock_path(wandb_file);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, "open lock file", e))?;
    if wait {
        file.lock().map_err(|e| Error::io(&path, "lock", e))?;
        return Ok(Some(RunLock { _file: file }));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(RunLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(Error::io(&path, "lock", e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let wandb = dir.path().join("run-x.wandb");
        let first = acquire(&wandb, false).unwrap();
        assert!(first.is_some());
        assert!(acquire(&wandb, false).unwrap().is_none());
        drop(first);
        assert!(acquire(&wandb, false).unwrap().is_some());
    }
}

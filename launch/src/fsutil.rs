//! File-system steps the queue is built from: atomic document writes (temp file in the same
//! folder, fsync, rename, fsync the folder), and renames that report "someone else moved it
//! first" as `Ok(false)` rather than an error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` so that readers see the old document or the new one, never a part:
/// a temp file `.<name>.<random>.tmp` in the same folder, fsync, rename over `path`, fsync the
/// folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_whole(path, bytes, true)
}

/// Like [`write_atomic`] but without the fsyncs: whole or absent after a process crash (the
/// page cache keeps it), not after a power loss. For the job wrapper's exit file, which must
/// be there within microseconds of the job's end.
pub(crate) fn write_whole_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    write_whole(path, bytes, false)
}

fn write_whole(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", wandb_settings::generate_id(8)));
    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(&tmp, "write temporary file", e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, "rename temporary file into place", e));
    }
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// Creates an empty file that must not exist yet, and syncs its folder.
pub(crate) fn create_empty(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(path, "create ticket", e))?;
    sync_dir(path.parent().unwrap_or_else(|| Path::new(".")))
}

/// Fsyncs a folder (so a rename or a new entry in it survives a power loss).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "sync folder", e))
}

/// Renames `from` to `to`. `Ok(false)` when `from` is gone (another agent moved it first): the
/// one rename of a ticket that succeeds is the one that decides.
pub(crate) fn rename_if_present(from: &Path, to: &Path) -> Result<bool> {
    match fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(from, "move ticket", e)),
    }
}

/// The names in a folder that are not temp files (those start with a dot), unsorted.
pub(crate) fn list_names(dir: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, "list queue folder", e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "list queue folder", e))?;
        if let Some(name) = entry.file_name().to_str()
            && !name.starts_with('.')
        {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Reads a small file; `Ok(None)` when it does not exist.
pub(crate) fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, "read", e)),
    }
}

//! The file-safety rule for files outside a run folder, the same rule `wandb-sync` applies
//! before uploading them (`sync/src/files.rs`, `open_outside_run`):
//!
//! - the path (a symlink is followed) must lead to a **regular file**: a FIFO, socket, device or
//!   directory is refused by its type, and devices are never opened;
//! - it is opened once, non-blocking, and every later check is on the **opened handle**, so a
//!   file swapped in after the first look is judged for what it is;
//! - it must not lie on a **kernel file system** (procfs, sysfs, ...): that is not user data;
//! - it must be a file every one of the `principals` (the owners of the symlinks that lead to it,
//!   or the run's owner) **could read anyway**: owned by each of them, or readable by everyone.
//!
//! This module depends only on `std`, `libc` and `rustix`, so it can move to `wandb-format`
//! unchanged and be shared with sync.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Kernel file systems (by `statfs` magic) whose files are never user data.
const KERNEL_FS_MAGICS: [(u64, &str); 11] = [
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x0027_e0eb, "cgroupfs"),
    (0x6367_7270, "cgroup2fs"),
    (0xcafe_4a11, "bpffs"),
    (0xde5e_81e4, "efivarfs"),
    (0x6265_6570, "configfs"),
    (0x6165_676c, "pstore"),
];

/// Why a file outside the run was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason, as a phrase (`not a regular file (a FIFO)`).
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal {
        reason: reason.into(),
    }
}

/// Opens `path` (following symlinks) under the rule of the module docs, for reading by
/// `principals`; returns the handle and its metadata.
pub fn open_outside(path: &Path, principals: &[u32]) -> Result<(File, Metadata), Refusal> {
    let (file, meta) = open_regular(path)?;
    check_readable_by(&meta, principals)?;
    Ok((file, meta))
}

/// Opens `path` non-blocking and checks through the handle that it is a regular file on a user
/// file system.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), Refusal> {
    // A first look by name, only so that devices are never opened (opening some has effects).
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return Err(not_regular(&meta)),
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refuse("symlink loop")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("does not exist (dangling symlink?)"));
        }
        Err(e) => return Err(refuse(format!("cannot be read: {e}"))),
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| refuse(format!("cannot be opened: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(format!("cannot be examined: {e}")))?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    if let Some(fs) = kernel_fs(&file) {
        return Err(refuse(format!(
            "lies on {fs}, a kernel file system, not user data"
        )));
    }
    Ok((file, meta))
}

fn not_regular(meta: &Metadata) -> Refusal {
    let file_type = meta.file_type();
    let what = if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    refuse(format!("not a regular file ({what})"))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn kernel_fs(file: &File) -> Option<&'static str> {
    let stat = rustix::fs::fstatfs(file).ok()?;
    #[allow(
        clippy::unnecessary_cast,
        reason = "the type of f_type differs between targets"
    )]
    let magic = (stat.f_type as u64) & 0xffff_ffff;
    KERNEL_FS_MAGICS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn kernel_fs(_file: &File) -> Option<&'static str> {
    None
}

/// The file must be readable by everyone, or owned by every one of `principals`.
pub fn check_readable_by(meta: &Metadata, principals: &[u32]) -> Result<(), Refusal> {
    if meta.mode() & 0o004 != 0 {
        return Ok(());
    }
    match principals.iter().find(|uid| **uid != meta.uid()) {
        None => Ok(()),
        Some(uid) => Err(refuse(format!(
            "belongs to uid {} and is not readable by everyone, so uid {uid} could not read it",
            meta.uid()
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifo_and_procfs() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        let refusal = open_outside(&fifo, &[0]).unwrap_err();
        assert!(refusal.reason.contains("FIFO"), "{refusal}");
        let refusal = open_outside(Path::new("/proc/self/status"), &[0]).unwrap_err();
        assert!(refusal.reason.contains("procfs"), "{refusal}");
        let refusal = open_outside(Path::new("/dev/null"), &[0]).unwrap_err();
        assert!(refusal.reason.contains("device"), "{refusal}");
    }

    #[test]
    fn private_file_of_another_user_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let owner = std::fs::metadata(&path).unwrap().uid();
        assert!(open_outside(&path, &[owner]).is_ok());
        let refusal = open_outside(&path, &[owner + 1]).unwrap_err();
        assert!(refusal.reason.contains("could not read it"), "{refusal}");
    }
}

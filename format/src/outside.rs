//! The one rule for reading a file that lies outside a run folder (the target of a `wandb.save`
//! symlink, an artifact file staged elsewhere), shared by `wandb-sync` (before uploading it) and
//! `wandb-archive` (before packing it):
//!
//! - the path (a symlink is followed) must lead to a **regular file**: a FIFO, socket, device or
//!   directory is refused by its type, and devices are never opened;
//! - it is opened once, non-blocking, and every later check is on the **opened handle**, so a
//!   file swapped in after the first look is judged for what it is;
//! - it must not lie on a **kernel file system** (procfs, sysfs, ...): that is not user data;
//! - it must be a file every one of the `principals` (the owners of the symlinks that lead to it,
//!   or the run's owner) **could read anyway**: owned by each of them, or readable by everyone.
//!
//! No network I/O, only `std`, `libc` and `rustix`'s `fstatfs`.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Kernel file systems (by `statfs` magic) whose files are views of the kernel, never user data.
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

/// Why a file outside a run is not read. Every variant but [`Refusal::Io`] is a decision of the
/// rule; `Io` is an error of the operating system (a missing file, a permission denied).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a regular file; `what` names its type (`a FIFO`, `a directory`, ...).
    #[error("not a regular file ({what})")]
    NotRegular {
        /// The type found.
        what: &'static str,
    },
    /// A symlink loop.
    #[error("symlink loop")]
    SymlinkLoop,
    /// It lies on a kernel file system.
    #[error("lies on {fs}, a kernel file system, not user data")]
    KernelFs {
        /// The file system's name (`procfs`, ...).
        fs: &'static str,
    },
    /// A principal could not have read it.
    #[error(
        "belongs to uid {owner} and is not readable by everyone, so uid {principal} could not read it"
    )]
    NotReadable {
        /// The file's owner.
        owner: u32,
        /// The principal that could not read it.
        principal: u32,
    },
    /// The operating system failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done (`open`, `stat`).
        action: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Opens `path` (following symlinks) under the rule of the module docs, for reading by
/// `principals`; returns the handle and its metadata.
///
/// # Errors
///
/// A [`Refusal`] saying why not.
pub fn open_outside(path: &Path, principals: &[u32]) -> Result<(File, Metadata), Refusal> {
    let (file, meta) = open_regular(path)?;
    check_readable_by(&meta, principals)?;
    Ok((file, meta))
}

/// Opens `path` non-blocking and checks through the handle that it is a regular file on a user
/// file system (the first half of [`open_outside`]).
///
/// # Errors
///
/// A [`Refusal`] saying why not.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), Refusal> {
    // A first look by name, only so that devices are never opened (opening some has effects).
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return Err(not_regular(&meta)),
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Refusal::SymlinkLoop),
        Err(source) => {
            return Err(Refusal::Io {
                action: "open",
                source,
            });
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| Refusal::Io {
            action: "open",
            source,
        })?;
    // Everything from here on is about what was opened, whatever the name leads to now.
    let meta = file.metadata().map_err(|source| Refusal::Io {
        action: "stat",
        source,
    })?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    if let Some(fs) = kernel_fs(&file) {
        return Err(Refusal::KernelFs { fs });
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
    Refusal::NotRegular { what }
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
///
/// # Errors
///
/// [`Refusal::NotReadable`] naming the first principal that could not read it.
pub fn check_readable_by(meta: &Metadata, principals: &[u32]) -> Result<(), Refusal> {
    if meta.mode() & 0o004 != 0 {
        return Ok(());
    }
    match principals.iter().find(|uid| **uid != meta.uid()) {
        None => Ok(()),
        Some(uid) => Err(Refusal::NotReadable {
            owner: meta.uid(),
            principal: *uid,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifo_procfs_devices_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        let refusal = open_outside(&fifo, &[0]).unwrap_err();
        assert!(refusal.to_string().contains("FIFO"), "{refusal}");
        let refusal = open_outside(Path::new("/proc/self/status"), &[0]).unwrap_err();
        assert!(
            matches!(refusal, Refusal::KernelFs { fs: "procfs" }),
            "{refusal}"
        );
        let refusal = open_outside(Path::new("/dev/null"), &[0]).unwrap_err();
        assert!(refusal.to_string().contains("device"), "{refusal}");
        let refusal = open_outside(&dir.path().join("missing"), &[0]).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{refusal}"
        );
        let loop_path = dir.path().join("loop");
        std::os::unix::fs::symlink(&loop_path, &loop_path).unwrap();
        assert!(matches!(
            open_outside(&loop_path, &[0]),
            Err(Refusal::SymlinkLoop)
        ));
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
        assert!(
            refusal.to_string().contains("could not read it"),
            "{refusal}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(open_outside(&path, &[owner + 1]).is_ok());
    }
}

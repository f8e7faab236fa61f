//! The few libc calls the system monitor needs that std does not wrap: `statvfs` (disk usage),
//! `sysconf` (page size and clock ticks), `uname` (the OS string) and glibc's version.
//!
//! This is the only module of `system` that uses `unsafe`. Each function is a small, safe
//! wrapper: it owns every buffer it hands to libc, checks the return code and copies the
//! result out before returning, and reports failure as `None`.
#![allow(unsafe_code)]

use std::path::Path;

/// Size and usage of the file system holding a path, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FsUsage {
    /// Total size.
    pub(crate) total: u64,
    /// Used bytes: (blocks - free blocks) x fragment size.
    pub(crate) used: u64,
    /// Bytes available to unprivileged users.
    pub(crate) available: u64,
}

impl FsUsage {
    /// Used share as `df` (and gopsutil) compute it: used / (used + available), in percent.
    ///
    /// Blocks reserved for root count neither as used nor as available.
    pub(crate) fn used_percent(self) -> Option<f64> {
        let denominator = self.used.saturating_add(self.available);
        (denominator > 0).then(|| self.used as f64 / denominator as f64 * 100.0)
    }
}

/// `statvfs(path)`, or `None` if the path does not exist or cannot be examined.
#[cfg(unix)]
pub(crate) fn fs_usage(path: &Path) -> Option<FsUsage> {
    use std::os::unix::ffi::OsStrExt;

    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `stat` points to
    // writable memory of the right size and alignment for one `statvfs`.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the whole structure (it was zeroed before anyway).
    let stat = unsafe { stat.assume_init() };
    // The field types differ between platforms (u32 on macOS, u64 on Linux): widen them all.
    #[allow(clippy::useless_conversion)]
    let (blocks, free, avail, frsize) = (
        u64::from(stat.f_blocks),
        u64::from(stat.f_bfree),
        u64::from(stat.f_bavail),
        u64::from(stat.f_frsize),
    );
    let frsize = if frsize == 0 {
        #[allow(clippy::useless_conversion)]
        u64::from(stat.f_bsize)
    } else {
        frsize
    };
    Some(FsUsage {
        total: blocks.saturating_mul(frsize),
        used: blocks.saturating_sub(free).saturating_mul(frsize),
        available: avail.saturating_mul(frsize),
    })
}

/// Disk usage is not measured on this platform.
#[cfg(not(unix))]
pub(crate) fn fs_usage(_path: &Path) -> Option<FsUsage> {
    None
}

/// `sysconf(name)` when it returns a positive value.
#[cfg(unix)]
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no memory-safety preconditions; it only reads its integer argument.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|v| *v > 0)
}

/// The memory page size in bytes (4096 when it cannot be read).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn page_size() -> u64 {
    #[cfg(unix)]
    {
        sysconf(libc::_SC_PAGESIZE).unwrap_or(4096)
    }
    #[cfg(not(unix))]
    {
        4096
    }
}

/// Clock ticks per second of the CPU times in `/proc` (`USER_HZ`; 100 when it cannot be read).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn clock_ticks() -> u64 {
    #[cfg(unix)]
    {
        sysconf(libc::_SC_CLK_TCK).unwrap_or(100)
    }
    #[cfg(not(unix))]
    {
        100
    }
}

/// The fields of `uname(2)` used in the OS string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uname {
    /// Kernel name, e.g. `Linux` or `Darwin`.
    pub(crate) sysname: String,
    /// Kernel release, e.g. `6.1.0-18-amd64`.
    pub(crate) release: String,
    /// Hardware name, e.g. `x86_64` or `aarch64`.
    pub(crate) machine: String,
}

/// `uname(2)`, or `None` if it fails.
#[cfg(unix)]
pub(crate) fn uname() -> Option<Uname> {
    let mut name = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: `name` points to writable memory of the right size and alignment for one utsname.
    let rc = unsafe { libc::uname(name.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: uname returned 0, so it filled the structure (which was zeroed before anyway).
    let name = unsafe { name.assume_init() };
    Some(Uname {
        sysname: c_chars_to_string(&name.sysname),
        release: c_chars_to_string(&name.release),
        machine: c_chars_to_string(&name.machine),
    })
}

/// `uname` does not exist on this platform.
#[cfg(not(unix))]
pub(crate) fn uname() -> Option<Uname> {
    None
}

/// A fixed-size C char array up to its first NUL (the whole array if there is none), lossily
/// decoded as UTF-8.
#[cfg(unix)]
fn c_chars_to_string(chars: &[libc::c_char]) -> String {
    // `c_char` is i8 or u8 depending on the target: reinterpret each as a byte.
    let bytes: Vec<u8> = chars
        .iter()
        .map(|c| c.to_ne_bytes()[0])
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The version of the glibc this process runs on, e.g. `2.36`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn glibc_version() -> Option<String> {
    // SAFETY: gnu_get_libc_version takes no arguments and returns a pointer to a static,
    // NUL-terminated string owned by glibc, valid for the life of the process.
    let version = unsafe { libc::gnu_get_libc_version() };
    if version.is_null() {
        return None;
    }
    // SAFETY: the pointer is non-null and points to a static NUL-terminated string (see above).
    let version = unsafe { std::ffi::CStr::from_ptr(version) };
    Some(version.to_string_lossy().into_owned())
}

/// Not linked against glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn glibc_version() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn root_fs_usage() {
        let usage = fs_usage(Path::new("/")).unwrap();
        assert!(usage.total > 0);
        assert!(usage.used <= usage.total);
        let percent = usage.used_percent().unwrap();
        assert!((0.0..=100.0).contains(&percent));
        assert!(fs_usage(Path::new("/definitely/not/here")).is_none());
        assert!(fs_usage(Path::new("/nul\0byte")).is_none());
    }

    #[test]
    fn sysconf_values() {
        assert!(page_size() >= 4096);
        assert!(clock_ticks() > 0);
    }

    #[cfg(unix)]
    #[test]
    fn uname_fields() {
        let name = uname().unwrap();
        assert!(!name.sysname.is_empty());
        assert!(!name.release.is_empty());
        assert!(!name.machine.is_empty());
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc() {
        let version = glibc_version().unwrap();
        assert!(version.starts_with("2."), "{version}");
    }
}

//! Starting the write-back of data already handed to the operating system, so that a later
//! `fdatasync` has little left to wait for.
//!
//! A writer producing hundreds of megabytes leaves them all as dirty pages in the page cache (the
//! kernel's background write-back starts only at a share of total memory), and the `fdatasync` at
//! close then waits for the disk to take all of them. Asking the kernel to start writing each
//! completed stretch as it is written spreads that disk time over the run. On Linux this is
//! `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which queues the I/O and returns without waiting and
//! without any durability promise; other systems do nothing here.
#![allow(unsafe_code)]

use std::fs::File;

/// Asks the kernel to start writing bytes `offset .. offset + len` of `file` to the disk, without
/// waiting. Best effort: a failure here changes nothing, because the next `fdatasync` writes
/// whatever is still dirty and reports any I/O error itself.
pub(crate) fn start(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: `sync_file_range` reads no memory of ours; it takes a file descriptor that
        // `file` keeps open for the duration of the call, and plain integers.
        let _ = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

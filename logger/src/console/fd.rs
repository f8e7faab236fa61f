//! The file-descriptor operations console capture needs that std does not offer safely:
//! `dup2` onto fds 1 and 2, `close` of them, `poll`, and blocking `SIGPIPE` in a thread.
//!
//! This is the only module of `console` that uses `unsafe`. Every function retries on
//! `EINTR` and turns a failure into an `io::Error`. Duplicating, piping, reading and writing
//! go through std (`try_clone_to_owned`, `std::io::pipe`, `File`), which already create
//! close-on-exec descriptors numbered 3 or above.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// Makes `target` (1 or 2) refer to the same open file as `source`, like `dup2(2)`.
///
/// The new `target` is inheritable (not close-on-exec), as fds 1 and 2 normally are.
pub(crate) fn redirect(source: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: dup2 only manipulates the process's descriptor table. `source` is a valid,
        // open descriptor for the duration of the call (it is borrowed), and `target` is one
        // of the standard descriptors that this module exists to replace; whatever was open
        // there is closed by dup2 atomically, which is the intent.
        let rc = unsafe { libc::dup2(source.as_raw_fd(), target) };
        if rc >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        // EBUSY: Linux reports a race with a concurrent open() of the target; try again.
        if !matches!(error.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)) {
            return Err(error);
        }
    }
}

/// Closes a standard descriptor (used to restore one that was closed before capture started).
pub(crate) fn close_standard(target: RawFd) {
    // SAFETY: `target` is 1 or 2, which capture itself opened with `redirect`; no Rust object
    // owns it (std's stdout and stderr handles use the number, not an owned descriptor, and
    // treat a closed descriptor as EBADF). Errors, including EINTR, leave it closed on Linux.
    unsafe {
        libc::close(target);
    }
}

/// Readiness of the descriptors passed to [`poll_readable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    /// The first descriptor has data, an end of file, or an error to report.
    pub(crate) first: bool,
    /// The same for the second descriptor (always false when there is none).
    pub(crate) second: bool,
}

/// Waits until `first` or `second` is readable (data, end of file or error), or `timeout`
/// passes (`None` waits forever; `Some(ZERO)` only checks).
pub(crate) fn poll_readable(
    first: BorrowedFd<'_>,
    second: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let events = libc::POLLIN;
    let mut fds = [
        libc::pollfd {
            fd: first.as_raw_fd(),
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: second.map_or(-1, |fd| fd.as_raw_fd()), // Negative fds are ignored by poll.
            events,
            revents: 0,
        },
    ];
    let timeout_ms = match timeout {
        None => -1,
        Some(timeout) => libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX),
    };
    loop {
        // SAFETY: `fds` is a valid, writable array of two pollfd structures that outlives the
        // call, and its length is passed correctly. The descriptors are borrowed, so open.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc >= 0 {
            let readable = |revents: libc::c_short| {
                revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
            };
            return Ok(Ready {
                first: readable(fds[0].revents),
                second: readable(fds[1].revents),
            });
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Waits until `fd` can be written to, or `timeout` passes; `true` if writable.
pub(crate) fn wait_writable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let timeout_ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: `pollfd` is one valid, writable pollfd that outlives the call; `fd` is
        // borrowed, so open.
        let rc = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
        if rc >= 0 {
            return rc > 0 && pollfd.revents & libc::POLLOUT != 0;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Blocks `SIGPIPE` for the calling thread only.
///
/// A write to a pipe whose reader is gone raises `SIGPIPE` in the writing thread, and the
/// default action kills the whole process. Rust binaries ignore it already, but a host
/// program (Python, C) may not. With the signal blocked in the reader threads, such a write
/// fails with `EPIPE` instead; the pending signal is discarded when the thread exits.
pub(crate) fn block_sigpipe_in_this_thread() {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t that outlives the
    // calls; pthread_sigmask only changes the calling thread's mask and ignores the null
    // "old mask" pointer.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut());
    }
}

/// Test helper: `write(2)` straight to a raw descriptor, bypassing std's buffering.
#[cfg(test)]
pub(crate) fn write_raw(fd: RawFd, bytes: &[u8]) -> isize {
    // SAFETY: the pointer and length describe the readable `bytes` slice, which outlives the
    // call; write(2) does not keep the pointer.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
}

/// Test helper: restores the default action of `SIGPIPE` (terminate), as a C or Python host
/// may have it, to prove that the reader threads block it.
#[cfg(test)]
pub(crate) fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler code and has no
    // memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Test helper: the soft limit on open descriptors (`RLIMIT_NOFILE`).
#[cfg(test)]
pub(crate) fn open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit that outlives the call.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// Test helper: sets the soft limit on open descriptors.
#[cfg(test)]
pub(crate) fn set_open_files_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit that outlives both calls.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = soft.min(limit.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// Test helper: `fork(2)`; returns the child's pid in the parent and 0 in the child.
#[cfg(test)]
pub(crate) fn fork() -> i32 {
    // SAFETY: the tests call this from a single-threaded point of their own child process
    // (no locks held by other threads that the forked child will use), and the forked child
    // only writes to descriptors and calls `exit_now`.
    unsafe { libc::fork() }
}

/// Test helper: waits for a child process; returns its raw wait status.
#[cfg(test)]
pub(crate) fn wait_for(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable int that outlives the call.
    unsafe {
        libc::waitpid(pid, &mut status, 0);
    }
    status
}

/// Test helper: `_exit(2)`, ending a forked child without running the test harness's exit
/// path a second time.
#[cfg(test)]
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn poll_sees_data_and_hangup() {
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let ready = poll_readable(reader.as_fd(), None, Some(Duration::ZERO)).unwrap();
        assert_eq!(
            ready,
            Ready {
                first: false,
                second: false
            }
        );
        writer.write_all(b"x").unwrap();
        let ready = poll_readable(reader.as_fd(), None, Some(Duration::ZERO)).unwrap();
        assert!(ready.first);
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte).unwrap();
        drop(writer);
        let ready = poll_readable(reader.as_fd(), None, Some(Duration::from_secs(5))).unwrap();
        assert!(ready.first, "a hang-up is readable");
    }

    #[test]
    fn writable_pipe() {
        let (_reader, writer) = std::io::pipe().unwrap();
        assert!(wait_writable(writer.as_fd(), Duration::ZERO));
    }
}

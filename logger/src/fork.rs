//! Fork awareness and the raw signal dispositions: the crate's only `unsafe` code.
//!
//! A `pthread_atfork` child handler bumps a process-wide *fork generation*. Every run and setup
//! remembers the generation it was made in; the log hot path compares one relaxed atomic load
//! with it, so a forked child (which has copies of its parent's handles, but none of the
//! parent's threads) never writes to or finishes its parent's runs.
//!
//! The child handler also puts SIGTERM back to the disposition it had before this crate
//! installed its handler: the thread that answers SIGTERM does not exist in the child, and a
//! child that never starts a run must still die on SIGTERM as it would have. A child that starts
//! a run reinstalls the handler with [`reinstall_sigterm`]. Everything the child handler does is
//! async-signal-safe (an atomic add, an atomic load and `sigaction`).

#![allow(unsafe_code)]

use std::io;
use std::sync::Once;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

/// SIGTERM's disposition before we installed our handler, and ours.
struct Dispositions {
    previous: libc::sigaction,
    ours: libc::sigaction,
}

static SIGTERM_DISPOSITIONS: OnceLock<Dispositions> = OnceLock::new();

/// Registers the fork handler (once per process; later calls do nothing).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `child_after_fork` is an `extern "C" fn()` with no captured state that only
        // performs async-signal-safe operations, as POSIX requires of a child fork handler.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(child_after_fork)) };
        if rc != 0 {
            crate::diag::warning!(
                "pthread_atfork failed ({rc}): forked children are detected by pid only"
            );
        }
    });
}

extern "C" fn child_after_fork() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    if let Some(dispositions) = SIGTERM_DISPOSITIONS.get() {
        // SAFETY: `previous` is a valid `sigaction` read from the kernel earlier; `sigaction` is
        // async-signal-safe and the old-action pointer may be null.
        unsafe {
            libc::sigaction(libc::SIGTERM, &dispositions.previous, std::ptr::null_mut());
        }
    }
}

/// The current fork generation: 0 in the original process, bumped in every forked child.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// What a signal did before we touched it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// `SIG_DFL`: the default action (terminate, for SIGTERM).
    Default,
    /// `SIG_IGN`.
    Ignore,
    /// A handler function (chained by signal-hook).
    Handler,
}

/// The current disposition of SIGTERM.
pub(crate) fn sigterm_disposition() -> io::Result<Disposition> {
    let action = read_sigaction(libc::SIGTERM)?;
    Ok(classify(&action))
}

fn classify(action: &libc::sigaction) -> Disposition {
    match action.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        _ => Disposition::Handler,
    }
}

fn read_sigaction(signal: libc::c_int) -> io::Result<libc::sigaction> {
    // SAFETY: an all-zero `sigaction` is a valid value of this plain C struct.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `action` is a valid, writable `sigaction`.
    let rc = unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(action)
}

/// Remembers SIGTERM's disposition before (`previous`) and after (read now) our handler was
/// installed, so that forked children can restore the first and reinstall the second.
pub(crate) fn remember_sigterm(previous: Disposition) -> io::Result<()> {
    let ours = read_sigaction(libc::SIGTERM)?;
    // Rebuild the previous action from its kind: only the default or a chained handler can be
    // replaced by ours (an ignored SIGTERM is left alone), and for a chained handler the child
    // inherits signal-hook's handler, which keeps calling it.
    let previous_action = match previous {
        Disposition::Default => {
            // SAFETY: an all-zero `sigaction` is valid; its handler is SIG_DFL (0).
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = libc::SIG_DFL;
            action
        }
        Disposition::Ignore | Disposition::Handler => ours,
    };
    let _ = SIGTERM_DISPOSITIONS.set(Dispositions {
        previous: previous_action,
        ours,
    });
    Ok(())
}

/// SIGTERM's disposition before our handler, if we installed one.
pub(crate) fn previous_sigterm() -> Option<Disposition> {
    SIGTERM_DISPOSITIONS.get().map(|d| classify(&d.previous))
}

/// Puts our SIGTERM handler back (in a forked child that starts a run).
pub(crate) fn reinstall_sigterm() -> io::Result<()> {
    let Some(dispositions) = SIGTERM_DISPOSITIONS.get() else {
        return Ok(());
    };
    // SAFETY: `ours` is a valid `sigaction` read from the kernel in this process's parent, and
    // the handler it names (signal-hook's) is part of this same binary.
    let rc = unsafe { libc::sigaction(libc::SIGTERM, &dispositions.ours, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

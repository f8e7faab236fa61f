//! Memory-mapping a file for reading, safe against the file shrinking under the map (one of the few
//! modules allowed `unsafe`).
//!
//! Mapping avoids copying a whole record file into memory before scanning it. The usual risk of maps
//! is that if another process truncates the file while it is mapped (a logger re-opening the run and
//! cutting a torn tail, say), touching the lost pages raises SIGBUS and kills the process. So every map
//! made here is registered in a fixed table, and a SIGBUS handler, installed the first time a file is
//! mapped, looks the faulting address up in it: a fault inside one of our maps gets a page of zeros
//! mapped over the lost page and sets the map's `faulted` flag, and the faulting read then sees zeros
//! instead of killing the process. Readers check the flag ([`Mapping::faulted`]) and, once it is set,
//! look at the file's length again and report the lost part as damage (see `reader.rs`). A fault
//! anywhere else is handed to the handler that was installed before ours (Rust's own stack-overflow
//! handler, typically), or to the default action, exactly as if ours did not exist.
//!
//! When the table is full or the handler cannot be installed, the file is read into memory instead.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read};
use std::mem::ManuallyDrop;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// Maps that can be registered at the same time; more are read into memory instead.
const SLOTS: usize = 256;

const FREE: u8 = 0;
const BUSY: u8 = 1;
const LIVE: u8 = 2;

/// One registered map: its address range and whether a page of it was lost.
struct Slot {
    state: AtomicU8,
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            state: AtomicU8::new(FREE),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            faulted: AtomicBool::new(false),
        }
    }
}

/// The registered maps. The signal handler only reads atomics here, which is async-signal-safe.
static SLOT_TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

/// The system's page size, read once before the handler is installed (`sysconf` is not
/// async-signal-safe).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The SIGBUS disposition that was in place before ours, set before ours is installed.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Whether our handler is installed (decided once per process).
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Bytes of a file, mapped or (for empty files, in-memory data, and when no map can be guarded)
/// owned.
#[derive(Debug)]
pub(crate) enum Mapping {
    Mapped(Guarded),
    Owned(Vec<u8>),
}

/// A read-only map registered with the SIGBUS handler; unregistered before it is unmapped.
pub(crate) struct Guarded {
    map: ManuallyDrop<memmap2::Mmap>,
    slot: &'static Slot,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("len", &self.map.len())
            .field("faulted", &self.slot.faulted.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // Unregister first, so the handler no longer claims the range, then unmap, then free the slot.
        self.slot.state.store(BUSY, Ordering::Release);
        // SAFETY: `map` is dropped exactly once, here, and never used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.map) };
        self.slot.state.store(FREE, Ordering::Release);
    }
}

impl Mapping {
    /// Maps `file` (of `len` bytes, from its metadata) read-only. An empty file gets an empty buffer
    /// (mapping zero bytes is an error); when no guarded map can be made, the file is read.
    pub(crate) fn map(file: &File, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Ok(Mapping::Owned(Vec::new()));
        }
        if !installed() {
            return read_all(file, len);
        }
        let Some(slot) = claim_slot() else {
            return read_all(file, len);
        };
        // SAFETY: the map is read-only and private to this process. Another process may still shrink
        // the file while it is mapped; touching a lost page then raises SIGBUS, which our handler
        // turns into a page of zeros for addresses in registered maps (this one is registered below,
        // before any slice of it is handed out). The bytes of a `&[u8]` over the map may therefore
        // change under a reader (to zeros, or to new content another process writes); the scanner
        // treats them as untrusted input anyway, checksumming and bounds-checking everything.
        let map = match unsafe { memmap2::Mmap::map(file) } {
            Ok(map) => map,
            Err(error) => {
                slot.state.store(FREE, Ordering::Release);
                return Err(error);
            }
        };
        slot.start.store(map.as_ptr() as usize, Ordering::Relaxed);
        slot.len.store(map.len(), Ordering::Relaxed);
        slot.faulted.store(false, Ordering::Relaxed);
        slot.state.store(LIVE, Ordering::Release);
        Ok(Mapping::Mapped(Guarded {
            map: ManuallyDrop::new(map),
            slot,
        }))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Mapping::Mapped(guarded) => &guarded.map,
            Mapping::Owned(bytes) => bytes,
        }
    }

    /// Whether a page of the map was lost (the file shrank under it) and reads as zeros now.
    pub(crate) fn faulted(&self) -> bool {
        match self {
            Mapping::Mapped(guarded) => guarded.slot.faulted.load(Ordering::Acquire),
            Mapping::Owned(_) => false,
        }
    }
}

/// Reads the whole file (at most `len` bytes, its length when it was opened).
fn read_all(file: &File, len: u64) -> io::Result<Mapping> {
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let reader: &File = file;
    reader.take(len).read_to_end(&mut bytes)?;
    Ok(Mapping::Owned(bytes))
}

/// Takes a free slot and marks it busy.
fn claim_slot() -> Option<&'static Slot> {
    SLOT_TABLE.iter().find(|slot| {
        slot.state
            .compare_exchange(FREE, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })
}

/// Installs the SIGBUS handler once; whether it is in place.
fn installed() -> bool {
    *INSTALLED.get_or_init(install)
}

fn install() -> bool {
    // SAFETY: `sysconf` has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let Ok(page) = usize::try_from(page) else {
        return false;
    };
    if !page.is_power_of_two() {
        return false;
    }
    PAGE_SIZE.store(page, Ordering::Relaxed);
    // SAFETY: an all-zero `sigaction` is a valid value of the plain C struct; `sigaction` with a null
    // new action only reads the current disposition into `previous`.
    let read = unsafe {
        let mut previous: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) == 0).then_some(previous)
    };
    let Some(previous) = read else {
        return false;
    };
    if PREVIOUS.set(previous).is_err() {
        return false;
    }
    // SAFETY: as above for the zeroed struct; `sigemptyset` initialises the mask it is given; the
    // handler has the signature `SA_SIGINFO` requires and only does async-signal-safe work (atomic
    // loads and stores, `mmap`, `sigaction`, `raise`, or a call to the previous handler).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) == 0
    }
}

/// The SIGBUS handler: zero page over a lost page of one of our maps, else the previous disposition.
extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler (checked for null
    // anyway); `si_addr` is meaningful for the fault codes we check first.
    let (code, addr) = if info.is_null() {
        (0, 0)
    } else {
        unsafe { ((*info).si_code, (*info).si_addr() as usize) }
    };
    if code == libc::BUS_ADRERR && addr != 0 && zero_fill(addr) {
        return;
    }
    chain(signal, info, context);
}

/// Maps a page of zeros over the page holding `addr` if it lies in a registered map, and flags that
/// map. Returns whether it did.
fn zero_fill(addr: usize) -> bool {
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    if page == 0 {
        return false;
    }
    for slot in &SLOT_TABLE {
        if slot.state.load(Ordering::Acquire) != LIVE {
            continue;
        }
        let start = slot.start.load(Ordering::Relaxed);
        let len = slot.len.load(Ordering::Relaxed);
        if addr < start || addr - start >= len {
            continue;
        }
        let page_start = addr & !(page - 1);
        // SAFETY: the page lies inside a live read-only map of ours (maps start on a page boundary,
        // and the kernel maps whole pages, so the page is entirely ours); replacing it with a private
        // anonymous read-only page keeps the range mapped and readable, and it is unmapped with the
        // rest of the map when the map is dropped.
        let mapped = unsafe {
            libc::mmap(
                page_start as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return false;
        }
        slot.faulted.store(true, Ordering::Release);
        return true;
    }
    false
}

/// Hands a SIGBUS that is not ours to the disposition installed before ours.
fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let handler = PREVIOUS
        .get()
        .map_or(libc::SIG_DFL, |previous| previous.sa_sigaction);
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Back to the default action. A fault re-raises itself when the faulting instruction runs
        // again after we return; a signal sent by a process is raised again (it stays pending until
        // the handler returns).
        // SAFETY: as in `install`; `sigaction` and `raise` are async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
            let from_process = info.is_null() || (*info).si_code <= 0;
            if from_process {
                libc::raise(signal);
            }
        }
        return;
    }
    let siginfo = PREVIOUS
        .get()
        .is_some_and(|previous| previous.sa_flags & libc::SA_SIGINFO != 0);
    // SAFETY: `handler` is neither SIG_DFL nor SIG_IGN, so it is the function pointer someone
    // installed, of the signature its `SA_SIGINFO` flag says.
    unsafe {
        if siginfo {
            let previous: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(handler);
            previous(signal, info, context);
        } else {
            let previous: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
            previous(signal);
        }
    }
}

//! Console capture at the file-descriptor level: everything the process (and any child it
//! starts) writes to stdout and stderr is shown on the terminal unchanged and also handed to a
//! sink, which turns it into W&B `output_raw` records (W&B's `console="wrap"`).
//!
//! # How it works
//!
//! [`ConsoleCapture::start`] duplicates fds 1 and 2 (keeping the originals), creates a pipe per
//! stream and `dup2`s the pipe's write end onto 1 and 2. One reader thread per stream reads the
//! pipe, writes each chunk to the original descriptor at once (so the terminal shows it
//! promptly and byte for byte), then calls the sink with the stream, the bytes and the time.
//! [`ConsoleCapture::stop`] flushes Rust's `stdout`, puts the original descriptors back, and
//! drains each pipe completely before returning, so no output written before `stop` is lost.
//!
//! # Rules and guarantees
//!
//! * **One capture per process.** Capture is process-global; a second [`ConsoleCapture::start`]
//!   while one is active returns [`ConsoleError::AlreadyActive`]. With several runs, start one
//!   capture and fan the chunks out to every active run from the sink.
//! * **The sink runs on the reader threads** (stdout and stderr concurrently). It must be quick
//!   and must never write to stdout or stderr, log to them, or panic: the reader of a stream
//!   is also the only consumer of its pipe, so a sink that writes into the pipe it is draining
//!   can deadlock once the pipe (64 KiB) is full. A sink that panics anyway is dropped;
//!   output keeps flowing to the terminal.
//! * **The terminal going away is not an error.** If writing to the original descriptor fails
//!   (`EPIPE` after the terminal or the reading end of a pipe closed, `EBADF`, `EIO`),
//!   passthrough stops and capture goes on. `SIGPIPE` is blocked in the reader threads, so a
//!   host that does not ignore it (Python, C) is not killed. A non-blocking original that
//!   stays full for a second drops that chunk from the terminal only.
//! * **Child processes** started while capture is active inherit the pipe as their stdout and
//!   stderr, so their output is captured too (like W&B's `redirect` mode). A child that
//!   outlives [`ConsoleCapture::stop`] keeps the pipe open: `stop` does not wait for it;
//!   the reader thread stays behind as a plain passthrough to the terminal (no more sink calls)
//!   until the last such child closes the pipe.
//! * **`fork` without `exec`**: the child's fds 1 and 2 are the parent's pipes and its copy of
//!   the capture has no reader threads. Its output is therefore captured by the *parent* (and
//!   attributed to the parent's runs), and shows on the terminal as long as the parent's
//!   reader runs. In the child, [`ConsoleCapture::stop`] (or drop) only puts the original
//!   descriptors back, and a new [`ConsoleCapture::start`] is allowed.
//! * **Stopping is bounded**: `stop` waits at most [`STOP_WAIT`] per stream for the drain.
//! * **Ordering**: each stream's bytes reach the terminal and the sink in the order written.
//!   Between the two streams, and against anything written straight to the original
//!   terminal (by another process), order is only as good as the reader threads' timing.
//! * **Before start**, buffered Rust `stdout` content is flushed to the terminal so that it is
//!   not captured out of order. Output buffered in C `stdio` is not visible to us.
//!
//! Under `cargo test`, `println!` in a test goes to the test harness, not to fd 1; it is only
//! captured with `--nocapture`.

use std::io;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use wandb_format::proto::{OutputRawRecord, output_raw_record};

#[cfg(unix)]
mod fd;

/// How long [`ConsoleCapture::stop`] waits for each stream's pipe to drain.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) const STOP_WAIT: Duration = Duration::from_secs(2);

/// A standard output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Stream {
    /// Standard output (fd 1).
    Stdout,
    /// Standard error (fd 2).
    Stderr,
}

impl Stream {
    /// The stream's file descriptor number.
    #[cfg(unix)]
    pub(crate) fn fd(self) -> i32 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }

    /// The `output_type` of W&B's `OutputRawRecord` (STDERR = 0, STDOUT = 1).
    pub(crate) fn output_type(self) -> output_raw_record::OutputType {
        match self {
            Stream::Stdout => output_raw_record::OutputType::Stdout,
            Stream::Stderr => output_raw_record::OutputType::Stderr,
        }
    }
}

/// Receives every captured chunk: the stream, the bytes as read from the pipe (any size from
/// one byte to 64 KiB, not aligned to lines or UTF-8 characters), and when they were read.
pub(crate) type Sink = Arc<dyn Fn(Stream, &[u8], SystemTime) + Send + Sync>;

/// Why console capture could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConsoleError {
    /// A capture is already active in this process.
    #[error("console capture is already active in this process")]
    AlreadyActive,
    /// Capture needs Unix file descriptors.
    #[cfg(not(unix))]
    #[error("console capture is not supported on this platform")]
    Unsupported,
    /// A system call failed.
    #[cfg_attr(not(unix), allow(dead_code))]
    #[error("console capture: {operation} failed for {stream:?}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// Which stream.
        stream: Stream,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The process id that owns the active capture, if any (guards against double start; a
/// forked child sees its parent's id and may start its own).
static ACTIVE: Mutex<Option<u32>> = Mutex::new(None);

/// The sink, shared with the reader threads so that `stop` can take it away.
type SinkSlot = Arc<RwLock<Option<Sink>>>;

/// An active capture of stdout and stderr. Stop it with [`ConsoleCapture::stop`]; dropping it
/// stops it too (ignoring errors).
#[must_use = "dropping the capture stops it at once"]
pub(crate) struct ConsoleCapture {
    #[cfg(unix)]
    streams: Vec<unix::StreamCapture>,
    /// The process that started the capture.
    pid: u32,
    sink: SinkSlot,
    stopped: bool,
}

impl std::fmt::Debug for ConsoleCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleCapture")
            .field("pid", &self.pid)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl ConsoleCapture {
    /// Starts capturing fds 1 and 2 into `sink` (see the module docs for the rules).
    pub(crate) fn start(sink: Sink) -> Result<ConsoleCapture, ConsoleError> {
        let pid = std::process::id();
        {
            let mut active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
            if *active == Some(pid) {
                return Err(ConsoleError::AlreadyActive);
            }
            *active = Some(pid); // Reserved; released below on failure, or by stop.
        }
        let slot: SinkSlot = Arc::new(RwLock::new(Some(sink)));
        let result = Self::start_streams(pid, slot);
        if result.is_err() {
            // A half-started capture has already been undone (dropped) by now.
            *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        result
    }

    #[cfg(unix)]
    fn start_streams(pid: u32, sink: SinkSlot) -> Result<ConsoleCapture, ConsoleError> {
        // Whatever Rust has buffered so far belongs on the terminal, before the capture.
        let _ = io::Write::flush(&mut io::stdout());
        let mut capture = ConsoleCapture {
            streams: Vec::with_capacity(2),
            pid,
            sink,
            stopped: false,
        };
        for stream in [Stream::Stdout, Stream::Stderr] {
            // On failure, `capture` is dropped here, which undoes the streams already started.
            let started = unix::StreamCapture::start(stream, Arc::clone(&capture.sink))?;
            capture.streams.push(started);
        }
        Ok(capture)
    }

    #[cfg(not(unix))]
    fn start_streams(_pid: u32, _sink: SinkSlot) -> Result<ConsoleCapture, ConsoleError> {
        Err(ConsoleError::Unsupported)
    }

    /// Stops capturing: flushes Rust's stdout, restores fds 1 and 2, drains the pipes (at most
    /// [`STOP_WAIT`] per stream) and joins the reader threads. When it returns, the sink has
    /// received everything written before the call and will not be called again.
    ///
    /// Returns the first error from restoring a descriptor (the other stream is still
    /// restored and everything is cleaned up regardless).
    pub(crate) fn stop(mut self) -> Result<(), ConsoleError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ConsoleError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let result = self.shutdown_streams();
        if std::process::id() == self.pid {
            // No sink call can start after this; one in progress is waited for.
            *self.sink.write().unwrap_or_else(PoisonError::into_inner) = None;
            *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = None;
        } else {
            // A forked child: locks copied from the parent may be held by threads that do not
            // exist here, so never wait on them. The sink is never called in the child anyway.
            if let Ok(mut active) = ACTIVE.try_lock() {
                *active = None;
            }
        }
        result
    }

    #[cfg(unix)]
    fn shutdown_streams(&mut self) -> Result<(), ConsoleError> {
        let forked_child = std::process::id() != self.pid;
        if !forked_child {
            // Into the pipe, so that it is captured. (In a forked child the stdout lock may be
            // held by a thread that does not exist there: leave it alone.)
            let _ = io::Write::flush(&mut io::stdout());
        }
        let mut first_error = None;
        for stream in &mut self.streams {
            if let Err(error) = stream.restore() {
                first_error.get_or_insert(error);
            }
        }
        for stream in self.streams.drain(..) {
            if forked_child {
                stream.abandon(); // Its reader thread only exists in the parent.
            } else {
                stream.finish();
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    #[cfg(not(unix))]
    fn shutdown_streams(&mut self) -> Result<(), ConsoleError> {
        Ok(())
    }
}

impl Drop for ConsoleCapture {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(unix)]
mod unix {
    //! The per-stream machinery: pipe, original descriptor and reader thread.

    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::PoisonError;
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::thread::JoinHandle;
    use std::time::{Duration, SystemTime};

    use super::{ConsoleError, STOP_WAIT, SinkSlot, Stream, fd};

    /// Size of one read from a capture pipe, so the largest chunk passed to the sink.
    const CHUNK: usize = 64 * 1024;

    /// How long a write to a full, non-blocking terminal may wait before the chunk is dropped
    /// from the terminal (it is still captured).
    const PASSTHROUGH_WAIT: Duration = Duration::from_secs(1);

    /// Sent by a reader once the pipe is empty after `stop` while some other process still
    /// holds its write end; the reader then only passes output through.
    struct Drained;

    /// One captured stream.
    pub(super) struct StreamCapture {
        stream: Stream,
        /// The descriptor that was at 1 or 2 before capture; `None` if it was closed.
        original: Option<OwnedFd>,
        /// Shutting this down (see [`StreamCapture::wake_reader`]) tells the reader to drain
        /// and stop.
        wake: Option<UnixStream>,
        /// Receives [`Drained`]; disconnects when the reader thread ends.
        events: mpsc::Receiver<Drained>,
        thread: Option<JoinHandle<()>>,
        restored: bool,
    }

    /// Turns an OS error into a [`ConsoleError`] for `stream`.
    fn io_error(operation: &'static str, stream: Stream) -> impl FnOnce(io::Error) -> ConsoleError {
        move |source| ConsoleError::Io {
            operation,
            stream,
            source,
        }
    }

    /// A pipe whose two ends are numbered 3 or above, so that neither can be a standard
    /// descriptor that capture is about to replace (they are if 0, 1 or 2 was closed).
    fn pipe_above_stdio() -> io::Result<(io::PipeReader, io::PipeWriter)> {
        let (reader, writer) = io::pipe()?;
        Ok((
            above_stdio(reader, io::PipeReader::try_clone)?,
            above_stdio(writer, io::PipeWriter::try_clone)?,
        ))
    }

    /// A connected socket pair for waking a reader, both ends numbered 3 or above. A socket,
    /// not a pipe, because `shutdown` wakes the reader without writing anything: no `SIGPIPE`
    /// if the reader has already exited, and it works even when a forked child holds a copy
    /// of the descriptor (closing ours would then not be seen).
    fn wake_pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = UnixStream::pair()?;
        Ok((
            above_stdio(a, UnixStream::try_clone)?,
            above_stdio(b, UnixStream::try_clone)?,
        ))
    }

    /// `fd` itself if it is numbered 3 or above, else a duplicate that is (std duplicates with
    /// `F_DUPFD_CLOEXEC` from 3); the low one is closed when dropped.
    fn above_stdio<T: AsRawFd>(fd: T, clone: impl FnOnce(&T) -> io::Result<T>) -> io::Result<T> {
        if fd.as_raw_fd() < 3 {
            clone(&fd)
        } else {
            Ok(fd)
        }
    }

    impl StreamCapture {
        /// Duplicates the stream's descriptor, starts its reader and redirects the stream into
        /// the pipe.
        pub(super) fn start(stream: Stream, sink: SinkSlot) -> Result<Self, ConsoleError> {
            let original = match stream {
                Stream::Stdout => io::stdout().as_fd().try_clone_to_owned(),
                Stream::Stderr => io::stderr().as_fd().try_clone_to_owned(),
            };
            let original = match original {
                Ok(original) => Some(original),
                // Closed before we came: capture anyway, with nothing to pass through to.
                Err(error) if error.raw_os_error() == Some(libc::EBADF) => None,
                Err(error) => return Err(io_error("dup", stream)(error)),
            };
            let passthrough = original
                .as_ref()
                .map(|fd| fd.try_clone().map(File::from))
                .transpose()
                .map_err(io_error("dup", stream))?;
            let (data_reader, data_writer) =
                pipe_above_stdio().map_err(io_error("pipe", stream))?;
            let (wake_reader, wake_writer) = wake_pair().map_err(io_error("socketpair", stream))?;
            let (events_tx, events) = mpsc::channel();
            let name = match stream {
                Stream::Stdout => "wandb-console-stdout",
                Stream::Stderr => "wandb-console-stderr",
            };
            let reader = Reader {
                stream,
                data: data_reader,
                wake: wake_reader,
                passthrough,
                sink,
                events: events_tx,
            };
            let thread = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || reader.run())
                .map_err(io_error("spawn reader thread", stream))?;
            let mut capture = StreamCapture {
                stream,
                original,
                wake: Some(wake_writer),
                events,
                thread: Some(thread),
                restored: true,
            };
            // From here on, writes to the stream go into the pipe. If this fails, dropping
            // `capture` wakes the reader, which sees EOF (our write end is its only writer).
            fd::redirect(data_writer.as_fd(), stream.fd()).map_err(io_error("dup2", stream))?;
            capture.restored = false;
            drop(data_writer);
            Ok(capture)
        }

        /// Puts the original descriptor back at 1 or 2 (closes it if there was none).
        pub(super) fn restore(&mut self) -> Result<(), ConsoleError> {
            if self.restored {
                return Ok(());
            }
            self.restored = true;
            match &self.original {
                Some(original) => fd::redirect(original.as_fd(), self.stream.fd())
                    .map_err(io_error("dup2", self.stream)),
                None => {
                    fd::close_standard(self.stream.fd());
                    Ok(())
                }
            }
        }

        /// Tells the reader to drain, waits for it, and joins it (or leaves it passing output
        /// of lingering child processes through).
        pub(super) fn finish(mut self) {
            self.wake_reader();
            let Some(thread) = self.thread.take() else {
                return;
            };
            match self.events.recv_timeout(STOP_WAIT) {
                // The reader hit EOF and ended: join it.
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = thread.join();
                }
                // Drained, but a child process still holds the pipe, or the drain timed out:
                // leave the thread running on its own (dropping the handle detaches it).
                Ok(Drained) | Err(RecvTimeoutError::Timeout) => drop(thread),
            }
        }

        /// In a forked child: forget the reader thread, which only exists in the parent.
        pub(super) fn abandon(mut self) {
            if let Some(thread) = self.thread.take() {
                std::mem::forget(thread);
            }
            // The wake socket is shared with the parent: closing our descriptor is harmless,
            // but shutting it down would stop the parent's capture.
            drop(self.wake.take());
        }

        /// Shuts the wake socket down: the reader's end becomes readable (end of file).
        fn wake_reader(&mut self) {
            if let Some(wake) = self.wake.take() {
                let _ = wake.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    impl Drop for StreamCapture {
        fn drop(&mut self) {
            // Does something only on a failed start; `finish` and `abandon` leave nothing to do.
            let _ = self.restore();
            self.wake_reader();
        }
    }

    /// What a reader thread owns.
    struct Reader {
        stream: Stream,
        data: io::PipeReader,
        wake: UnixStream,
        /// Our own duplicate of the original descriptor; `None` once writing to it failed.
        passthrough: Option<File>,
        sink: SinkSlot,
        events: mpsc::Sender<Drained>,
    }

    impl Reader {
        fn run(mut self) {
            fd::block_sigpipe_in_this_thread();
            let mut buffer = vec![0u8; CHUNK];
            // Capturing: wait for data or the wake-up.
            while let Ok(ready) =
                fd::poll_readable(self.data.as_fd(), Some(self.wake.as_fd()), None)
            {
                if ready.second {
                    break;
                }
                if ready.first && !self.forward_one(&mut buffer, true) {
                    return; // End of file: every writer is gone.
                }
            }
            // (A failed poll also ends up here: drain what is there and finish.)
            // Draining: everything already in the pipe, without waiting for more.
            loop {
                match fd::poll_readable(self.data.as_fd(), None, Some(Duration::ZERO)) {
                    Ok(ready) if ready.first => {
                        if !self.forward_one(&mut buffer, true) {
                            return;
                        }
                    }
                    _ => break,
                }
            }
            let _ = self.events.send(Drained);
            // Another process (a child) still holds the pipe: keep its output on the terminal
            // until it closes, without calling the sink.
            while self.forward_one(&mut buffer, false) {}
        }

        /// Reads one chunk, passes it through and (if `capture`) to the sink; `false` at end of
        /// file or on a read error.
        fn forward_one(&mut self, buffer: &mut [u8], capture: bool) -> bool {
            let n_read = loop {
                match self.data.read(buffer) {
                    Ok(n_read) => break n_read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
            };
            let Some(chunk) = buffer.get(..n_read).filter(|chunk| !chunk.is_empty()) else {
                return false;
            };
            let time = SystemTime::now();
            self.pass_through(chunk);
            if capture {
                self.call_sink(chunk, time);
            }
            true
        }

        /// Writes the chunk to the original descriptor, handling partial writes, `EINTR` and a
        /// non-blocking terminal; gives up passthrough for good on any other error.
        fn pass_through(&mut self, mut chunk: &[u8]) {
            let Some(file) = self.passthrough.as_mut() else {
                return;
            };
            while !chunk.is_empty() {
                match file.write(chunk) {
                    Ok(0) => {
                        self.passthrough = None;
                        return;
                    }
                    Ok(n_written) => chunk = chunk.get(n_written..).unwrap_or_default(),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        if !fd::wait_writable(file.as_fd(), PASSTHROUGH_WAIT) {
                            return; // Drop the rest of this chunk from the terminal only.
                        }
                    }
                    Err(_) => {
                        // EPIPE, EBADF, EIO...: the terminal is gone; keep capturing.
                        self.passthrough = None;
                        return;
                    }
                }
            }
        }

        fn call_sink(&self, chunk: &[u8], time: SystemTime) {
            let guard = self.sink.read().unwrap_or_else(PoisonError::into_inner);
            let Some(sink) = guard.as_ref() else {
                return;
            };
            let panicked =
                catch_unwind(AssertUnwindSafe(|| sink(self.stream, chunk, time))).is_err();
            drop(guard);
            if panicked {
                // Never call a broken sink again (this drops it for both streams).
                *self.sink.write().unwrap_or_else(PoisonError::into_inner) = None;
            }
        }
    }
}

/// Turns captured chunks into `OutputRawRecord`s.
///
/// One record per chunk, holding the chunk's text as written (partial lines, `\r`, ANSI
/// escapes and all): wandb-core runs `output_raw` text through a terminal emulator, so how the
/// text is cut into records does not change the console it shows. (The SDK writes two records
/// per Python `print`, the text and a separate `"\n"`, only because `print` makes two `write`
/// calls.) A UTF-8 character split across two chunks is held back and completed by the next
/// chunk of the same stream; other invalid UTF-8 becomes U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct OutputDecoder {
    /// Bytes of an unfinished UTF-8 character at the end of the last chunk, per stream.
    pending_stdout: Vec<u8>,
    pending_stderr: Vec<u8>,
}

impl OutputDecoder {
    /// The record for one chunk, or `None` when the chunk only holds part of a character.
    pub(crate) fn record(
        &mut self,
        stream: Stream,
        chunk: &[u8],
        time: SystemTime,
    ) -> Option<OutputRawRecord> {
        let pending = match stream {
            Stream::Stdout => &mut self.pending_stdout,
            Stream::Stderr => &mut self.pending_stderr,
        };
        let mut bytes = std::mem::take(pending);
        bytes.extend_from_slice(chunk);
        let complete = bytes.len() - incomplete_suffix_len(&bytes);
        let (text, rest) = bytes.split_at(complete);
        pending.extend_from_slice(rest);
        if text.is_empty() {
            return None;
        }
        Some(output_record(
            stream,
            String::from_utf8_lossy(text).into_owned(),
            time,
        ))
    }

    /// Records for bytes still held back (an unfinished character at the very end of the
    /// output), written as U+FFFD. Call it once capture has stopped.
    pub(crate) fn finish(&mut self, time: SystemTime) -> Vec<OutputRawRecord> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .filter_map(|stream| {
                let pending = match stream {
                    Stream::Stdout => std::mem::take(&mut self.pending_stdout),
                    Stream::Stderr => std::mem::take(&mut self.pending_stderr),
                };
                (!pending.is_empty()).then(|| {
                    output_record(stream, String::from_utf8_lossy(&pending).into_owned(), time)
                })
            })
            .collect()
    }
}

fn output_record(stream: Stream, line: String, time: SystemTime) -> OutputRawRecord {
    OutputRawRecord {
        output_type: stream.output_type() as i32,
        timestamp: Some(time.into()),
        line,
        info: None,
    }
}

/// Length of a trailing, unfinished but so far valid UTF-8 sequence (0 to 3 bytes).
fn incomplete_suffix_len(bytes: &[u8]) -> usize {
    // Look back at most 3 bytes for the lead byte of the last sequence.
    for back in 1..=bytes.len().min(3) {
        let Some(&byte) = bytes.get(bytes.len() - back) else {
            return 0;
        };
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // A continuation byte: keep looking for the lead.
        }
        let needed = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0, // ASCII or an invalid lead: nothing to wait for.
        };
        let tail = bytes.get(bytes.len() - back..).unwrap_or_default();
        return if back < needed && can_complete(tail) {
            back
        } else {
            0
        };
    }
    0
}

/// Whether an unfinished sequence (lead byte plus continuation bytes) can still become a valid
/// character: the second byte of some leads has a narrower range (no overlongs, no surrogates,
/// nothing above U+10FFFF).
fn can_complete(tail: &[u8]) -> bool {
    let Some((&lead, rest)) = tail.split_first() else {
        return false;
    };
    let second = match lead {
        0xE0 => 0xA0..=0xBF,
        0xED => 0x80..=0x9F,
        0xF0 => 0x90..=0xBF,
        0xF4 => 0x80..=0x8F,
        _ => 0x80..=0xBF,
    };
    rest.first().is_none_or(|byte| second.contains(byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn records_keep_chunks_and_types() {
        let mut decoder = OutputDecoder::default();
        let out = decoder
            .record(Stream::Stdout, b"step 1\r\x1b[Aloss\n", t(5))
            .unwrap();
        assert_eq!(out.line, "step 1\r\x1b[Aloss\n");
        assert_eq!(out.output_type, 1);
        assert_eq!(out.timestamp.unwrap().seconds, 5);
        let err = decoder.record(Stream::Stderr, b"warn", t(6)).unwrap();
        assert_eq!(err.output_type, 0);
        assert!(decoder.finish(t(7)).is_empty());
    }

    #[test]
    fn split_characters_are_joined() {
        let text = "héllo → 😀".as_bytes();
        for cut in 0..=text.len() {
            let mut decoder = OutputDecoder::default();
            let mut joined = String::new();
            for part in [&text[..cut], &text[cut..]] {
                if let Some(record) = decoder.record(Stream::Stdout, part, t(0)) {
                    joined.push_str(&record.line);
                }
            }
            assert!(decoder.finish(t(0)).is_empty(), "cut {cut}");
            assert_eq!(joined, "héllo → 😀", "cut {cut}");
        }
        // Byte by byte, interleaved with the other stream.
        let mut decoder = OutputDecoder::default();
        let mut joined = String::new();
        for byte in text {
            if let Some(record) = decoder.record(Stream::Stdout, &[*byte], t(0)) {
                joined.push_str(&record.line);
            }
            assert!(decoder.record(Stream::Stderr, b"", t(0)).is_none());
        }
        assert_eq!(joined, "héllo → 😀");
    }

    #[test]
    fn invalid_utf8_is_lossy() {
        let mut decoder = OutputDecoder::default();
        let record = decoder
            .record(Stream::Stdout, b"a\xffb\xc0\xafc", t(0))
            .unwrap();
        assert_eq!(record.line, "a\u{fffd}b\u{fffd}\u{fffd}c");
        // A surrogate lead (ED A0) can never complete: not held back.
        let record = decoder.record(Stream::Stdout, b"x\xed\xa0", t(0)).unwrap();
        assert_eq!(record.line, "x\u{fffd}\u{fffd}");
        // An unfinished character at the very end comes out of `finish`.
        assert!(decoder.record(Stream::Stderr, b"\xe2\x86", t(0)).is_none());
        let rest = decoder.finish(t(0));
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].line, "\u{fffd}");
        assert_eq!(rest[0].output_type, 0);
    }

    #[test]
    fn suffix_lengths() {
        assert_eq!(incomplete_suffix_len(b""), 0);
        assert_eq!(incomplete_suffix_len(b"abc"), 0);
        assert_eq!(incomplete_suffix_len("é".as_bytes()), 0);
        assert_eq!(incomplete_suffix_len(b"a\xc3"), 1);
        assert_eq!(incomplete_suffix_len(b"\xf0\x9f\x98"), 3);
        assert_eq!(incomplete_suffix_len(b"\xe0\x80"), 0); // Overlong: never valid.
        assert_eq!(incomplete_suffix_len(b"\xe0\xa0"), 2);
        assert_eq!(incomplete_suffix_len(b"\xf4\x90"), 0); // Above U+10FFFF.
        assert_eq!(incomplete_suffix_len(b"\x80\x80\x80"), 0);
    }
    /// Console capture is process-global, so every capture test runs in a child process: the
    /// test binary itself, re-run with [`CHILD_SCENARIO`] naming what to do, filtered to
    /// [`console_child_entry`], and with `--nocapture` so that `println!` reaches fd 1.
    #[cfg(unix)]
    mod in_child {
        use std::fs;
        use std::io::Write;
        use std::path::{Path, PathBuf};
        use std::process::{Command, Output, Stdio};
        use std::sync::{Arc, Mutex};
        use std::time::{Duration, Instant, SystemTime};

        use super::super::{ConsoleCapture, ConsoleError, Sink, Stream, fd};

        const CHILD_SCENARIO: &str = "WANDB_LOGGER_CONSOLE_TEST_SCENARIO";
        const CHILD_OUT_DIR: &str = "WANDB_LOGGER_CONSOLE_TEST_OUT";

        type Chunks = Arc<Mutex<Vec<(Stream, Vec<u8>, SystemTime)>>>;

        fn recording_sink() -> (Sink, Chunks) {
            let chunks: Chunks = Arc::default();
            let recorded = Arc::clone(&chunks);
            let sink: Sink = Arc::new(move |stream, bytes: &[u8], time| {
                recorded
                    .lock()
                    .unwrap()
                    .push((stream, bytes.to_vec(), time));
            });
            (sink, chunks)
        }

        /// What the sink received, per stream, concatenated; saved for the parent to check.
        fn save(chunks: &Chunks, dir: &Path) {
            let chunks = chunks.lock().unwrap();
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            let mut last_time = SystemTime::UNIX_EPOCH;
            for (stream, bytes, time) in chunks.iter() {
                assert!(!bytes.is_empty());
                assert!(*time >= last_time || *stream == Stream::Stderr);
                if *stream == Stream::Stdout {
                    last_time = *time;
                    stdout.extend_from_slice(bytes);
                } else {
                    stderr.extend_from_slice(bytes);
                }
            }
            fs::write(dir.join("stdout.captured"), stdout).unwrap();
            fs::write(dir.join("stderr.captured"), stderr).unwrap();
            fs::write(dir.join("chunks"), chunks.len().to_string()).unwrap();
        }

        fn big_block() -> String {
            (0..4000)
                .map(|i| format!("big {i:05} {}\n", "x".repeat(40)))
                .collect()
        }

        /// The child side. In a normal test run (no scenario set) it does nothing.
        #[test]
        fn console_child_entry() {
            let Ok(scenario) = std::env::var(CHILD_SCENARIO) else {
                return;
            };
            let dir = PathBuf::from(std::env::var(CHILD_OUT_DIR).unwrap());
            match scenario.as_str() {
                "basic" => child_basic(&dir),
                "broken_terminal" => child_broken_terminal(&dir),
                "double_start" => child_double_start(&dir),
                "lingering_child" => child_lingering(&dir),
                "fork" => child_fork(&dir),
                "threads" => child_threads(&dir),
                #[cfg(target_os = "linux")]
                "fd_exhaustion" => child_fd_exhaustion(&dir),
                other => panic!("unknown scenario {other}"),
            }
        }

        fn child_basic(dir: &Path) {
            let (sink, chunks) = recording_sink();
            let capture = ConsoleCapture::start(sink).unwrap();
            println!("line one");
            eprintln!("err one");
            assert_eq!(fd::write_raw(1, b"raw write\n"), 10);
            let status = Command::new("sh")
                .args(["-c", "echo from child process; echo child err >&2"])
                .status()
                .unwrap();
            assert!(status.success());
            print!("{}", big_block());
            println!("utf8: héllo → 😀");
            print!("no newline at end");
            capture.stop().unwrap();
            println!("after stop");
            save(&chunks, dir);
        }

        fn child_broken_terminal(dir: &Path) {
            fd::default_sigpipe();
            // Make fd 1 a pipe whose reader is gone, as when a terminal or `| head` closes.
            let real_stdout = std::io::stdout().as_fd_clone();
            let (reader, writer) = std::io::pipe().unwrap();
            fd::redirect(std::os::fd::AsFd::as_fd(&writer), 1).unwrap();
            drop((reader, writer));

            let (sink, chunks) = recording_sink();
            let capture = ConsoleCapture::start(sink).unwrap();
            for i in 0..100 {
                println!("into the void {i}");
            }
            eprintln!("stderr still fine");
            capture.stop().unwrap();
            // Put the real stdout back before the test harness prints its verdict.
            fd::redirect(std::os::fd::AsFd::as_fd(&real_stdout), 1).unwrap();
            println!("survived");
            save(&chunks, dir);
        }

        fn child_double_start(dir: &Path) {
            let (sink, chunks) = recording_sink();
            let first = ConsoleCapture::start(Arc::clone(&sink)).unwrap();
            let second = ConsoleCapture::start(Arc::clone(&sink));
            assert!(
                matches!(second, Err(ConsoleError::AlreadyActive)),
                "{second:?}"
            );
            println!("first");
            first.stop().unwrap();
            let third = ConsoleCapture::start(sink).unwrap();
            println!("third");
            drop(third); // Dropping stops too.
            println!("not captured");
            save(&chunks, dir);
        }

        fn child_lingering(dir: &Path) {
            let (sink, chunks) = recording_sink();
            let capture = ConsoleCapture::start(sink).unwrap();
            // A child that keeps the pipe open past stop (it inherits fds 1 and 2).
            let mut child = Command::new("sh")
                .args(["-c", "sleep 3; echo late"])
                .spawn()
                .unwrap();
            println!("before stop");
            let start = Instant::now();
            capture.stop().unwrap();
            let elapsed = start.elapsed();
            save(&chunks, dir);
            fs::write(dir.join("stop_ms"), elapsed.as_millis().to_string()).unwrap();
            let _ = child.kill();
            let _ = child.wait();
        }

        fn child_threads(dir: &Path) {
            let (sink, chunks) = recording_sink();
            let capture = ConsoleCapture::start(sink).unwrap();
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    std::thread::spawn(move || {
                        for i in 0..2000 {
                            println!("thread {t} line {i}");
                            if i % 500 == 0 {
                                eprintln!("thread {t} err {i}");
                            }
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            capture.stop().unwrap();
            save(&chunks, dir);
        }

        #[cfg(target_os = "linux")]
        fn child_fd_exhaustion(dir: &Path) {
            let (sink, chunks) = recording_sink();
            let original_limit = fd::open_files_limit();
            // Fill every free descriptor number up to the highest one in use (open returns the
            // lowest free number), so that the limits below leave exactly `extra` numbers free.
            let in_use: Vec<u64> = fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            let max_in_use = in_use.into_iter().max().unwrap();
            let mut fillers = Vec::new();
            let highest = loop {
                let file = fs::File::open("/dev/null").unwrap();
                let number = u64::try_from(std::os::fd::AsRawFd::as_raw_fd(&file)).unwrap();
                fillers.push(file);
                if number >= max_in_use {
                    break number;
                }
            };
            let mut n_failed = 0;
            // Each limit lets start get one step further before it runs out of descriptors.
            for extra in 0..12 {
                fd::set_open_files_limit(highest + 1 + extra);
                match ConsoleCapture::start(Arc::clone(&sink)) {
                    Ok(capture) => {
                        fd::set_open_files_limit(original_limit);
                        capture.stop().unwrap();
                    }
                    Err(ConsoleError::Io { .. }) => n_failed += 1,
                    Err(other) => panic!("unexpected {other:?}"),
                }
                fd::set_open_files_limit(original_limit);
                // Whatever happened, fds 1 and 2 are back and usable.
                let line = format!("still here {extra}\n");
                assert_eq!(fd::write_raw(1, line.as_bytes()), line.len() as isize);
            }
            assert!(n_failed >= 6, "{n_failed}");
            drop(fillers);
            // And capture works again afterwards.
            let capture = ConsoleCapture::start(sink).unwrap();
            println!("captured at last");
            capture.stop().unwrap();
            save(&chunks, dir);
        }

        fn child_fork(dir: &Path) {
            let (sink, chunks) = recording_sink();
            let capture = ConsoleCapture::start(sink).unwrap();
            println!("parent before fork");
            let pid = fd::fork();
            if pid == 0 {
                // The forked child: its fds 1 and 2 are the parent's pipes.
                assert_eq!(fd::write_raw(1, b"from fork\n"), 10);
                // Stopping its copy restores its own fds and must not disturb the parent.
                let _ = capture.stop();
                assert_eq!(fd::write_raw(1, b"fork after stop\n"), 16);
                fd::exit_now(0);
            }
            assert!(pid > 0);
            assert_eq!(fd::wait_for(pid), 0);
            println!("parent after fork");
            capture.stop().unwrap();
            save(&chunks, dir);
        }

        trait AsFdClone {
            fn as_fd_clone(&self) -> std::os::fd::OwnedFd;
        }

        impl AsFdClone for std::io::Stdout {
            fn as_fd_clone(&self) -> std::os::fd::OwnedFd {
                std::os::fd::AsFd::as_fd(self).try_clone_to_owned().unwrap()
            }
        }

        /// Runs a scenario in a child; returns its output and the directory with its files.
        fn run_child(scenario: &str) -> (Output, tempfile::TempDir) {
            let dir = tempfile::tempdir().unwrap();
            let output = Command::new(std::env::current_exe().unwrap())
                .args(["console_child_entry", "--nocapture", "--test-threads=1"])
                .env(CHILD_SCENARIO, scenario)
                .env(CHILD_OUT_DIR, dir.path())
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "child failed: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            (output, dir)
        }

        fn read(dir: &Path, name: &str) -> String {
            String::from_utf8(fs::read(dir.join(name)).unwrap()).unwrap()
        }

        /// `haystack` contains the `needles` in this order.
        fn contains_in_order(haystack: &str, needles: &[&str]) -> bool {
            let mut rest = haystack;
            needles.iter().all(|needle| match rest.find(needle) {
                Some(at) => {
                    rest = &rest[at + needle.len()..];
                    true
                }
                None => false,
            })
        }

        #[test]
        fn captures_everything_and_passes_it_through() {
            let (output, dir) = run_child("basic");
            let big = big_block();
            let expected_stdout = format!(
                "line one\nraw write\nfrom child process\n{big}utf8: héllo → 😀\nno newline at end"
            );
            assert_eq!(read(dir.path(), "stdout.captured"), expected_stdout);
            assert_eq!(read(dir.path(), "stderr.captured"), "err one\nchild err\n");

            // The terminal (here the parent's pipe) saw the same bytes, unchanged, then the
            // post-stop line.
            let stdout = String::from_utf8(output.stdout).unwrap();
            assert!(
                stdout.contains(&format!("{expected_stdout}after stop\n")),
                "passthrough differs:\n{stdout}"
            );
            let stderr = String::from_utf8(output.stderr).unwrap();
            assert!(
                contains_in_order(&stderr, &["err one\n", "child err\n"]),
                "{stderr}"
            );
            let _ = std::io::stdout().flush();
        }

        #[test]
        fn a_closed_terminal_does_not_stop_capture() {
            let (output, dir) = run_child("broken_terminal");
            let expected: String = (0..100).map(|i| format!("into the void {i}\n")).collect();
            assert_eq!(read(dir.path(), "stdout.captured"), expected);
            assert_eq!(read(dir.path(), "stderr.captured"), "stderr still fine\n");
            let stdout = String::from_utf8(output.stdout).unwrap();
            assert!(stdout.contains("survived\n"), "{stdout}");
            assert!(!stdout.contains("into the void"), "{stdout}");
        }

        #[test]
        fn only_one_capture_at_a_time() {
            let (output, dir) = run_child("double_start");
            assert_eq!(read(dir.path(), "stdout.captured"), "first\nthird\n");
            let stdout = String::from_utf8(output.stdout).unwrap();
            assert!(contains_in_order(
                &stdout,
                &["first\n", "third\n", "not captured\n"]
            ));
        }

        #[test]
        fn concurrent_writers_lose_nothing() {
            let (output, dir) = run_child("threads");
            let mut captured: Vec<String> = read(dir.path(), "stdout.captured")
                .lines()
                .map(str::to_owned)
                .collect();
            let mut expected: Vec<String> = (0..4)
                .flat_map(|t| (0..2000).map(move |i| format!("thread {t} line {i}")))
                .collect();
            captured.sort();
            expected.sort();
            assert_eq!(captured, expected);
            assert_eq!(read(dir.path(), "stderr.captured").lines().count(), 16);
            let stdout = String::from_utf8(output.stdout).unwrap();
            assert_eq!(stdout.matches("thread 3 line ").count(), 2000);
        }

        #[cfg(target_os = "linux")]
        #[test]
        fn running_out_of_descriptors_fails_cleanly() {
            let (output, dir) = run_child("fd_exhaustion");
            assert!(
                read(dir.path(), "stdout.captured").ends_with("captured at last\n"),
                "{}",
                read(dir.path(), "stdout.captured")
            );
            let stdout = String::from_utf8(output.stdout).unwrap();
            let expected: Vec<String> = (0..12).map(|i| format!("still here {i}\n")).collect();
            let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
            assert!(contains_in_order(&stdout, &expected), "{stdout}");
            assert!(stdout.contains("captured at last\n"));
        }

        #[test]
        fn a_forked_child_writes_into_the_parents_capture() {
            let (output, dir) = run_child("fork");
            assert_eq!(
                read(dir.path(), "stdout.captured"),
                "parent before fork\nfrom fork\nparent after fork\n"
            );
            // The passthrough shows everything; "fork after stop" went straight to the terminal,
            // so it may overtake the output still in the parent's pipe.
            let stdout = String::from_utf8(output.stdout).unwrap();
            assert!(
                contains_in_order(
                    &stdout,
                    &["parent before fork\n", "from fork\n", "parent after fork\n"]
                ),
                "{stdout}"
            );
            assert!(stdout.contains("fork after stop\n"), "{stdout}");
        }

        #[test]
        fn stop_does_not_wait_for_a_lingering_child() {
            let (_output, dir) = run_child("lingering_child");
            assert_eq!(read(dir.path(), "stdout.captured"), "before stop\n");
            let stop_ms: u64 = read(dir.path(), "stop_ms").parse().unwrap();
            assert!(stop_ms < 1000, "stop took {stop_ms} ms");
            let _ = Duration::ZERO;
        }
    }
}

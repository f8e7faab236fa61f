//! Processes many files in parallel and prints their output in input order, in bounded memory.
//!
//! Workers on rayon's pool claim files in input order from a shared counter. Each file has its own
//! bounded channel of output chunks; the calling thread prints file 0's chunks as they arrive, then
//! file 1's, and so on. A worker that runs ahead blocks once its channel is full, so memory stays
//! within `workers × CAPACITY × CHUNK` bytes whatever the size of the files.
//!
//! Why this cannot deadlock: files are claimed in increasing order, so the lowest unfinished file
//! has always been claimed, and its worker only ever waits on the channel the printer is draining.
//! When printing fails (a closed pipe), the printer drops every receiver, so blocked workers wake up
//! with an error and stop.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Bytes of output a worker collects before handing a chunk to the printer.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Most buffers a [`Pool`] keeps.
const POOL_MAX: usize = 32;

/// Chunks that may wait in one file's channel.
const CAPACITY: usize = 8;

enum Message<R> {
    Data(String),
    Done(R),
}

/// Output buffers for reuse, so that rendering a large file does not allocate (and fault in)
/// fresh memory for every batch: workers take them to render into, the printer gives them back
/// once printed. At most [`POOL_MAX`] are kept.
#[derive(Debug, Default)]
pub(crate) struct Pool(Mutex<Vec<String>>);

impl Pool {
    /// An empty buffer, reused if one is available.
    pub(crate) fn take(&self) -> String {
        self.0
            .lock()
            .ok()
            .and_then(|mut buffers| buffers.pop())
            .unwrap_or_default()
    }

    /// Returns a buffer for reuse.
    pub(crate) fn give(&self, mut buffer: String) {
        buffer.clear();
        if let Ok(mut buffers) = self.0.lock()
            && buffers.len() < POOL_MAX
        {
            buffers.push(buffer);
        }
    }
}

/// What the printer receives for a file.
#[derive(Debug)]
pub(crate) enum Delivery<'c, R> {
    /// A chunk of output, to print as it is.
    Data(&'c str),
    /// The file's result; no more data follows.
    Done(R),
    /// The worker died without a result (a bug: a panic).
    Lost,
}

/// The printer is gone (stdout failed); the worker should stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cancelled;

/// A worker's output buffer for one file.
#[derive(Debug)]
pub(crate) struct Sink<R> {
    tx: SyncSender<Message<R>>,
    buf: String,
    /// Buffers the printer has printed, for reuse (shared by every file of a run).
    pool: Arc<Pool>,
}

impl<R> Sink<R> {
    /// The buffer to append output to; call [`Sink::flush_if_full`] now and then.
    #[inline]
    pub(crate) fn buf(&mut self) -> &mut String {
        &mut self.buf
    }

    /// Hands the buffer to the printer once it holds a chunk's worth.
    #[inline]
    pub(crate) fn flush_if_full(&mut self) -> Result<(), Cancelled> {
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(())
    }

    /// The pool of output buffers the printer hands back, to render into and then
    /// [`Sink::send_owned`].
    pub(crate) fn pool(&self) -> Arc<Pool> {
        Arc::clone(&self.pool)
    }

    /// Hands `chunk` (output that follows what is in the buffer) to the printer as it is,
    /// without copying it.
    pub(crate) fn send_owned(&mut self, chunk: String) -> Result<(), Cancelled> {
        if !self.buf.is_empty() {
            self.send_buf()?;
        }
        if chunk.is_empty() {
            self.pool.give(chunk);
            return Ok(());
        }
        self.tx.send(Message::Data(chunk)).map_err(|_| Cancelled)
    }

    fn send_buf(&mut self) -> Result<(), Cancelled> {
        let chunk = std::mem::replace(&mut self.buf, self.pool.take());
        self.tx.send(Message::Data(chunk)).map_err(|_| Cancelled)
    }

    fn finish(mut self, result: R) {
        if !self.buf.is_empty() && self.send_buf().is_err() {
            return;
        }
        let _ = self.tx.send(Message::Done(result));
    }
}

/// Runs `work` on every item in parallel and calls `deliver` on the calling thread with each
/// item's output and result, in item order. Stops early, returning the error, when `deliver`
/// fails.
pub(crate) fn for_each_ordered<T, R, W, D>(items: &[T], work: W, mut deliver: D) -> io::Result<()>
where
    T: Sync,
    R: Send,
    W: Fn(&T, &mut Sink<R>) -> Result<R, Cancelled> + Sync,
    D: FnMut(Delivery<'_, R>) -> io::Result<()>,
{
    let pool = Arc::new(Pool::default());
    let mut senders = Vec::with_capacity(items.len());
    let mut receivers: Vec<Receiver<Message<R>>> = Vec::with_capacity(items.len());
    for _ in items {
        let (tx, rx) = sync_channel(CAPACITY);
        senders.push(Mutex::new(Some(tx)));
        receivers.push(rx);
    }
    let next = AtomicUsize::new(0);
    let cancelled = AtomicBool::new(false);
    let n_workers = rayon::current_num_threads().clamp(1, items.len().max(1));
    let worker = || {
        while !cancelled.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else {
                break;
            };
            let tx = senders
                .get(index)
                .and_then(|slot| slot.lock().ok().and_then(|mut tx| tx.take()));
            let Some(tx) = tx else {
                continue;
            };
            let mut sink = Sink {
                tx,
                buf: pool.take(),
                pool: Arc::clone(&pool),
            };
            if let Ok(result) = work(item, &mut sink) {
                sink.finish(result);
            }
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            rayon::scope(|pool| {
                for _ in 0..n_workers {
                    pool.spawn(|_| worker());
                }
            });
        });
        let mut result = Ok(());
        'files: for rx in receivers {
            loop {
                let (delivered, last) = match rx.recv() {
                    Ok(Message::Data(chunk)) => {
                        let delivered = deliver(Delivery::Data(&chunk));
                        pool.give(chunk);
                        (delivered, false)
                    }
                    Ok(Message::Done(value)) => (deliver(Delivery::Done(value)), true),
                    Err(_) => (deliver(Delivery::Lost), true),
                };
                if let Err(error) = delivered {
                    cancelled.store(true, Ordering::Relaxed);
                    result = Err(error);
                    break 'files;
                }
                if last {
                    break;
                }
            }
        }
        // The loop above consumed (and so dropped) every receiver: blocked workers wake up.
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_comes_in_input_order() {
        let items: Vec<usize> = (0..50).collect();
        let mut printed = String::new();
        let mut results = Vec::new();
        for_each_ordered(
            &items,
            |&item, sink: &mut Sink<usize>| {
                for line in 0..(item % 7) * 3000 {
                    sink.buf().push_str(&format!("{item}:{line}\n"));
                    sink.flush_if_full()?;
                }
                Ok(item)
            },
            |delivery| {
                match delivery {
                    Delivery::Data(chunk) => printed.push_str(chunk),
                    Delivery::Done(item) => results.push(item),
                    Delivery::Lost => panic!("lost"),
                }
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(results, items);
        let expected: String = items
            .iter()
            .flat_map(|&item| (0..(item % 7) * 3000).map(move |line| format!("{item}:{line}\n")))
            .collect();
        assert!(printed == expected);
    }

    #[test]
    fn a_failing_printer_stops_the_workers() {
        let items: Vec<usize> = (0..20).collect();
        let error = for_each_ordered(
            &items,
            |_, sink: &mut Sink<()>| {
                for _ in 0..100_000 {
                    sink.buf().push_str("0123456789abcdef");
                    sink.flush_if_full()?;
                }
                Ok(())
            },
            |_| Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}

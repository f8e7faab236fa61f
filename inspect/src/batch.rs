//! Reads one file's records in batches and processes each batch in parallel, results in file order.
//!
//! Framing (checksums, chunk order) has to be read front to back, but it is the cheap part;
//! decoding and rendering the records is not, and records are independent. So the scanner collects
//! a batch of records (borrowed from the memory map), rayon works on slices of the batch, and the
//! results are handed on in order. Memory holds one batch: at most [`BATCH_RECORDS`] records or
//! about [`BATCH_BYTES`] bytes of payload, whatever the file size.
//!
//! Only a run with a single input file uses this parallel path; with several files, the files
//! themselves are processed in parallel (`parallel.rs`), and a file's batches are processed on its
//! own worker. That also keeps rayon's work stealing from starting a second file's worker (which
//! may block on its output channel) on a thread that the first file's batch is waiting on.

use rayon::prelude::*;
use wandb_format::{LogFile, Recovery, ScanItem};

use crate::parallel::Cancelled;

/// Most records in one batch.
const BATCH_RECORDS: usize = 16_384;

/// Payload bytes after which a batch is closed.
const BATCH_BYTES: usize = 16 << 20;

/// Runs `work` over the scanned items of `file` (records and damaged spans, in file order), in
/// slices, in parallel when `parallel`; passes each slice's result to `consume`, in order.
///
/// In parallel, the scanner reads the next batch while the pool works on the current one, so the
/// front-to-back framing pass is not a serial phase of its own.
pub(crate) fn scan_batches<'a, R, W, C>(
    file: &'a LogFile,
    parallel: bool,
    work: W,
    mut consume: C,
) -> Result<(), Cancelled>
where
    R: Send,
    W: Fn(&[ScanItem<'a>]) -> R + Sync,
    C: FnMut(R) -> Result<(), Cancelled>,
{
    let n_slices = if parallel {
        rayon::current_num_threads().max(1) * 4
    } else {
        1
    };
    let mut scan = scan_items(file);
    let mut batch: Vec<ScanItem<'a>> = Vec::with_capacity(BATCH_RECORDS);
    let mut done = !fill(&mut scan, &mut batch);
    if n_slices == 1 {
        loop {
            if !batch.is_empty() {
                consume(work(&batch))?;
            }
            if done {
                return Ok(());
            }
            done = !fill(&mut scan, &mut batch);
        }
    }
    let mut next: Vec<ScanItem<'a>> = Vec::with_capacity(BATCH_RECORDS);
    let mut results = Vec::with_capacity(n_slices);
    loop {
        let (_, more) = rayon::join(
            || work_slices(&batch, n_slices, &work, &mut results),
            || !done && fill(&mut scan, &mut next),
        );
        for result in results.drain(..) {
            consume(result)?;
        }
        if done {
            return Ok(());
        }
        std::mem::swap(&mut batch, &mut next);
        done = !more;
    }
}

/// [`scan_batches`] in parallel, where `consume` takes each batch's results while the pool works
/// on the next batch (so `consume` must be `Send`): the serial part, applying results in order,
/// overlaps the parallel part instead of following it.
pub(crate) fn scan_batches_overlapped<'a, R, W, C>(file: &'a LogFile, work: W, mut consume: C)
where
    R: Send,
    W: Fn(&[ScanItem<'a>]) -> R + Sync,
    C: FnMut(R) + Send,
{
    let n_slices = rayon::current_num_threads().max(1) * 4;
    let mut scan = scan_items(file);
    let mut batch: Vec<ScanItem<'a>> = Vec::with_capacity(BATCH_RECORDS);
    let mut next: Vec<ScanItem<'a>> = Vec::with_capacity(BATCH_RECORDS);
    let mut done = !fill(&mut scan, &mut batch);
    // The results of the batch before `batch`, applied while `batch` is worked on.
    let mut pending: Vec<R> = Vec::with_capacity(n_slices);
    let mut results: Vec<R> = Vec::with_capacity(n_slices);
    loop {
        let (_, more) = rayon::join(
            || work_slices(&batch, n_slices, &work, &mut results),
            || {
                pending.drain(..).for_each(&mut consume);
                !done && fill(&mut scan, &mut next)
            },
        );
        std::mem::swap(&mut pending, &mut results);
        if done {
            pending.drain(..).for_each(&mut consume);
            return;
        }
        std::mem::swap(&mut batch, &mut next);
        done = !more;
    }
}

/// `work` on `batch` cut in about `n_slices` slices (of at least 64 items) on the pool, the
/// results in slice order into `results`.
fn work_slices<'a, R, W>(batch: &[ScanItem<'a>], n_slices: usize, work: &W, results: &mut Vec<R>)
where
    R: Send,
    W: Fn(&[ScanItem<'a>]) -> R + Sync,
{
    let slice_len = batch.len().div_ceil(n_slices).max(64);
    batch
        .par_chunks(slice_len)
        .map(work)
        .collect_into_vec(results);
}

/// The file's items under `SkipCorrupt`.
fn scan_items(file: &LogFile) -> impl Iterator<Item = ScanItem<'_>> {
    file.scan(Recovery::SkipCorrupt)
        .filter_map(|item| match item {
            Ok(item) => Some(item),
            // `SkipCorrupt` reports damage as items, never as errors; keep it as damage anyway.
            Err(wandb_format::Error::Corrupt { damage, .. }) => Some(ScanItem::Damage(damage)),
            Err(_) => None,
        })
}

/// Clears `batch` and fills it with the next items: at most [`BATCH_RECORDS`] of them, or about
/// [`BATCH_BYTES`] of payload. Returns whether items may remain after the batch.
fn fill<'a>(scan: &mut impl Iterator<Item = ScanItem<'a>>, batch: &mut Vec<ScanItem<'a>>) -> bool {
    batch.clear();
    let mut batch_bytes = 0;
    for item in scan.by_ref() {
        if let ScanItem::Record(raw) = &item {
            batch_bytes += raw.payload.len();
        }
        batch.push(item);
        if batch.len() >= BATCH_RECORDS || batch_bytes >= BATCH_BYTES {
            return true;
        }
    }
    false
}

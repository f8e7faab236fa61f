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
    let mut batch: Vec<ScanItem<'a>> = Vec::with_capacity(BATCH_RECORDS);
    let mut batch_bytes = 0;
    let mut results = Vec::with_capacity(n_slices);
    let mut scan = file
        .scan(Recovery::SkipCorrupt)
        .filter_map(|item| match item {
            Ok(item) => Some(item),
            // `SkipCorrupt` reports damage as items, never as errors; keep it as damage anyway.
            Err(wandb_format::Error::Corrupt { damage, .. }) => Some(ScanItem::Damage(damage)),
            Err(_) => None,
        });
    loop {
        let mut done = true;
        for item in scan.by_ref() {
            if let ScanItem::Record(raw) = &item {
                batch_bytes += raw.payload.len();
            }
            batch.push(item);
            if batch.len() >= BATCH_RECORDS || batch_bytes >= BATCH_BYTES {
                done = false;
                break;
            }
        }
        if n_slices > 1 && batch.len() > 64 {
            let slice_len = batch.len().div_ceil(n_slices);
            batch
                .par_chunks(slice_len)
                .map(&work)
                .collect_into_vec(&mut results);
            for result in results.drain(..) {
                consume(result)?;
            }
        } else if !batch.is_empty() {
            consume(work(&batch))?;
        }
        batch.clear();
        batch_bytes = 0;
        if done {
            return Ok(());
        }
    }
}

//! `wandb-inspect dump --follow`: prints records of a file that is still being written, as they
//! arrive, until the run's exit record (exit 0) or Ctrl-C (exit 130).
//!
//! It polls with `wandb_format::Follower`, which holds back a record or damaged span that reaches
//! the current end of the file until more bytes arrive, so a half-written record is never shown as
//! damage. Follower decodes records with prost; each one is re-encoded (prost reproduces the SDK's
//! bytes, minus fields the schema does not know) and rendered like `dump` does.

use std::borrow::Cow;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prost::Message as _;
use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, Follower, RawRecord, Recovery};

use crate::console::Console;
use crate::damage::{Reported, Tally};
use crate::dump::{DumpOptions, LineWriter};
use crate::exit::Exit;

/// Longest sleep between checks of the interrupt flag.
const TICK: Duration = Duration::from_millis(25);

/// Follows `path` until its exit record or an interrupt; returns the exit status.
pub(crate) fn follow(
    path: &Path,
    options: DumpOptions,
    poll: Duration,
    console: &mut Console<'_>,
) -> io::Result<Exit> {
    let interrupted = Arc::new(AtomicBool::new(false));
    if let Err(error) =
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))
    {
        console.warning(&format_args!("cannot handle Ctrl-C: {error}"));
    }
    let mut follower = match Follower::open(path, Recovery::SkipCorrupt) {
        Ok(follower) => follower,
        Err(error) => {
            console.error(&error);
            return Ok(Exit::Error);
        }
    };
    // Spans held back at the growing end are never reported, so no damage seen here is a torn
    // tail: pass an unreachable file length.
    let mut lines = LineWriter::new(options, path, u64::MAX);
    let mut out = String::new();
    let mut payload = Vec::new();
    let mut tally = Tally::default();
    loop {
        if interrupted.load(Ordering::Relaxed) {
            console.flush_out()?;
            return Ok(Exit::Interrupted);
        }
        let entries = match follower.poll() {
            Ok(entries) => entries,
            Err(error) => {
                console.flush_out()?;
                console.error(&error);
                return Ok(Exit::Error);
            }
        };
        let mut saw_exit = false;
        for entry in &entries {
            match entry {
                Entry::Record {
                    offset,
                    length,
                    record,
                } => {
                    saw_exit |= matches!(record.record_type, Some(RecordType::Exit(_)));
                    payload.clear();
                    record.encode_raw(&mut payload);
                    let raw = RawRecord {
                        offset: *offset,
                        length: *length,
                        payload: Cow::Borrowed(&payload),
                    };
                    match lines.record(&mut out, &raw) {
                        Some(reported) => tally.add(&reported),
                        None => tally.records += 1,
                    }
                }
                Entry::Damage(damage) => {
                    let reported = Reported::from_damage(damage, u64::MAX);
                    lines.damage(&mut out, &reported);
                    tally.add(&reported);
                }
            }
        }
        if !out.is_empty() {
            console.write_out(out.as_bytes())?;
            console.flush_out()?;
            out.clear();
        }
        if saw_exit {
            return Ok(tally.exit());
        }
        if entries.is_empty() {
            let mut slept = Duration::ZERO;
            while slept < poll && !interrupted.load(Ordering::Relaxed) {
                let step = TICK.min(poll - slept);
                std::thread::sleep(step);
                slept += step;
            }
        }
    }
}

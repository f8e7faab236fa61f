//! `wandb-inspect verify`: checks each file's header, chunk checksums, chunk order and record
//! decoding, printing every damaged span and a status line per file.
//!
//! Text output, one line per damaged span and one per file:
//!
//! ```text
//! run-a.wandb: damage: offset 32768, 1200 bytes: checksum mismatch (stored 0x…, computed 0x…)
//! run-a.wandb: DAMAGED (1 damaged span, 160 records, 770543 bytes)
//! run-b.wandb: torn tail: offset 21000, 293 bytes: file ends inside a chunk
//! run-b.wandb: OK with a torn tail (161 records, 21293 bytes)
//! ```
//!
//! With `--json`, one object per file:
//! `{"file":..,"damage":[{"offset":..,"length":..,"reason":..,"torn_tail":..}],"records":..,
//! "bytes":..,"status":"ok"|"torn_tail"|"damaged"}`.

use std::path::Path;

use wandb_format::ScanItem;

use crate::batch::scan_batches;
use crate::console::Paint;
use crate::damage::{self, Opened, Reported, Tally};
use crate::error::Error;
use crate::jsonout::{push_u64, write_str};
use crate::parallel::{Cancelled, Sink};

/// Options of `verify`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VerifyOptions {
    pub(crate) strict: bool,
    pub(crate) json: bool,
    pub(crate) color: bool,
}

/// What verifying one file found.
#[derive(Debug, Default)]
pub(crate) struct VerifyResult {
    pub(crate) tally: Tally,
    pub(crate) error: Option<Error>,
}

/// Verifies one file, writing its report into `sink`.
pub(crate) fn verify_file(
    path: &Path,
    options: VerifyOptions,
    parallel: bool,
    sink: &mut Sink<VerifyResult>,
) -> Result<VerifyResult, Cancelled> {
    let mut result = VerifyResult::default();
    let display = path.to_string_lossy();
    let mut report = Report::new(&display, options);
    let file_len;
    match damage::open(path) {
        Ok(Opened::File(file)) => {
            file_len = file.len();
            report.begin(sink.buf());
            let tally = &mut result.tally;
            scan_batches(
                &file,
                parallel,
                |items| {
                    let mut n_records = 0;
                    let mut found = Vec::new();
                    for item in items {
                        match item {
                            ScanItem::Record(raw) => match damage::check_record(raw, file_len) {
                                Ok(()) => n_records += 1,
                                Err(reported) => found.push(reported),
                            },
                            ScanItem::Damage(damage) => {
                                found.push(Reported::from_damage(damage, file_len));
                            }
                        }
                    }
                    (n_records, found)
                },
                |(n_records, found)| {
                    tally.records += n_records;
                    for mut reported in found {
                        if options.strict {
                            reported.torn_tail = false;
                        }
                        report.span(sink.buf(), &reported);
                        tally.add(&reported);
                    }
                    sink.flush_if_full()
                },
            )?;
        }
        Ok(Opened::NoHeader(mut reported)) => {
            file_len = reported.length;
            if options.strict {
                reported.torn_tail = false;
            }
            report.begin(sink.buf());
            report.span(sink.buf(), &reported);
            result.tally.add(&reported);
        }
        Err(error) => {
            result.error = Some(error);
            return Ok(result);
        }
    }
    report.end(sink.buf(), &result.tally, file_len);
    Ok(result)
}

/// Writes one file's report as text or JSON.
struct Report<'a> {
    display: &'a str,
    options: VerifyOptions,
    n_spans: usize,
}

impl<'a> Report<'a> {
    fn new(display: &'a str, options: VerifyOptions) -> Self {
        Report {
            display,
            options,
            n_spans: 0,
        }
    }

    fn begin(&mut self, out: &mut String) {
        if self.options.json {
            out.push_str("{\"file\":");
            write_str(out, self.display);
            out.push_str(",\"damage\":[");
        }
    }

    fn span(&mut self, out: &mut String, reported: &Reported) {
        if self.options.json {
            if self.n_spans > 0 {
                out.push(',');
            }
            out.push_str("{\"offset\":");
            push_u64(out, reported.offset);
            out.push_str(",\"length\":");
            push_u64(out, reported.length);
            out.push_str(",\"reason\":");
            write_str(out, &reported.reason);
            out.push_str(",\"torn_tail\":");
            out.push_str(if reported.torn_tail { "true" } else { "false" });
            out.push('}');
        } else {
            let (label, paint) = if reported.torn_tail {
                ("torn tail", Paint::Yellow)
            } else {
                ("damage", Paint::Red)
            };
            out.push_str(self.display);
            out.push_str(": ");
            paint.push(out, label, self.options.color);
            out.push_str(": ");
            out.push_str(&reported.describe());
            out.push('\n');
        }
        self.n_spans += 1;
    }

    fn end(&mut self, out: &mut String, tally: &Tally, file_len: u64) {
        let status = if tally.damaged > 0 {
            "damaged"
        } else if tally.torn > 0 {
            "torn_tail"
        } else {
            "ok"
        };
        if self.options.json {
            out.push_str("],\"records\":");
            push_u64(out, tally.records);
            out.push_str(",\"bytes\":");
            push_u64(out, file_len);
            out.push_str(",\"status\":\"");
            out.push_str(status);
            out.push_str("\"}\n");
            return;
        }
        out.push_str(self.display);
        out.push_str(": ");
        let records = format!(
            "{} record{}, {} bytes",
            tally.records,
            plural(tally.records),
            file_len
        );
        match status {
            "damaged" => {
                Paint::Red.push(out, "DAMAGED", self.options.color);
                out.push_str(&format!(
                    " ({} damaged span{}, {records})",
                    tally.damaged,
                    plural(tally.damaged)
                ));
            }
            "torn_tail" => {
                Paint::Yellow.push(out, "OK with a torn tail", self.options.color);
                out.push_str(&format!(" ({records})"));
            }
            _ => {
                Paint::Green.push(out, "OK", self.options.color);
                out.push_str(&format!(" ({records})"));
            }
        }
        out.push('\n');
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

//! `wandb-inspect dump`: one line per record (text or JSON Lines), damaged spans in place.

use std::path::Path;

use prost::Message as _;
use wandb_format::{RawRecord, ScanItem};

use crate::batch::scan_batches;
use crate::console::Paint;
use crate::damage::{self, Opened, Reported, Tally};
use crate::error::Error;
use crate::jsonout::{NonFinite, Style, push_i64, push_u64, write_str};
use crate::parallel::{Cancelled, Sink};
use crate::render::Renderer;
use crate::schema::RECORD;
use crate::wire::{self, Head};

/// Which record types to print.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TypeFilter {
    /// Bit `n` set: print records whose record-type field number is `n`.
    tags: u64,
    unknown: bool,
}

impl TypeFilter {
    /// Parses proto names (`history`, `output_raw`, `unknown`); an empty list allows everything.
    pub(crate) fn parse(names: &[String]) -> Result<Option<Self>, Error> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut filter = TypeFilter::default();
        for name in names {
            let name = name.trim();
            if name == "unknown" {
                filter.unknown = true;
                continue;
            }
            let field = RECORD.fields.iter().find(|field| {
                field.name == name && crate::schema::record_type_field(field.number).is_some()
            });
            match field {
                Some(field) if field.number < 64 => filter.tags |= 1 << field.number,
                _ => {
                    let known: Vec<&str> = wandb_format::proto::RECORD_TYPE_NAMES.to_vec();
                    return Err(Error::Usage(format!(
                        "unknown record type {name:?} in --type; known types: {}, unknown",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(Some(filter))
    }

    /// Whether records like `head` are printed.
    pub(crate) fn allows(&self, head: &Head<'_>) -> bool {
        match head.record_type {
            Some(field) => field.number < 64 && self.tags & (1 << field.number) != 0,
            None => self.unknown,
        }
    }
}

/// Options of a dump.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DumpOptions {
    pub(crate) json: bool,
    pub(crate) filter: Option<TypeFilter>,
    pub(crate) non_finite: NonFinite,
    /// Print a `==> path <==` line before each file's records (text, several files).
    pub(crate) headers: bool,
    pub(crate) color: bool,
}

/// What dumping one file found.
#[derive(Debug, Default)]
pub(crate) struct DumpResult {
    pub(crate) tally: Tally,
    pub(crate) error: Option<Error>,
}

/// Formats records of one file into lines.
#[derive(Debug)]
pub(crate) struct LineWriter {
    options: DumpOptions,
    renderer: Renderer,
    /// The file's path as a JSON string (quotes included).
    file_json: String,
    file_len: u64,
    scratch: Vec<u8>,
}

impl LineWriter {
    pub(crate) fn new(options: DumpOptions, path: &Path, file_len: u64) -> Self {
        let style = if options.json {
            Style::json(options.non_finite)
        } else {
            Style::text()
        };
        let mut file_json = String::new();
        write_str(&mut file_json, &path.to_string_lossy());
        LineWriter {
            options,
            renderer: Renderer::new(style),
            file_json,
            file_len,
            scratch: Vec::new(),
        }
    }

    /// Appends the line for one record, or the damage line if it does not decode. Returns the
    /// damage, if any.
    pub(crate) fn record(&mut self, out: &mut String, raw: &RawRecord<'_>) -> Option<Reported> {
        let payload: &[u8] = &raw.payload;
        let mark = out.len();
        match self.try_record(out, raw.offset, raw.length, payload) {
            Ok(()) => None,
            Err(wire::WireError) => {
                out.truncate(mark);
                match damage::undecodable(raw, self.file_len) {
                    Some(reported) => {
                        self.damage(out, &reported);
                        Some(reported)
                    }
                    // prost reads what the fast reader rejected: show prost's reading.
                    None => self.via_prost(out, raw),
                }
            }
        }
    }

    fn via_prost(&mut self, out: &mut String, raw: &RawRecord<'_>) -> Option<Reported> {
        let record = wandb_format::decode(raw).ok()?;
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        record.encode_raw(&mut bytes);
        let mark = out.len();
        let result = self.try_record(out, raw.offset, raw.length, &bytes);
        self.scratch = bytes;
        if result.is_ok() {
            return None;
        }
        out.truncate(mark);
        let reported = Reported {
            offset: raw.offset,
            length: raw.length,
            reason: "record could not be rendered".to_string(),
            torn_tail: false,
        };
        self.damage(out, &reported);
        Some(reported)
    }

    fn try_record(
        &mut self,
        out: &mut String,
        offset: u64,
        length: u64,
        payload: &[u8],
    ) -> Result<(), wire::WireError> {
        let head = wire::head(payload)?;
        if let Some(filter) = &self.options.filter
            && !filter.allows(&head)
        {
            return wire::validate_record(payload);
        }
        if self.options.json {
            out.push_str("{\"file\":");
            out.push_str(&self.file_json);
            out.push_str(",\"offset\":");
            push_u64(out, offset);
            out.push_str(",\"length\":");
            push_u64(out, length);
            out.push_str(",\"num\":");
            push_i64(out, head.num);
            out.push_str(",\"type\":\"");
            out.push_str(head.type_name());
            out.push('"');
            self.renderer.json_record_fields(out, payload, &head)?;
            out.push_str("}\n");
        } else {
            wire::validate_record(payload)?;
            text_prefix(out, offset, head.num, head.type_name(), self.options.color);
            self.renderer.text_record(out, payload, &head)?;
            // A record with no content leaves the type column's padding.
            while out.ends_with(' ') {
                out.pop();
            }
            out.push('\n');
        }
        Ok(())
    }

    /// Appends the line for a damaged span.
    pub(crate) fn damage(&mut self, out: &mut String, reported: &Reported) {
        if self.options.json {
            reported.write_json(out, &self.file_json);
            out.push('\n');
        } else {
            let label = if reported.torn_tail {
                "TORN TAIL"
            } else {
                "DAMAGE"
            };
            let paint = if reported.torn_tail {
                Paint::Yellow
            } else {
                Paint::Red
            };
            let mut line = String::new();
            line.push_str(&format!("{:>10} {:>7} ", reported.offset, "-"));
            paint.push(&mut line, &format!("{label:<12}"), self.options.color);
            line.push_str(&format!(
                " {} bytes: {}\n",
                reported.length, reported.reason
            ));
            out.push_str(&line);
        }
    }
}

/// Appends `OFFSET NUM TYPE ` of a text line.
fn text_prefix(out: &mut String, offset: u64, num: i64, type_name: &str, color: bool) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(offset);
    for _ in text.len()..10 {
        out.push(' ');
    }
    out.push_str(text);
    out.push(' ');
    let text = buffer.format(num);
    for _ in text.len()..7 {
        out.push(' ');
    }
    out.push_str(text);
    out.push(' ');
    Paint::Cyan.push(out, type_name, color);
    for _ in type_name.len()..12 {
        out.push(' ');
    }
    out.push(' ');
}

/// Dumps one file into `sink`.
pub(crate) fn dump_file(
    path: &Path,
    options: DumpOptions,
    parallel: bool,
    sink: &mut Sink<DumpResult>,
) -> Result<DumpResult, Cancelled> {
    let mut result = DumpResult::default();
    if options.headers {
        let out = sink.buf();
        out.push_str("==> ");
        out.push_str(&path.to_string_lossy());
        out.push_str(" <==\n");
    }
    let file = match damage::open(path) {
        Ok(Opened::File(file)) => file,
        Ok(Opened::NoHeader(reported)) => {
            let mut lines = LineWriter::new(options, path, reported.length);
            lines.damage(sink.buf(), &reported);
            result.tally.add(&reported);
            return Ok(result);
        }
        Err(error) => {
            result.error = Some(error);
            return Ok(result);
        }
    };
    let file_len = file.len();
    let tally = &mut result.tally;
    let pool = sink.pool();
    scan_batches(
        &file,
        parallel,
        |items| {
            let mut lines = LineWriter::new(options, path, file_len);
            let mut out = pool.take();
            let mut tally = Tally::default();
            for item in items {
                match item {
                    ScanItem::Record(raw) => match lines.record(&mut out, raw) {
                        None => tally.records += 1,
                        Some(reported) => tally.add(&reported),
                    },
                    ScanItem::Damage(damage) => {
                        let reported = Reported::from_damage(damage, file_len);
                        lines.damage(&mut out, &reported);
                        tally.add(&reported);
                    }
                }
            }
            (out, tally)
        },
        |(out, found)| {
            tally.records += found.records;
            tally.damaged += found.damaged;
            tally.torn += found.torn;
            sink.send_owned(out)
        },
    )?;
    Ok(result)
}

//! Damage as `wandb-inspect` reports it, and the one rule that decides what a torn tail is.
//!
//! **Torn tail.** A damaged span is a torn tail when it runs to the end of the file and the reason
//! is that the file ends inside a chunk or before a record's LAST chunk (or inside the 7-byte file
//! header). That is what a crash or a writer that is still running leaves behind, and what
//! appending the missing bytes would complete (W&B's Go reader calls it an unexpected EOF). It is
//! reported as a warning and does not change the exit status, except under `verify --strict`,
//! where it counts as damage. Every other damaged span is damage (exit status 1), including garbage
//! appended after the last record and a bad checksum in the last record.

use std::fmt::Write as _;
use std::path::Path;

use wandb_format::inputs::{self, InputError};
use wandb_format::{Damage, DamageReason, FILE_HEADER, LogFile, RawRecord};

use crate::error::Error;
use crate::jsonout::{push_u64, write_str};
use crate::wire;

/// One damaged span, ready to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reported {
    /// Absolute offset of the first damaged byte.
    pub(crate) offset: u64,
    /// Number of damaged bytes.
    pub(crate) length: u64,
    /// Why the span could not be read.
    pub(crate) reason: String,
    /// Whether the span is a torn tail (see the module docs).
    pub(crate) torn_tail: bool,
}

impl Reported {
    /// Reports a span found by the scanner in a file of `file_len` bytes.
    pub(crate) fn from_damage(damage: &Damage, file_len: u64) -> Self {
        let torn_tail = damage.end() >= file_len
            && matches!(
                damage.reason,
                DamageReason::TruncatedChunk | DamageReason::UnfinishedRecord
            );
        Reported {
            offset: damage.offset,
            length: damage.length,
            reason: damage.reason.to_string(),
            torn_tail,
        }
    }

    /// Appends `{"type":"damage","file":..,"offset":..,"length":..,"reason":..,"torn_tail":..}`;
    /// `file_json` is the file's path already written as a JSON string.
    pub(crate) fn write_json(&self, out: &mut String, file_json: &str) {
        out.push_str("{\"type\":\"damage\",\"file\":");
        out.push_str(file_json);
        out.push_str(",\"offset\":");
        push_u64(out, self.offset);
        out.push_str(",\"length\":");
        push_u64(out, self.length);
        out.push_str(",\"reason\":");
        write_str(out, &self.reason);
        out.push_str(",\"torn_tail\":");
        out.push_str(if self.torn_tail { "true" } else { "false" });
        out.push('}');
    }

    /// A one-line description: `offset N, L bytes: reason`.
    pub(crate) fn describe(&self) -> String {
        let mut text = String::new();
        let _ = write!(
            text,
            "offset {}, {} bytes: {}",
            self.offset, self.length, self.reason
        );
        text
    }
}

/// A file opened for reading, or the reason it holds no readable records.
#[derive(Debug)]
pub(crate) enum Opened {
    /// A file with a valid header.
    File(LogFile),
    /// A file without the `.wandb` header: all of it is one damaged span.
    NoHeader(Reported),
}

/// Opens `path` (memory-mapped). A missing W&B header is damage, not an error; a file cut short
/// inside its header (an empty file, say) is a torn tail.
///
/// A member of an archive (`runs.tar.zst:<run folder>/<file>.wandb`, see `inputs.rs`) is read
/// out of the archive into memory, checked against the archive's SHA-256, and read like a file.
pub(crate) fn open(path: &Path) -> Result<Opened, Error> {
    if let Some(bytes) = wandb_archive::tools::read_virtual(path) {
        let bytes = bytes.map_err(|reason| Error::Io {
            path: path.to_path_buf(),
            action: "read from the archive",
            source: std::io::Error::other(reason),
        })?;
        return Ok(Opened::File(LogFile::from_bytes(path, bytes)?));
    }
    match LogFile::open(path) {
        Ok(file) => Ok(Opened::File(file)),
        Err(wandb_format::Error::BadHeader { found, .. }) => {
            let length = std::fs::metadata(path).map_or(found.len() as u64, |m| m.len());
            let torn_tail = found.len() < FILE_HEADER.len() && FILE_HEADER.starts_with(&found);
            let reason = if torn_tail {
                "file ends inside its 7-byte header".to_string()
            } else {
                // Up to 16 bytes shown, in hex and as text, as every tool shows them.
                match inputs::check_header(path, false) {
                    Err(InputError::NotWandb { found, .. }) => inputs::not_wandb_reason(&found),
                    _ => inputs::not_wandb_reason(&found),
                }
            };
            Ok(Opened::NoHeader(Reported {
                offset: 0,
                length,
                reason,
                torn_tail,
            }))
        }
        Err(error) => Err(error.into()),
    }
}

/// Checks that a record's payload decodes; on failure, the damage with prost's message.
///
/// The fast check is `wire::validate_record`; prost is asked only when it fails, and has the last
/// word (see `wire.rs`).
pub(crate) fn check_record(raw: &RawRecord<'_>, file_len: u64) -> Result<(), Reported> {
    if wire::validate_record(&raw.payload).is_ok() {
        return Ok(());
    }
    match wandb_format::decode(raw) {
        Ok(_) => Ok(()),
        Err(damage) => Err(Reported::from_damage(&damage, file_len)),
    }
}

/// The damage for a record the fast reader rejected (prost's message), or `None` if prost reads
/// it after all.
pub(crate) fn undecodable(raw: &RawRecord<'_>, file_len: u64) -> Option<Reported> {
    wandb_format::decode(raw)
        .err()
        .map(|damage| Reported::from_damage(&damage, file_len))
}

/// Counts of what a file held, shared by the commands' results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Intact records.
    pub(crate) records: u64,
    /// Damaged spans that are not a torn tail (or all of them, under `verify --strict`).
    pub(crate) damaged: u64,
    /// Torn tails (at most one).
    pub(crate) torn: u64,
}

impl Tally {
    /// Counts a reported span.
    pub(crate) fn add(&mut self, reported: &Reported) {
        if reported.torn_tail {
            self.torn += 1;
        } else {
            self.damaged += 1;
        }
    }

    /// The exit status for what was counted.
    pub(crate) fn exit(&self) -> crate::Exit {
        if self.damaged > 0 {
            crate::Exit::Damage
        } else {
            crate::Exit::Ok
        }
    }
}

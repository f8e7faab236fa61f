//! Media: images, histograms and tables, written as the official SDK (0.31) writes them.
//!
//! A histogram is a plain value (`{"_type": "histogram", "values": [...], "bins": [...]}`).
//! Images and tables are files: [`Run::media`](crate::Run::media) hands the file to the run's
//! writer thread, which stores it under `files/media/images/` or `files/media/table/` with the
//! SDK's content-hash name (`<key>_<step>_<first 20 hex digits of its SHA-256><ext>`) and
//! announces it with a `files` record, and returns the value to log under the key
//! (`{"_type": "image-file", ...}` or `{"_type": "table-file", ...}`).
//!
//! Encoding (PNG) and hashing happen where the media value is built, on the caller's thread;
//! the file is written by the writer thread, like every other file of the run.
//!
//! A table is also, as the SDK logs it, a `run_table` artifact (`run-<run id>-<key>`, one entry
//! `<key>.table.json` with the SDK's bytes, manifest and digests): the writer stages the
//! entry's file in the run folder (`artifacts/staging/`) and writes the `artifact` record
//! before the table's `files` record, and the table's value points at the artifact
//! (`artifact_path`, `_latest_artifact_path`), so both syncs upload it as the SDK's run's.
//!
//! ```no_run
//! use wandb_logger::media::{Channels, Histogram, Image, Table};
//! use wandb_logger::{InitOptions, json, row};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let run = wandb_logger::init(InitOptions::new().project("media"))?;
//! let pixels = vec![0u8; 32 * 16 * 3];
//! let image = Image::from_pixels(32, 16, Channels::Rgb, &pixels)?.with_caption("noise");
//! let mut table = Table::new(["epoch", "loss"]);
//! table.add_row(vec![json::Value::Int(1), json::Value::Float(0.5)])?;
//! run.log(row! {
//!     "sample" => run.media("sample", &image)?,
//!     "weights" => Histogram::from_values(&[0.1, 0.2, 0.2, 0.9], 64)?,
//!     "results" => run.media("results", &table)?,
//! })?;
//! run.finish()?;
//! # Ok(())
//! # }
//! ```

pub(crate) mod artifact;
mod histogram;
mod image;
mod pyjson;
mod table;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wandb_format::json;

pub use self::histogram::Histogram;
pub use self::image::{Channels, Image};
pub use self::table::Table;

use crate::error::{Error, Result};

/// A media value stored as a file of the run (an [`Image`] or a [`Table`]).
///
/// The trait is sealed: the file layout and JSON fields are the SDK's, one per media type.
pub trait FileMedia: sealed::Sealed {
    /// The folder under `files/` the SDK keeps this media type in, e.g. `media/images`.
    fn media_subdir(&self) -> &'static str;
    /// The file name's extension with its dot, e.g. `.png` or `.table.json`.
    fn extension(&self) -> &str;
    /// The file's bytes.
    fn bytes(&self) -> &Arc<[u8]>;
    /// The lowercase hex SHA-256 of [`FileMedia::bytes`].
    fn sha256(&self) -> &str;
    /// The JSON value logged for the file stored at `path` (relative to `files/`).
    fn value_for(&self, path: &str) -> json::Map;
}

mod sealed {
    pub trait Sealed {
        /// The table, when the media is one (it is then also a `run_table` artifact).
        fn as_table(&self) -> Option<&super::Table> {
            None
        }
    }
    impl Sealed for super::Image {}
    impl Sealed for super::Table {
        fn as_table(&self) -> Option<&super::Table> {
            Some(self)
        }
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The path under `files/` the SDK gives a media file logged under `key` at `step`:
/// `<subdir>/<key>_<step>_<sha256[..20]><ext>`.
///
/// As the SDK does, leading slashes are removed from the key, a `/` in it makes
/// sub-folders, and `.`/`..` components become `_`/`__`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for an empty key or one holding a NUL or a backslash.
pub fn media_path(key: &str, step: u64, media: &dyn FileMedia) -> Result<String> {
    let safe = upload_safe_key(key)?;
    let id = media.sha256().get(..20).unwrap_or(media.sha256());
    Ok(format!(
        "{}/{safe}_{step}_{id}{}",
        media.media_subdir(),
        media.extension()
    ))
}

/// The SDK's `make_file_path_upload_safe` on POSIX, plus refusals of what it would let
/// through into a path that leaves the folder or cannot be uploaded.
fn upload_safe_key(key: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidArgument {
        what: "media key",
        reason: format!("{key:?} {reason}"),
    };
    if key.contains('\0') || key.contains('\\') {
        return Err(invalid("holds a NUL or a backslash"));
    }
    let trimmed = key.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(invalid("is empty"));
    }
    let parts: Vec<String> = trimmed
        .split('/')
        .map(|part| match part {
            "." | ".." => part.replace('.', "_"),
            other => other.to_owned(),
        })
        .collect();
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_safe_as_the_sdk_does() {
        assert_eq!(upload_safe_key("img").unwrap(), "img");
        assert_eq!(upload_safe_key("/a/b").unwrap(), "a/b");
        assert_eq!(upload_safe_key("../x/./y").unwrap(), "__/x/_/y");
        assert!(upload_safe_key("").is_err());
        assert!(upload_safe_key("///").is_err());
        assert!(upload_safe_key("a\\b").is_err());
    }

    #[test]
    fn sha256_is_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

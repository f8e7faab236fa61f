//! Pack finished W&B run folders into one indexed, seekable `tar.zst` archive, and read it back.
//!
//! The archive is a standard tar stream compressed as independent zstd frames followed by a
//! seek table (zstd's seekable format), so `tar --zstd -xf` and `zstd -d` unpack it with no tool
//! of ours, while [`Archive`] reaches one member by decompressing only the frames that hold it.
//! The last member, `.wandb-archive/index.json` ([`Index`]), lists every run, its files, their
//! sizes, offsets and SHA-256, and where files from outside the run folder came from.
//! `archive/ARCHIVE.md` in the repository is the byte-level specification.
//!
//! ```no_run
//! use wandb_archive::{Archive, PackOptions, pack};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let opts = PackOptions {
//!     inputs: vec!["wandb".into()],
//!     output: "runs.tar.zst".into(),
//!     level: wandb_archive::DEFAULT_LEVEL,
//!     threads: 2,
//!     remove_source: false,
//!     repack: false,
//!     progress: None,
//! };
//! let report = pack(&opts)?;
//! println!("packed {} runs", report.packed.len());
//! let archive = Archive::open("runs.tar.zst".as_ref())?;
//! for member in archive.members() {
//!     archive.verify_member(member)?;
//! }
//! # Ok(())
//! # }
//! ```

pub mod cli;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod index;
pub mod live;
pub mod records;
pub mod seekable;
pub mod tarfmt;
pub mod tools;

mod error;
mod pack;
mod read;
mod unpack;

pub use crate::error::{Error, Result};
pub use crate::index::{FileEntry, INDEX_NAME, Index, Origin, RunEntry, SweepEntry, sweep_folder};
pub use crate::pack::{
    DEFAULT_LEVEL, FRAME_MAX, FRAME_MIN, PackOptions, PackReport, Progress, ProgressEvent,
    QUIET_PERIOD, STAGED_DIR, pack, staged_name,
};
pub use crate::read::{Archive, Damage, Member, parse_spec};
pub use crate::unpack::{UnpackReport, link_stays_inside, unpack};

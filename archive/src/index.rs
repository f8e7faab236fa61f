//! The index member: a JSON document listing each run, its files, their sizes, offsets and
//! SHA-256, and where files that came from outside the run folder were found.
//! `archive/ARCHIVE.md` specifies it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the index member in the tar stream (the last member before the end-of-archive blocks).
pub const INDEX_NAME: &str = ".wandb-archive/index.json";
/// Value of [`Index::format`].
pub const FORMAT: &str = "wandb-archive";
/// The index version this crate writes and reads.
pub const VERSION: u32 = 1;
/// The largest index accepted (bytes of JSON).
pub const MAX_INDEX_LEN: u64 = 256 << 20;

/// The whole index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The runs, in the order they are in the tar stream.
    pub runs: Vec<RunEntry>,
    /// The sweep folders of the packed runs' sweeps (`sweep-<id>/`), after every run in the
    /// tar stream. Absent when there are none; readers that do not know it ignore it (and
    /// then do not see those members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweeps: Vec<SweepEntry>,
}

/// One sweep folder in the archive: the files `wandb-sync` needs to attach runs to their sweep
/// (`sweep.yaml`, `sweep.json`, `config-<run>.yaml`; never sync's own `sweep.synced.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepEntry {
    /// The local sweep id (the folder in the archive is `sweep-<id>`).
    pub id: String,
    /// The folder it was packed from (absolute).
    pub source: String,
    /// The first frame holding it (every sweep folder starts a frame).
    #[serde(default)]
    pub frame: u64,
    /// Its files (`sweep-<id>/<name>`), in tar order; their origin is always `run`.
    pub files: Vec<FileEntry>,
}

impl SweepEntry {
    /// The folder name in the archive: `sweep-<id>`.
    pub fn name(&self) -> String {
        sweep_folder(&self.id)
    }
}

/// The folder (in a wandb folder and in an archive) of the sweep with local id `id`.
pub fn sweep_folder(id: &str) -> String {
    format!("sweep-{id}")
}

/// One run folder in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEntry {
    /// The run's folder name in the archive (the top-level folder of its members).
    pub name: String,
    /// The run folder it was packed from (absolute).
    pub source: String,
    /// The first frame holding the run (every run starts a frame).
    #[serde(default)]
    pub frame: u64,
    /// The run's files, in tar order.
    pub files: Vec<FileEntry>,
    /// Files that belong to the run but were not packed, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refused>,
    /// The run's folders (relative to the run folder), stored as folder members before its
    /// files, so that empty ones come back too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<String>,
}

/// Where a packed file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A regular file inside the run folder.
    Run,
    /// The target of a symlink in the run folder leading out of it (`wandb.save`).
    Linked,
    /// An artifact file (a manifest entry's `local_path`, the entry's `source`): a copy under
    /// `.wandb-archive-staged/` of a file staged outside the run folder, or the run's own member
    /// when it was staged inside it (`artifacts/staging/`, stored once).
    Staged,
}

/// One packed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Member name in the tar stream (`<run name>/<path in the run>`).
    pub path: String,
    /// Bytes of content.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Offset of the member's first header block in the decompressed tar stream.
    pub header_offset: u64,
    /// Offset of the member's content in the decompressed tar stream.
    pub data_offset: u64,
    /// Number of the zstd frame holding the member's first header block.
    pub frame: u64,
    /// Where the file came from.
    pub origin: Origin,
    /// The path it was read from, for files that came from outside the run folder (the
    /// artifact's `local_path`, or the symlink's target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Modification time (seconds since the epoch), as stored in the tar header.
    pub mtime: u64,
    /// Permission bits, as stored in the tar header.
    #[serde(default = "default_mode")]
    pub mode: u32,
}

fn default_mode() -> u32 {
    0o644
}

/// A file of the run that was not packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Its path in the run (or the staged path).
    pub path: String,
    /// Why.
    pub reason: String,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Index {
            format: FORMAT.into(),
            version: VERSION,
            runs: Vec::new(),
            sweeps: Vec::new(),
        }
    }

    /// Serializes the index.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses and checks an index: the format and version, and that every offset is consistent
    /// (content after its header, members in increasing order, sizes within `stream_len`, the
    /// decompressed length of the tar stream).
    pub fn parse(bytes: &[u8], stream_len: u64) -> Result<Index> {
        let bad = |reason: String| Error::Index { reason };
        if bytes.len() as u64 > MAX_INDEX_LEN {
            return Err(bad(format!(
                "{} bytes, more than the {MAX_INDEX_LEN} accepted",
                bytes.len()
            )));
        }
        let index: Index =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        if index.format != FORMAT {
            return Err(bad(format!("format is {:?}, not {FORMAT:?}", index.format)));
        }
        if index.version != VERSION {
            return Err(bad(format!(
                "version {} (this tool reads version {VERSION})",
                index.version
            )));
        }
        let mut last_end = 0u64;
        for sweep in &index.sweeps {
            let name = sweep.name();
            check_name(&name).map_err(|r| bad(format!("sweep {:?}: {r}", sweep.id)))?;
            if sweep.id.contains('/') {
                return Err(bad(format!("sweep {:?}: id holds a `/`", sweep.id)));
            }
        }
        let sweep_runs = index.sweeps.iter().map(|s| (s.name(), &s.files));
        let run_files = index.runs.iter().map(|r| (r.name.clone(), &r.files));
        for (folder, files) in run_files.chain(sweep_runs) {
            for file in files {
                let here = |reason: &str| bad(format!("file {:?}: {reason}", file.path));
                check_name(&file.path).map_err(|r| here(&r))?;
                if !file
                    .path
                    .strip_prefix(&folder)
                    .is_some_and(|rest| rest.starts_with('/'))
                {
                    return Err(here("not inside its run's or sweep's folder"));
                }
                if file.header_offset < last_end || file.data_offset < file.header_offset + 512 {
                    return Err(here("offsets out of order"));
                }
                let end = file
                    .data_offset
                    .checked_add(file.size)
                    .filter(|end| *end <= stream_len)
                    .ok_or_else(|| here("ends past the end of the tar stream"))?;
                if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(here("sha256 is not 64 hex digits"));
                }
                last_end = end;
            }
        }
        for run in &index.runs {
            check_name(&run.name).map_err(|r| bad(format!("run {:?}: {r}", run.name)))?;
            for dir in &run.dirs {
                check_name(dir).map_err(|r| bad(format!("folder {dir:?}: {r}")))?;
            }
        }
        Ok(index)
    }
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

/// Checks a member name is relative and stays inside the target folder: no absolute path, no
/// `..`, no empty or `.` components, no NUL.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.contains('\0') {
        return Err("name contains a NUL byte".into());
    }
    if name.starts_with('/') || name.starts_with('\\') {
        return Err("absolute path".into());
    }
    for part in name.split('/') {
        match part {
            ".." => return Err("path leaves the target through `..`".into()),
            "" | "." => {}
            _ => {}
        }
    }
    if name.split('/').all(|p| p.is_empty() || p == ".") {
        return Err("names no file".into());
    }
    Ok(())
}

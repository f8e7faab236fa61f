//! The durable ledger: what the server has acknowledged for one `.wandb` file.
//!
//! It lives next to the file as `<name>.wandb.ledger.json` and is replaced atomically (write a
//! temporary file, fsync it, rename it over the old one, fsync the folder), so after a crash
//! at any moment it is either the old or the new version, never a mix. Updates whose loss only
//! repeats idempotent work (uploaded files, the final request) skip the folder fsync.
//!
//! Format (JSON, `version` 1):
//!
//! | field | meaning |
//! |---|---|
//! | `destination` | base URL, entity, project, run id the file is synced to |
//! | `history_base`, `events_base`, `console_base` | server line where this file's line 0 goes, fixed when the file is first synced |
//! | `record_offset` | offset of the first record whose output the server has *not* acknowledged |
//! | `history_acked`, `events_acked` | lines acknowledged, i.e. produced by records before `record_offset` |
//! | `alerts_sent` | alerts acknowledged |
//! | `files` | uploaded files: path → size and SHA-256 |
//! | `complete` | the final file_stream request (`complete`, `exitcode`) was acknowledged |
//! | `artifacts` | per artifact record (by client id): server id, files acknowledged with the artifact that stores them, manifest uploaded, committed, used (absent in ledgers written before artifacts were synced) |
//! | `artifact_uses` | `use_artifact` records acknowledged with `UseArtifact` |
//!
//! Because every line is sent to `base + index` and indexes are fixed by the file's content,
//! re-sending after a crash overwrites the same lines with the same text: no duplicate, no gap.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest ledger file read; a bigger one is refused as damaged (hostile input guard).
const MAX_LEDGER_BYTES: u64 = 64 << 20;

/// Where a file is synced to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Destination {
    pub(crate) base_url: String,
    pub(crate) entity: String,
    pub(crate) project: String,
    pub(crate) run_id: String,
}

/// One uploaded file as acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadedFile {
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// How far one artifact got; each step is recorded once the server acknowledged it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ArtifactProgress {
    /// Collection name, for people reading the ledger.
    pub(crate) name: String,
    /// The artifact digest.
    pub(crate) digest: String,
    /// The id `CreateArtifact` returned.
    pub(crate) server_id: Option<String>,
    /// Files the server acknowledged (uploaded, or already held), with the id of the artifact
    /// that stores them (`birthArtifactID`).
    pub(crate) files: BTreeMap<String, String>,
    /// The manifest was uploaded.
    pub(crate) manifest_uploaded: bool,
    /// `CommitArtifact` succeeded, or the server already had the artifact committed (for a
    /// record without `finalize`, a part of a distributed artifact: its manifest is uploaded).
    pub(crate) committed: bool,
    /// `UseArtifact` after commit (`use_after_commit`) succeeded.
    pub(crate) used: bool,
}

/// The ledger's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LedgerData {
    pub(crate) version: u32,
    pub(crate) destination: Destination,
    pub(crate) storage_id: String,
    pub(crate) history_base: u64,
    pub(crate) events_base: u64,
    pub(crate) console_base: u64,
    pub(crate) record_offset: u64,
    pub(crate) history_acked: u64,
    pub(crate) events_acked: u64,
    pub(crate) alerts_sent: u64,
    pub(crate) files: BTreeMap<String, UploadedFile>,
    pub(crate) complete: bool,
    pub(crate) exit_code: Option<i32>,
    /// Artifacts by key (see `crate::artifacts`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) artifacts: BTreeMap<String, ArtifactProgress>,
    /// Keys of the `use_artifact` records the server acknowledged.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(crate) artifact_uses: BTreeSet<String>,
}

impl LedgerData {
    /// A fresh ledger for a file synced to `destination` with the given line bases.
    pub(crate) fn new(destination: Destination, storage_id: String, bases: [u64; 3]) -> Self {
        LedgerData {
            version: 1,
            destination,
            storage_id,
            history_base: bases[0],
            events_base: bases[1],
            console_base: bases[2],
            record_offset: 0,
            history_acked: 0,
            events_acked: 0,
            alerts_sent: 0,
            files: BTreeMap::new(),
            complete: false,
            exit_code: None,
            artifacts: BTreeMap::new(),
            artifact_uses: BTreeSet::new(),
        }
    }
}

/// The ledger file of one `.wandb` file.
#[derive(Debug)]
pub(crate) struct Ledger {
    path: PathBuf,
    /// The current content (`None` until the first write or when no ledger existed).
    pub(crate) data: Option<LedgerData>,
}

/// The ledger path for a `.wandb` file.
pub(crate) fn ledger_path(wandb_file: &Path) -> PathBuf {
    let mut name = wandb_file.as_os_str().to_owned();
    name.push(".ledger.json");
    PathBuf::from(name)
}

impl Ledger {
    /// No ledger yet for `wandb_file`.
    pub(crate) fn empty(wandb_file: &Path) -> Ledger {
        Ledger {
            path: ledger_path(wandb_file),
            data: None,
        }
    }

    /// Loads the ledger of `wandb_file`, if there is one.
    pub(crate) fn load(wandb_file: &Path) -> Result<Ledger> {
        let path = ledger_path(wandb_file);
        let data = match fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&path, "stat ledger", e)),
            Ok(meta) if meta.len() > MAX_LEDGER_BYTES => {
                return Err(Error::Ledger {
                    path,
                    problem: format!("ledger is {} bytes, more than any real one", meta.len()),
                });
            }
            Ok(_) => {
                let bytes = fs::read(&path).map_err(|e| Error::io(&path, "read ledger", e))?;
                let data: LedgerData =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Ledger {
                        path: path.clone(),
                        problem: format!("unreadable ledger (delete it to sync from scratch): {e}"),
                    })?;
                if data.version != 1 {
                    return Err(Error::Ledger {
                        path,
                        problem: format!("unsupported ledger version {}", data.version),
                    });
                }
                Some(data)
            }
        };
        Ok(Ledger { path, data })
    }

    /// The ledger file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the ledger with `data`, atomically and durably.
    pub(crate) fn store(&mut self, data: LedgerData) -> Result<()> {
        self.store_with(data, true)
    }

    fn store_with(&mut self, data: LedgerData, durable: bool) -> Result<()> {
        let text = serde_json::to_vec_pretty(&data).map_err(|e| Error::Ledger {
            path: self.path.clone(),
            problem: format!("cannot encode ledger: {e}"),
        })?;
        write_atomic(&self.path, &text, durable)?;
        self.data = Some(data);
        Ok(())
    }

    /// Applies `change` to the current data and stores the result, durably.
    pub(crate) fn update(&mut self, change: impl FnOnce(&mut LedgerData)) -> Result<()> {
        self.update_with(change, true)
    }

    /// Like [`Ledger::update`] but without fsyncing the folder: after a crash the ledger may be
    /// the previous version (never a mix). For facts whose loss only makes a resumed sync repeat
    /// idempotent work (file uploads, the final request).
    pub(crate) fn update_relaxed(&mut self, change: impl FnOnce(&mut LedgerData)) -> Result<()> {
        self.update_with(change, false)
    }

    fn update_with(&mut self, change: impl FnOnce(&mut LedgerData), durable: bool) -> Result<()> {
        let Some(mut data) = self.data.clone() else {
            return Err(Error::Internal {
                what: "update the ledger",
                detail: "it was updated before it was created".into(),
            });
        };
        change(&mut data);
        if Some(&data) == self.data.as_ref() {
            return Ok(());
        }
        self.store_with(data, durable)
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, and with `durable` an
/// fsync of the folder (without it, a crash may keep the previous version, never a mix).
fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, "create", e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io(&tmp, "write", e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, "fsync", e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename", e))?;
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// Creates an empty marker file durably (the `.synced` marker): the file has no data, so
/// fsyncing its folder makes it durable.
pub(crate) fn write_marker(path: &Path) -> Result<()> {
    File::create(path).map_err(|e| Error::io(path, "create", e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "fsync folder", e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().unwrap();
        let wandb = dir.path().join("run-x.wandb");
        let mut ledger = Ledger::load(&wandb).unwrap();
        assert!(ledger.data.is_none());
        let dest = Destination {
            base_url: "http://h".into(),
            entity: "e".into(),
            project: "p".into(),
            run_id: "x".into(),
        };
        ledger
            .store(LedgerData::new(dest, "sid".into(), [5, 0, 0]))
            .unwrap();
        ledger.update(|d| d.history_acked = 7).unwrap();
        let again = Ledger::load(&wandb).unwrap();
        assert_eq!(again.data.as_ref().unwrap().history_acked, 7);
        assert_eq!(again.data.unwrap().history_base, 5);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(leftovers, vec!["run-x.wandb.ledger.json".to_owned()]);
    }

    #[test]
    fn ledgers_without_artifacts_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let wandb = dir.path().join("run-x.wandb");
        // A ledger as written before artifacts were synced.
        let old = r#"{"version":1,"destination":{"base_url":"http://h","entity":"e","project":"p","run_id":"x"},
            "storage_id":"sid","history_base":0,"events_base":0,"console_base":0,"record_offset":7,
            "history_acked":1,"events_acked":0,"alerts_sent":0,"files":{},"complete":false,"exit_code":null}"#;
        fs::write(ledger_path(&wandb), old).unwrap();
        let mut ledger = Ledger::load(&wandb).unwrap();
        let data = ledger.data.clone().unwrap();
        assert_eq!(data.record_offset, 7);
        assert!(data.artifacts.is_empty());
        ledger
            .update(|d| {
                d.artifacts.entry("c1".into()).or_default().committed = true;
                d.artifact_uses.insert("u".into());
            })
            .unwrap();
        let again = Ledger::load(&wandb).unwrap().data.unwrap();
        assert!(again.artifacts["c1"].committed);
        assert!(again.artifact_uses.contains("u"));
    }

    #[test]
    fn garbage_ledger_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let wandb = dir.path().join("run-x.wandb");
        fs::write(ledger_path(&wandb), b"{not json").unwrap();
        let err = Ledger::load(&wandb).unwrap_err();
        assert!(err.to_string().contains("unreadable ledger"), "{err}");
    }
}

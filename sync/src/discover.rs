//! Finding the `.wandb` files to sync and planning the order.
//!
//! A path argument may be a `.wandb` file, a run folder (one holding `*.wandb` files), a
//! `wandb/` folder (whose `*/*.wandb` are used), or a glob of those (expanded here when the
//! shell did not). The same file reached twice, for example through the `latest-run` symlink,
//! is synced once: files are identified by device and inode, and the path without a symlinked
//! folder is preferred. Files are then grouped by destination run (entity, project, run id):
//! groups sync in parallel, the fragments of one group in start-time order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, LogFile, Recovery};

use crate::error::{Error, Result};
use crate::options::SyncOptions;
use crate::process::micros;
use crate::runsync::{FilePlan, synced_marker};

/// How many records are read at most while looking for the run record.
const RUN_RECORD_SEARCH: usize = 10_000;

/// One `.wandb` file found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) path: PathBuf,
    pub(crate) synced: bool,
    pub(crate) online: bool,
}

/// Expands the path arguments into `.wandb` files, deduplicated, in argument order.
pub(crate) fn discover(paths: &[PathBuf]) -> Result<Vec<Found>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for arg in paths {
        let expanded = expand(arg)?;
        for path in expanded {
            collect(&path, &mut files)?;
        }
    }
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    let mut out: Vec<Found> = Vec::new();
    for path in files {
        let id = file_id(&path);
        if let Some(id) = id {
            if let Some(&index) = seen.get(&id) {
                // Prefer the path that does not go through a symlinked folder.
                if through_symlink(&out[index].path) && !through_symlink(&path) {
                    out[index] = found(path);
                }
                continue;
            }
            seen.insert(id, out.len());
        }
        out.push(found(path));
    }
    Ok(out)
}

fn found(path: PathBuf) -> Found {
    let synced = synced_marker(&path).exists();
    let online = !path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n.to_string_lossy().starts_with("offline-"));
    Found {
        path,
        synced,
        online,
    }
}

fn expand(arg: &Path) -> Result<Vec<PathBuf>> {
    if arg.exists() {
        return Ok(vec![arg.to_path_buf()]);
    }
    let text = arg.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        let matches: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| Error::Usage(format!("{text}: invalid glob: {e}")))?
            .filter_map(std::result::Result::ok)
            .collect();
        if !matches.is_empty() {
            return Ok(matches);
        }
    }
    Err(Error::NoSuchPath {
        path: arg.to_path_buf(),
    })
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_file() {
        if is_wandb_file(path) {
            out.push(path.to_path_buf());
            return Ok(());
        }
        return Err(Error::Usage(format!(
            "{}: not a .wandb file, run folder or wandb folder",
            path.display()
        )));
    }
    let direct = wandb_files_in(path)?;
    if !direct.is_empty() {
        out.extend(direct);
        return Ok(());
    }
    // A wandb folder: */*.wandb.
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, "list folder", e))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    for dir in subdirs {
        out.extend(wandb_files_in(&dir)?);
    }
    Ok(())
}

fn wandb_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, "list folder", e))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| is_wandb_file(p) && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn is_wandb_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wandb")
}

#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<(u64, u64)> {
    None
}

fn through_symlink(path: &Path) -> bool {
    path.parent()
        .and_then(|p| std::fs::symlink_metadata(p).ok())
        .is_some_and(|m| m.file_type().is_symlink())
}

/// The run id in a file name `run-<id>.wandb`.
fn run_id_from_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.strip_prefix("run-").unwrap_or(&stem).to_owned()
}

/// Reads the first run record and applies the overrides. In live mode a file without a run
/// record yet is planned from its name.
pub(crate) fn plan(found: &Found, opts: &SyncOptions) -> Result<FilePlan> {
    let size = std::fs::metadata(&found.path)
        .map_err(|e| Error::io(&found.path, "stat", e))?
        .len();
    let mut run_record = None;
    match LogFile::open(&found.path) {
        Ok(file) => {
            for entry in file.records(Recovery::SkipCorrupt).take(RUN_RECORD_SEARCH) {
                if let Ok(Entry::Record { record, .. }) = entry
                    && let Some(RecordType::Run(run)) = record.record_type
                {
                    run_record = Some(run);
                    break;
                }
            }
        }
        Err(e) if opts.live => log::debug!("{}: {e}", found.path.display()),
        Err(e) => return Err(e.into()),
    }
    if run_record.is_none() && !opts.live {
        return Err(Error::NoRunRecord {
            path: found.path.clone(),
        });
    }
    let run = run_record.unwrap_or_default();
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let run_id = opts
        .run_id
        .clone()
        .or_else(|| text(&run.run_id))
        .unwrap_or_else(|| run_id_from_name(&found.path));
    Ok(FilePlan {
        path: found.path.clone(),
        run_id,
        entity: opts.entity.clone().or_else(|| text(&run.entity)),
        project: opts.project.clone().or_else(|| text(&run.project)),
        start_micros: run.start_time.as_ref().map_or(i64::MAX, micros),
        size,
    })
}

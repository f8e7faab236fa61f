//! Finding the `.wandb` files to sync and planning the order.
//!
//! Paths are resolved by the rules every tool shares ([`wandb_format::inputs`]: `.wandb` files,
//! run folders, `wandb/` folders, globs; symlinked run folders such as `latest-run` judged by the
//! folder they point to; each file once, by device and inode; anything but a regular file refused
//! unopened). On top of them sync adds W&B's two filters: a run counts as online when the folder
//! holding it (symlinks resolved) does not start with `offline-`, and as synced when
//! `<file>.synced` exists. Files are then grouped by destination run (entity, project, run id):
//! groups sync in parallel, the fragments of one group in start-time order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wandb_archive::Archive;
use wandb_format::inputs::{self, InputError};
use wandb_format::proto::RunRecord;
use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, LogFile, Recovery, ScanItem, decode};

use crate::error::{Error, Result};
use crate::options::SyncOptions;
use crate::process::micros;
use crate::runsync::{FilePlan, synced_marker};
use crate::source::{ArchiveRun, RunSource};

/// Bytes of an archive member looked at first for its run record.
const RUN_RECORD_PEEK: u64 = 256 << 10;

/// How many records are read at most while looking for the run record.
const RUN_RECORD_SEARCH: usize = 10_000;

/// One `.wandb` file found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The path that names it (for a run in an archive, `<archive>:<run folder>/<file>`).
    pub(crate) path: PathBuf,
    /// Where its ledger, lock and `.synced` marker derive from (its path, for a file on disk).
    pub(crate) state: PathBuf,
    /// Where its records and files are read from.
    pub(crate) source: RunSource,
    pub(crate) synced: bool,
    pub(crate) online: bool,
}

/// What the paths stand for.
#[derive(Debug, Default)]
pub(crate) struct Discovered {
    /// The files to consider, in argument order, without duplicates.
    pub(crate) found: Vec<Found>,
    /// Paths refused: not regular files, not `.wandb` logs, unreadable entries.
    pub(crate) refused: Vec<InputError>,
    /// Inputs that hold no run.
    pub(crate) warnings: Vec<InputError>,
}

/// Expands the path arguments into `.wandb` files.
///
/// A path that does not exist, or a pattern that is invalid or matches nothing, stops everything
/// ([`Error::Inputs`]); other problems are returned for the report and the other files go on.
/// Every file found has its header checked (without blocking), so a file that is not a `.wandb`
/// log is refused by name even when it would be skipped; in live mode a file still shorter than
/// its header passes.
///
/// An archive written by `wandb-archive` (`runs.tar.zst`, or `runs.tar.zst:RUN` for one run)
/// stands for its runs' `.wandb` members, read in place ([`crate::source`]); each run's
/// ledger, lock and `.synced` marker live in `runs.tar.zst.sync/<run folder>/`, so a sync of an
/// archive resumes like a sync of folders.
pub(crate) fn discover(paths: &[PathBuf], live: bool) -> Result<Discovered> {
    let mut expanded = Vec::with_capacity(paths.len());
    let mut archive_problems = Vec::new();
    let mut archive_runs: Vec<Found> = Vec::new();
    for path in paths {
        let Some((archive_path, run)) = wandb_archive::parse_spec(path) else {
            expanded.push(path.clone());
            continue;
        };
        let problem = |reason: String| InputError::Io {
            path: path.clone(),
            action: "read archive",
            source: std::io::Error::other(reason),
        };
        let archive = match Archive::open(&archive_path) {
            Ok(archive) => archive,
            Err(error) => {
                archive_problems.push(problem(error.to_string()));
                continue;
            }
        };
        let records = archive.record_members(run.as_deref());
        if records.is_empty() {
            archive_problems.push(problem(match &run {
                Some(run) => format!("the archive holds no run {run:?}"),
                None => "the archive holds no .wandb file".into(),
            }));
            continue;
        }
        for record in records {
            let run = ArchiveRun::new(&archive, record);
            let found = Found {
                path: run.shown_path(),
                synced: synced_marker(&run.state_path()).exists(),
                online: !run.folder.starts_with("offline-"),
                state: run.state_path(),
                source: RunSource::Archive(Arc::new(run)),
            };
            // The same archive named twice (or an archive and one of its runs): each run once.
            if !archive_runs.iter().any(|f| f.state == found.state) {
                archive_runs.push(found);
            }
        }
    }
    let resolved = inputs::resolve(&expanded);
    let mut out = Discovered::default();
    out.refused.extend(archive_problems);
    let mut stop = Vec::new();
    for problem in resolved.problems {
        if problem.is_warning() {
            out.warnings.push(problem);
        } else if problem.is_about_argument() {
            stop.push(problem);
        } else {
            out.refused.push(problem);
        }
    }
    if !stop.is_empty() {
        return Err(Error::Inputs(stop));
    }
    for input in resolved.files {
        if let Err(problem) = inputs::check_header(&input.path, live) {
            out.refused.push(problem);
            continue;
        }
        out.found.push(Found {
            synced: synced_marker(&input.path).exists(),
            online: !input.is_offline(),
            state: input.path.clone(),
            source: RunSource::Folder,
            path: input.path,
        });
    }
    out.found.extend(archive_runs);
    Ok(out)
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
    let (size, run_record) = match &found.source {
        RunSource::Folder => first_run_record(&found.path, opts.live)?,
        RunSource::Archive(run) => (run.record.size, first_run_record_in(run)?),
    };
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
        state: found.state.clone(),
        source: found.source.clone(),
        run_id,
        entity: opts.entity.clone().or_else(|| text(&run.entity)),
        project: opts.project.clone().or_else(|| text(&run.project)),
        start_micros: run.start_time.as_ref().map_or(i64::MAX, micros),
        size,
    })
}

/// The size of a `.wandb` file on disk and its first run record.
fn first_run_record(path: &Path, live: bool) -> Result<(u64, Option<RunRecord>)> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, "stat", e))?
        .len();
    match LogFile::open(path) {
        Ok(file) => {
            for entry in file.records(Recovery::SkipCorrupt).take(RUN_RECORD_SEARCH) {
                if let Ok(Entry::Record { record, .. }) = entry
                    && let Some(RecordType::Run(run)) = record.record_type
                {
                    return Ok((size, Some(run)));
                }
            }
        }
        Err(e) if live => log::debug!("{}: {e}", path.display()),
        Err(e) => return Err(e.into()),
    }
    Ok((size, None))
}

/// The first run record of a `.wandb` member, read in place (usually from the run's first frame).
fn first_run_record_in(run: &ArchiveRun) -> Result<Option<RunRecord>> {
    use wandb_archive::tools::{MemberItem, scan_member};
    let archive = run.handle();
    // A first look at the member's start, decompressing only that much of its frame: the run
    // record is one of the first records.
    if let Ok(head) = archive.peek(run.record.data_offset, RUN_RECORD_PEEK.min(run.record.size))
        && head.starts_with(&wandb_format::FILE_HEADER)
    {
        let scanner = wandb_format::Scanner::new(
            &head,
            0,
            wandb_format::FILE_HEADER_LEN,
            Recovery::SkipCorrupt,
        )
        .growing();
        for item in scanner {
            if let Ok(ScanItem::Record(raw)) = item
                && let Ok(record) = decode(&raw)
                && let Some(RecordType::Run(record)) = record.record_type
            {
                return Ok(Some(record));
            }
        }
    }
    let mut found = None;
    let mut n_records = 0usize;
    scan_member::<Error>(&archive, &run.record, Recovery::SkipCorrupt, |item| {
        let MemberItem::Item(ScanItem::Record(raw)) = item else {
            return Ok(true);
        };
        n_records += 1;
        if let Ok(record) = decode(&raw)
            && let Some(RecordType::Run(record)) = record.record_type
        {
            found = Some(record);
            return Ok(false);
        }
        Ok(n_records < RUN_RECORD_SEARCH)
    })
    .map_err(|e| e.in_archive(&run.archive_path))?;
    Ok(found)
}

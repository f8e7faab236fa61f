//! `pack`: run folders into one seekable `tar.zst`, written atomically and verified before it
//! is reported as done.
//!
//! The tar stream is cut into zstd frames so that each run starts a new frame, a member of at
//! least [`FRAME_MIN`] bytes starts a new frame, and no frame holds more than [`FRAME_MAX`]
//! bytes. Frames are compressed on `threads` worker threads and written in order by one writer
//! thread; memory is bounded by a few frames per thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{BufWriter, Read as _, Write as _};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::index::{
    FileEntry, INDEX_NAME, Index, Origin, Refused, RunEntry, SweepEntry, sweep_folder,
};
use crate::live;
use crate::read::{Archive, hex};
use crate::records::{self, RecordFacts};
use crate::seekable::{self, Frame};
use crate::tarfmt::{self, BLOCK};
use wandb_format::outside;

/// Members at least this large start a new frame, and frames are cut at member boundaries
/// once they hold this much.
pub const FRAME_MIN: usize = 1 << 20;
/// No frame holds more than this many decompressed bytes.
pub const FRAME_MAX: usize = 4 << 20;
/// The default compression level.
///
/// Level 1: on run files it compresses within a few percent of level 3 at half the CPU time,
/// which keeps `pack` above 300 MB/s of input on two cores.
pub const DEFAULT_LEVEL: i32 = 1;
/// Folder (inside each run's folder in the archive) holding the artifact files that were
/// staged outside the run.
pub const STAGED_DIR: &str = ".wandb-archive-staged";

/// Where, inside a run folder, our logger stages artifact files (a Table's `run_table`).
const IN_RUN_STAGING: &str = "artifacts/staging";

/// Where, relative to its run folder, the archive stores the artifact file staged at
/// `local_path`: `.wandb-archive-staged/<16 hex digits of SHA-256(local_path)>-<file name>`.
pub fn staged_name(local_path: &str) -> String {
    let base = Path::new(local_path)
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tag = hex(&Sha256::digest(local_path.as_bytes()));
    format!("{STAGED_DIR}/{}-{base}", &tag[..16])
}

/// What to pack and how.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Run folders, `wandb/` folders, `.wandb` files or patterns (format's input rules).
    pub inputs: Vec<PathBuf>,
    /// The archive to write.
    pub output: PathBuf,
    /// zstd level.
    pub level: i32,
    /// Compression threads (at least 1).
    pub threads: usize,
    /// Delete the packed run folders once the archive is verified (never a live run).
    pub remove_source: bool,
    /// Pack runs again even if the existing archive at `output` already holds them.
    pub repack: bool,
    /// Told about progress (the CLI draws a bar on a terminal).
    pub progress: Option<Progress>,
}

/// What `pack` is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent<'a> {
    /// Packing of a run starts.
    Run(&'a str),
    /// This many more bytes of content were read.
    Bytes(u64),
    /// The archive is being read back.
    Verifying,
}

/// A progress callback.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(ProgressEvent<'_>) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl Progress {
    fn tell(progress: Option<&Progress>, event: ProgressEvent<'_>) {
        if let Some(p) = progress {
            (p.0)(event);
        }
    }
}

/// What `pack` did.
#[derive(Debug, Default, Clone)]
pub struct PackReport {
    /// Runs packed now (archive names).
    pub packed: Vec<String>,
    /// Runs carried over from the existing archive.
    pub kept: Vec<String>,
    /// Runs skipped because the archive already holds them.
    pub skipped: Vec<String>,
    /// Sweep folders packed now (local sweep ids).
    pub sweeps: Vec<String>,
    /// Files not packed: (run, path, reason).
    pub refused: Vec<(String, String, String)>,
    /// Problems with the inputs (missing paths, refused entries).
    pub input_errors: Vec<String>,
    /// Warnings (inputs with no run, runs still being written).
    pub warnings: Vec<String>,
    /// Run folders removed (`--remove-source`).
    pub removed: Vec<PathBuf>,
    /// Run folders kept despite `--remove-source`, and why.
    pub not_removed: Vec<(PathBuf, String)>,
    /// Bytes of content read from the sources.
    pub bytes_in: u64,
    /// Bytes of the archive.
    pub bytes_out: u64,
}

impl PackReport {
    /// Whether anything went wrong that the exit code must show.
    pub fn has_problems(&self) -> bool {
        !self.refused.is_empty() || !self.input_errors.is_empty() || !self.not_removed.is_empty()
    }
}

/// One run folder to pack.
#[derive(Debug)]
struct RunSource {
    dir: PathBuf,
    name: String,
    record_files: Vec<PathBuf>,
}

/// Packs `opts.inputs` into `opts.output`.
pub fn pack(opts: &PackOptions) -> Result<PackReport> {
    let mut report = PackReport::default();
    let resolved = wandb_format::inputs::resolve(&opts.inputs);
    for problem in &resolved.problems {
        if problem.is_warning() {
            report.warnings.push(problem.to_string());
        } else {
            report.input_errors.push(problem.to_string());
        }
    }
    let mut runs: Vec<RunSource> = Vec::new();
    let mut by_dir: HashMap<PathBuf, usize> = HashMap::new();
    for input in &resolved.files {
        let dir = input.run_dir.clone();
        match by_dir.get(&dir) {
            Some(i) => runs[*i].record_files.push(input.path.clone()),
            None => {
                by_dir.insert(dir.clone(), runs.len());
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "run".into());
                runs.push(RunSource {
                    dir,
                    name,
                    record_files: vec![input.path.clone()],
                });
            }
        }
    }
    if runs.is_empty() {
        return Err(Error::Input {
            path: opts.inputs.first().cloned().unwrap_or_default(),
            reason: if report.input_errors.is_empty() {
                "no run found in the inputs".into()
            } else {
                report.input_errors.join("; ")
            },
        });
    }

    // An existing archive: carry its runs over, and skip the inputs it already holds.
    let old = if opts.output.exists() {
        let archive = Archive::open(&opts.output)?;
        if archive.index().is_none() || !archive.damage().is_empty() {
            return Err(Error::Input {
                path: opts.output.clone(),
                reason: "exists and is damaged or has no index; move it away to write a new one"
                    .into(),
            });
        }
        Some(archive)
    } else {
        None
    };
    let mut used: HashSet<String> = HashSet::new();
    let old_runs: Vec<RunEntry> = old
        .as_ref()
        .and_then(|a| a.index())
        .map(|i| i.runs.clone())
        .unwrap_or_default();
    let old_by_source: HashMap<&str, &RunEntry> =
        old_runs.iter().map(|r| (r.source.as_str(), r)).collect();
    let mut replaced: HashSet<String> = HashSet::new();
    runs.retain(|run| {
        let source = absolute(&run.dir).to_string_lossy().into_owned();
        match old_by_source.get(source.as_str()) {
            Some(old_run) if !opts.repack => {
                report.skipped.push(old_run.name.clone());
                false
            }
            Some(old_run) => {
                replaced.insert(old_run.name.clone());
                true
            }
            None => true,
        }
    });
    for old_run in &old_runs {
        if !replaced.contains(&old_run.name) {
            used.insert(old_run.name.clone());
        }
    }
    for run in &mut runs {
        let base = run.name.clone();
        let mut n = 2;
        while !used.insert(run.name.clone()) {
            run.name = format!("{base}-{n}");
            n += 1;
        }
    }

    let parent = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let real_parent = absolute(&parent);
    if let Some(run) = runs
        .iter()
        .find(|r| real_parent.starts_with(absolute(&r.dir)))
    {
        return Err(Error::Input {
            path: opts.output.clone(),
            reason: format!(
                "the archive would be written inside the run folder {}, which is packed",
                run.dir.display()
            ),
        });
    }
    if runs.is_empty()
        && let Some(old) = &old
    {
        // Nothing new: the existing archive stays as it is.
        report.kept = old_runs.iter().map(|r| r.name.clone()).collect();
        report.bytes_out = std::fs::metadata(old.path()).map_or(0, |m| m.len());
        return Ok(report);
    }
    let file_name = opts
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".partial")
        .tempfile_in(&parent)
        .map_err(|e| Error::io(&parent, "create temporary file", e))?;
    let temp_path = temp.path().to_path_buf();
    let out = temp
        .as_file()
        .try_clone()
        .map_err(|e| Error::io(&temp_path, "dup", e))?;

    let mut packer = Packer::start(out, &temp_path, opts.level, opts.threads.max(1));
    let mut index = Index::new();
    let mut live_at_pack: HashMap<PathBuf, bool> = HashMap::new();
    let mut stamps: HashMap<PathBuf, Vec<(PathBuf, u64, i64)>> = HashMap::new();

    // Runs carried over, frames copied as they are.
    if let Some(old) = &old {
        for (old_run, range) in old_runs.iter().zip(run_frame_ranges(old)) {
            if replaced.contains(&old_run.name) {
                continue;
            }
            let (new_start, new_frame0, old_start) = copy_frames(&mut packer, old, range.clone())?;
            let mut run = old_run.clone();
            run.frame = new_frame0;
            relocate(
                &mut run.files,
                old_start,
                range.start,
                new_start,
                new_frame0,
            );
            report.kept.push(run.name.clone());
            index.runs.push(run);
        }
    }

    let mut run_facts: HashMap<PathBuf, RecordFacts> = HashMap::new();
    for run in &runs {
        let facts: HashMap<PathBuf, RecordFacts> = run
            .record_files
            .iter()
            .map(|f| (f.clone(), records::scan(f)))
            .collect();
        let live = run
            .record_files
            .iter()
            .any(|f| live::is_live_given(f, || facts.get(f).is_some_and(|r| r.has_exit)).is_some());
        live_at_pack.insert(run.dir.clone(), live);
        if live {
            report.warnings.push(format!(
                "{}: still being written; packed as it is now",
                run.dir.display()
            ));
        }
        stamps.insert(
            run.dir.clone(),
            run.record_files
                .iter()
                .filter_map(|f| {
                    std::fs::metadata(f)
                        .ok()
                        .map(|m| (f.clone(), m.len(), m.mtime()))
                })
                .collect(),
        );
        Progress::tell(opts.progress.as_ref(), ProgressEvent::Run(&run.name));
        let entry = pack_run(
            &mut packer,
            run,
            &facts,
            &mut report,
            opts.progress.as_ref(),
        )?;
        report.packed.push(entry.name.clone());
        index.runs.push(entry);
        run_facts.extend(facts);
    }

    // The sweep folders of the runs packed now (read again from disk), then those of the
    // existing archive not packed again, copied as they are.
    let mut sweep_ids: Vec<(String, PathBuf)> = Vec::new();
    for run in &runs {
        for facts in run.record_files.iter().filter_map(|f| run_facts.get(f)) {
            if let Some(id) = &facts.sweep_id
                && !sweep_ids.iter().any(|(seen, _)| seen == id)
            {
                sweep_ids.push((id.clone(), sweep_dir_for(&run.dir, id)));
            }
        }
    }
    let old_sweeps: Vec<SweepEntry> = old
        .as_ref()
        .and_then(|a| a.index())
        .map(|i| i.sweeps.clone())
        .unwrap_or_default();
    let mut packed_sweeps: HashSet<String> = HashSet::new();
    for (id, dir) in &sweep_ids {
        if !dir.join("sweep.yaml").is_file() {
            if !old_sweeps.iter().any(|s| s.id == *id) {
                report.warnings.push(format!(
                    "sweep {id}: no sweep folder at {} (no sweep.yaml); its runs are packed without it and sync without their sweep",
                    dir.display()
                ));
            }
            continue;
        }
        let Some(entry) = pack_sweep(&mut packer, id, dir, &mut report, opts.progress.as_ref())?
        else {
            continue;
        };
        packed_sweeps.insert(id.clone());
        report.sweeps.push(id.clone());
        index.sweeps.push(entry);
    }
    if let Some(old) = &old {
        for (old_sweep, range) in old_sweeps.iter().zip(sweep_frame_ranges(old)) {
            if packed_sweeps.contains(&old_sweep.id) {
                continue;
            }
            let (new_start, new_frame0, old_start) = copy_frames(&mut packer, old, range.clone())?;
            let mut sweep = old_sweep.clone();
            sweep.frame = new_frame0;
            relocate(
                &mut sweep.files,
                old_start,
                range.start,
                new_start,
                new_frame0,
            );
            index.sweeps.push(sweep);
        }
    }

    // The index, in its own frame(s), then the end-of-archive blocks.
    packer.cut();
    let json = index.to_json();
    let index_frame = packer.n_frames();
    let header_offset = packer.stream_pos();
    let _ = (index_frame, header_offset);
    packer.write(&tarfmt::file_header(
        INDEX_NAME,
        json.len() as u64,
        0o644,
        now(),
    ))?;
    packer.write(&json)?;
    packer.pad()?;
    packer.write(&[0u8; 1024])?;
    let written = packer.finish()?;
    // The temporary file is private; the archive gets the usual mode of a new file.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = temp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io(&temp_path, "fsync", e))?;

    Progress::tell(opts.progress.as_ref(), ProgressEvent::Verifying);
    verify_written(&temp_path, &written, &index, opts.threads.max(1))?;

    let persisted = temp
        .persist(&opts.output)
        .map_err(|e| Error::io(&opts.output, "rename", e.error))?;
    drop(persisted);
    if let Ok(dir) = File::open(&parent) {
        let _ = dir.sync_all();
    }
    report.bytes_out = std::fs::metadata(&opts.output).map_or(0, |m| m.len());

    if opts.remove_source {
        for run in &runs {
            match removable(
                run,
                live_at_pack.get(&run.dir).copied(),
                stamps.get(&run.dir),
            ) {
                Ok(()) => match std::fs::remove_dir_all(&run.dir) {
                    Ok(()) => report.removed.push(run.dir.clone()),
                    Err(e) => report.not_removed.push((run.dir.clone(), e.to_string())),
                },
                Err(reason) => report.not_removed.push((run.dir.clone(), reason)),
            }
        }
    }
    Ok(report)
}

fn old_file(old: &Archive) -> Result<File> {
    File::open(old.path()).map_err(|e| Error::io(old.path(), "open", e))
}

/// The frame the index member starts, else the number of frames.
fn index_frame(archive: &Archive) -> usize {
    archive
        .frames()
        .iter()
        .position(|f| {
            archive
                .member_at(f.d_offset)
                .ok()
                .flatten()
                .is_some_and(|m| m.name == INDEX_NAME)
        })
        .unwrap_or(archive.frames().len())
}

/// For each run of the index, the range of frames that holds it (runs start frames).
fn run_frame_ranges(archive: &Archive) -> Vec<std::ops::Range<usize>> {
    let Some(index) = archive.index() else {
        return Vec::new();
    };
    let starts: Vec<usize> = index
        .runs
        .iter()
        .map(|r| usize::try_from(r.frame).unwrap_or(0))
        .collect();
    let index_frame = index_frame(archive);
    // Sweep folders follow every run.
    let index_frame = index
        .sweeps
        .first()
        .and_then(|s| usize::try_from(s.frame).ok())
        .map_or(index_frame, |f| f.min(index_frame));
    let n_frames = archive.frames().len();
    (0..starts.len())
        .map(|i| {
            let end = starts
                .get(i + 1)
                .copied()
                .unwrap_or(index_frame)
                .min(index_frame)
                .min(n_frames);
            starts[i].min(end)..end
        })
        .collect()
}

/// For each sweep folder of the index, the range of frames that holds it (sweeps start frames
/// and follow every run).
fn sweep_frame_ranges(archive: &Archive) -> Vec<std::ops::Range<usize>> {
    let Some(index) = archive.index() else {
        return Vec::new();
    };
    let index_frame = index_frame(archive);
    let starts: Vec<usize> = index
        .sweeps
        .iter()
        .map(|s| usize::try_from(s.frame).unwrap_or(0))
        .collect();
    (0..starts.len())
        .map(|i| {
            let end = starts
                .get(i + 1)
                .copied()
                .unwrap_or(index_frame)
                .min(index_frame);
            starts[i].min(end)..end
        })
        .collect()
}

/// Copies frames `range` of `old` as they are; returns the stream position and frame number
/// they start at in the new archive, and the old stream position they started at.
fn copy_frames(
    packer: &mut Packer,
    old: &Archive,
    range: std::ops::Range<usize>,
) -> Result<(u64, u64, u64)> {
    let frames = old.frames();
    let new_start = packer.stream_pos();
    let new_frame0 = packer.n_frames();
    let old_start = frames.get(range.start).map_or(0, |f| f.d_offset);
    for i in range {
        let Some(&frame) = frames.get(i) else {
            break;
        };
        let mut bytes = vec![0u8; usize::try_from(frame.c_len).unwrap_or(0)];
        old_file(old)?
            .read_exact_at(&mut bytes, frame.c_offset)
            .map_err(|e| Error::io(old.path(), "read", e))?;
        let crc = old.frame_crc(i).map_err(|reason| Error::Frame {
            frame: i,
            offset: frame.c_offset,
            reason,
        })?;
        packer.raw_frame(bytes, frame.d_len, crc)?;
    }
    Ok((new_start, new_frame0, old_start))
}

/// Moves the index entries of `files`, whose frames [`copy_frames`] copied from stream position
/// `old_start` and frame `old_frame0` to `new_start` and `new_frame0`.
fn relocate(
    files: &mut [FileEntry],
    old_start: u64,
    old_frame0: usize,
    new_start: u64,
    new_frame0: u64,
) {
    for file in files {
        file.header_offset = file.header_offset.saturating_sub(old_start) + new_start;
        file.data_offset = file.data_offset.saturating_sub(old_start) + new_start;
        file.frame = file.frame.saturating_sub(old_frame0 as u64) + new_frame0;
    }
}

/// The sweep folder of sweep `id` for a run folder: `sweep-<id>/` in the run's wandb folder
/// (for a run in a `.wandb` folder, the `wandb` folder beside it when only that one has it).
fn sweep_dir_for(run_dir: &Path, id: &str) -> PathBuf {
    let wandb_dir = run_dir.parent().unwrap_or_else(|| Path::new("."));
    let dir = wandb_dir.join(sweep_folder(id));
    if !dir.is_dir()
        && wandb_dir.file_name().is_some_and(|n| n == ".wandb")
        && let Some(beside) = wandb_dir
            .parent()
            .map(|p| p.join("wandb").join(sweep_folder(id)))
        && beside.is_dir()
    {
        return beside;
    }
    dir
}

/// Packs the regular files directly in the sweep folder `dir` (not sync's `sweep.synced.json`
/// nor temporary files) as `sweep-<id>/<name>`; a folder that cannot be listed is a warning
/// (`None`), and a file that cannot be opened as a regular file is left out with one.
fn pack_sweep(
    packer: &mut Packer,
    id: &str,
    dir: &Path,
    report: &mut PackReport,
    progress: Option<&Progress>,
) -> Result<Option<SweepEntry>> {
    let folder = sweep_folder(id);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            report.warnings.push(format!(
                "sweep {id}: {} cannot be listed ({e}); its runs are packed without it",
                dir.display()
            ));
            return Ok(None);
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "sweep.synced.json" && !n.ends_with(".tmp"))
        .collect();
    names.sort();
    packer.cut();
    let mut entry = SweepEntry {
        id: id.to_owned(),
        source: absolute(dir).to_string_lossy().into_owned(),
        frame: packer.n_frames(),
        files: Vec::new(),
    };
    for file_name in names {
        let path = dir.join(&file_name);
        let (file, meta) = match outside::open_regular(&path) {
            Ok(opened) => opened,
            Err(refusal) => {
                report.warnings.push(format!(
                    "sweep {id}: {} left out: {}",
                    path.display(),
                    refusal_reason(&refusal)
                ));
                continue;
            }
        };
        let name = format!("{folder}/{file_name}");
        let member = (&file, &meta, Origin::Run, None);
        entry
            .files
            .push(write_file_member(packer, name, member, progress, report)?);
    }
    Ok(Some(entry))
}

fn removable(
    run: &RunSource,
    live_at_pack: Option<bool>,
    stamps: Option<&Vec<(PathBuf, u64, i64)>>,
) -> std::result::Result<(), String> {
    if live_at_pack != Some(false) {
        return Err("still being written when it was packed".into());
    }
    for file in &run.record_files {
        if let Some(reason) = live::is_live(file) {
            return Err(reason);
        }
    }
    for (file, len, mtime) in stamps.into_iter().flatten() {
        let now = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if now.len() != *len || now.mtime() != *mtime {
            return Err(format!("{} changed while it was packed", file.display()));
        }
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A file chosen for the archive, opened.
struct Chosen {
    name: String,
    file: File,
    meta: Metadata,
    origin: Origin,
    source: Option<String>,
}

fn pack_run(
    packer: &mut Packer,
    run: &RunSource,
    facts: &HashMap<PathBuf, RecordFacts>,
    report: &mut PackReport,
    progress: Option<&Progress>,
) -> Result<RunEntry> {
    let root = absolute(&run.dir);
    let owner = run
        .record_files
        .first()
        .and_then(|f| std::fs::metadata(f).ok())
        .map_or(0, |m| m.uid());
    let mut entry = RunEntry {
        name: run.name.clone(),
        source: root.to_string_lossy().into_owned(),
        files: Vec::new(),
        refused: Vec::new(),
        dirs: Vec::new(),
        frame: 0,
    };
    let mut chosen = Vec::new();
    let mut dirs = Vec::new();
    collect(
        &root,
        &root,
        "",
        owner,
        &mut chosen,
        &mut dirs,
        &mut entry.refused,
    );
    // Artifact files: staged outside the run, a copy each; inside it, the member already chosen.
    let mut staged_seen = HashSet::new();
    for record_file in &run.record_files {
        for local_path in facts
            .get(record_file)
            .map(|f| f.staged.clone())
            .unwrap_or_default()
        {
            if !staged_seen.insert(local_path.clone()) {
                continue;
            }
            let path = Path::new(&local_path);
            // Staged inside this run folder (the logger's `artifacts/staging/`): it is already
            // one of the run's members, which then records the `local_path` it stands for.
            // And a run folder moved since it was logged (the path names its old place) keeps
            // the file in its own `artifacts/staging/`, found by file name (sync checks its
            // digest before it uploads it).
            let moved = || {
                let name = Path::new(&local_path).file_name()?.to_str()?;
                let plain = !name.contains("..") && !name.contains('\0');
                (plain && std::fs::symlink_metadata(path).is_err())
                    .then(|| format!("{IN_RUN_STAGING}/{name}"))
            };
            let at = run_member_at(&root, path, &chosen)
                .or_else(|| moved().and_then(|rel| run_member_named(&chosen, &rel)));
            if let Some(member) = at.and_then(|i| chosen.get_mut(i)) {
                member.origin = Origin::Staged;
                member.source = Some(local_path.clone());
                continue;
            }
            let rel = staged_name(&local_path);
            match outside::open_outside(path, &[owner]) {
                Ok((file, meta)) => chosen.push(Chosen {
                    name: rel,
                    file,
                    meta,
                    origin: Origin::Staged,
                    source: Some(local_path.clone()),
                }),
                Err(refusal) => entry.refused.push(Refused {
                    path: local_path.clone(),
                    reason: refusal_reason(&refusal),
                }),
            }
        }
    }
    packer.cut();
    entry.frame = packer.n_frames();
    // Folder members first (GNU tar then makes empty folders too, with their modes).
    for (rel, mode, mtime) in dirs {
        let name = format!("{}/{rel}/", run.name);
        let mtime = u64::try_from(mtime).unwrap_or(0);
        packer.write(&tarfmt::dir_header(&name, mode, mtime))?;
        entry.dirs.push(rel);
    }
    for file in chosen {
        let name = format!("{}/{}", run.name, file.name);
        let member = (&file.file, &file.meta, file.origin, file.source);
        entry
            .files
            .push(write_file_member(packer, name, member, progress, report)?);
    }
    for refused in &entry.refused {
        report.refused.push((
            run.name.clone(),
            refused.path.clone(),
            refused.reason.clone(),
        ));
    }
    Ok(entry)
}

/// The member chosen from the run folder `root` that the file at `path` is, when `path` leads
/// (through symlinks) into `root` and that file is a member not yet standing for another staged
/// path.
fn run_member_at(root: &Path, path: &Path, chosen: &[Chosen]) -> Option<usize> {
    let real = path.canonicalize().ok()?;
    let rel = real.strip_prefix(root).ok()?.to_str()?;
    run_member_named(chosen, rel)
}

/// The run's own regular file member at `rel` (relative to the run folder), when it does not
/// yet stand for a staged path.
fn run_member_named(chosen: &[Chosen], rel: &str) -> Option<usize> {
    chosen
        .iter()
        .position(|c| c.name == rel && c.origin == Origin::Run && c.source.is_none())
}

/// Streams `size` bytes of `file` into the packer, hashing them; a file that shrank is an error.
/// Writes one regular-file member `name` (its tar header, then the content of the open file with
/// its metadata, origin and source) and returns its index entry; counts its bytes in `report`.
fn write_file_member(
    packer: &mut Packer,
    name: String,
    (file, meta, origin, source): (&File, &std::fs::Metadata, Origin, Option<String>),
    progress: Option<&Progress>,
    report: &mut PackReport,
) -> Result<FileEntry> {
    let size = meta.len();
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    let mode = meta.mode() & 0o7777;
    let header = tarfmt::file_header(&name, size, mode, mtime);
    packer.start_member(header.len() as u64 + size);
    let frame = packer.n_frames();
    let header_offset = packer.stream_pos();
    packer.write(&header)?;
    let data_offset = packer.stream_pos();
    let sha256 = copy_content(packer, file, size, &name, progress)?;
    packer.pad()?;
    report.bytes_in += size;
    Ok(FileEntry {
        path: name,
        size,
        sha256,
        header_offset,
        data_offset,
        frame,
        origin,
        source,
        mtime,
        mode,
    })
}

fn copy_content(
    packer: &mut Packer,
    file: &File,
    size: u64,
    name: &str,
    progress: Option<&Progress>,
) -> Result<String> {
    let mut sha = Sha256::new();
    let mut left = size;
    let mut reader = file.take(size);
    let mut buf = vec![0u8; 256 << 10];
    while left > 0 {
        let n = match reader.read(&mut buf) {
            Ok(0) => {
                return Err(Error::Input {
                    path: name.into(),
                    reason: format!("shrank by {left} bytes while it was packed"),
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(name, "read", e)),
        };
        sha.update(&buf[..n]);
        packer.write(&buf[..n])?;
        Progress::tell(progress, ProgressEvent::Bytes(n as u64));
        left -= n as u64;
    }
    Ok(hex(&sha.finalize()))
}

/// Walks the run folder: regular files are taken, symlinks are followed under the safety rule
/// (their owners must be able to read the target), lock files and anything else are left out.
fn collect(
    root: &Path,
    dir: &Path,
    rel: &str,
    owner: u32,
    out: &mut Vec<Chosen>,
    dirs: &mut Vec<(String, u32, i64)>,
    refused: &mut Vec<Refused>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        refused.push(Refused {
            path: rel.to_string(),
            reason: "folder cannot be listed".into(),
        });
        return;
    };
    let mut names: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let name_str = name.to_string_lossy().into_owned();
        let rel_path = if rel.is_empty() {
            name_str.clone()
        } else {
            format!("{rel}/{name_str}")
        };
        let path = dir.join(&name);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            dirs.push((rel_path.clone(), meta.mode() & 0o7777, meta.mtime()));
            collect(root, &path, &rel_path, owner, out, dirs, refused);
            continue;
        }
        if name_str.ends_with(".wandb.lock") {
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = path.canonicalize().ok();
            if target.as_ref().is_some_and(|t| t.is_dir()) {
                refused.push(Refused {
                    path: rel_path,
                    reason: "symlink to a folder".into(),
                });
                continue;
            }
            let inside = target.as_ref().is_some_and(|t| t.starts_with(root));
            match outside::open_outside(&path, &[meta.uid()]) {
                Ok((file, fmeta)) => out.push(Chosen {
                    name: rel_path,
                    file,
                    meta: fmeta,
                    origin: if inside { Origin::Run } else { Origin::Linked },
                    source: target
                        .filter(|_| !inside)
                        .map(|t| t.to_string_lossy().into_owned()),
                }),
                Err(refusal) => refused.push(Refused {
                    path: rel_path,
                    reason: refusal_reason(&refusal),
                }),
            }
            continue;
        }
        match outside::open_regular(&path) {
            // A hard link may lead out of the run too: sync refuses one to another user's file.
            Ok((_, fmeta)) if fmeta.nlink() > 1 && fmeta.uid() != owner => {
                refused.push(Refused {
                    path: rel_path,
                    reason: format!(
                        "hard link to a file owned by uid {} (the run belongs to uid {owner})",
                        fmeta.uid()
                    ),
                });
            }
            Ok((file, fmeta)) => out.push(Chosen {
                name: rel_path,
                file,
                meta: fmeta,
                origin: Origin::Run,
                source: None,
            }),
            Err(refusal) => refused.push(Refused {
                path: rel_path,
                reason: refusal_reason(&refusal),
            }),
        }
    }
}

/// What the writer thread wrote: the frames and the CRC-32 of each frame's decompressed bytes.
#[derive(Debug, Default)]
struct Written {
    frames: Vec<Frame>,
    crcs: Vec<u32>,
}

enum Job {
    Compress(u64, Vec<u8>),
    Raw(u64, Vec<u8>, u64, u32),
}

struct Done {
    seq: u64,
    bytes: std::result::Result<Vec<u8>, String>,
    d_len: u64,
    crc: u32,
}

/// The frame cutter and its compression pipeline.
struct Packer {
    current: Vec<u8>,
    stream_pos: u64,
    n_frames: u64,
    jobs: Option<Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    writer: Option<std::thread::JoinHandle<Result<Written>>>,
}

impl Packer {
    fn start(out: File, path: &Path, level: i32, threads: usize) -> Packer {
        let (jobs, job_rx) = bounded::<Job>(threads * 2);
        let (done_tx, done_rx) = bounded::<Done>(threads * 2);
        let workers = (0..threads)
            .map(|_| {
                let rx = job_rx.clone();
                let tx = done_tx.clone();
                std::thread::spawn(move || compress_worker(&rx, &tx, level))
            })
            .collect();
        drop(done_tx);
        let path = path.to_path_buf();
        let writer = std::thread::spawn(move || write_frames(out, &path, &done_rx));
        Packer {
            current: Vec::with_capacity(FRAME_MAX),
            stream_pos: 0,
            n_frames: 0,
            jobs: Some(jobs),
            workers,
            writer: Some(writer),
        }
    }

    fn stream_pos(&self) -> u64 {
        self.stream_pos
    }

    /// The number of the frame the next byte goes into.
    fn n_frames(&self) -> u64 {
        self.n_frames
    }

    /// Ends the current frame (if it holds anything).
    fn cut(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let bytes = std::mem::replace(&mut self.current, Vec::with_capacity(FRAME_MAX));
        self.send(Job::Compress(self.n_frames, bytes));
        self.n_frames += 1;
    }

    fn send(&mut self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // A send fails only when the writer stopped on an error, which `finish` returns.
            let _ = jobs.send(job);
        }
    }

    /// Called before a member of `len` bytes (headers included).
    fn start_member(&mut self, len: u64) {
        if !self.current.is_empty() && (self.current.len() >= FRAME_MIN || len >= FRAME_MIN as u64)
        {
            self.cut();
        }
    }

    fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let room = FRAME_MAX - self.current.len();
            let n = room.min(bytes.len());
            self.current.extend_from_slice(&bytes[..n]);
            self.stream_pos += n as u64;
            bytes = &bytes[n..];
            if self.current.len() >= FRAME_MAX {
                self.cut();
            }
        }
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let rem = self.stream_pos % BLOCK;
        if rem != 0 {
            let zeros = [0u8; 512];
            self.write(&zeros[..usize::try_from(BLOCK - rem).unwrap_or(0)])?;
        }
        Ok(())
    }

    /// A frame copied from another archive.
    fn raw_frame(&mut self, bytes: Vec<u8>, d_len: u64, crc: u32) -> Result<()> {
        self.cut();
        self.send(Job::Raw(self.n_frames, bytes, d_len, crc));
        self.n_frames += 1;
        self.stream_pos += d_len;
        Ok(())
    }

    fn finish(mut self) -> Result<Written> {
        self.cut();
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        match self.writer.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(Error::Verify {
                path: PathBuf::new(),
                reason: "the writer thread stopped".into(),
            }),
        }
    }
}

fn compress_worker(jobs: &Receiver<Job>, done: &Sender<Done>, level: i32) {
    let mut compressor = zstd::bulk::Compressor::new(level).ok();
    if let Some(c) = compressor.as_mut() {
        let _ = c.include_checksum(true);
        let _ = c.include_contentsize(true);
        let _ = c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(22));
    }
    for job in jobs {
        let result = match job {
            Job::Compress(seq, bytes) => {
                let crc = crc32fast::hash(&bytes);
                let out = match compressor.as_mut() {
                    Some(c) => c.compress(&bytes).map_err(|e| format!("zstd: {e}")),
                    None => Err("zstd: cannot create a compressor".into()),
                };
                Done {
                    seq,
                    bytes: out,
                    d_len: bytes.len() as u64,
                    crc,
                }
            }
            Job::Raw(seq, bytes, d_len, crc) => Done {
                seq,
                bytes: Ok(bytes),
                d_len,
                crc,
            },
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

fn write_frames(out: File, path: &Path, done: &Receiver<Done>) -> Result<Written> {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    let mut written = Written::default();
    let (mut c_offset, mut d_offset) = (0u64, 0u64);
    for item in done {
        pending.insert(item.seq, item);
        while let Some(item) = pending.remove(&next) {
            let bytes = item.bytes.map_err(|reason| Error::Verify {
                path: path.into(),
                reason,
            })?;
            out.write_all(&bytes)
                .map_err(|e| Error::io(path, "write", e))?;
            let checksum = bytes
                .get(bytes.len().saturating_sub(4)..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes);
            written.frames.push(Frame {
                c_offset,
                c_len: bytes.len() as u64,
                d_offset,
                d_len: item.d_len,
                checksum,
            });
            written.crcs.push(item.crc);
            c_offset += bytes.len() as u64;
            d_offset += item.d_len;
            next += 1;
        }
    }
    out.write_all(&seekable::write_seek_table(&written.frames))
        .map_err(|e| Error::io(path, "write", e))?;
    out.flush().map_err(|e| Error::io(path, "write", e))?;
    Ok(written)
}

/// Reads the written archive back: its seek table and index must be what was written, and
/// every frame must decompress to bytes with the CRC-32 of the bytes that went in.
fn verify_written(path: &Path, written: &Written, index: &Index, threads: usize) -> Result<()> {
    let fail = |reason: String| Error::Verify {
        path: path.into(),
        reason,
    };
    let archive = Archive::open(path)?;
    if archive.frames() != written.frames.as_slice() {
        return Err(fail(
            "the seek table does not list the frames written".into(),
        ));
    }
    if archive.index() != Some(index) {
        return Err(fail(format!(
            "the index does not read back ({})",
            archive.index_problem().unwrap_or("it differs")
        )));
    }
    if let Some(damage) = archive.damage().first() {
        return Err(fail(damage.reason.clone()));
    }
    drop(archive);
    // Every frame decompressed and compared, on `threads` threads (each with its own reader).
    let results: Vec<std::result::Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || {
                    let archive = Archive::open(path).map_err(|e| e.to_string())?;
                    for (i, expected) in written.crcs.iter().enumerate().skip(k).step_by(threads) {
                        let crc = archive.frame_crc(i)?;
                        if crc != *expected {
                            return Err(format!(
                                "frame {i} does not decompress to what was written"
                            ));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a verification thread panicked".into()))
            })
            .collect()
    });
    for result in results {
        result.map_err(&fail)?;
    }
    Ok(())
}

/// How long a run without an exit record must be left alone before it counts as finished.
pub const QUIET_PERIOD: Duration = Duration::from_secs(60);

/// A refusal of the rule for files outside a run, as the index and `pack`'s report give it.
fn refusal_reason(refusal: &outside::Refusal) -> String {
    match refusal {
        outside::Refusal::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "does not exist (dangling symlink?)".into()
        }
        other => other.to_string(),
    }
}

//! Resolving and opening the files a run asked to upload, safely.
//!
//! A run folder may come from anyone, and the syncer may run as root, so what it uploads must be
//! what the run's author could read anyway, and nothing else.
//!
//! * **Paths.** A path in a `files` record is taken relative to the run's `files/` folder:
//!   absolute paths and `..` components are refused. Globs are expanded by walking `files/`
//!   (directories are entered once per (device, inode), so a symlink loop such as `sub/up -> ..`
//!   ends; a file reached under several names is uploaded once, under its first name).
//! * **Symlinks out of the run.** Every `wandb.save` of the official SDK puts a symlink in
//!   `files/` that points by absolute path to the user's file. Such a link is followed when its
//!   target is a regular file that the link's owner could read anyway: owned by the link's owner
//!   (its `lstat` uid) or readable by everyone. Files reached without a symlink must be owned by
//!   the run's owner (the owner of the `.wandb` file) or be readable by everyone. `--no-follow-links`
//!   refuses every link that leads out of the run folder.
//! * **Hard links.** A regular file with more hard links than the run folder holds is treated as
//!   a link out of the run (today's `/etc/passwd` hard link): it is uploaded only when the run's
//!   owner owns it.
//! * **Open once.** The file is opened once (non-blocking, so a FIFO swapped in never blocks)
//!   and every check is made on the handle (`fstat`: file type, owner, mode, link count;
//!   `fstatfs`: not procfs, sysfs or another kernel file system), never on the name again. What
//!   is uploaded is a [`Snapshot`] read from that handle: in memory when small, copied to an
//!   anonymous temp file when large, so the body always has the length and hash that were
//!   declared, even when the file is still being written.
//!   The rule for a file reached outside the run (regular file, opened once, not on a kernel
//!   file system, readable by the principals) is `wandb_format::outside`, the one `wandb-archive`
//!   packs by.
//! * **Secrets.** A snapshot whose bytes contain the API key (or the `Authorization` token made
//!   from it) is refused (keys shorter than 12 characters, which would match ordinary text, are
//!   not looked for).

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use md5::Md5;
use sha2::{Digest, Sha256};
use wandb_archive::Member;
use wandb_format::outside;
use wandb_settings::Secret;

use crate::source::ArchiveRun;

/// Snapshots up to this size are kept in memory; larger ones go to an anonymous temp file.
pub(crate) const MEMORY_SNAPSHOT_BYTES: u64 = 16 << 20;

/// Shortest API key looked for in uploads.
const MIN_SCANNED_KEY_LEN: usize = 12;

/// Most directory entries a glob expansion (or a hard-link count) looks at.
const MAX_WALK_ENTRIES: usize = 200_000;

/// Deepest directory nesting a glob expansion enters.
const MAX_WALK_DEPTH: usize = 64;

/// What may be followed and what must never be uploaded; one per sync.
#[derive(Clone, Default)]
pub(crate) struct FollowPolicy {
    /// Refuse every symlink or hard link leading out of the run folder (`--no-follow-links`).
    pub(crate) no_follow_links: bool,
    /// Byte strings no upload may contain (the API key and its `Authorization` token).
    forbidden: Arc<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for FollowPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowPolicy")
            .field("no_follow_links", &self.no_follow_links)
            .field("n_forbidden", &self.forbidden.len())
            .finish()
    }
}

impl FollowPolicy {
    /// The policy for a sync with this API key.
    pub(crate) fn new(no_follow_links: bool, api_key: Option<&Secret>) -> Self {
        let mut forbidden = Vec::new();
        // A key this short would match ordinary text everywhere (W&B's keys have 40 or more
        // characters); it is not looked for.
        if let Some(key) = api_key
            .map(Secret::expose)
            .filter(|k| k.len() >= MIN_SCANNED_KEY_LEN)
        {
            forbidden.push(key.as_bytes().to_vec());
            let token = base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"));
            forbidden.push(token.into_bytes());
        }
        FollowPolicy {
            no_follow_links,
            forbidden: Arc::new(forbidden),
        }
    }

    /// The policy of a sync's options.
    pub(crate) fn from_options(opts: &crate::options::SyncOptions) -> Self {
        Self::new(opts.no_follow_links, opts.api_key.as_ref())
    }

    fn longest_forbidden(&self) -> usize {
        self.forbidden.iter().map(Vec::len).max().unwrap_or(0)
    }

    fn contains_forbidden(&self, bytes: &[u8]) -> bool {
        self.forbidden
            .iter()
            .any(|f| memchr::memmem::find(bytes, f).is_some())
    }
}

/// Why a file was not uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalKind {
    /// The rules refuse it (it leaves the run, is not a regular file, holds the API key...).
    Policy,
    /// It could not be opened or read: an I/O error, not a decision.
    Io(io::ErrorKind),
}

/// A file that is not uploaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The path as written in the record (or the match of a glob, relative to `files/`).
    pub(crate) path: String,
    /// Why, in words (never the API key).
    pub(crate) reason: String,
    /// A decision, or an I/O error.
    pub(crate) kind: RefusalKind,
}

impl Refusal {
    fn policy(path: &str, reason: impl Into<String>) -> Self {
        Refusal {
            path: path.to_owned(),
            reason: reason.into(),
            kind: RefusalKind::Policy,
        }
    }

    fn io(path: &str, action: &str, error: &io::Error) -> Self {
        Refusal {
            path: path.to_owned(),
            reason: format!("{action}: {error}"),
            kind: RefusalKind::Io(error.kind()),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// The exact bytes of one upload, with their length and digests.
///
/// Cheap to clone: bytes are shared, a temp file is shared through an `Arc` and read with
/// positioned reads, so every retry sends the same bytes.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    data: SnapshotData,
    len: u64,
    md5_base64: String,
    sha256: String,
}

#[derive(Debug, Clone)]
enum SnapshotData {
    Bytes(bytes::Bytes),
    File(Arc<File>),
    /// A member of an archive, decompressed again by each reader (no copy is kept).
    Member {
        run: Arc<ArchiveRun>,
        data_offset: u64,
    },
}

impl Snapshot {
    /// A snapshot of bytes built in memory (generated files); refused if they hold the API key.
    pub(crate) fn from_bytes(
        name: &str,
        bytes: bytes::Bytes,
        policy: &FollowPolicy,
    ) -> Result<Snapshot, Refusal> {
        if policy.contains_forbidden(&bytes) {
            return Err(Refusal::policy(name, "its content contains the API key"));
        }
        Ok(Snapshot {
            len: bytes.len() as u64,
            md5_base64: base64::engine::general_purpose::STANDARD.encode(Md5::digest(&bytes)),
            sha256: hex(&Sha256::digest(&bytes)),
            data: SnapshotData::Bytes(bytes),
        })
    }

    /// Length in bytes (the `Content-Length` of the upload).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Lowercase hex SHA-256 of the bytes.
    pub(crate) fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Base64 MD5 of the bytes (what artifact manifests and `Content-MD5` use).
    pub(crate) fn md5_base64(&self) -> &str {
        &self.md5_base64
    }

    /// The bytes, when the snapshot is in memory.
    pub(crate) fn bytes(&self) -> Option<&bytes::Bytes> {
        match &self.data {
            SnapshotData::Bytes(bytes) => Some(bytes),
            SnapshotData::File(_) | SnapshotData::Member { .. } => None,
        }
    }

    /// A reader over the whole snapshot, from its first byte (each call starts again).
    pub(crate) fn reader(&self) -> SnapshotReader {
        self.reader_range(0..self.len)
    }

    /// A reader over the bytes of `range` (clamped to the snapshot), e.g. one part of a
    /// multipart upload; each call starts again at `range.start`.
    pub(crate) fn reader_range(&self, range: std::ops::Range<u64>) -> SnapshotReader {
        let end = range.end.min(self.len);
        let data = match &self.data {
            SnapshotData::Bytes(bytes) => ReaderData::Bytes(bytes.clone()),
            SnapshotData::File(file) => ReaderData::File(Arc::clone(file)),
            SnapshotData::Member { run, data_offset } => ReaderData::Member {
                archive: Box::new(run.handle()),
                data_offset: *data_offset,
            },
        };
        SnapshotReader {
            data,
            pos: range.start.min(end),
            end,
        }
    }
}

/// Reads a [`Snapshot`] from its start; independent of every other reader.
#[derive(Debug)]
pub(crate) struct SnapshotReader {
    data: ReaderData,
    pos: u64,
    end: u64,
}

/// What a [`SnapshotReader`] reads from: an archive member through a handle of its own, so
/// parallel readers do not share a frame cache.
#[derive(Debug)]
enum ReaderData {
    Bytes(bytes::Bytes),
    File(Arc<File>),
    Member {
        archive: Box<wandb_archive::Archive>,
        data_offset: u64,
    },
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = match &self.data {
            ReaderData::Bytes(bytes) => {
                let start = usize::try_from(self.pos).unwrap_or(usize::MAX);
                let slice = bytes.get(start..start + want).unwrap_or_default();
                buf[..slice.len()].copy_from_slice(slice);
                slice.len()
            }
            ReaderData::File(file) => file.read_at(&mut buf[..want], self.pos)?,
            ReaderData::Member {
                archive,
                data_offset,
            } => {
                let mut n = 0usize;
                archive
                    .read_range(data_offset + self.pos, want as u64, &mut |bytes| {
                        let to = buf
                            .get_mut(n..n + bytes.len())
                            .ok_or_else(|| io::Error::other("archive member longer than asked"))?;
                        to.copy_from_slice(bytes);
                        n += bytes.len();
                        Ok(())
                    })
                    .map_err(|reason| {
                        io::Error::other(format!(
                            "{}: tar offset {}: {reason}",
                            archive.path().display(),
                            data_offset + self.pos
                        ))
                    })?;
                n
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the upload snapshot ended early",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Opens a file that lies outside the run folder (an artifact file staged elsewhere, or the
/// target of a link) and snapshots it, under the rules of this module.
///
/// `owner_uid` is the uid that owns the run's `.wandb` file: the file is uploaded only if it is a
/// regular file owned by that user or readable by everyone, not on procfs/sysfs or another
/// kernel file system, and not holding the API key. A symlink at `path` is followed (the checks
/// are on what was opened). The file is opened once, non-blocking, and checked through the
/// handle; the returned [`Snapshot`] holds the bytes read from that handle (up to the size the
/// handle had when opened), with their length, SHA-256 and base64 MD5, and is what `Http::put`
/// sends. `opts.no_follow_links` does not apply here (the caller decided to read outside).
/// An I/O error gives a [`Refusal`] of kind [`RefusalKind::Io`]; every other refusal is
/// [`RefusalKind::Policy`].
pub(crate) fn open_outside_run(
    path: &Path,
    owner_uid: u32,
    opts: &FollowPolicy,
) -> Result<Snapshot, Refusal> {
    let shown = path.to_string_lossy();
    let (file, meta) = open_regular(path, &shown)?;
    check_readable_by(&meta, &[owner_uid], &shown)?;
    snapshot(&file, &meta, &shown, opts)
}

/// The run a file belongs to: where its folder is and who owns it.
#[derive(Debug, Clone)]
pub(crate) struct RunFolder {
    /// The run's `files/` folder.
    pub(crate) files_dir: PathBuf,
    /// The run folder, canonical (`None` if it cannot be resolved).
    root: Option<PathBuf>,
    /// The uid owning the run's `.wandb` file.
    pub(crate) owner_uid: u32,
}

impl RunFolder {
    /// The run folder of a `.wandb` file.
    pub(crate) fn of_record_file(record_file: &Path) -> io::Result<RunFolder> {
        let dir = record_file.parent().unwrap_or(Path::new("."));
        let owner_uid = std::fs::metadata(record_file)?.uid();
        Ok(RunFolder {
            files_dir: dir.join("files"),
            root: dir.canonicalize().ok(),
            owner_uid,
        })
    }

    fn is_inside(&self, real: &Path) -> bool {
        self.root
            .as_ref()
            .is_some_and(|root| real.starts_with(root))
    }
}

/// Where a run's files are read from: its folder on disk, or its members in an archive.
#[derive(Debug, Clone)]
pub(crate) enum RunFiles {
    /// A run folder.
    Folder(RunFolder),
    /// A run inside an archive: what `pack` stored under `files/` (symlinks leading out were
    /// followed then, under the same rules, and stored as regular files).
    Archive(Arc<ArchiveRun>),
}

impl RunFiles {
    /// [`resolve`] in this run's `files/`.
    pub(crate) fn resolve(&self, requested: &str) -> (Vec<Candidate>, Vec<Refusal>) {
        match self {
            RunFiles::Folder(run) => resolve(run, requested),
            RunFiles::Archive(run) => resolve_in_archive(run, requested),
        }
    }

    /// Opens a candidate [`RunFiles::resolve`] gave and snapshots it, or says why not.
    pub(crate) fn open(
        &self,
        candidate: &Candidate,
        policy: &FollowPolicy,
    ) -> Result<Snapshot, Refusal> {
        match self {
            RunFiles::Folder(run) => open_run_file(run, candidate, policy),
            RunFiles::Archive(run) => open_archive_file(run, candidate, policy),
        }
    }

    /// The run's `files/` folder, as errors name it.
    pub(crate) fn files_dir(&self) -> PathBuf {
        match self {
            RunFiles::Folder(run) => run.files_dir.clone(),
            RunFiles::Archive(run) => wandb_archive::tools::virtual_path(
                &run.archive_path,
                &format!("{}/files", run.folder),
            ),
        }
    }

    /// The uid owning the run's `.wandb` file (a run in an archive has none on this machine).
    pub(crate) fn owner_uid(&self) -> Option<u32> {
        match self {
            RunFiles::Folder(run) => Some(run.owner_uid),
            RunFiles::Archive(_) => None,
        }
    }
}

/// [`resolve`] among the `files/` members of a run in an archive; files `pack` refused are
/// refused again with its reason.
fn resolve_in_archive(run: &ArchiveRun, requested: &str) -> (Vec<Candidate>, Vec<Refusal>) {
    if let Err(refusal) = check_relative(requested) {
        return (Vec::new(), vec![refusal]);
    }
    let candidate = |index: usize, name: &str| Candidate {
        name: name.to_owned(),
        path: wandb_archive::tools::virtual_path(&run.archive_path, &run.files[index].1.name),
        link_owners: Vec::new(),
        id: (u64::MAX, index as u64),
    };
    let refused_by_pack = |matches: &dyn Fn(&str) -> bool| -> Vec<Refusal> {
        run.refused
            .iter()
            .filter_map(|(path, reason)| {
                let name = path.strip_prefix("files/")?;
                matches(name).then(|| {
                    Refusal::policy(name, format!("{reason} (refused when the run was packed)"))
                })
            })
            .collect()
    };
    if requested.contains(['*', '?', '[']) {
        let (pattern, options) = match glob_pattern(requested) {
            Ok(glob) => glob,
            Err(refusal) => return (Vec::new(), vec![refusal]),
        };
        let matches = |name: &str| pattern.matches_with(name, options);
        let found = run
            .files
            .iter()
            .enumerate()
            .filter(|(_, (name, _, _))| matches(name))
            .map(|(index, (name, _, _))| candidate(index, name))
            .collect();
        return (found, refused_by_pack(&matches));
    }
    let wanted = server_name(Path::new(requested));
    match run.files.iter().position(|(name, _, _)| *name == wanted) {
        Some(index) => (vec![candidate(index, &wanted)], Vec::new()),
        None => (Vec::new(), refused_by_pack(&|name| name == wanted)),
    }
}

/// Opens a `files/` member of a run in an archive: under `--no-follow-links`, a file that came
/// from a symlink leading out of the run folder is refused as it would be in the folder.
fn open_archive_file(
    run: &Arc<ArchiveRun>,
    candidate: &Candidate,
    policy: &FollowPolicy,
) -> Result<Snapshot, Refusal> {
    let shown = candidate.name.as_str();
    let Some((_, member, linked)) = usize::try_from(candidate.id.1)
        .ok()
        .and_then(|index| run.files.get(index))
    else {
        return Err(Refusal::io(
            shown,
            "find in the archive",
            &io::Error::from(io::ErrorKind::NotFound),
        ));
    };
    if *linked && policy.no_follow_links {
        return Err(Refusal::policy(
            shown,
            "symlink leading out of the run folder (--no-follow-links)",
        ));
    }
    snapshot_member(run, member, shown, policy)
}

/// Snapshots a member of an archive run: its bytes are read once through the frames that hold
/// them, hashed, watched for the API key and checked against the index's SHA-256; a member of
/// at most [`MEMORY_SNAPSHOT_BYTES`] is kept in memory, a larger one is decompressed again by
/// each reader of the snapshot (no temp copy). A member lost to archive damage is refused,
/// naming the member and the damage.
pub(crate) fn snapshot_member(
    run: &Arc<ArchiveRun>,
    member: &Member,
    shown: &str,
    policy: &FollowPolicy,
) -> Result<Snapshot, Refusal> {
    let archive = run.handle();
    let keep = member.size <= MEMORY_SNAPSHOT_BYTES;
    let mut memory: Vec<u8> = Vec::with_capacity(if keep {
        usize::try_from(member.size).unwrap_or(0)
    } else {
        0
    });
    let mut digests = Digests::new(policy);
    let mut forbidden = false;
    let read = archive.read_range(member.data_offset, member.size, &mut |block| {
        if !digests.update(block) {
            forbidden = true;
            return Err(io::Error::other("the API key"));
        }
        if keep {
            memory.extend_from_slice(block);
        }
        Ok(())
    });
    if forbidden {
        return Err(Refusal::policy(shown, "its content contains the API key"));
    }
    let damaged = |reason: String| {
        Refusal::policy(
            shown,
            format!(
                "lost to damage in the archive {} (member {:?} at tar offset {}): {reason}",
                run.archive_path.display(),
                member.name,
                member.header_offset
            ),
        )
    };
    read.map_err(damaged)?;
    let data = if keep {
        SnapshotData::Bytes(bytes::Bytes::from(memory))
    } else {
        SnapshotData::Member {
            run: Arc::clone(run),
            data_offset: member.data_offset,
        }
    };
    let snapshot = digests.snapshot(data);
    if let Some(expected) = &member.sha256
        && *expected != snapshot.sha256
    {
        return Err(damaged(format!(
            "SHA-256 {}, the index says {expected}",
            snapshot.sha256
        )));
    }
    Ok(snapshot)
}

/// A file found for a record path, not opened yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Path relative to `files/`, with forward slashes (the name on the server).
    pub(crate) name: String,
    /// The path in `files/` (not resolved: links are followed when it is opened).
    pub(crate) path: PathBuf,
    /// The owners of the symlinks met on the way from `files/` (empty: none).
    pub(crate) link_owners: Vec<u32>,
    /// (device, inode) of what the path led to when found.
    pub(crate) id: (u64, u64),
}

/// Resolves one requested path (or glob) in the run's `files/`: the files to open, and the
/// paths refused. Missing files give nothing (W&B skips them with a warning).
pub(crate) fn resolve(run: &RunFolder, requested: &str) -> (Vec<Candidate>, Vec<Refusal>) {
    if let Err(refusal) = check_relative(requested) {
        return (Vec::new(), vec![refusal]);
    }
    if requested.contains(['*', '?', '[']) {
        expand_glob(run, requested)
    } else {
        match resolve_one(run, requested) {
            Ok(found) => (found.into_iter().collect(), Vec::new()),
            Err(refusal) => (Vec::new(), vec![refusal]),
        }
    }
}

fn check_relative(requested: &str) -> Result<(), Refusal> {
    let refuse = |reason: &str| Err(Refusal::policy(requested, reason));
    if requested.is_empty() {
        return refuse("empty path");
    }
    if requested.contains('\0') {
        return refuse("path contains a NUL byte");
    }
    let relative = Path::new(requested);
    if relative.is_absolute() || requested.starts_with('/') || requested.starts_with('\\') {
        return refuse("absolute path");
    }
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return refuse("path leaves files/ through `..`"),
            Component::RootDir | Component::Prefix(_) => return refuse("absolute path"),
        }
    }
    Ok(())
}

fn server_name(relative: &Path) -> String {
    relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn resolve_one(run: &RunFolder, requested: &str) -> Result<Option<Candidate>, Refusal> {
    let relative = Path::new(requested);
    let mut link_owners = Vec::new();
    let mut current = run.files_dir.clone();
    if let Ok(meta) = current.symlink_metadata()
        && meta.file_type().is_symlink()
    {
        link_owners.push(meta.uid());
    }
    for component in relative.components() {
        let Component::Normal(part) = component else {
            continue;
        };
        current.push(part);
        match current.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => link_owners.push(meta.uid()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(lookup_refusal(requested, &e)),
        }
    }
    let name = server_name(relative);
    if name.is_empty() {
        return Ok(None);
    }
    match std::fs::metadata(&current) {
        Ok(meta) if meta.is_dir() => Ok(None),
        Ok(meta) => Ok(Some(Candidate {
            name,
            path: current,
            link_owners,
            id: (meta.dev(), meta.ino()),
        })),
        Err(e) => Err(lookup_refusal(requested, &e)),
    }
}

/// A path that does not lead to a file: a dangling link or a loop is refused, anything else is
/// an I/O error.
fn lookup_refusal(shown: &str, error: &io::Error) -> Refusal {
    if error.kind() == io::ErrorKind::NotFound {
        Refusal::policy(shown, "symlink to a missing target")
    } else if error.raw_os_error() == Some(libc::ELOOP) {
        Refusal::policy(shown, "symlink loop")
    } else {
        Refusal::io(shown, "look up", error)
    }
}

/// A record's glob, as W&B matches it under `files/`: `*` does not cross `/`, a leading dot
/// needs no literal dot.
fn glob_pattern(requested: &str) -> Result<(glob::Pattern, glob::MatchOptions), Refusal> {
    let pattern = glob::Pattern::new(requested)
        .map_err(|_| Refusal::policy(requested, "invalid glob pattern"))?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    Ok((pattern, options))
}

fn expand_glob(run: &RunFolder, requested: &str) -> (Vec<Candidate>, Vec<Refusal>) {
    let (pattern, options) = match glob_pattern(requested) {
        Ok(glob) => glob,
        Err(refusal) => return (Vec::new(), vec![refusal]),
    };
    let mut found = Vec::new();
    let mut refused = Vec::new();
    let mut visited: HashSet<(u64, u64)> = HashSet::new();
    let Ok(root_meta) = std::fs::metadata(&run.files_dir) else {
        return (found, refused);
    };
    visited.insert((root_meta.dev(), root_meta.ino()));
    // (directory, its path relative to files/, the link owners on the way, depth)
    let mut stack: Vec<(PathBuf, PathBuf, Vec<u32>, usize)> =
        vec![(run.files_dir.clone(), PathBuf::new(), Vec::new(), 0)];
    let mut n_entries = 0usize;
    while let Some((dir, rel_dir, owners, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(std::result::Result::ok).collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        // Reverse, so the stack visits subdirectories in name order.
        let mut subdirs = Vec::new();
        for entry in entries {
            n_entries += 1;
            if n_entries > MAX_WALK_ENTRIES {
                refused.push(Refusal::policy(
                    requested,
                    format!("glob expansion stopped after {MAX_WALK_ENTRIES} entries"),
                ));
                return (found, refused);
            }
            let path = entry.path();
            let rel = rel_dir.join(entry.file_name());
            let shown = server_name(&rel);
            let Ok(lmeta) = path.symlink_metadata() else {
                continue;
            };
            let mut entry_owners = owners.clone();
            if lmeta.file_type().is_symlink() {
                entry_owners.push(lmeta.uid());
            }
            let matches = pattern.matches_path_with(&rel, options);
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    if matches {
                        refused.push(lookup_refusal(&shown, &e));
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                let id = (meta.dev(), meta.ino());
                let leaves = lmeta.file_type().is_symlink()
                    && !path.canonicalize().is_ok_and(|real| run.is_inside(&real));
                if leaves {
                    if matches {
                        refused.push(Refusal::policy(
                            &shown,
                            "symlink to a directory outside the run folder",
                        ));
                    }
                    continue;
                }
                if depth + 1 < MAX_WALK_DEPTH && visited.insert(id) {
                    subdirs.push((path, rel, entry_owners, depth + 1));
                } else {
                    log::debug!("{shown}: directory already visited (a loop?); not entered again");
                }
                continue;
            }
            if matches {
                found.push(Candidate {
                    name: shown,
                    path,
                    link_owners: entry_owners,
                    id: (meta.dev(), meta.ino()),
                });
            }
        }
        subdirs.reverse();
        stack.extend(subdirs);
    }
    (found, refused)
}

/// Opens a candidate once and snapshots it, or says why not.
pub(crate) fn open_run_file(
    run: &RunFolder,
    candidate: &Candidate,
    policy: &FollowPolicy,
) -> Result<Snapshot, Refusal> {
    let shown = candidate.name.as_str();
    let (file, meta) = open_regular(&candidate.path, shown)?;
    let real = candidate.path.canonicalize().ok();
    let inside = real.as_ref().is_some_and(|real| {
        run.is_inside(real)
            && std::fs::metadata(real).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
    });
    if !inside && policy.no_follow_links {
        return Err(Refusal::policy(
            shown,
            "symlink leading out of the run folder (--no-follow-links)",
        ));
    }
    // Judged on the handle's link count, not on where the name seemed to lead: a file reached
    // without a symlink whose other names are not all in the run is treated as a link out.
    if candidate.link_owners.is_empty() && meta.nlink() > 1 {
        let n_inside = run
            .root
            .as_deref()
            .map_or(0, |root| count_links(root, meta.dev(), meta.ino()));
        if n_inside < meta.nlink() {
            if policy.no_follow_links {
                return Err(Refusal::policy(
                    shown,
                    "hard link to a file outside the run folder (--no-follow-links)",
                ));
            }
            if meta.uid() != run.owner_uid {
                return Err(Refusal::policy(
                    shown,
                    format!(
                        "hard link to a file outside the run folder owned by uid {} \
                         (the run belongs to uid {})",
                        meta.uid(),
                        run.owner_uid
                    ),
                ));
            }
        }
    }
    let principals: &[u32] = if candidate.link_owners.is_empty() {
        std::slice::from_ref(&run.owner_uid)
    } else {
        &candidate.link_owners
    };
    check_readable_by(&meta, principals, shown)?;
    snapshot(&file, &meta, shown, policy)
}

/// How many names under `root` (not following symlinks) lead to this (device, inode).
fn count_links(root: &Path, dev: u64, ino: u64) -> u64 {
    let mut count = 0u64;
    let mut n_entries = 0usize;
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(std::result::Result::ok) {
            n_entries += 1;
            if n_entries > MAX_WALK_ENTRIES {
                return count;
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                if depth + 1 < MAX_WALK_DEPTH {
                    stack.push((entry.path(), depth + 1));
                }
            } else if meta.dev() == dev && meta.ino() == ino {
                count += 1;
            }
        }
    }
    count
}

/// Opens `path` for reading without blocking and checks through the handle that it is a
/// regular file on a file system holding user data (the shared rule,
/// [`wandb_format::outside::open_regular`]).
fn open_regular(path: &Path, shown: &str) -> Result<(File, Metadata), Refusal> {
    outside::open_regular(path).map_err(|refusal| outside_refusal(shown, refusal))
}

/// The file must be readable by everyone, or owned by every one of `principals`
/// ([`wandb_format::outside::check_readable_by`]).
fn check_readable_by(meta: &Metadata, principals: &[u32], shown: &str) -> Result<(), Refusal> {
    outside::check_readable_by(meta, principals).map_err(|refusal| outside_refusal(shown, refusal))
}

/// The shared rule's refusal as sync reports it: an I/O error, or a decision.
fn outside_refusal(shown: &str, refusal: outside::Refusal) -> Refusal {
    match refusal {
        outside::Refusal::Io { action, source } => Refusal::io(shown, action, &source),
        other => Refusal::policy(shown, other.to_string()),
    }
}

/// The digests of an upload's bytes and the API-key watch, fed block by block.
struct Digests<'p> {
    policy: &'p FollowPolicy,
    sha: Sha256,
    md5: Md5,
    /// The last bytes seen (one less than the longest forbidden string), so a key cut by a
    /// block boundary is found.
    tail: Vec<u8>,
    keep: usize,
    len: u64,
}

impl<'p> Digests<'p> {
    fn new(policy: &'p FollowPolicy) -> Self {
        Digests {
            policy,
            sha: Sha256::new(),
            md5: Md5::new(),
            tail: Vec::new(),
            keep: policy.longest_forbidden().saturating_sub(1),
            len: 0,
        }
    }

    /// Takes in the next block; false when the bytes so far contain the API key.
    fn update(&mut self, block: &[u8]) -> bool {
        self.sha.update(block);
        self.md5.update(block);
        self.len += block.len() as u64;
        if self.keep > 0 {
            self.tail.extend_from_slice(block);
            if self.policy.contains_forbidden(&self.tail) {
                return false;
            }
            let cut = self.tail.len().saturating_sub(self.keep);
            self.tail.drain(..cut);
        }
        true
    }

    fn snapshot(self, data: SnapshotData) -> Snapshot {
        Snapshot {
            data,
            len: self.len,
            md5_base64: base64::engine::general_purpose::STANDARD.encode(self.md5.finalize()),
            sha256: hex(&self.sha.finalize()),
        }
    }
}

/// Reads what the handle holds (up to its size when opened) into a snapshot, hashing as it goes.
fn snapshot(
    file: &File,
    meta: &Metadata,
    shown: &str,
    policy: &FollowPolicy,
) -> Result<Snapshot, Refusal> {
    let limit = meta.len();
    let mut reader = file.take(limit);
    let mut digests = Digests::new(policy);
    let mut memory: Vec<u8> = Vec::new();
    let mut spill: Option<File> = None;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Refusal::io(shown, "read", &e)),
        };
        let block = &buf[..n];
        if !digests.update(block) {
            return Err(Refusal::policy(shown, "its content contains the API key"));
        }
        match &mut spill {
            Some(temp) => temp
                .write_all(block)
                .map_err(|e| Refusal::io(shown, "copy to a temp file", &e))?,
            None if digests.len > MEMORY_SNAPSHOT_BYTES => {
                let mut temp = tempfile::tempfile()
                    .map_err(|e| Refusal::io(shown, "create a temp file", &e))?;
                temp.write_all(&memory)
                    .and_then(|()| temp.write_all(block))
                    .map_err(|e| Refusal::io(shown, "copy to a temp file", &e))?;
                memory = Vec::new();
                spill = Some(temp);
            }
            None => memory.extend_from_slice(block),
        }
    }
    let data = match spill {
        Some(temp) => SnapshotData::File(Arc::new(temp)),
        None => SnapshotData::Bytes(bytes::Bytes::from(memory)),
    };
    Ok(digests.snapshot(data))
}

/// Snapshots a file this process wrote itself and no longer changes (the console spool):
/// hashed once, then sent from the same handle without a copy.
pub(crate) fn snapshot_own_file(
    path: &Path,
    name: &str,
    policy: &FollowPolicy,
) -> Result<Snapshot, Refusal> {
    let file = File::open(path).map_err(|e| Refusal::io(name, "open", &e))?;
    let meta = file.metadata().map_err(|e| Refusal::io(name, "stat", &e))?;
    if meta.len() <= MEMORY_SNAPSHOT_BYTES {
        return snapshot(&file, &meta, name, policy);
    }
    let mut digests = Digests::new(policy);
    let mut buf = vec![0u8; 256 << 10];
    let mut reader = (&file).take(meta.len());
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Refusal::io(name, "read", &e)),
        };
        if !digests.update(&buf[..n]) {
            return Err(Refusal::policy(name, "its content contains the API key"));
        }
    }
    Ok(digests.snapshot(SnapshotData::File(Arc::new(file))))
}

/// Lowercase hex SHA-256 of bytes.
#[cfg(test)]
fn hash_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Files a run already queued, by what they are: a file reached under a second name is skipped.
#[derive(Debug, Default)]
pub(crate) struct SeenFiles {
    by_id: HashMap<(u64, u64), String>,
}

impl SeenFiles {
    /// Whether `candidate` should be uploaded: its file was not queued under another name.
    pub(crate) fn admit(&mut self, candidate: &Candidate) -> bool {
        let name = self
            .by_id
            .entry(candidate.id)
            .or_insert_with(|| candidate.name.clone());
        *name == candidate.name
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run_in(dir: &Path) -> RunFolder {
        let record = dir.join("run-x.wandb");
        std::fs::write(&record, b"").unwrap();
        std::fs::create_dir_all(dir.join("files")).unwrap();
        RunFolder::of_record_file(&record).unwrap()
    }

    fn names(found: &[Candidate]) -> Vec<&str> {
        found.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn refuses_escapes_and_accepts_inside() {
        let dir = tempfile::tempdir().unwrap();
        let run = run_in(dir.path());
        let files = &run.files_dir;
        std::fs::create_dir_all(files.join("sub")).unwrap();
        std::fs::write(files.join("sub/a.txt"), b"a").unwrap();
        let (found, refused) = resolve(&run, "sub/a.txt");
        assert_eq!(names(&found), ["sub/a.txt"]);
        assert!(refused.is_empty());
        assert_eq!(resolve(&run, "../secret").1.len(), 1);
        assert_eq!(resolve(&run, "/etc/passwd").1.len(), 1);
        assert_eq!(resolve(&run, "missing.txt"), (Vec::new(), Vec::new()));
        assert_eq!(names(&resolve(&run, "sub/*.txt").0), ["sub/a.txt"]);
        let policy = FollowPolicy::default();
        let snap = open_run_file(&run, &found[0], &policy).unwrap();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap.sha256(), hash_bytes(b"a"));
        assert_eq!(snap.md5_base64(), "DMF1ucDxtqgxw5niaXcmYQ==");
    }

    #[test]
    fn links_out_follow_the_owner_rule() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let run = run_in(dir.path());
        let target = outside.path().join("mine.txt");
        std::fs::write(&target, b"user data").unwrap();
        std::os::unix::fs::symlink(&target, run.files_dir.join("mine.txt")).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", run.files_dir.join("env")).unwrap();
        let (found, _) = resolve(&run, "mine.txt");
        let policy = FollowPolicy::default();
        let snap = open_run_file(&run, &found[0], &policy).unwrap();
        assert_eq!(snap.bytes().unwrap().as_ref(), b"user data");
        let strict = FollowPolicy::new(true, None);
        let refusal = open_run_file(&run, &found[0], &strict).unwrap_err();
        assert!(refusal.reason.contains("--no-follow-links"), "{refusal}");
        let (found, _) = resolve(&run, "env");
        let refusal = open_run_file(&run, &found[0], &policy).unwrap_err();
        assert!(refusal.reason.contains("procfs"), "{refusal}");
    }

    #[test]
    fn loops_end_and_files_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let run = run_in(dir.path());
        let files = &run.files_dir;
        std::fs::create_dir_all(files.join("sub")).unwrap();
        for name in ["a", "b", "sub/c"] {
            std::fs::write(files.join(name), name).unwrap();
        }
        std::os::unix::fs::symlink("..", files.join("sub/up")).unwrap();
        let (found, refused) = resolve(&run, "**/*");
        assert!(refused.is_empty(), "{refused:?}");
        let mut seen = SeenFiles::default();
        let admitted: Vec<&str> = found
            .iter()
            .filter(|c| seen.admit(c))
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(admitted, ["a", "b", "sub/c"]);
    }

    #[test]
    fn the_api_key_is_never_in_a_snapshot() {
        let key = Secret::new("k".repeat(40));
        let policy = FollowPolicy::new(false, Some(&key));
        let mut text = b"x".repeat(300 << 10);
        text.extend_from_slice(key.expose().as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &text).unwrap();
        let uid = std::fs::metadata(&path).unwrap().uid();
        let refusal = open_outside_run(&path, uid, &policy).unwrap_err();
        assert!(refusal.reason.contains("API key"), "{refusal}");
        assert!(!refusal.to_string().contains(key.expose()));
        assert!(Snapshot::from_bytes("g", bytes::Bytes::from(text), &policy).is_err());
    }

    #[test]
    fn large_snapshots_spill_to_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let data: Vec<u8> = (0..MEMORY_SNAPSHOT_BYTES + 12345)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let uid = std::fs::metadata(&path).unwrap().uid();
        let snap = open_outside_run(&path, uid, &FollowPolicy::default()).unwrap();
        assert!(snap.bytes().is_none());
        assert_eq!(snap.sha256(), hash_bytes(&data));
        // The snapshot does not change when the file does.
        std::fs::write(&path, b"changed").unwrap();
        let mut back = Vec::new();
        snap.reader().read_to_end(&mut back).unwrap();
        assert!(back == data);
    }
}

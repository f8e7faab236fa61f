//! Artifacts: `artifact` records uploaded as wandb-core's artifact saver does, and
//! `use_artifact` records sent as `UseArtifact`, each exactly once across crashes.
//!
//! For each `artifact` record, in file order (wandb-core `core/pkg/artifacts/saver.go`):
//!
//! 1. Entries with a `ref` (`s3://`, `file://`, …) go into the manifest as references and are
//!    never read. Entries with a `local_path` (the SDK stages them outside the run folder)
//!    must exist before anything is sent, and are opened with [`files::open_outside_run`] when
//!    they are uploaded (once, so a large checkpoint is read once), where they must still have
//!    the MD5 the record declares. A missing, refused or changed file is reported by name and
//!    the artifact is not committed (the run is `partial`): a committed artifact without its
//!    files would be worse than none.
//!    When a `local_path` is missing or is not the file the entry declares (a run folder moved
//!    or copied to another path or machine: the path is absolute), the file is looked for in the
//!    run folder's own `artifacts/staging/` by its file name (where our logger stages a Table's
//!    `run_table` file), under the same rules, and taken only with the declared size and MD5;
//!    otherwise the refusal names both paths.
//!    A manifest of more than 100,000 entries, which the SDK writes to a gzipped JSON-lines
//!    file in its staging folder, is read from there the same way (and left in place).
//! 2. `CreateArtifact` with the record's type, name, digest, aliases, metadata, client ids and
//!    the run as creator. When the server already has this digest committed, the artifact
//!    counts as committed and nothing else is sent.
//! 3. `CreateArtifactManifest` (without upload) gives the manifest id; `CreateArtifactFiles`
//!    gives an upload URL for each file the server does not have yet (none for content it
//!    holds) and the artifact that stores it; each file is PUT to its URL.
//!    A file of 2 GiB or more (`--multipart-threshold`, hidden, for tests) is asked for with the
//!    hex MD5 of each part (`uploadPartsInput`; 100 MiB parts, more when a file would take over
//!    10,000), each part hashed from the file's [`Snapshot`] through a 1 MiB buffer (such files
//!    are asked for [`UPLOAD_THREADS`] at a time, so no more are held open than go up at once,
//!    where wandb-core batches them with the rest). When the
//!    server answers with `uploadMultipartUrls`, each part is PUT to its URL (at most
//!    [`UPLOAD_THREADS`] at once, with its `Content-MD5`, a retry sending exactly its bytes),
//!    and `CompleteMultipartUploadArtifact` gets the parts in order with the `ETag` of each reply;
//!    when it gives a plain upload URL only, the file goes up in one PUT. The ledger records a
//!    file once its upload is complete, not its parts: part URLs come only with a new upload
//!    (each `CreateArtifactFiles` starts one, and nothing lists the parts an upload has), so a
//!    re-sync after `kill -9` midway restarts that file's upload, as wandb-core would.
//! 4. The manifest (W&B's JSON, entries sorted by path, with the storing artifact of each
//!    file) is registered with `CreateArtifactManifest` (`UpdateArtifactManifest` for
//!    incremental and distributed artifacts) and PUT to the URL it returns.
//! 5. `CommitArtifact` (for records with `finalize`), then `UseArtifact` when the record asks
//!    for `use_after_commit`.
//!
//! Each step is recorded in the ledger ([`ArtifactProgress`]) once the server acknowledged it,
//! so a re-sync after a crash or `kill -9` resumes where the server is: files acknowledged are
//! not requested again, a manifest uploaded is not uploaded again, and an artifact committed is
//! not touched again. `CreateArtifact` is always sent first: the server finds the artifact by
//! its digest, so a retried request never makes a second version.
//!
//! Deliberate differences from wandb-core: the artifact goes to the run's resolved entity,
//! project and run id (wandb-core sends the record's, with an empty entity for offline runs);
//! the uploaded manifest leaves out each entry's `local_path` (a path on the machine that
//! logged it, of no use to the server); `use_artifact` records are sent as `UseArtifact`
//! (wandb-core hands them to its job builder only); and a staged file that is missing is an
//! error in the report rather than a line in a debug log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde_json::{Map, Value, json};
use wandb_format::artifact::manifest_digest;
use wandb_format::proto::{ArtifactManifestEntry, ArtifactRecord, UseArtifactRecord};

use crate::api::{Api, upload_headers};
use crate::error::{Error, Result};
use crate::files::{self, FollowPolicy, Refusal, RefusalKind, Snapshot};
use crate::http::RetryClass;
use crate::ledger::{ArtifactProgress, Destination, Ledger};
use crate::report::{ArtifactReport, RefusedFile};

const CREATE_ARTIFACT: &str = "mutation CreateArtifact($input: CreateArtifactInput!) { createArtifact(input: $input) { ...CreatedArtifact } } fragment CreatedArtifact on CreateArtifactPayload { artifact { id state artifactSequence { latestArtifact { id } } } }";

const CREATE_ARTIFACT_MANIFEST: &str = "mutation CreateArtifactManifest($artifactID: ID!, $baseArtifactID: ID, $name: String!, $digest: String!, $entityName: String!, $projectName: String!, $runName: String!, $manifestType: ArtifactManifestType!, $includeUpload: Boolean!) { createArtifactManifest(input: {artifactID: $artifactID, baseArtifactID: $baseArtifactID, name: $name, digest: $digest, entityName: $entityName, projectName: $projectName, runName: $runName, type: $manifestType}) { artifactManifest { id file { id uploadUrl @include(if: $includeUpload) uploadHeaders @include(if: $includeUpload) } } } }";

const UPDATE_ARTIFACT_MANIFEST: &str = "mutation UpdateArtifactManifest($artifactManifestID: ID!, $digest: String, $baseArtifactID: ID, $includeUpload: Boolean!) { updateArtifactManifest(input: {artifactManifestID: $artifactManifestID, digest: $digest, baseArtifactID: $baseArtifactID}) { artifactManifest { id file { id uploadUrl @include(if: $includeUpload) uploadHeaders @include(if: $includeUpload) } } } }";

const CREATE_ARTIFACT_FILES: &str = "mutation CreateArtifactFiles($input: CreateArtifactFilesInput!) { createArtifactFiles(input: $input) { files { edges { node { storagePath uploadUrl uploadHeaders uploadMultipartUrls { uploadID uploadUrlParts { partNumber uploadUrl } } artifact { id } } } } } }";

const COMPLETE_MULTIPART_UPLOAD: &str = "mutation CompleteMultipartUploadArtifact($completeMultipartAction: CompleteMultipartAction!, $completedParts: [UploadPartsInput!]!, $artifactID: ID!, $storagePath: String!, $uploadID: String!) { completeMultipartUploadArtifact(input: {completeMultipartAction: $completeMultipartAction, completedParts: $completedParts, artifactID: $artifactID, storagePath: $storagePath, uploadID: $uploadID}) { digest } }";

const COMMIT_ARTIFACT: &str = "mutation CommitArtifact($artifactID: ID!) { commitArtifact(input: {artifactID: $artifactID}) { artifact { id digest } } }";

const USE_ARTIFACT: &str = "mutation UseArtifact($input: UseArtifactInput!) { useArtifact(input: $input) { artifact { id } } }";

/// Files asked for in one `CreateArtifactFiles` request.
const FILES_PER_REQUEST: usize = 500;

/// Parallel PUTs per artifact (and parallel part PUTs per multipart file).
const UPLOAD_THREADS: usize = 4;

/// Files of at least this size go up as multipart uploads (wandb-core `S3MinMultiUploadSize`).
pub(crate) const MULTIPART_THRESHOLD: u64 = 2 << 30;

/// Largest file a multipart upload takes (S3's largest object).
const MULTIPART_MAX_SIZE: u64 = 5 << 40;

/// Part size of a multipart upload, unless a file would need more than [`MULTIPART_MAX_PARTS`].
const MULTIPART_PART_SIZE: u64 = 100 << 20;

/// Most parts of a multipart upload (S3's limit).
const MULTIPART_MAX_PARTS: u64 = 10_000;

/// Where, inside a run folder, the logger stages artifact files (`local_path` is absolute, so a
/// moved run folder finds them here by file name).
const IN_RUN_STAGING: &str = "artifacts/staging";

/// Read buffer for hashing a part (each part is hashed through it, never held whole).
const HASH_BUFFER: usize = 1 << 20;

/// When artifact files go up in parts, and how big the parts are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Multipart {
    /// Files of at least this many bytes go up in parts ([`MULTIPART_THRESHOLD`] by default).
    pub(crate) threshold: u64,
    /// Bytes per part; 0 is wandb-core's rule ([`part_size`]).
    pub(crate) part_size: u64,
}

impl Multipart {
    /// The part size for a file of `len` bytes.
    fn part_size(&self, len: u64) -> u64 {
        if self.part_size > 0 {
            self.part_size
        } else {
            part_size(len)
        }
    }
}

/// wandb-core's part size (`getChunkSize`): 100 MiB, or, when that would take more than
/// 10,000 parts, the size that takes 10,000 rounded up to a multiple of 4096.
fn part_size(len: u64) -> u64 {
    if len < MULTIPART_PART_SIZE * MULTIPART_MAX_PARTS {
        MULTIPART_PART_SIZE
    } else {
        len.div_ceil(MULTIPART_MAX_PARTS).div_ceil(4096) * 4096
    }
}

/// The byte range of each part of a file of `len` bytes, in part order (part `i + 1`).
fn part_ranges(len: u64, part_size: u64) -> Vec<std::ops::Range<u64>> {
    let part_size = part_size.max(1);
    (0..len.div_ceil(part_size))
        .map(|i| i * part_size..((i + 1) * part_size).min(len))
        .collect()
}

/// An artifact-related record, in file order.
#[derive(Debug, Clone)]
pub(crate) enum ArtifactItem {
    /// `run.log_artifact`, a Table's `run_table`, a checkpoint…
    Log(Box<ArtifactRecord>),
    /// `run.use_artifact`.
    Use(Box<UseArtifactRecord>),
}

/// What artifact syncing needs from the run being synced.
pub(crate) struct Context<'a> {
    /// The API (`None` in a dry run: files are checked, nothing is sent).
    pub(crate) api: Option<&'a Api>,
    /// Where the run went.
    pub(crate) dest: &'a Destination,
    /// The run's ledger.
    pub(crate) ledger: &'a Mutex<Ledger>,
    /// The rules for files outside the run folder.
    pub(crate) policy: &'a FollowPolicy,
    /// The uid owning the run's `.wandb` file (`None`: unknown, so staged files are refused).
    pub(crate) owner_uid: Option<u32>,
    /// The run folder: a staged file whose `local_path` is not on this machine is looked for
    /// where `wandb-archive` keeps it in an unpacked run (`wandb_archive::tools::staged_copy`),
    /// and, missing or changed there, in the folder's own `artifacts/staging/` ([`in_run_copy`]).
    pub(crate) run_dir: Option<&'a std::path::Path>,
    /// The run, when it is read in place from an archive: staged files are read from the
    /// copies the archive holds.
    pub(crate) archive: Option<&'a std::sync::Arc<crate::source::ArchiveRun>>,
    /// The run's deadline.
    pub(crate) deadline: Instant,
    /// When files go up in parts.
    pub(crate) multipart: Multipart,
}

/// What happened to a run's artifacts besides errors.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Files not uploaded (their artifact was left out), by staged path, with the reason.
    pub(crate) refused: Vec<RefusedFile>,
    /// Notes for the report.
    pub(crate) warnings: Vec<String>,
    /// Artifacts committed (or found committed) by this sync; in a dry run, those checked.
    pub(crate) artifacts: Vec<ArtifactReport>,
}

/// Syncs every artifact record of a file, in order. A request that fails for good stops here
/// with the error (the ledger keeps what was done, so a re-run resumes).
pub(crate) fn sync_all(
    ctx: &Context<'_>,
    items: &[ArtifactItem],
    outcome: &mut Outcome,
) -> Result<()> {
    for (ordinal, item) in items.iter().enumerate() {
        match item {
            ArtifactItem::Log(record) => log_artifact(ctx, ordinal, record, outcome)?,
            ArtifactItem::Use(record) => use_artifact(ctx, ordinal, record, outcome)?,
        }
    }
    Ok(())
}

fn ledger_guard<'a>(ctx: &'a Context<'_>) -> std::sync::MutexGuard<'a, Ledger> {
    ctx.ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The ledger key of an artifact record: its client id (unique per artifact), else its place.
fn artifact_key(ordinal: usize, record: &ArtifactRecord) -> String {
    if record.client_id.is_empty() {
        format!("{ordinal}:{}:{}", record.name, record.digest)
    } else {
        record.client_id.clone()
    }
}

fn progress(ctx: &Context<'_>, key: &str) -> ArtifactProgress {
    ledger_guard(ctx)
        .data
        .as_ref()
        .and_then(|d| d.artifacts.get(key).cloned())
        .unwrap_or_default()
}

fn save_progress(ctx: &Context<'_>, key: &str, progress: &ArtifactProgress) -> Result<()> {
    ledger_guard(ctx).update(|d| {
        d.artifacts.insert(key.to_owned(), progress.clone());
    })
}

/// A file entry to upload: where it is staged and its declared digest.
struct Staged {
    path: String,
    local_path: String,
    digest: String,
    /// The size the entry declares.
    size: i64,
    /// Where the file is looked for when `local_path` is missing or holds other content: the
    /// run folder's own `artifacts/staging/<file name>` (a run folder moved or copied to
    /// another path or machine keeps its staged files there, as the logger writes them).
    in_run: Option<std::path::PathBuf>,
    /// The copy an archive run holds, read instead of `local_path`.
    member: Option<wandb_archive::Member>,
}

/// Opens a staged file and checks it still has the digest the record declares.
fn open_staged(ctx: &Context<'_>, staged: &Staged) -> std::result::Result<Snapshot, Refusal> {
    if let (Some(run), Some(member)) = (ctx.archive, &staged.member) {
        let snapshot = files::snapshot_member(run, member, &staged.local_path, ctx.policy)?;
        return check_digest(staged, snapshot);
    }
    let Some(uid) = ctx.owner_uid else {
        return Err(Refusal {
            path: staged.local_path.clone(),
            reason: "the owner of the run folder is unknown".into(),
            kind: RefusalKind::Policy,
        });
    };
    let recorded =
        files::open_outside_run(std::path::Path::new(&staged.local_path), uid, ctx.policy)
            .map_err(|refusal| {
                let absent = matches!(refusal.kind, RefusalKind::Io(std::io::ErrorKind::NotFound));
                (refusal, absent)
            })
            .and_then(|snapshot| check_digest(staged, snapshot).map_err(|r| (r, true)));
    let (first, retry) = match recorded {
        Ok(snapshot) => return Ok(snapshot),
        Err(failed) => failed,
    };
    // Missing, or not the file the manifest declares: the run folder's own staged copy, if it
    // is there with the declared size and digest (under the same rules as `local_path`).
    let Some(in_run) = staged.in_run.as_deref().filter(|_| retry) else {
        return Err(first);
    };
    match files::open_outside_run(in_run, uid, ctx.policy)
        .and_then(|snapshot| check_digest(staged, snapshot))
    {
        Ok(snapshot) => Ok(snapshot),
        Err(second) => Err(Refusal {
            path: staged.local_path.clone(),
            reason: format!(
                "{}: {}; in the run folder, {}: {}",
                staged.local_path,
                refusal_text(&first),
                in_run.display(),
                refusal_text(&second)
            ),
            kind: RefusalKind::Policy,
        }),
    }
}

/// A refusal's reason, with a missing file said in words.
fn refusal_text(refusal: &Refusal) -> String {
    match refusal.kind {
        RefusalKind::Io(std::io::ErrorKind::NotFound) => "the staged file is missing".to_owned(),
        _ => refusal.reason.clone(),
    }
}

/// The snapshot, if it still has the size and digest the record declares.
fn check_digest(staged: &Staged, snapshot: Snapshot) -> std::result::Result<Snapshot, Refusal> {
    if snapshot.md5_base64() != staged.digest
        || u64::try_from(staged.size).is_ok_and(|size| size != snapshot.len())
    {
        return Err(Refusal {
            path: staged.local_path.clone(),
            reason: format!(
                "its content changed since it was logged ({} bytes with MD5 {}, the artifact declares {} bytes with {})",
                snapshot.len(),
                snapshot.md5_base64(),
                staged.size,
                staged.digest
            ),
            kind: RefusalKind::Policy,
        });
    }
    Ok(snapshot)
}

/// Where the run folder `run_dir` keeps its own copy of the file staged at `local_path`:
/// `<run_dir>/artifacts/staging/<file name of local_path>` (where the logger stages it). `None`
/// when the file name could lead elsewhere (empty, `.`/`..`, a `/`, `..` or NUL in it) or the
/// copy is `local_path` itself.
fn in_run_copy(run_dir: &std::path::Path, local_path: &str) -> Option<std::path::PathBuf> {
    let path = run_dir
        .join(IN_RUN_STAGING)
        .join(staged_file_name(local_path)?);
    (path.as_os_str() != std::ffi::OsStr::new(local_path)).then_some(path)
}

/// The file name of `local_path`, when it is a plain name that cannot lead elsewhere: not
/// empty, not `.`, without `..` or NUL (and, being the part after the last `/`, without `/`).
fn staged_file_name(local_path: &str) -> Option<&str> {
    let name = local_path.rsplit('/').next()?;
    let bad = name.is_empty() || name == "." || name.contains("..") || name.contains('\0');
    (!bad).then_some(name)
}

/// Where to read a staged file: its `local_path`, or, when that is not on this machine, the copy
/// a run that travelled in an archive holds (`wandb_archive::tools::staged_copy`).
fn staged_path(ctx: &Context<'_>, local_path: &str) -> String {
    match ctx.run_dir {
        Some(dir) if std::fs::symlink_metadata(local_path).is_err() => {
            wandb_archive::tools::staged_copy(dir, local_path).map_or_else(
                || local_path.to_owned(),
                |p| p.to_string_lossy().into_owned(),
            )
        }
        _ => local_path.to_owned(),
    }
}

fn refused_file(record: &ArtifactRecord, staged: &Staged, refusal: &Refusal) -> RefusedFile {
    let reason = refusal_text(refusal);
    RefusedFile {
        path: staged.local_path.clone(),
        reason: format!(
            "file {:?} of artifact {}:{} ({}); the artifact was not uploaded",
            staged.path, record.name, record.r#type, reason
        ),
    }
}

fn log_artifact(
    ctx: &Context<'_>,
    ordinal: usize,
    record: &ArtifactRecord,
    outcome: &mut Outcome,
) -> Result<()> {
    let key = artifact_key(ordinal, record);
    let mut state = progress(ctx, &key);
    if state.committed && (!record.use_after_commit || state.used) {
        return Ok(());
    }
    let Some(manifest) = &record.manifest else {
        outcome.warnings.push(format!(
            "artifact {}:{} has no manifest and was left out",
            record.name, record.r#type
        ));
        return Ok(());
    };
    // Manifests of more than 100,000 entries are in a gzipped JSON-lines file the SDK
    // staged (read where it is, never deleted, so a re-sync can read it again).
    let from_file;
    let (record, manifest) = if manifest.manifest_file_path.is_empty() {
        (record, manifest)
    } else {
        let mut owned = record.clone();
        let mut contents = match read_manifest_file(ctx, &manifest.manifest_file_path) {
            Ok(contents) => contents,
            Err(reason) => {
                outcome.refused.push(RefusedFile {
                    path: manifest.manifest_file_path.clone(),
                    reason: format!(
                        "manifest file of artifact {}:{} ({reason}); the artifact was not uploaded",
                        record.name, record.r#type
                    ),
                });
                return Ok(());
            }
        };
        contents.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(m) = owned.manifest.as_mut() {
            m.contents = contents;
            m.manifest_file_path.clear();
        }
        from_file = owned;
        let Some(manifest) = &from_file.manifest else {
            return Ok(());
        };
        (&from_file, manifest)
    };
    if manifest_digest(&manifest.contents) != record.digest {
        outcome.warnings.push(format!(
            "artifact {}:{}: its digest {} is not the digest of its manifest; sent as recorded",
            record.name, record.r#type, record.digest
        ));
    }
    // Missing staged files are found before anything is sent. Each file is opened (and
    // checked under the safety rules, and against its digest) only when it is uploaded, so a
    // large checkpoint is read once; a file refused then leaves the artifact uncommitted.
    let mut staged = Vec::new();
    let mut bad = false;
    for entry in &manifest.contents {
        if !entry.r#ref.is_empty() || entry.local_path.is_empty() {
            continue;
        }
        let file = Staged {
            path: entry.path.clone(),
            local_path: staged_path(ctx, &entry.local_path),
            digest: entry.digest.clone(),
            size: entry.size,
            in_run: ctx
                .run_dir
                .and_then(|dir| in_run_copy(dir, &entry.local_path)),
            member: ctx
                .archive
                .and_then(|run| run.staged_member(&entry.local_path))
                .cloned(),
        };
        if !state.files.contains_key(&file.path)
            && file.member.is_none()
            && let Err(e) = std::fs::symlink_metadata(&file.local_path)
            && file
                .in_run
                .as_ref()
                .is_none_or(|p| std::fs::symlink_metadata(p).is_err())
        {
            let refusal = match &file.in_run {
                Some(in_run) if e.kind() == std::io::ErrorKind::NotFound => Refusal {
                    path: file.local_path.clone(),
                    reason: format!(
                        "the staged file is missing at {} and in the run folder at {}",
                        file.local_path,
                        in_run.display()
                    ),
                    kind: RefusalKind::Policy,
                },
                _ => Refusal {
                    path: file.local_path.clone(),
                    reason: e.to_string(),
                    kind: RefusalKind::Io(e.kind()),
                },
            };
            outcome.refused.push(refused_file(record, &file, &refusal));
            bad = true;
        }
        staged.push(file);
    }
    if bad {
        return Ok(());
    }
    let summary = ArtifactReport {
        name: record.name.clone(),
        kind: record.r#type.clone(),
        files: staged.len() as u64,
        bytes: manifest
            .contents
            .iter()
            .filter(|e| e.r#ref.is_empty() && !e.local_path.is_empty())
            .map(|e| u64::try_from(e.size).unwrap_or(0))
            .sum(),
        references: manifest
            .contents
            .iter()
            .filter(|e| !e.r#ref.is_empty())
            .count() as u64,
    };
    let Some(api) = ctx.api else {
        outcome.artifacts.push(summary);
        return Ok(());
    };
    let dest = ctx.dest;

    let created = create_artifact(api, ctx, record)?;
    if state.server_id.as_deref() != Some(created.id.as_str()) {
        // A new artifact on the server (or another server): start over.
        state = ArtifactProgress {
            name: record.name.clone(),
            digest: record.digest.clone(),
            server_id: Some(created.id.clone()),
            ..ArtifactProgress::default()
        };
        save_progress(ctx, &key, &state)?;
    }
    let use_input = json!({"input": {
        "artifactID": created.id, "entityName": dest.entity,
        "projectName": dest.project, "runName": dest.run_id,
    }});
    if created.state == "COMMITTED" {
        state.committed = true;
        save_progress(ctx, &key, &state)?;
    }
    if !state.committed {
        if !matches!(created.state.as_str(), "PENDING" | "DELETED") {
            return Err(Error::BadReply {
                what: "CreateArtifact".into(),
                detail: format!("artifact {} is in state {:?}", record.name, created.state),
            });
        }
        let base_id = if record.base_id.is_empty() {
            created.latest_id.clone()
        } else {
            Some(record.base_id.clone())
        };
        let patch = record.incremental_beta1 || !record.distributed_id.is_empty();
        if !state.manifest_uploaded {
            let manifest_id =
                create_manifest(api, ctx, record, &created.id, base_id.as_deref(), "", false)?.id;
            let refused = upload_files(
                api,
                ctx,
                &key,
                &created.id,
                &manifest_id,
                &staged,
                &mut state,
            )?;
            if !refused.is_empty() {
                for (file, refusal) in refused {
                    outcome.refused.push(refused_file(record, file, &refusal));
                }
                return Ok(());
            }
            let text = manifest_json(record, &state.files, &mut outcome.warnings);
            let digest = wandb_format::artifact::file_digest(text.as_bytes());
            let slot = if patch {
                update_manifest(api, ctx, &manifest_id, &digest)?
            } else {
                create_manifest(
                    api,
                    ctx,
                    record,
                    &created.id,
                    base_id.as_deref(),
                    &digest,
                    true,
                )?
            };
            let Some(url) = slot.upload_url else {
                return Err(Error::BadReply {
                    what: "CreateArtifactManifest".into(),
                    detail: "no upload URL for the manifest".into(),
                });
            };
            let snapshot = Snapshot::from_bytes(
                "wandb_manifest.json",
                bytes::Bytes::from(text.into_bytes()),
                ctx.policy,
            )
            .map_err(|refusal| Error::Permanent {
                what: format!("manifest of artifact {}", record.name),
                detail: refusal.reason,
            })?;
            api.http.put(
                &format!("PUT manifest of artifact {}", record.name),
                &url,
                &slot.headers,
                &snapshot,
                ctx.deadline,
            )?;
            state.manifest_uploaded = true;
            save_progress(ctx, &key, &state)?;
        }
        if record.finalize {
            api.graphql(
                "CommitArtifact",
                COMMIT_ARTIFACT,
                json!({"artifactID": created.id}),
                RetryClass::Api,
                ctx.deadline,
            )?;
        }
        state.committed = true;
        save_progress(ctx, &key, &state)?;
    }
    outcome.artifacts.push(summary);
    if record.use_after_commit && !state.used {
        api.graphql(
            "UseArtifact",
            USE_ARTIFACT,
            use_input,
            RetryClass::Api,
            ctx.deadline,
        )?;
        state.used = true;
        save_progress(ctx, &key, &state)?;
    }
    Ok(())
}

/// Reads the entries of a manifest the SDK wrote to a gzipped JSON-lines file (one
/// `{"path", "digest", "size", "ref", "local_path", "birthArtifactID", "skip_cache", "extra"}`
/// object per line), under the rules for files outside the run folder.
fn read_manifest_file(
    ctx: &Context<'_>,
    path: &str,
) -> std::result::Result<Vec<ArtifactManifestEntry>, String> {
    use std::io::BufRead as _;
    let uid = ctx
        .owner_uid
        .ok_or_else(|| "the owner of the run folder is unknown".to_owned())?;
    let snapshot = files::open_outside_run(std::path::Path::new(path), uid, ctx.policy)
        .map_err(|refusal| refusal.reason)?;
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(snapshot.reader()));
    let mut entries = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", index + 1))?;
        let text = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (Some(entry_path), Some(digest)) = (
            value.get("path").and_then(Value::as_str),
            value.get("digest").and_then(Value::as_str),
        ) else {
            return Err(format!(
                "line {}: an entry without path or digest",
                index + 1
            ));
        };
        let extra = value
            .get("extra")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(key, v)| wandb_format::proto::ExtraItem {
                        key: key.clone(),
                        value_json: v.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        entries.push(ArtifactManifestEntry {
            path: entry_path.to_owned(),
            digest: digest.to_owned(),
            r#ref: text("ref"),
            size: value.get("size").and_then(Value::as_i64).unwrap_or(0),
            local_path: text("local_path"),
            birth_artifact_id: text("birthArtifactID"),
            skip_cache: value
                .get("skip_cache")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            extra,
            ..Default::default()
        });
    }
    Ok(entries)
}

/// What `CreateArtifact` answered.
struct Created {
    id: String,
    state: String,
    latest_id: Option<String>,
}

fn text(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn create_artifact(api: &Api, ctx: &Context<'_>, record: &ArtifactRecord) -> Result<Created> {
    let dest = ctx.dest;
    let aliases: Vec<Value> = record
        .aliases
        .iter()
        .map(|alias| json!({"alias": alias, "artifactCollectionName": record.name}))
        .collect();
    let mut input = json!({
        "aliases": (!aliases.is_empty()).then_some(aliases),
        "artifactCollectionName": record.name,
        "artifactCollectionNames": null,
        "artifactTypeName": record.r#type,
        "clientID": record.client_id,
        "clientMutationId": null,
        "description": text(&record.description),
        "digest": record.digest,
        "digestAlgorithm": "MANIFEST_MD5",
        "distributedID": text(&record.distributed_id),
        "enableDigestDeduplication": true,
        "entityName": dest.entity,
        "historyStep": null,
        "labels": null,
        "metadata": text(&record.metadata),
        "projectName": dest.project,
        "runName": (!record.user_created).then_some(&dest.run_id),
        "sequenceClientID": record.sequence_client_id,
        "storageRegion": storage_region(record),
        "ttlDurationSeconds": (record.ttl_duration_seconds != 0).then_some(record.ttl_duration_seconds),
    });
    if !record.tags.is_empty() {
        input["tags"] = Value::Array(
            record
                .tags
                .iter()
                .map(|tag| json!({"tagName": tag}))
                .collect(),
        );
    }
    let data = api.graphql(
        "CreateArtifact",
        CREATE_ARTIFACT,
        json!({"input": input}),
        RetryClass::Api,
        ctx.deadline,
    )?;
    let artifact = data.pointer("/createArtifact/artifact");
    let field = |name: &str| {
        artifact
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (Some(id), Some(state)) = (field("id"), field("state")) else {
        return Err(Error::BadReply {
            what: "CreateArtifact".into(),
            detail: "no createArtifact.artifact id and state".into(),
        });
    };
    let latest_id = artifact
        .and_then(|a| a.pointer("/artifactSequence/latestArtifact/id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Created {
        id,
        state,
        latest_id,
    })
}

fn storage_region(record: &ArtifactRecord) -> Option<String> {
    let manifest = record.manifest.as_ref()?;
    let item = manifest
        .storage_policy_config
        .iter()
        .find(|c| c.key == "storageRegion")?;
    serde_json::from_str::<String>(&item.value_json).ok()
}

/// A manifest and where to upload it.
struct ManifestSlot {
    id: String,
    upload_url: Option<String>,
    headers: reqwest::header::HeaderMap,
}

fn manifest_slot(data: &Value, pointer: &str, what: &str) -> Result<ManifestSlot> {
    let manifest = data.pointer(pointer);
    let Some(id) = manifest
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(Error::BadReply {
            what: what.to_owned(),
            detail: "no artifactManifest.id".into(),
        });
    };
    let file = manifest.and_then(|m| m.get("file"));
    Ok(ManifestSlot {
        id,
        upload_url: file
            .and_then(|f| f.get("uploadUrl"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        headers: upload_headers(file.and_then(|f| f.get("uploadHeaders"))),
    })
}

fn manifest_type(record: &ArtifactRecord) -> (&'static str, &'static str) {
    if record.incremental_beta1 {
        ("INCREMENTAL", "wandb_manifest.incremental.json")
    } else if !record.distributed_id.is_empty() {
        ("PATCH", "wandb_manifest.patch.json")
    } else {
        ("FULL", "wandb_manifest.json")
    }
}

fn create_manifest(
    api: &Api,
    ctx: &Context<'_>,
    record: &ArtifactRecord,
    artifact_id: &str,
    base_id: Option<&str>,
    digest: &str,
    include_upload: bool,
) -> Result<ManifestSlot> {
    let (kind, name) = manifest_type(record);
    let data = api.graphql(
        "CreateArtifactManifest",
        CREATE_ARTIFACT_MANIFEST,
        json!({
            "artifactID": artifact_id, "baseArtifactID": base_id, "name": name,
            "digest": digest, "entityName": ctx.dest.entity, "projectName": ctx.dest.project,
            "runName": ctx.dest.run_id, "manifestType": kind, "includeUpload": include_upload,
        }),
        RetryClass::Api,
        ctx.deadline,
    )?;
    manifest_slot(
        &data,
        "/createArtifactManifest/artifactManifest",
        "CreateArtifactManifest",
    )
}

fn update_manifest(
    api: &Api,
    ctx: &Context<'_>,
    manifest_id: &str,
    digest: &str,
) -> Result<ManifestSlot> {
    let data = api.graphql(
        "UpdateArtifactManifest",
        UPDATE_ARTIFACT_MANIFEST,
        json!({
            "artifactManifestID": manifest_id, "digest": digest,
            "baseArtifactID": null, "includeUpload": true,
        }),
        RetryClass::Api,
        ctx.deadline,
    )?;
    manifest_slot(
        &data,
        "/updateArtifactManifest/artifactManifest",
        "UpdateArtifactManifest",
    )
}

/// A file's upload as the server asked for it.
enum Upload {
    /// One PUT of the whole file.
    Single {
        url: String,
        headers: reqwest::header::HeaderMap,
    },
    /// A multipart upload: a PUT per part, then `CompleteMultipartUploadArtifact`.
    Parts {
        upload_id: String,
        storage_path: String,
        urls: Vec<String>,
        content_type: String,
    },
}

/// One file to PUT: what the server asked for, the artifact storing it, and its snapshot when
/// it was opened before `CreateArtifactFiles` (to hash its parts).
struct Put<'s> {
    file: &'s Staged,
    upload: Upload,
    birth: String,
    opened: Option<Opened>,
}

/// A file opened before `CreateArtifactFiles` and the parts it goes up in.
type Opened = (Snapshot, Vec<Part>);

/// One part of a multipart upload: its byte range and hex MD5.
#[derive(Debug, Clone)]
struct Part {
    range: std::ops::Range<u64>,
    md5_hex: String,
}

/// The hex MD5 of each part of a snapshot, hashed in parallel (as wandb-core does), each part
/// read through a bounded buffer.
fn hash_parts(snapshot: &Snapshot, part_size: u64) -> std::io::Result<Vec<Part>> {
    use std::io::Read as _;
    let ranges = part_ranges(snapshot.len(), part_size);
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(ranges.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let hashes: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; ranges.len()]);
    let failure: Mutex<Option<std::io::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut buffer = vec![0u8; HASH_BUFFER];
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(range) = ranges.get(index) else {
                        break;
                    };
                    let mut reader = snapshot.reader_range(range.clone());
                    let mut hasher = Md5::new();
                    let result = loop {
                        match reader.read(&mut buffer) {
                            Ok(0) => break Ok(()),
                            Ok(n) => hasher.update(&buffer[..n]),
                            Err(e) => break Err(e),
                        }
                    };
                    match result {
                        Ok(()) => {
                            let hex = hex_lower(&hasher.finalize());
                            if let Some(slot) = hashes
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_mut(index)
                            {
                                *slot = Some(hex);
                            }
                        }
                        Err(e) => {
                            failure
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    let hashes = hashes.into_inner().unwrap_or_else(PoisonError::into_inner);
    Ok(ranges
        .into_iter()
        .zip(hashes)
        .map(|(range, md5_hex)| Part {
            range,
            md5_hex: md5_hex.unwrap_or_default(),
        })
        .collect())
}

fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The size of a staged file on disk, which decides (as wandb-core's `os.Stat`) whether it
/// goes up in parts; 0 when it cannot be read (it is refused when opened).
fn staged_len(file: &Staged) -> u64 {
    if let Some(member) = &file.member {
        return member.size;
    }
    std::fs::metadata(&file.local_path)
        .or_else(|e| match &file.in_run {
            Some(in_run) => std::fs::metadata(in_run),
            None => Err(e),
        })
        .map_or(0, |m| m.len())
}

/// Opens a file that goes up in parts and hashes its parts (`uploadPartsInput`); `None` when
/// the file is below the threshold (it is opened when it is uploaded).
fn prepare_parts(ctx: &Context<'_>, file: &Staged) -> std::result::Result<Option<Opened>, Refusal> {
    if staged_len(file) < ctx.multipart.threshold {
        return Ok(None);
    }
    let snapshot = open_staged(ctx, file)?;
    if snapshot.len() < ctx.multipart.threshold {
        return Ok(Some((snapshot, Vec::new())));
    }
    if snapshot.len() > MULTIPART_MAX_SIZE {
        return Err(Refusal {
            path: file.local_path.clone(),
            reason: format!(
                "it has {} bytes, more than the largest object storage takes ({MULTIPART_MAX_SIZE})",
                snapshot.len()
            ),
            kind: RefusalKind::Policy,
        });
    }
    let parts =
        hash_parts(&snapshot, ctx.multipart.part_size(snapshot.len())).map_err(|e| Refusal {
            path: file.local_path.clone(),
            reason: format!("reading it failed: {e}"),
            kind: RefusalKind::Io(e.kind()),
        })?;
    Ok(Some((snapshot, parts)))
}

/// What the server answered for one file of `CreateArtifactFiles`.
fn upload_of(node: &Value, parts: Option<&[Part]>) -> Result<Option<Upload>> {
    let headers = upload_headers(node.get("uploadHeaders"));
    if let Some(multi) = node.get("uploadMultipartUrls").filter(|m| !m.is_null()) {
        let bad = |detail: String| Error::BadReply {
            what: "CreateArtifactFiles".into(),
            detail,
        };
        let upload_id = multi
            .get("uploadID")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("uploadMultipartUrls without uploadID".into()))?;
        let storage_path = node
            .get("storagePath")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a multipart upload without storagePath".into()))?;
        let urls: Vec<String> = multi
            .get("uploadUrlParts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| p.get("uploadUrl").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let asked = parts.map_or(0, <[Part]>::len);
        if urls.len() != asked {
            return Err(bad(format!(
                "asked for {asked} part URLs, got {}",
                urls.len()
            )));
        }
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        return Ok(Some(Upload::Parts {
            upload_id: upload_id.to_owned(),
            storage_path: storage_path.to_owned(),
            urls,
            content_type,
        }));
    }
    // No upload URL: the server already holds this content.
    Ok(node
        .get("uploadUrl")
        .and_then(Value::as_str)
        .map(|url| Upload::Single {
            url: url.to_owned(),
            headers,
        }))
}

/// Asks for upload URLs of the files the ledger does not have yet and PUTs those the server
/// lacks (in parts when the server hands out part URLs); each acknowledged file goes into
/// `state.files` with the artifact storing it. Returns the files refused when they were opened
/// (the artifact must not be committed then).
fn upload_files<'s>(
    api: &Api,
    ctx: &Context<'_>,
    key: &str,
    artifact_id: &str,
    manifest_id: &str,
    staged: &'s [Staged],
    state: &mut ArtifactProgress,
) -> Result<Vec<(&'s Staged, Refusal)>> {
    let mut refused = Vec::new();
    let todo: Vec<&Staged> = staged
        .iter()
        .filter(|s| !state.files.contains_key(&s.path))
        .collect();
    // Files at or above the threshold are asked for a few at a time, so that no more of them
    // are held open (each a temp-file copy) than are uploaded at once.
    let (large, small): (Vec<&Staged>, Vec<&Staged>) = todo
        .iter()
        .partition(|s| staged_len(s) >= ctx.multipart.threshold);
    let batches = small
        .chunks(FILES_PER_REQUEST)
        .chain(large.chunks(UPLOAD_THREADS));
    for batch in batches {
        // Files at or above the threshold are opened and hashed part by part first (their
        // `uploadPartsInput`); a file refused then is left out of the request.
        let mut asked: Vec<(&Staged, Option<Opened>)> = Vec::new();
        for file in batch {
            match prepare_parts(ctx, file) {
                Ok(opened) => asked.push((*file, opened)),
                Err(refusal) => refused.push((*file, refusal)),
            }
        }
        if asked.is_empty() {
            continue;
        }
        let specs: Vec<Value> = asked
            .iter()
            .map(|(s, opened)| {
                let parts: Option<Vec<Value>> = opened
                    .as_ref()
                    .filter(|(_, parts)| !parts.is_empty())
                    .map(|(_, parts)| {
                        parts
                            .iter()
                            .enumerate()
                            .map(|(i, p)| json!({"partNumber": i + 1, "hexMD5": p.md5_hex}))
                            .collect()
                    });
                json!({
                    "artifactID": artifact_id, "artifactManifestID": manifest_id,
                    "md5": s.digest, "mimetype": null, "name": s.path,
                    "uploadPartsInput": parts,
                })
            })
            .collect();
        let data = api.graphql(
            "CreateArtifactFiles",
            CREATE_ARTIFACT_FILES,
            json!({"input": {
                "artifactFiles": specs, "clientMutationId": null, "cloudRegionID": null,
                "storageLayout": "V2",
            }}),
            RetryClass::Api,
            ctx.deadline,
        )?;
        let edges = data
            .pointer("/createArtifactFiles/files/edges")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if edges.len() != asked.len() {
            return Err(Error::BadReply {
                what: "CreateArtifactFiles".into(),
                detail: format!("asked for {} files, got {}", asked.len(), edges.len()),
            });
        }
        let mut puts = Vec::new();
        for ((file, opened), edge) in asked.into_iter().zip(&edges) {
            let node = edge.get("node").unwrap_or(&Value::Null);
            let birth = node
                .pointer("/artifact/id")
                .and_then(Value::as_str)
                .unwrap_or(artifact_id)
                .to_owned();
            let parts = opened.as_ref().map(|(_, parts)| parts.as_slice());
            match upload_of(node, parts)? {
                None => {
                    state.files.insert(file.path.clone(), birth);
                }
                Some(upload) => puts.push(Put {
                    file,
                    upload,
                    birth,
                    opened,
                }),
            }
        }
        save_progress(ctx, key, state)?;
        let next = AtomicUsize::new(0);
        let done: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let refusals: Mutex<Vec<(&Staged, Refusal)>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..UPLOAD_THREADS.min(puts.len()) {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some(put) = puts.get(index) else {
                            break;
                        };
                        if first_error
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .is_some()
                        {
                            break;
                        }
                        let snapshot = match &put.opened {
                            Some((snapshot, _)) => snapshot.clone(),
                            None => match open_staged(ctx, put.file) {
                                Ok(snapshot) => snapshot,
                                Err(refusal) => {
                                    refusals
                                        .lock()
                                        .unwrap_or_else(PoisonError::into_inner)
                                        .push((put.file, refusal));
                                    continue;
                                }
                            },
                        };
                        let result = match &put.upload {
                            Upload::Single { url, headers } => api.http.put(
                                &format!("PUT artifact file {}", put.file.path),
                                url,
                                headers,
                                &snapshot,
                                ctx.deadline,
                            ),
                            Upload::Parts { .. } => {
                                let parts = put
                                    .opened
                                    .as_ref()
                                    .map(|(_, parts)| parts.as_slice())
                                    .unwrap_or_default();
                                upload_parts(api, ctx, put, &snapshot, parts)
                            }
                        };
                        match result {
                            Ok(()) => done
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((put.file.path.clone(), put.birth.clone())),
                            Err(e) => {
                                first_error
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        let done = done.into_inner().unwrap_or_else(PoisonError::into_inner);
        if !done.is_empty() {
            state.files.extend(done);
            save_progress(ctx, key, state)?;
        }
        if let Some(e) = first_error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(e);
        }
        refused.extend(
            refusals
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
    Ok(refused)
}

/// A multipart upload (wandb-core `uploadMultipart`): each part PUT to its URL (in parallel,
/// at most [`UPLOAD_THREADS`] at once) with its `Content-MD5`, `Content-Length` and the
/// upload's `Content-Type`; the `ETag` of each reply; then `CompleteMultipartUploadArtifact`
/// with the parts in order.
fn upload_parts(
    api: &Api,
    ctx: &Context<'_>,
    put: &Put<'_>,
    snapshot: &Snapshot,
    parts: &[Part],
) -> Result<()> {
    let Upload::Parts {
        upload_id,
        storage_path,
        urls,
        content_type,
    } = &put.upload
    else {
        return Ok(());
    };
    let name = &put.file.path;
    let next = AtomicUsize::new(0);
    let etags: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; parts.len()]);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..UPLOAD_THREADS.min(parts.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let (Some(part), Some(url)) = (parts.get(index), urls.get(index)) else {
                        break;
                    };
                    if first_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_some()
                    {
                        break;
                    }
                    let what = format!("PUT part {} of artifact file {name}", index + 1);
                    let result = part_headers(part, content_type)
                        .map_err(|detail| Error::Permanent {
                            what: what.clone(),
                            detail,
                        })
                        .and_then(|headers| {
                            api.http.put_part(
                                &what,
                                url,
                                &headers,
                                snapshot,
                                part.range.clone(),
                                ctx.deadline,
                            )
                        })
                        .and_then(|etag| {
                            etag.filter(|e| !e.is_empty())
                                .ok_or_else(|| Error::BadReply {
                                    what: what.clone(),
                                    detail: "no ETag in the reply".into(),
                                })
                        });
                    match result {
                        Ok(etag) => {
                            if let Some(slot) = etags
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_mut(index)
                            {
                                *slot = Some(etag);
                            }
                        }
                        Err(e) => {
                            first_error
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        return Err(e);
    }
    let completed: Vec<Value> = etags
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .enumerate()
        .map(|(i, etag)| json!({"partNumber": i + 1, "hexMD5": etag.unwrap_or_default()}))
        .collect();
    api.graphql(
        "CompleteMultipartUploadArtifact",
        COMPLETE_MULTIPART_UPLOAD,
        json!({
            "completeMultipartAction": "Complete", "completedParts": completed,
            "artifactID": put.birth, "storagePath": storage_path, "uploadID": upload_id,
        }),
        RetryClass::Api,
        ctx.deadline,
    )?;
    Ok(())
}

/// The headers of one part's PUT: its base64 MD5, and the upload's content type (empty when
/// the server gave none, as wandb-core sends it).
fn part_headers(
    part: &Part,
    content_type: &str,
) -> std::result::Result<reqwest::header::HeaderMap, String> {
    use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
    let mut raw = Vec::with_capacity(16);
    for pair in part.md5_hex.as_bytes().chunks(2) {
        let text = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
        raw.push(u8::from_str_radix(text, 16).map_err(|e| format!("part MD5: {e}"))?);
    }
    let md5 = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut headers = HeaderMap::new();
    headers.insert(
        "Content-MD5",
        HeaderValue::from_str(&md5).map_err(|e| e.to_string())?,
    );
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type).map_err(|e| format!("Content-Type: {e}"))?,
    );
    Ok(headers)
}

/// The manifest as W&B stores it: `version`, `storagePolicy`, `storagePolicyConfig`, and the
/// entries by path (sorted) with `digest`, `ref`, `size`, `birthArtifactID`, `skip_cache` and
/// `extra`.
fn manifest_json(
    record: &ArtifactRecord,
    births: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> String {
    let Some(manifest) = &record.manifest else {
        return String::from("{}");
    };
    let mut config = Map::new();
    config.insert("storageLayout".into(), Value::from("V2"));
    if let Some(region) = storage_region(record) {
        config.insert("storageRegion".into(), Value::from(region));
    }
    let mut entries: Vec<&ArtifactManifestEntry> = manifest.contents.iter().collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut contents = Map::new();
    for entry in entries {
        let mut item = Map::new();
        item.insert("digest".into(), Value::from(entry.digest.clone()));
        if !entry.r#ref.is_empty() {
            item.insert("ref".into(), Value::from(entry.r#ref.clone()));
        }
        item.insert("size".into(), Value::from(entry.size));
        let birth = births
            .get(&entry.path)
            .cloned()
            .or_else(|| text(&entry.birth_artifact_id).map(str::to_owned));
        if let Some(birth) = birth {
            item.insert("birthArtifactID".into(), Value::from(birth));
        }
        item.insert("skip_cache".into(), Value::from(entry.skip_cache));
        if !entry.extra.is_empty() {
            let mut extra = Map::new();
            for pair in &entry.extra {
                match serde_json::from_str::<Value>(&pair.value_json) {
                    Ok(value) => {
                        extra.insert(pair.key.clone(), value);
                    }
                    Err(_) => warnings.push(format!(
                        "artifact {}: extra {:?} of {:?} is not JSON and was left out",
                        record.name, pair.key, entry.path
                    )),
                }
            }
            item.insert("extra".into(), Value::Object(extra));
        }
        contents.insert(entry.path.clone(), Value::Object(item));
    }
    json!({
        "version": manifest.version,
        "storagePolicy": manifest.storage_policy,
        "storagePolicyConfig": config,
        "contents": contents,
    })
    .to_string()
}

fn use_artifact(
    ctx: &Context<'_>,
    ordinal: usize,
    record: &UseArtifactRecord,
    outcome: &mut Outcome,
) -> Result<()> {
    if record.id.is_empty() {
        outcome.warnings.push(format!(
            "use_artifact record for {:?} has no artifact id and was left out",
            record.name
        ));
        return Ok(());
    }
    let key = format!("{ordinal}:{}", record.id);
    let done = ledger_guard(ctx)
        .data
        .as_ref()
        .is_some_and(|d| d.artifact_uses.contains(&key));
    let Some(api) = ctx.api.filter(|_| !done) else {
        return Ok(());
    };
    let dest = ctx.dest;
    api.graphql(
        "UseArtifact",
        USE_ARTIFACT,
        json!({"input": {
            "artifactID": record.id, "entityName": dest.entity,
            "projectName": dest.project, "runName": dest.run_id,
        }}),
        RetryClass::Api,
        ctx.deadline,
    )?;
    ledger_guard(ctx).update(|d| {
        d.artifact_uses.insert(key);
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wandb_format::proto::ArtifactManifest;

    fn entry(path: &str, digest: &str) -> ArtifactManifestEntry {
        ArtifactManifestEntry {
            path: path.into(),
            digest: digest.into(),
            size: 6,
            ..Default::default()
        }
    }

    #[test]
    fn the_run_folder_copy_is_looked_for_by_a_plain_file_name_only() {
        let run = std::path::Path::new("/runs/offline-run-x");
        assert_eq!(
            in_run_copy(run, "/old/offline-run-x/artifacts/staging/ab12.table.json"),
            Some(run.join("artifacts/staging/ab12.table.json"))
        );
        assert_eq!(
            in_run_copy(run, "/home/me/.local/share/wandb/artifacts/staging/tmp1"),
            Some(run.join("artifacts/staging/tmp1"))
        );
        // Nothing that could name another place, and not the recorded path itself.
        for bad in [
            "/old/..",
            "/old/.",
            "/old/",
            "",
            "/old/a..b",
            "/old/nul\0name",
            "/runs/offline-run-x/artifacts/staging/same",
        ] {
            assert_eq!(in_run_copy(run, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn part_sizes_follow_wandb_core() {
        // 100 MiB parts up to 10,000 of them; beyond, 10,000 parts rounded up to 4 KiB.
        assert_eq!(part_size(MULTIPART_THRESHOLD), 100 << 20);
        assert_eq!(part_size(100 * (100 << 20) * 100 - 1), 100 << 20);
        let huge = MULTIPART_MAX_SIZE;
        let size = part_size(huge);
        assert_eq!(size % 4096, 0);
        assert!(size > 100 << 20);
        let ranges = part_ranges(huge, size);
        assert_eq!(ranges.len() as u64, MULTIPART_MAX_PARTS);
        assert_eq!(ranges.last().map(|r| r.end), Some(huge));
        // Parts cover the file in order, the last one short.
        let ranges = part_ranges(10, 4);
        assert_eq!(ranges, [0..4, 4..8, 8..10]);
        assert!(part_ranges(0, 4).is_empty());
    }

    #[test]
    fn parts_are_hashed_through_a_bounded_buffer() {
        let bytes: Vec<u8> = (0..(3 * HASH_BUFFER + 17))
            .map(|i| (i % 253) as u8)
            .collect();
        let snapshot = Snapshot::from_bytes(
            "f",
            bytes::Bytes::from(bytes.clone()),
            &crate::files::FollowPolicy::new(false, None),
        )
        .unwrap();
        let part = (HASH_BUFFER + 5) as u64;
        let parts = hash_parts(&snapshot, part).unwrap();
        assert_eq!(parts.len(), 4);
        for (p, chunk) in parts.iter().zip(bytes.chunks(part as usize)) {
            assert_eq!(p.md5_hex, hex_lower(&Md5::digest(chunk)));
        }
        let headers = part_headers(&parts[0], "").unwrap();
        assert_eq!(
            headers["Content-MD5"],
            base64::engine::general_purpose::STANDARD
                .encode(Md5::digest(&bytes[..part as usize]))
                .as_str()
        );
    }

    #[test]
    fn manifest_json_is_sorted_with_references_and_births() {
        let mut reference = entry("ref.txt", "etag");
        reference.r#ref = "s3://bucket/ref.txt".into();
        reference.local_path = String::new();
        let mut local = entry("b.txt", "8M8qklFgRQJKDJkUeyjwWw==");
        local.local_path = "/staging/tmp1".into();
        let record = ArtifactRecord {
            name: "ds".into(),
            manifest: Some(ArtifactManifest {
                version: 1,
                storage_policy: "wandb-storage-policy-v1".into(),
                contents: vec![reference, local],
                ..Default::default()
            }),
            ..Default::default()
        };
        let births = BTreeMap::from([("b.txt".to_owned(), "QXJ0aWZhY3Q6MA==".to_owned())]);
        let mut warnings = Vec::new();
        let text = manifest_json(&record, &births, &mut warnings);
        assert_eq!(
            text,
            r#"{"version":1,"storagePolicy":"wandb-storage-policy-v1","storagePolicyConfig":{"storageLayout":"V2"},"contents":{"b.txt":{"digest":"8M8qklFgRQJKDJkUeyjwWw==","size":6,"birthArtifactID":"QXJ0aWZhY3Q6MA==","skip_cache":false},"ref.txt":{"digest":"etag","ref":"s3://bucket/ref.txt","size":6,"skip_cache":false}}}"#
        );
        assert!(warnings.is_empty());
    }
}

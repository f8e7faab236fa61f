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
//!    A manifest of more than 100,000 entries, which the SDK writes to a gzipped JSON-lines
//!    file in its staging folder, is read from there the same way (and left in place).
//! 2. `CreateArtifact` with the record's type, name, digest, aliases, metadata, client ids and
//!    the run as creator. When the server already has this digest committed, the artifact
//!    counts as committed and nothing else is sent.
//! 3. `CreateArtifactManifest` (without upload) gives the manifest id; `CreateArtifactFiles`
//!    gives an upload URL for each file the server does not have yet (none for content it
//!    holds) and the artifact that stores it; each file is PUT to its URL.
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

const COMMIT_ARTIFACT: &str = "mutation CommitArtifact($artifactID: ID!) { commitArtifact(input: {artifactID: $artifactID}) { artifact { id digest } } }";

const USE_ARTIFACT: &str = "mutation UseArtifact($input: UseArtifactInput!) { useArtifact(input: $input) { artifact { id } } }";

/// Files asked for in one `CreateArtifactFiles` request.
const FILES_PER_REQUEST: usize = 500;

/// Parallel PUTs per artifact.
const UPLOAD_THREADS: usize = 4;

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
    /// The run's deadline.
    pub(crate) deadline: Instant,
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
}

/// Opens a staged file and checks it still has the digest the record declares.
fn open_staged(ctx: &Context<'_>, staged: &Staged) -> std::result::Result<Snapshot, Refusal> {
    let Some(uid) = ctx.owner_uid else {
        return Err(Refusal {
            path: staged.local_path.clone(),
            reason: "the owner of the run folder is unknown".into(),
            kind: RefusalKind::Policy,
        });
    };
    let snapshot =
        files::open_outside_run(std::path::Path::new(&staged.local_path), uid, ctx.policy)?;
    if snapshot.md5_base64() != staged.digest {
        return Err(Refusal {
            path: staged.local_path.clone(),
            reason: format!(
                "its content changed since it was logged (MD5 {}, the artifact declares {})",
                snapshot.md5_base64(),
                staged.digest
            ),
            kind: RefusalKind::Policy,
        });
    }
    Ok(snapshot)
}

fn refused_file(record: &ArtifactRecord, staged: &Staged, refusal: &Refusal) -> RefusedFile {
    let reason = match refusal.kind {
        RefusalKind::Io(std::io::ErrorKind::NotFound) => "the staged file is missing".to_owned(),
        _ => refusal.reason.clone(),
    };
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
            local_path: entry.local_path.clone(),
            digest: entry.digest.clone(),
        };
        if !state.files.contains_key(&file.path)
            && let Err(e) = std::fs::symlink_metadata(&file.local_path)
        {
            let refusal = Refusal {
                path: file.local_path.clone(),
                reason: e.to_string(),
                kind: RefusalKind::Io(e.kind()),
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
            let digest =
                base64::engine::general_purpose::STANDARD.encode(Md5::digest(text.as_bytes()));
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

/// Asks for upload URLs of the files the ledger does not have yet and PUTs those the server
/// lacks; each acknowledged file goes into `state.files` with the artifact storing it. Returns
/// the files refused when they were opened (the artifact must not be committed then).
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
    for batch in todo.chunks(FILES_PER_REQUEST) {
        let specs: Vec<Value> = batch
            .iter()
            .map(|s| {
                json!({
                    "artifactID": artifact_id, "artifactManifestID": manifest_id,
                    "md5": s.digest, "mimetype": null, "name": s.path,
                    "uploadPartsInput": null,
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
        if edges.len() != batch.len() {
            return Err(Error::BadReply {
                what: "CreateArtifactFiles".into(),
                detail: format!("asked for {} files, got {}", batch.len(), edges.len()),
            });
        }
        let mut puts = Vec::new();
        for (file, edge) in batch.iter().zip(&edges) {
            let node = edge.get("node").unwrap_or(&Value::Null);
            let birth = node
                .pointer("/artifact/id")
                .and_then(Value::as_str)
                .unwrap_or(artifact_id)
                .to_owned();
            match node.get("uploadUrl").and_then(Value::as_str) {
                // The server already holds this content.
                None => {
                    state.files.insert(file.path.clone(), birth);
                }
                Some(url) => puts.push((
                    *file,
                    url.to_owned(),
                    upload_headers(node.get("uploadHeaders")),
                    birth,
                )),
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
                        let Some((file, url, headers, birth)) = puts.get(index) else {
                            break;
                        };
                        if first_error
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .is_some()
                        {
                            break;
                        }
                        let snapshot = match open_staged(ctx, file) {
                            Ok(snapshot) => snapshot,
                            Err(refusal) => {
                                refusals
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push((*file, refusal));
                                continue;
                            }
                        };
                        let result = api.http.put(
                            &format!("PUT artifact file {}", file.path),
                            url,
                            headers,
                            &snapshot,
                            ctx.deadline,
                        );
                        match result {
                            Ok(()) => done
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((file.path.clone(), birth.clone())),
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

/// The W&B artifact digest of a manifest: MD5 (hex) over `wandb-artifact-manifest-v1\n` and a
/// `path:digest\n` line per entry, sorted by path.
pub(crate) fn manifest_digest(entries: &[ArtifactManifestEntry]) -> String {
    let mut sorted: Vec<&ArtifactManifestEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = Md5::new();
    hasher.update(b"wandb-artifact-manifest-v1\n");
    for entry in sorted {
        hasher.update(entry.path.as_bytes());
        hasher.update(b":");
        hasher.update(entry.digest.as_bytes());
        hasher.update(b"\n");
    }
    let mut out = String::with_capacity(32);
    for b in hasher.finalize() {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
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
    fn digest_matches_the_sdk() {
        // The digests the SDK 0.31 wrote for a directory artifact and a Table.
        let entries = [
            entry("sub/b.txt", "8M8qklFgRQJKDJkUeyjwWw=="),
            entry("a.txt", "n5+Q2+Pl7hIYyGuIOdsZlQ=="),
        ];
        assert_eq!(
            manifest_digest(&entries),
            "2c611cf13ce16eaf7cda3226b0968298"
        );
        let table = [entry("tbl.table.json", "WCvtwUIfIRB5rhrUuCD6ig==")];
        assert_eq!(manifest_digest(&table), "9a2a6affca9a3503c1e225bd780cc355");
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

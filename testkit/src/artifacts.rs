//! Artifacts: the GraphQL operations of wandb-core's artifact saver, the uploads they hand out,
//! and the reconstructed state of each artifact.
//!
//! The sequence a client follows (wandb-core `core/pkg/artifacts/saver.go`):
//!
//! 1. `CreateArtifact` (type, collection name, digest, aliases, metadata, client ids, the run):
//!    an artifact with the same collection and digest that already exists is returned as it is
//!    (`COMMITTED` when it was committed: the client stops there), otherwise a `PENDING` one is
//!    created.
//! 2. `CreateArtifactManifest` (and, for incremental or distributed artifacts,
//!    `UpdateArtifactManifest`): the manifest's upload URL.
//! 3. `CreateArtifactFiles`: an upload URL per file, or none when the server already holds
//!    content with that MD5 in the project (deduplication), with the artifact that first stored
//!    it (`birthArtifactID`).
//! 4. `PUT` of each file to `/_artifact_upload/{artifact}/{md5 hex}` and of the manifest to
//!    `/_artifact_manifest/{artifact}`; a file whose bytes do not have the declared MD5 is
//!    refused with 400.
//!    A file sent with `uploadPartsInput` (wandb-core does so from 2 GiB) gets a multipart
//!    upload instead: an upload id and a URL per part; each part `PUT` must have the MD5 declared
//!    for it and is answered with an `ETag`, and `CompleteMultipartUploadArtifact` (the parts in
//!    order with their ETags) assembles the file, which must have the file's MD5.
//!    [`crate::TestBackend::set_multipart_uploads`] turns this off: such files then get a single
//!    upload URL, like a server whose storage has no multipart uploads.
//! 5. `CommitArtifact`: the artifact becomes `COMMITTED` (again: a no-op), and gets its version.
//!
//! `UseArtifact` records that a run used an artifact. Each artifact is exposed as an
//! [`ArtifactState`]: its fields, the files of its uploaded manifest with their content hashes,
//! the run that created it and the runs that used it, and counters of every call and PUT.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::state::{RunKey, Store};

/// Content stored once per (entity, project, base64 MD5), as storage layout V2 does.
pub(crate) type BlobKey = (String, String, String);

/// One stored blob: its bytes and the artifact that first uploaded it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Blob {
    pub(crate) bytes: Vec<u8>,
    pub(crate) birth_artifact_id: String,
}

/// A multipart upload handed out by `CreateArtifactFiles`.
#[derive(Debug, Clone, Default)]
pub(crate) struct MultipartUpload {
    artifact: usize,
    md5: String,
    storage_path: String,
    birth_artifact_id: String,
    /// The hex MD5 declared for each part (part `i + 1`).
    part_md5: Vec<String>,
    /// The bytes and ETag of each part received, by part number.
    received: BTreeMap<u64, (Vec<u8>, String)>,
    completed: bool,
}

/// A file a client asked to upload with `CreateArtifactFiles`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestedFile {
    md5: String,
    birth_artifact_id: String,
}

/// Everything the server knows about one artifact.
#[derive(Debug, Clone, Default)]
pub(crate) struct ArtifactData {
    index: usize,
    id: String,
    entity: String,
    project: String,
    artifact_type: String,
    name: String,
    digest: String,
    description: Option<String>,
    metadata_raw: Option<String>,
    aliases: Vec<String>,
    tags: Vec<String>,
    client_id: Option<String>,
    sequence_client_id: Option<String>,
    ttl_duration_seconds: Option<i64>,
    committed: bool,
    version: Option<u64>,
    created_by: Option<RunKey>,
    used_by: Vec<RunKey>,
    manifest_digest: Option<String>,
    manifest_bytes: Option<Vec<u8>>,
    requested: BTreeMap<String, RequestedFile>,
    counters: ArtifactCounters,
    errors: Vec<String>,
}

impl ArtifactData {
    fn manifest_id(&self) -> String {
        b64(&format!("ArtifactManifest:{}", self.index))
    }

    fn blob_key(&self, md5: &str) -> BlobKey {
        (self.entity.clone(), self.project.clone(), md5.to_owned())
    }

    fn manifest_url(&self, base_url: &str) -> String {
        format!("{base_url}/_artifact_manifest/{}", self.index)
    }

    fn file_url(&self, base_url: &str, md5: &str) -> Option<String> {
        let hex = md5_b64_to_hex(md5)?;
        Some(format!("{base_url}/_artifact_upload/{}/{hex}", self.index))
    }
}

/// Calls and uploads made for one artifact.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactCounters {
    /// `CreateArtifact` calls that named this artifact (the first created it).
    pub create_calls: u64,
    /// `CreateArtifactManifest` calls.
    pub create_manifest_calls: u64,
    /// `UpdateArtifactManifest` calls.
    pub update_manifest_calls: u64,
    /// `CreateArtifactFiles` calls that named a file of this artifact.
    pub create_files_calls: u64,
    /// Upload URLs handed out (files the server did not have yet).
    pub upload_urls: u64,
    /// Applied file `PUT`s (a second PUT of the same content counts again).
    pub file_puts: u64,
    /// Multipart uploads handed out (`uploadMultipartUrls`).
    pub multipart_uploads: u64,
    /// Applied part `PUT`s of multipart uploads (a part sent again counts again).
    pub part_puts: u64,
    /// `CompleteMultipartUploadArtifact` calls that assembled a file (a repeat counts again).
    pub complete_multipart_calls: u64,
    /// Applied manifest `PUT`s.
    pub manifest_puts: u64,
    /// `CommitArtifact` calls (a commit of a committed artifact counts, and changes nothing).
    pub commit_calls: u64,
    /// `UseArtifact` calls.
    pub use_calls: u64,
}

/// One file of an artifact, as the server can serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactFile {
    /// The manifest entry's digest (base64 MD5 of the content, or the reference's checksum).
    pub digest: String,
    /// The manifest entry's size.
    pub size: Option<u64>,
    /// The reference URI (`s3://…`, `file://…`) of a reference entry; its content is never
    /// uploaded.
    pub reference: Option<String>,
    /// Whether the server holds the content (always false for references).
    pub stored: bool,
    /// Lowercase hex SHA-256 of the stored content.
    pub sha256: Option<String>,
    /// Whether the stored content's MD5 equals `digest`.
    pub digest_matches: bool,
    /// The artifact that first stored this content (`birthArtifactID` in the manifest).
    pub birth_artifact_id: Option<String>,
}

/// The reconstructed state of one artifact version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactState {
    /// Server id (base64 of `Artifact:<n>`).
    pub id: String,
    /// Entity (the default entity when the client sent none or an empty one).
    pub entity: String,
    /// Project.
    pub project: String,
    /// Artifact type (`run_table`, `model`, `dataset`, …).
    pub artifact_type: String,
    /// Collection name (`run-<id>-<key>` for a Table).
    pub name: String,
    /// `v<N>` once committed (numbered per collection in commit order).
    pub version: Option<String>,
    /// The artifact digest the client declared (W&B's manifest digest).
    pub digest: String,
    /// Description, if sent.
    pub description: Option<String>,
    /// Metadata (a JSONString), parsed.
    pub metadata: Option<Value>,
    /// Aliases, in the order first sent, without repeats.
    pub aliases: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// The client id of the artifact.
    pub client_id: Option<String>,
    /// The client id of its sequence.
    pub sequence_client_id: Option<String>,
    /// TTL in seconds, if sent.
    pub ttl_duration_seconds: Option<i64>,
    /// `PENDING` or `COMMITTED`.
    pub state: String,
    /// Whether `CommitArtifact` succeeded.
    pub committed: bool,
    /// Run id of the run that created it (`runName` of `CreateArtifact`).
    pub created_by: Option<String>,
    /// Run ids of the runs that used it (`UseArtifact`), in order, without repeats.
    pub used_by: Vec<String>,
    /// The files of the uploaded manifest by path (or, before the manifest was uploaded, the
    /// files requested with `CreateArtifactFiles`).
    pub files: BTreeMap<String, ArtifactFile>,
    /// The uploaded manifest, parsed.
    pub manifest: Option<Value>,
    /// The manifest digest declared with `CreateArtifactManifest`/`UpdateArtifactManifest`.
    pub manifest_digest: Option<String>,
    /// Counters.
    pub counters: ArtifactCounters,
    /// Protocol anomalies (missing files at commit, digest mismatches, unknown runs, …).
    pub errors: Vec<String>,
}

impl ArtifactState {
    /// The file at `path`, if the artifact has it.
    pub fn file(&self, path: &str) -> Option<&ArtifactFile> {
        self.files.get(path)
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Base64 MD5 of bytes.
pub(crate) fn md5_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

fn md5_b64_to_hex(md5: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(md5.as_bytes())
        .ok()?;
    (raw.len() == 16).then(|| hex(&raw))
}

fn md5_hex_to_b64(hex_text: &str) -> Option<String> {
    if hex_text.len() != 32 {
        return None;
    }
    let mut raw = Vec::with_capacity(16);
    for i in (0..32).step_by(2) {
        raw.push(u8::from_str_radix(hex_text.get(i..i + 2)?, 16).ok()?);
    }
    Some(base64::engine::general_purpose::STANDARD.encode(raw))
}

fn str_of(value: &Value, name: &str) -> Option<String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A JSONString field: a string is kept verbatim, any other non-null value is re-encoded.
fn json_string_of(value: &Value, name: &str) -> Option<String> {
    match value.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// The artifact named by an `artifactID` variable, if it exists.
fn by_id<'s>(store: &'s mut Store, id: Option<&str>) -> Option<&'s mut ArtifactData> {
    let id = id?;
    store.artifacts.iter_mut().find(|a| a.id == id)
}

fn error(message: &str) -> Value {
    json!({"data": null, "errors": [{"message": message}]})
}

/// `CreateArtifact(input)`.
pub(crate) fn create_artifact(store: &mut Store, default_entity: &str, vars: &Value) -> Value {
    let input = vars.get("input").unwrap_or(vars);
    let entity = str_of(input, "entityName").unwrap_or_else(|| default_entity.to_owned());
    let Some(project) = str_of(input, "projectName") else {
        return error("createArtifact: projectName is required");
    };
    let Some(name) = str_of(input, "artifactCollectionName") else {
        return error("createArtifact: artifactCollectionName is required");
    };
    let Some(artifact_type) = str_of(input, "artifactTypeName") else {
        return error("createArtifact: artifactTypeName is required");
    };
    let Some(digest) = str_of(input, "digest") else {
        return error("createArtifact: digest is required");
    };
    let aliases: Vec<String> = input
        .get("aliases")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| a.get("alias").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let tags: Vec<String> = input
        .get("tags")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|t| t.get("tagName").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let run = str_of(input, "runName");
    let creator = run
        .as_ref()
        .map(|r| (entity.clone(), project.clone(), r.clone()));
    let creator_known = creator.as_ref().is_none_or(|k| store.runs.contains_key(k));
    let latest = store
        .artifacts
        .iter()
        .filter(|a| a.committed && a.entity == entity && a.project == project && a.name == name)
        .max_by_key(|a| a.version)
        .map(|a| a.id.clone());
    let existing = store.artifacts.iter().position(|a| {
        a.entity == entity && a.project == project && a.name == name && a.digest == digest
    });
    let index = match existing {
        Some(index) => index,
        None => {
            let index = store.artifacts.len();
            store.artifacts.push(ArtifactData {
                index,
                id: b64(&format!("Artifact:{index}")),
                entity: entity.clone(),
                project: project.clone(),
                artifact_type: artifact_type.clone(),
                name: name.clone(),
                digest: digest.clone(),
                description: str_of(input, "description"),
                metadata_raw: json_string_of(input, "metadata"),
                client_id: str_of(input, "clientID"),
                sequence_client_id: str_of(input, "sequenceClientID"),
                ttl_duration_seconds: input.get("ttlDurationSeconds").and_then(Value::as_i64),
                tags: tags.clone(),
                created_by: creator.clone(),
                ..ArtifactData::default()
            });
            index
        }
    };
    let Some(artifact) = store.artifacts.get_mut(index) else {
        return error("createArtifact: internal error");
    };
    artifact.counters.create_calls += 1;
    if !creator_known && existing.is_none() {
        artifact.errors.push(format!(
            "CreateArtifact names run {:?}, which was never upserted",
            run.unwrap_or_default()
        ));
    }
    if artifact.artifact_type != artifact_type {
        artifact.errors.push(format!(
            "CreateArtifact with type {artifact_type:?} for an artifact of type {:?}",
            artifact.artifact_type
        ));
    }
    for alias in aliases {
        if !artifact.aliases.contains(&alias) {
            artifact.aliases.push(alias);
        }
    }
    let state = if artifact.committed {
        "COMMITTED"
    } else {
        "PENDING"
    };
    let latest = latest.filter(|id| *id != artifact.id);
    json!({"data": {"createArtifact": {"artifact": {
        "id": artifact.id,
        "state": state,
        "artifactSequence": {"latestArtifact": latest.map(|id| json!({"id": id}))},
    }}}})
}

fn manifest_reply(artifact: &ArtifactData, base_url: &str, include_upload: bool) -> Value {
    let mut file = json!({"id": b64(&format!("File:manifest:{}", artifact.index))});
    if include_upload {
        file["uploadUrl"] = Value::String(artifact.manifest_url(base_url));
        file["uploadHeaders"] = json!([]);
    }
    json!({"id": artifact.manifest_id(), "file": file})
}

/// `CreateArtifactManifest(artifactID, baseArtifactID, name, digest, entityName, projectName,
/// runName, manifestType, includeUpload)`.
pub(crate) fn create_artifact_manifest(store: &mut Store, base_url: &str, vars: &Value) -> Value {
    let id = vars.get("artifactID").and_then(Value::as_str);
    let Some(artifact) = by_id(store, id) else {
        return error("createArtifactManifest: no such artifact");
    };
    artifact.counters.create_manifest_calls += 1;
    if let Some(digest) = str_of(vars, "digest") {
        artifact.manifest_digest = Some(digest);
    }
    let include = vars
        .get("includeUpload")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    json!({"data": {"createArtifactManifest": {
        "artifactManifest": manifest_reply(artifact, base_url, include),
    }}})
}

/// `UpdateArtifactManifest(artifactManifestID, digest, baseArtifactID, includeUpload)`.
pub(crate) fn update_artifact_manifest(store: &mut Store, base_url: &str, vars: &Value) -> Value {
    let id = vars.get("artifactManifestID").and_then(Value::as_str);
    let Some(artifact) = store
        .artifacts
        .iter_mut()
        .find(|a| Some(a.manifest_id().as_str()) == id)
    else {
        return error("updateArtifactManifest: no such manifest");
    };
    artifact.counters.update_manifest_calls += 1;
    if let Some(digest) = str_of(vars, "digest") {
        artifact.manifest_digest = Some(digest);
    }
    let include = vars
        .get("includeUpload")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    json!({"data": {"updateArtifactManifest": {
        "artifactManifest": manifest_reply(artifact, base_url, include),
    }}})
}

/// `CreateArtifactFiles(input: {artifactFiles, storageLayout})` (wandb-core 0.31) or
/// `CreateArtifactFiles(artifactFiles, storageLayout)` (later versions).
pub(crate) fn create_artifact_files(store: &mut Store, base_url: &str, vars: &Value) -> Value {
    let input = vars.get("input").unwrap_or(vars);
    let Some(specs) = input.get("artifactFiles").and_then(Value::as_array) else {
        return error("createArtifactFiles: artifactFiles is required");
    };
    let mut edges = Vec::with_capacity(specs.len());
    let mut counted: Vec<usize> = Vec::new();
    for spec in specs {
        let (Some(id), Some(name), Some(md5)) = (
            spec.get("artifactID").and_then(Value::as_str),
            str_of(spec, "name"),
            str_of(spec, "md5"),
        ) else {
            return error("createArtifactFiles: each file needs artifactID, name and md5");
        };
        let Some(index) = store.artifacts.iter().position(|a| a.id == id) else {
            return error("createArtifactFiles: no such artifact");
        };
        let parts = match spec.get("uploadPartsInput") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(parts)) => match declared_parts(parts) {
                Ok(parts) => parts,
                Err(message) => return error(&format!("createArtifactFiles: {message}")),
            },
            Some(_) => return error("createArtifactFiles: uploadPartsInput is not a list"),
        };
        let (key, existing_birth) = {
            let artifact = &store.artifacts[index];
            let key = artifact.blob_key(&md5);
            let birth = store.blobs.get(&key).map(|b| b.birth_artifact_id.clone());
            (key, birth)
        };
        let artifact = &mut store.artifacts[index];
        if !counted.contains(&index) {
            counted.push(index);
            artifact.counters.create_files_calls += 1;
        }
        let Some(url) = artifact.file_url(base_url, &md5) else {
            return error("createArtifactFiles: md5 is not a base64 MD5");
        };
        let birth = existing_birth
            .clone()
            .unwrap_or_else(|| artifact.id.clone());
        artifact.requested.insert(
            name.clone(),
            RequestedFile {
                md5: md5.clone(),
                birth_artifact_id: birth.clone(),
            },
        );
        let upload_url = if existing_birth.is_some() {
            Value::Null
        } else {
            artifact.counters.upload_urls += 1;
            Value::String(url.clone())
        };
        let storage_path = format!(
            "wandb_artifacts/{}/{}/{}",
            key.0,
            key.1,
            md5_b64_to_hex(&md5).unwrap_or_default()
        );
        let multipart = if existing_birth.is_none() && !parts.is_empty() && !store.no_multipart {
            artifact.counters.multipart_uploads += 1;
            store.next_upload_id += 1;
            let upload_id = format!("upload-{}", store.next_upload_id);
            let urls: Vec<Value> = (1..=parts.len())
                .map(|n| json!({"partNumber": n, "uploadUrl": format!("{url}/{upload_id}/{n}")}))
                .collect();
            store.multipart_uploads.insert(
                upload_id.clone(),
                MultipartUpload {
                    artifact: index,
                    md5: md5.clone(),
                    storage_path: storage_path.clone(),
                    birth_artifact_id: birth.clone(),
                    part_md5: parts,
                    ..MultipartUpload::default()
                },
            );
            json!({"uploadID": upload_id, "uploadUrlParts": urls})
        } else {
            Value::Null
        };
        edges.push(json!({"node": {
            "storagePath": storage_path,
            "uploadUrl": upload_url,
            "uploadHeaders": [],
            "uploadMultipartUrls": multipart,
            "artifact": {"id": birth},
        }}));
    }
    json!({"data": {"createArtifactFiles": {"files": {"edges": edges}}}})
}

/// The hex MD5 of each part of `uploadPartsInput`, which must be numbered 1, 2, … in order.
fn declared_parts(parts: &[Value]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let number = part.get("partNumber").and_then(Value::as_u64);
        if number != Some(i as u64 + 1) {
            return Err(format!(
                "uploadPartsInput[{i}] has partNumber {number:?}, expected {}",
                i + 1
            ));
        }
        let Some(md5) = part
            .get("hexMD5")
            .and_then(Value::as_str)
            .filter(|h| md5_hex_to_b64(h).is_some())
        else {
            return Err(format!("uploadPartsInput[{i}] has no hex MD5"));
        };
        out.push(md5.to_ascii_lowercase());
    }
    Ok(out)
}

/// `CompleteMultipartUploadArtifact(completeMultipartAction, completedParts, artifactID,
/// storagePath, uploadID)`: assembles the parts (each named with the ETag its PUT returned) and
/// stores the file when it has the declared MD5. Completing a completed upload again answers
/// the same (a retried request whose reply was lost).
pub(crate) fn complete_multipart_upload(store: &mut Store, vars: &Value) -> Value {
    if vars.get("completeMultipartAction").and_then(Value::as_str) != Some("Complete") {
        return error("completeMultipartUploadArtifact: completeMultipartAction must be Complete");
    }
    let Some(upload_id) = str_of(vars, "uploadID") else {
        return error("completeMultipartUploadArtifact: uploadID is required");
    };
    let Some(upload) = store.multipart_uploads.get(&upload_id).cloned() else {
        return error("completeMultipartUploadArtifact: no such upload");
    };
    let reply = json!({"data": {"completeMultipartUploadArtifact": {"digest": upload.md5}}});
    let mut problems = Vec::new();
    if str_of(vars, "artifactID").as_deref() != Some(upload.birth_artifact_id.as_str()) {
        problems.push("artifactID is not the artifact the upload was handed to".to_owned());
    }
    if str_of(vars, "storagePath").as_deref() != Some(upload.storage_path.as_str()) {
        problems.push("storagePath is not the upload's".to_owned());
    }
    let given = vars
        .get("completedParts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if given.len() != upload.part_md5.len() {
        problems.push(format!(
            "{} parts completed, the upload has {}",
            given.len(),
            upload.part_md5.len()
        ));
    }
    let mut bytes = Vec::new();
    for (i, part) in given.iter().enumerate() {
        let number = i as u64 + 1;
        if part.get("partNumber").and_then(Value::as_u64) != Some(number) {
            problems.push(format!("completedParts[{i}] is not part {number}"));
            continue;
        }
        match upload.received.get(&number) {
            None => problems.push(format!("part {number} was never uploaded")),
            Some((data, etag)) => {
                if part.get("hexMD5").and_then(Value::as_str) != Some(etag.as_str()) {
                    problems.push(format!("part {number} is not named with its ETag {etag}"));
                }
                bytes.extend_from_slice(data);
            }
        }
    }
    if problems.is_empty() && md5_b64(&bytes) != upload.md5 {
        problems.push(format!(
            "the assembled file has MD5 {}, {} was declared",
            md5_b64(&bytes),
            upload.md5
        ));
    }
    let Some(artifact) = store.artifacts.get_mut(upload.artifact) else {
        return error("completeMultipartUploadArtifact: no such artifact");
    };
    if !problems.is_empty() {
        let message = format!("completeMultipartUploadArtifact: {}", problems.join("; "));
        artifact.errors.push(message.clone());
        return error(&message);
    }
    artifact.counters.complete_multipart_calls += 1;
    let key = artifact.blob_key(&upload.md5);
    store.blobs.entry(key).or_insert_with(|| Blob {
        bytes,
        birth_artifact_id: upload.birth_artifact_id.clone(),
    });
    if let Some(u) = store.multipart_uploads.get_mut(&upload_id) {
        u.completed = true;
    }
    reply
}

/// `CommitArtifact(artifactID)`.
pub(crate) fn commit_artifact(store: &mut Store, vars: &Value) -> Value {
    let id = vars.get("artifactID").and_then(Value::as_str);
    let Some(index) = id.and_then(|id| store.artifacts.iter().position(|a| a.id == id)) else {
        return error("commitArtifact: no such artifact");
    };
    let missing = missing_content(store, index);
    let next_version = {
        let a = &store.artifacts[index];
        store
            .artifacts
            .iter()
            .filter(|o| {
                o.committed && o.entity == a.entity && o.project == a.project && o.name == a.name
            })
            .count() as u64
    };
    let artifact = &mut store.artifacts[index];
    artifact.counters.commit_calls += 1;
    if artifact.manifest_bytes.is_none() {
        artifact
            .errors
            .push("CommitArtifact before the manifest was uploaded".to_owned());
    }
    for path in missing {
        artifact
            .errors
            .push(format!("CommitArtifact without the content of {path:?}"));
    }
    if !artifact.committed {
        artifact.committed = true;
        artifact.version = Some(next_version);
    }
    json!({"data": {"commitArtifact": {"artifact": {"id": artifact.id, "digest": artifact.digest}}}})
}

/// `UseArtifact(input: {artifactID, entityName, projectName, runName, …})`.
pub(crate) fn use_artifact(store: &mut Store, default_entity: &str, vars: &Value) -> Value {
    let input = vars.get("input").unwrap_or(vars);
    let entity = str_of(input, "entityName").unwrap_or_else(|| default_entity.to_owned());
    let project = str_of(input, "projectName").unwrap_or_default();
    let run = str_of(input, "runName").unwrap_or_default();
    let key: RunKey = (entity, project, run);
    let known = store.runs.contains_key(&key);
    let id = input.get("artifactID").and_then(Value::as_str);
    let Some(artifact) = by_id(store, id) else {
        return error("useArtifact: no such artifact");
    };
    artifact.counters.use_calls += 1;
    if !known {
        artifact.errors.push(format!(
            "UseArtifact by run {:?}, which was never upserted",
            key.2
        ));
    }
    if !artifact.used_by.contains(&key) {
        artifact.used_by.push(key);
    }
    json!({"data": {"useArtifact": {"artifact": {"id": artifact.id}}}})
}

/// Manifest paths (non-reference entries) whose content the server does not hold.
fn missing_content(store: &Store, index: usize) -> Vec<String> {
    let artifact = &store.artifacts[index];
    let Some(manifest) = artifact.manifest_bytes.as_deref().and_then(parse_manifest) else {
        return Vec::new();
    };
    let mut missing = Vec::new();
    if let Some(contents) = manifest.get("contents").and_then(Value::as_object) {
        for (path, entry) in contents {
            if entry.get("ref").is_some_and(|r| !r.is_null()) {
                continue;
            }
            let digest = entry.get("digest").and_then(Value::as_str).unwrap_or("");
            if !store.blobs.contains_key(&artifact.blob_key(digest)) {
                missing.push(path.clone());
            }
        }
    }
    missing
}

fn parse_manifest(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

/// Where an artifact upload URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadTarget {
    /// `/_artifact_upload/{artifact}/{md5 hex}`.
    File { artifact: usize, md5: String },
    /// `/_artifact_manifest/{artifact}`.
    Manifest { artifact: usize },
    /// `/_artifact_upload/{artifact}/{md5 hex}/{upload id}/{part number}`.
    Part { upload_id: String, part: u64 },
}

/// Parses an artifact upload path.
pub(crate) fn upload_target(segments: &[&str]) -> Option<UploadTarget> {
    match segments {
        ["_artifact_upload", index, md5_hex] => Some(UploadTarget::File {
            artifact: index.parse().ok()?,
            md5: md5_hex_to_b64(md5_hex)?,
        }),
        ["_artifact_manifest", index] => Some(UploadTarget::Manifest {
            artifact: index.parse().ok()?,
        }),
        ["_artifact_upload", _, _, upload_id, part] => Some(UploadTarget::Part {
            upload_id: (*upload_id).to_owned(),
            part: part.parse().ok()?,
        }),
        _ => None,
    }
}

/// Applies a PUT; returns the `ETag` to answer with (parts of multipart uploads), or the HTTP
/// status and a message for errors.
pub(crate) fn apply_upload(
    store: &mut Store,
    target: &UploadTarget,
    body: &[u8],
) -> Result<Option<String>, (u16, String)> {
    match target {
        UploadTarget::Part { upload_id, part } => {
            let Some(upload) = store.multipart_uploads.get_mut(upload_id) else {
                return Err((404, "no such upload".to_owned()));
            };
            let artifact = upload.artifact;
            let index = usize::try_from(*part).unwrap_or(usize::MAX);
            let declared = index
                .checked_sub(1)
                .and_then(|i| upload.part_md5.get(i))
                .cloned();
            let got = hex(&Md5::digest(body));
            let outcome = if upload.completed {
                Err((404, format!("upload {upload_id} is already completed")))
            } else {
                match declared {
                    None => Err((400, format!("upload {upload_id} has no part {part}"))),
                    Some(md5) if md5 != got => Err((
                        400,
                        format!("part {part} has MD5 {got}, {md5} was declared for it"),
                    )),
                    Some(_) => {
                        let etag = format!("\"{got}\"");
                        upload.received.insert(*part, (body.to_vec(), etag.clone()));
                        Ok(Some(etag))
                    }
                }
            };
            if let Some(data) = store.artifacts.get_mut(artifact) {
                data.counters.part_puts += 1;
                if let Err((_, message)) = &outcome {
                    data.errors.push(message.clone());
                }
            }
            outcome
        }
        UploadTarget::File { artifact, md5 } => {
            let Some(data) = store.artifacts.get_mut(*artifact) else {
                return Err((404, "no such artifact".to_owned()));
            };
            data.counters.file_puts += 1;
            let got = md5_b64(body);
            if got != *md5 {
                let message =
                    format!("uploaded content has MD5 {got}, the upload URL was issued for {md5}");
                data.errors.push(message.clone());
                return Err((400, message));
            }
            let key = data.blob_key(md5);
            let id = data.id.clone();
            store.blobs.entry(key).or_insert_with(|| Blob {
                bytes: body.to_vec(),
                birth_artifact_id: id,
            });
            Ok(None)
        }
        UploadTarget::Manifest { artifact } => {
            let Some(data) = store.artifacts.get_mut(*artifact) else {
                return Err((404, "no such artifact".to_owned()));
            };
            data.counters.manifest_puts += 1;
            if parse_manifest(body).is_none() {
                data.errors
                    .push("the uploaded manifest is not JSON".to_owned());
            }
            if let Some(declared) = &data.manifest_digest {
                let got = md5_b64(body);
                if got != *declared {
                    data.errors.push(format!(
                        "uploaded manifest has MD5 {got}, {declared} was declared"
                    ));
                }
            }
            data.manifest_bytes = Some(body.to_vec());
            Ok(None)
        }
    }
}

/// The bytes a GET on an artifact upload URL returns.
pub(crate) fn download(store: &Store, target: &UploadTarget) -> Option<Vec<u8>> {
    match target {
        UploadTarget::File { artifact, md5 } => {
            let data = store.artifacts.get(*artifact)?;
            store
                .blobs
                .get(&data.blob_key(md5))
                .map(|b| b.bytes.clone())
        }
        UploadTarget::Manifest { artifact } => {
            store.artifacts.get(*artifact)?.manifest_bytes.clone()
        }
        UploadTarget::Part { .. } => None,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Builds the public snapshot of every artifact.
pub(crate) fn snapshot(store: &Store) -> Vec<ArtifactState> {
    store
        .artifacts
        .iter()
        .map(|a| snapshot_one(store, a))
        .collect()
}

fn snapshot_one(store: &Store, a: &ArtifactData) -> ArtifactState {
    let mut errors = a.errors.clone();
    let manifest = a.manifest_bytes.as_deref().and_then(parse_manifest);
    let mut files = BTreeMap::new();
    let stored = |digest: &str| -> Option<&Blob> { store.blobs.get(&a.blob_key(digest)) };
    match manifest
        .as_ref()
        .and_then(|m| m.get("contents"))
        .and_then(Value::as_object)
    {
        Some(contents) => {
            for (path, entry) in contents {
                let digest = entry
                    .get("digest")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let reference = entry.get("ref").and_then(Value::as_str).map(str::to_owned);
                let blob = if reference.is_some() {
                    None
                } else {
                    stored(&digest)
                };
                files.insert(
                    path.clone(),
                    ArtifactFile {
                        size: entry.get("size").and_then(Value::as_u64),
                        reference,
                        stored: blob.is_some(),
                        sha256: blob.map(|b| sha256_hex(&b.bytes)),
                        digest_matches: blob.is_some_and(|b| md5_b64(&b.bytes) == digest),
                        birth_artifact_id: entry
                            .get("birthArtifactID")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        digest,
                    },
                );
            }
        }
        None => {
            if a.manifest_bytes.is_some() {
                errors.push("the uploaded manifest has no contents".to_owned());
            }
            for (path, requested) in &a.requested {
                let blob = stored(&requested.md5);
                files.insert(
                    path.clone(),
                    ArtifactFile {
                        digest: requested.md5.clone(),
                        size: blob.map(|b| b.bytes.len() as u64),
                        reference: None,
                        stored: blob.is_some(),
                        sha256: blob.map(|b| sha256_hex(&b.bytes)),
                        digest_matches: blob.is_some(),
                        birth_artifact_id: Some(requested.birth_artifact_id.clone()),
                    },
                );
            }
        }
    }
    let metadata = a
        .metadata_raw
        .as_deref()
        .map(|raw| serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())));
    ArtifactState {
        id: a.id.clone(),
        entity: a.entity.clone(),
        project: a.project.clone(),
        artifact_type: a.artifact_type.clone(),
        name: a.name.clone(),
        version: a.version.map(|v| format!("v{v}")),
        digest: a.digest.clone(),
        description: a.description.clone(),
        metadata,
        aliases: a.aliases.clone(),
        tags: a.tags.clone(),
        client_id: a.client_id.clone(),
        sequence_client_id: a.sequence_client_id.clone(),
        ttl_duration_seconds: a.ttl_duration_seconds,
        state: if a.committed { "COMMITTED" } else { "PENDING" }.to_owned(),
        committed: a.committed,
        created_by: a.created_by.as_ref().map(|k| k.2.clone()),
        used_by: a.used_by.iter().map(|k| k.2.clone()).collect(),
        files,
        manifest,
        manifest_digest: a.manifest_digest.clone(),
        counters: a.counters.clone(),
        errors,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn md5_hex_and_base64_round_trip() {
        let b = md5_b64(b"alpha\n");
        assert_eq!(b, "n5+Q2+Pl7hIYyGuIOdsZlQ==");
        let h = md5_b64_to_hex(&b).unwrap();
        assert_eq!(md5_hex_to_b64(&h).unwrap(), b);
        assert_eq!(md5_hex_to_b64("zz"), None);
    }

    #[test]
    fn create_upload_commit_and_dedup() {
        let mut store = Store::default();
        let vars = json!({"input": {"entityName": "", "projectName": "p",
            "artifactCollectionName": "ds", "artifactTypeName": "dataset", "digest": "d1",
            "aliases": [{"alias": "latest", "artifactCollectionName": "ds"}], "runName": "r"}});
        let reply = create_artifact(&mut store, "e", &vars);
        assert_eq!(
            reply["data"]["createArtifact"]["artifact"]["state"],
            "PENDING"
        );
        let id = reply["data"]["createArtifact"]["artifact"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let md5 = md5_b64(b"alpha\n");
        let files = json!({"input": {"storageLayout": "V2", "artifactFiles": [
            {"artifactID": id, "name": "a.txt", "md5": md5, "artifactManifestID": null}]}});
        let reply = create_artifact_files(&mut store, "http://h", &files);
        let url = reply["data"]["createArtifactFiles"]["files"]["edges"][0]["node"]["uploadUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = url.strip_prefix("http://h/").unwrap();
        let segments: Vec<&str> = path.split('/').collect();
        let target = upload_target(&segments).unwrap();
        assert!(apply_upload(&mut store, &target, b"wrong").is_err());
        apply_upload(&mut store, &target, b"alpha\n").unwrap();
        // A second artifact with the same content gets no upload URL.
        let reply = create_artifact_files(&mut store, "http://h", &files);
        assert!(
            reply["data"]["createArtifactFiles"]["files"]["edges"][0]["node"]["uploadUrl"]
                .is_null()
        );
        let manifest = format!(
            r#"{{"version":1,"storagePolicy":"wandb-storage-policy-v1","storagePolicyConfig":{{"storageLayout":"V2"}},"contents":{{"a.txt":{{"digest":"{md5}","size":6}},"r":{{"digest":"x","ref":"s3://b/k","size":1}}}}}}"#
        );
        apply_upload(
            &mut store,
            &UploadTarget::Manifest { artifact: 0 },
            manifest.as_bytes(),
        )
        .unwrap();
        commit_artifact(&mut store, &json!({"artifactID": id}));
        let again = create_artifact(&mut store, "e", &vars);
        assert_eq!(
            again["data"]["createArtifact"]["artifact"]["state"],
            "COMMITTED"
        );
        let state = snapshot(&store);
        assert_eq!(state.len(), 1);
        let a = &state[0];
        assert_eq!(a.entity, "e");
        assert_eq!(a.version.as_deref(), Some("v0"));
        assert!(a.committed);
        // The run was never upserted and the first PUT had the wrong bytes: both are noted.
        assert_eq!(a.errors.len(), 2, "{:?}", a.errors);
        assert!(a.errors[1].contains("MD5"), "{:?}", a.errors);
        assert!(a.files["a.txt"].stored && a.files["a.txt"].digest_matches);
        assert_eq!(a.files["r"].reference.as_deref(), Some("s3://b/k"));
        assert_eq!(a.counters.create_calls, 2);
        assert_eq!(a.counters.file_puts, 2);
        assert_eq!(store.blobs.len(), 1);
    }

    #[test]
    fn multipart_parts_are_checked_and_assembled() {
        let mut store = Store::default();
        let vars = json!({"input": {"projectName": "p", "artifactCollectionName": "m",
            "artifactTypeName": "model", "digest": "d"}});
        let reply = create_artifact(&mut store, "e", &vars);
        let id = reply["data"]["createArtifact"]["artifact"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let parts: [&[u8]; 2] = [b"first part ", b"second"];
        let whole = [parts[0], parts[1]].concat();
        let declared: Vec<Value> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"partNumber": i + 1, "hexMD5": hex(&Md5::digest(p))}))
            .collect();
        let files = json!({"input": {"artifactFiles": [{"artifactID": id, "name": "w.bin",
            "md5": md5_b64(&whole), "uploadPartsInput": declared}]}});
        let reply = create_artifact_files(&mut store, "http://h", &files);
        let node = &reply["data"]["createArtifactFiles"]["files"]["edges"][0]["node"];
        let upload_id = node["uploadMultipartUrls"]["uploadID"].as_str().unwrap();
        let storage_path = node["storagePath"].as_str().unwrap();
        let mut etags = Vec::new();
        for (i, part) in node["uploadMultipartUrls"]["uploadUrlParts"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let url = part["uploadUrl"].as_str().unwrap();
            let segments: Vec<&str> = url.strip_prefix("http://h/").unwrap().split('/').collect();
            let target = upload_target(&segments).unwrap();
            // Bytes that are not the part's are refused.
            assert_eq!(
                apply_upload(&mut store, &target, b"junk").unwrap_err().0,
                400
            );
            etags.push(
                apply_upload(&mut store, &target, parts[i])
                    .unwrap()
                    .unwrap(),
            );
        }
        let complete = |etags: &[String]| {
            json!({"completeMultipartAction": "Complete", "artifactID": id,
                "storagePath": storage_path, "uploadID": upload_id,
                "completedParts": etags.iter().enumerate()
                    .map(|(i, e)| json!({"partNumber": i + 1, "hexMD5": e}))
                    .collect::<Vec<_>>()})
        };
        // Parts named with the wrong ETags (swapped) are refused, and nothing is stored.
        let swapped = [etags[1].clone(), etags[0].clone()];
        assert!(complete_multipart_upload(&mut store, &complete(&swapped))["errors"].is_array());
        assert!(store.blobs.is_empty());
        let reply = complete_multipart_upload(&mut store, &complete(&etags));
        assert_eq!(
            reply["data"]["completeMultipartUploadArtifact"]["digest"],
            md5_b64(&whole)
        );
        assert_eq!(store.blobs.values().next().unwrap().bytes, whole);
        // A repeat (a lost reply) answers the same.
        let again = complete_multipart_upload(&mut store, &complete(&etags));
        assert_eq!(again, reply);
        assert_eq!(store.artifacts[0].counters.complete_multipart_calls, 2);
        assert_eq!(store.artifacts[0].counters.part_puts, 4);
    }
}

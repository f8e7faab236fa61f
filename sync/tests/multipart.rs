//! Multipart uploads of large artifact files, as wandb-core makes them: a file at or above the
//! threshold (2 GiB; lowered here with the hidden `--multipart-threshold`) is sent with the MD5
//! of each part, each part is PUT to its URL and answered with an ETag, and
//! `CompleteMultipartUploadArtifact` assembles it. The file the server reassembles is the
//! staged file byte for byte, through faults on parts and on the complete call and a `kill -9`
//! midway; a server that hands out no part URLs gets a single PUT.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use wandb_format::Writer;
use wandb_format::proto::record::RecordType;
use wandb_format::proto::{ArtifactManifest, ArtifactManifestEntry, ArtifactRecord, Record};
use wandb_sync::{RunResult, SyncOptions, sync_paths};
use wandb_testkit::{ArtifactState, BackendState, FaultAction, FaultRule, Route, TestBackend};

use crate::common::{RunSpec, options, records};

const MIB: u64 = 1 << 20;

/// Deterministic bytes that differ from part to part.
fn content(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn md5_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn wandb_digest(entries: &[ArtifactManifestEntry]) -> String {
    let mut lines: Vec<String> = entries
        .iter()
        .map(|e| format!("{}:{}\n", e.path, e.digest))
        .collect();
    lines.sort();
    hex(&Md5::digest(
        format!("wandb-artifact-manifest-v1\n{}", lines.concat()).as_bytes(),
    ))
}

/// A run logging one artifact `model` with `files` staged in `staging`; returns the `.wandb`.
fn write_run(home: &Path, run_id: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let staging = home.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let dir = home.join(format!("wandb/offline-run-20260101_000000-{run_id}"));
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let mut contents = Vec::new();
    for (name, bytes) in files {
        let staged = staging.join(name);
        std::fs::write(&staged, bytes).unwrap();
        contents.push(ArtifactManifestEntry {
            path: (*name).into(),
            digest: md5_b64(bytes),
            size: bytes.len() as i64,
            local_path: staged.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    let mut all = records(&RunSpec::new(run_id, 5));
    let exit = all.pop().unwrap();
    all.push(Record {
        record_type: Some(RecordType::Artifact(ArtifactRecord {
            run_id: run_id.into(),
            project: "proj".into(),
            r#type: "model".into(),
            name: "model".into(),
            digest: wandb_digest(&contents),
            finalize: true,
            client_id: format!("client-{run_id}"),
            sequence_client_id: format!("seq-{run_id}"),
            manifest: Some(ArtifactManifest {
                version: 1,
                storage_policy: "wandb-storage-policy-v1".into(),
                contents,
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    });
    all.push(exit);
    let path = dir.join(format!("run-{run_id}.wandb"));
    let mut writer = Writer::create(&path).unwrap();
    for record in &all {
        writer.append_record(record).unwrap();
    }
    writer.close().unwrap();
    path
}

fn multipart_options(backend: &TestBackend, path: &Path, threshold: u64, part: u64) -> SyncOptions {
    let mut opts = options(backend, vec![path.to_path_buf()]);
    opts.multipart_threshold = threshold;
    opts.multipart_part_size = part;
    opts
}

/// The one artifact is committed once, with each file stored byte for byte.
fn assert_reassembled<'s>(
    state: &'s BackendState,
    files: &[(&str, &[u8])],
    what: &str,
) -> &'s ArtifactState {
    assert_eq!(state.artifacts.len(), 1, "{what}: artifact versions");
    let artifact = &state.artifacts[0];
    assert!(artifact.committed, "{what}: not committed");
    assert_eq!(artifact.version.as_deref(), Some("v0"), "{what}");
    assert_eq!(artifact.counters.manifest_puts, 1, "{what}");
    for (name, bytes) in files {
        let file = artifact.file(name).unwrap();
        assert!(file.stored && file.digest_matches, "{what}: {name}");
        assert_eq!(
            file.sha256.as_deref(),
            Some(hex(&Sha256::digest(bytes)).as_str()),
            "{what}: {name} is not the staged file"
        );
    }
    artifact
}

/// The `uploadPartsInput` of each `CreateArtifactFiles` request, by file name.
fn parts_requested(state: &BackendState) -> Vec<(String, serde_json::Value)> {
    state
        .request_log
        .iter()
        .filter(|e| e.operation.as_deref() == Some("CreateArtifactFiles"))
        .filter_map(|e| e.variables.as_ref())
        .filter_map(|v| {
            v.pointer("/input/artifactFiles")
                .and_then(|f| f.as_array())
                .cloned()
        })
        .flatten()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or_default().to_owned(),
                f["uploadPartsInput"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_large_file_goes_up_in_parts_and_is_reassembled_byte_for_byte() {
    let backend = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    // Above the 16 MiB the sync keeps in memory: the parts are read from the temp-file copy.
    let big = content(17 * MIB + 12_345, 1);
    let small = content(3000, 2);
    let files: [(&str, &[u8]); 2] = [("weights.bin", &big), ("config.json", &small)];
    let path = write_run(home.path(), "mpart", &files);
    let report = sync_paths(&multipart_options(&backend, &path, 8 * MIB, 4 * MIB)).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    let state = backend.state();
    let artifact = assert_reassembled(&state, &files, "multipart");
    assert!(artifact.errors.is_empty(), "{:?}", artifact.errors);
    assert_eq!(artifact.counters.multipart_uploads, 1);
    assert_eq!(artifact.counters.part_puts, 5);
    assert_eq!(artifact.counters.complete_multipart_calls, 1);
    // The small file went up as one PUT, with no parts asked for.
    assert_eq!(artifact.counters.file_puts, 1);
    let asked = parts_requested(&state);
    let by_name = |name: &str| asked.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert!(by_name("config.json").is_null());
    let expected: Vec<serde_json::Value> = big
        .chunks(4 * MIB as usize)
        .enumerate()
        .map(
            |(i, part)| serde_json::json!({"partNumber": i + 1, "hexMD5": hex(&Md5::digest(part))}),
        )
        .collect();
    assert_eq!(by_name("weights.bin"), serde_json::Value::Array(expected));
    // Each part PUT carried the part's Content-MD5 (the backend refuses a part whose bytes do
    // not have the MD5 declared for it): no errors, one complete call.
    assert!(state.runs[0].complete);

    // Below the threshold nothing goes up in parts (wandb-core's 2 GiB by default).
    let other = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let path = write_run(home.path(), "mpart", &files);
    let report = sync_paths(&options(&other, vec![path])).unwrap();
    assert_eq!(report.runs[0].result, RunResult::Synced);
    let state = other.state();
    let artifact = assert_reassembled(&state, &files, "default threshold");
    assert_eq!(artifact.counters.multipart_uploads, 0);
    assert_eq!(artifact.counters.file_puts, 2);
}

#[test]
fn faults_on_parts_and_on_the_complete_call_leave_the_file_whole_and_committed_once() {
    let complete = || Route::GraphqlOperation("CompleteMultipartUploadArtifact".into());
    // (what, fault, part PUTs applied (least, most), complete calls applied, multipart uploads)
    type Case = (&'static str, FaultRule, (u64, u64), u64, u64);
    let cases: Vec<Case> = vec![
        (
            "503 on a part",
            FaultRule::new(Route::ArtifactUpload, FaultAction::Status { code: 503 })
                .after(1)
                .times(2),
            (3, 3),
            1,
            1,
        ),
        (
            "reset on a part",
            FaultRule::new(Route::ArtifactUpload, FaultAction::Reset).after(2),
            (3, 3),
            1,
            1,
        ),
        // The part was stored but its reply (with the ETag) was lost: it is sent again.
        (
            "dropped reply of a part",
            FaultRule::new(Route::ArtifactUpload, FaultAction::DropResponse).after(1),
            (4, 4),
            1,
            1,
        ),
        (
            "500 on the complete call",
            FaultRule::new(complete(), FaultAction::Status { code: 500 }),
            (3, 3),
            1,
            1,
        ),
        (
            "reset on the complete call",
            FaultRule::new(complete(), FaultAction::Reset),
            (3, 3),
            1,
            1,
        ),
        // Assembled, reply lost: completing the same upload again answers the same.
        (
            "dropped reply of the complete call",
            FaultRule::new(complete(), FaultAction::DropResponse),
            (3, 3),
            2,
            1,
        ),
        // A permanent refusal ends the run; the re-run starts a new upload.
        (
            "400 on the complete call",
            FaultRule::new(complete(), FaultAction::Status { code: 400 }),
            (6, 6),
            1,
            2,
        ),
        (
            "404 on a part",
            FaultRule::new(Route::ArtifactUpload, FaultAction::Status { code: 404 }).after(1),
            // The parts in flight when the refusal came finish (at most two of three).
            (4, 5),
            1,
            2,
        ),
    ];
    let big = content(2 * MIB + 777, 3);
    let files: [(&str, &[u8]); 1] = [("ckpt.pt", &big)];
    for (what, rule, part_puts, completes, uploads) in cases {
        let backend = TestBackend::start().unwrap();
        let home = tempfile::tempdir().unwrap();
        let path = write_run(home.path(), "mfault", &files);
        backend.faults().push(rule);
        // In memory (below 16 MiB): the parts are slices of the snapshot.
        let opts = multipart_options(&backend, &path, MIB, MIB);
        let first = sync_paths(&opts).unwrap();
        assert!(
            backend.faults().injected_count() > 0,
            "{what}: no fault injected"
        );
        if first.runs[0].result != RunResult::Synced {
            assert_eq!(first.runs[0].result, RunResult::Failed, "{what}");
            let second = sync_paths(&opts).unwrap();
            assert_eq!(second.runs[0].result, RunResult::Synced, "{what}: re-run");
        }
        let state = backend.state();
        let artifact = assert_reassembled(&state, &files, what);
        let puts = artifact.counters.part_puts;
        assert!(
            (part_puts.0..=part_puts.1).contains(&puts),
            "{what}: {puts} part PUTs, expected {part_puts:?}"
        );
        assert_eq!(
            artifact.counters.complete_multipart_calls, completes,
            "{what}: completes"
        );
        assert_eq!(
            artifact.counters.multipart_uploads, uploads,
            "{what}: uploads"
        );
        assert_eq!(artifact.counters.commit_calls, 1, "{what}: commits");
        assert_eq!(artifact.counters.file_puts, 0, "{what}: single PUTs");
    }
}

#[test]
fn kill_9_midway_through_the_parts_restarts_the_upload_and_commits_once() {
    let backend = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let big = content(6 * MIB, 4);
    let files: [(&str, &[u8]); 1] = [("ckpt.pt", &big)];
    let path = write_run(home.path(), "mkill", &files);
    // The fourth part PUT never gets an answer; the process is killed while it waits.
    backend
        .faults()
        .push(FaultRule::new(Route::ArtifactUpload, FaultAction::Stall).after(3));
    let command = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wandb-sync"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WANDB_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(home.path())
            .env("HOME", home.path())
            .env("WANDB_CONFIG_DIR", home.path().join("config"))
            .env("WANDB_BASE_URL", backend.base_url())
            .env("WANDB_API_KEY", backend.api_key())
            .env("WANDB_SYNC_TEST_FAST_RETRY", "1")
            .env("NETRC", home.path().join("no-netrc"))
            .args([
                "--multipart-threshold",
                "1048576",
                "--multipart-part-size",
                "1048576",
            ])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut child = command().spawn().unwrap();
    let waiting = backend.wait_for(Duration::from_secs(30), |s| {
        s.artifacts
            .first()
            .is_some_and(|a| a.counters.part_puts >= 5)
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = waiting.expect("the sync never sent five parts");
    assert!(before.artifacts.iter().all(|a| !a.committed));
    assert_eq!(before.artifacts[0].counters.complete_multipart_calls, 0);
    backend.faults().clear();

    let status = command().status().unwrap();
    assert!(status.success(), "re-run failed: {status:?}");
    let state = backend.state();
    let artifact = assert_reassembled(&state, &files, "after kill -9");
    // The part URLs come only with a new upload (CreateArtifactFiles starts one each time, and
    // nothing lists the parts an upload already has): the re-run sends all six parts again.
    assert_eq!(artifact.counters.multipart_uploads, 2);
    assert_eq!(artifact.counters.part_puts, 5 + 6);
    assert_eq!(artifact.counters.complete_multipart_calls, 1);
    assert_eq!(artifact.counters.commit_calls, 1);
}

#[test]
fn a_server_without_part_urls_gets_a_single_put() {
    let backend = TestBackend::start().unwrap();
    backend.set_multipart_uploads(false);
    let home = tempfile::tempdir().unwrap();
    let big = content(3 * MIB + 5, 5);
    let files: [(&str, &[u8]); 1] = [("ckpt.pt", &big)];
    let path = write_run(home.path(), "msingle", &files);
    let report = sync_paths(&multipart_options(&backend, &path, MIB, MIB)).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    let state = backend.state();
    let artifact = assert_reassembled(&state, &files, "no part URLs");
    // The parts were offered (uploadPartsInput), the server gave one upload URL.
    let asked = parts_requested(&state);
    assert_eq!(asked[0].1.as_array().map(Vec::len), Some(4));
    assert_eq!(artifact.counters.multipart_uploads, 0);
    assert_eq!(artifact.counters.part_puts, 0);
    assert_eq!(artifact.counters.file_puts, 1);
    assert!(artifact.errors.is_empty(), "{:?}", artifact.errors);
}

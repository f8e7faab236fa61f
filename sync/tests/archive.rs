//! Archives written by `wandb-archive`: `wandb-sync runs.tar.zst` gives the server what the run
//! folders give, and keeps its state in `runs.tar.zst.sync/`, so a second sync skips the run.

#![allow(clippy::unwrap_used)]

use wandb_archive::{PackOptions, pack};
use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::TestBackend;

use crate::common::{RunSpec, assert_clean, assert_same, essence, options, write_run};

#[test]
fn an_archive_syncs_like_its_folders_and_resumes_from_its_state() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("arch", 400);
    spec.console_every = 100;
    let run = write_run(&home.path().join("wandb"), &spec);
    let archive = home.path().join("moved/runs.tar.zst");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    pack(&PackOptions {
        inputs: vec![run.clone()],
        output: archive.clone(),
        level: 1,
        threads: 2,
        remove_source: false,
        repack: false,
        progress: None,
    })
    .unwrap();

    let from_folder = TestBackend::start().unwrap();
    let report = sync_paths(&options(&from_folder, vec![run])).unwrap();
    assert!(report.runs.iter().all(|r| r.result == RunResult::Synced));
    let from_archive = TestBackend::start().unwrap();
    let report = sync_paths(&options(&from_archive, vec![archive.clone()])).unwrap();
    assert_eq!(report.runs.len(), 1);
    assert!(report.runs.iter().all(|r| r.result == RunResult::Synced));
    let want = from_folder.state();
    let got = from_archive.state();
    assert_eq!(got.runs.len(), 1);
    assert_clean(&got.runs[0]);
    assert_same(
        &essence(&want.runs[0]),
        &essence(&got.runs[0]),
        "archive vs folder",
    );

    // The state is next to the archive; a second sync skips the synced run.
    let state = home.path().join("moved/runs.tar.zst.sync");
    let synced = std::fs::read_dir(&state)
        .unwrap()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).unwrap())
        .any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wandb.synced")
        });
    assert!(synced);
    let again = sync_paths(&options(&from_archive, vec![archive])).unwrap();
    assert!(again.runs.iter().all(|r| r.result != RunResult::Synced));
}

#[test]
fn staged_artifact_files_travel_in_the_archive() {
    use base64::Engine as _;
    use md5::Digest as _;
    use wandb_format::Writer;
    use wandb_format::proto::record::RecordType;
    use wandb_format::proto::{ArtifactManifest, ArtifactManifestEntry, ArtifactRecord, Record};

    let home = tempfile::tempdir().unwrap();
    let staging = home.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let content = b"model weights".repeat(100);
    let staged = staging.join("model.bin");
    std::fs::write(&staged, &content).unwrap();
    let spec = RunSpec::new("artarch", 20);
    let mut all = crate::common::records(&spec);
    let exit = all.pop().unwrap();
    let digest = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&content));
    all.push(Record {
        record_type: Some(RecordType::Artifact(ArtifactRecord {
            run_id: "artarch".into(),
            project: "proj".into(),
            r#type: "model".into(),
            name: "weights".into(),
            digest: "d".into(),
            finalize: true,
            client_id: "client-artarch".into(),
            sequence_client_id: "seq-artarch".into(),
            manifest: Some(ArtifactManifest {
                version: 1,
                storage_policy: "wandb-storage-policy-v1".into(),
                contents: vec![ArtifactManifestEntry {
                    path: "model.bin".into(),
                    digest,
                    size: content.len() as i64,
                    local_path: staged.to_string_lossy().into_owned(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    });
    all.push(exit);
    let dir = home
        .path()
        .join("wandb/offline-run-20260101_000000-artarch");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let mut writer = Writer::create(dir.join("run-artarch.wandb")).unwrap();
    for record in &all {
        writer.append_record(record).unwrap();
    }
    writer.close().unwrap();
    let archive = home.path().join("runs.tar.zst");
    pack(&PackOptions {
        inputs: vec![dir],
        output: archive.clone(),
        level: 1,
        threads: 1,
        remove_source: true,
        repack: false,
        progress: None,
    })
    .unwrap();
    // The staged file is gone from this machine, as on the machine the archive was carried to.
    std::fs::remove_file(&staged).unwrap();
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![archive])).unwrap();
    assert!(
        report.runs.iter().all(|r| r.result == RunResult::Synced),
        "{:?}",
        report.runs
    );
    let state = backend.state();
    let versions = state.artifacts_named("weights");
    assert_eq!(versions.len(), 1);
    assert!(versions[0].committed);
    let file = versions[0].file("model.bin").unwrap();
    assert!(file.stored && file.digest_matches);
}

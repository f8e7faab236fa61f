//! Artifacts: uploaded as wandb-core uploads them, committed exactly once through faults,
//! crashes and re-syncs, with nothing the server holds uploaded again; staged files that are
//! missing or changed are reported; `use_artifact` records reach the server once; and on a run
//! written by the official SDK (a Table, `log_artifact` of a file and of a directory, a
//! reference) our sync and the official `wandb sync` leave the same artifacts.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use wandb_format::Writer;
use wandb_format::proto::record::RecordType;
use wandb_format::proto::{
    ArtifactManifest, ArtifactManifestEntry, ArtifactRecord, Record, StoragePolicyConfigItem,
    UseArtifactRecord,
};
use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::compare::artifacts_essence;
use wandb_testkit::{ArtifactState, BackendState, FaultAction, FaultRule, Route, TestBackend};

use crate::common::{RunSpec, options, records, sdk_python};

/// One artifact of a synthetic run: files staged outside the run folder, and references.
struct Spec {
    name: String,
    kind: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    refs: Vec<(&'static str, &'static str)>,
    aliases: Vec<&'static str>,
}

/// The three artifacts of a typical run: a Table, a model file, a directory with a reference.
fn standard(run_id: &str) -> Vec<Spec> {
    vec![
        Spec {
            name: format!("run-{run_id}-tbl"),
            kind: "run_table",
            files: vec![(
                "tbl.table.json",
                br#"{"columns":["x","y"],"data":[[1,"a"],[2,"b"]]}"#.to_vec(),
            )],
            refs: vec![],
            aliases: vec!["latest"],
        },
        Spec {
            name: "model".into(),
            kind: "model",
            files: vec![(
                "weights.bin",
                (0..65_536u32).map(|i| (i % 251) as u8).collect(),
            )],
            refs: vec![],
            aliases: vec!["latest", "best"],
        },
        Spec {
            name: "dataset".into(),
            kind: "dataset",
            files: vec![
                ("a.txt", b"alpha\n".to_vec()),
                ("sub/b.txt", b"beta\n".to_vec()),
            ],
            refs: vec![("remote.csv", "s3://bucket/remote.csv")],
            aliases: vec!["latest"],
        },
    ]
}

/// Files the server must receive for [`standard`] (references are never uploaded).
const STANDARD_FILES: u64 = 4;

fn md5_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

/// W&B's artifact digest, written out independently of the syncer's.
fn wandb_digest(entries: &[ArtifactManifestEntry]) -> String {
    let mut lines: Vec<String> = entries
        .iter()
        .map(|e| format!("{}:{}\n", e.path, e.digest))
        .collect();
    lines.sort();
    let text = format!("wandb-artifact-manifest-v1\n{}", lines.concat());
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn artifact_record(run_id: &str, spec: &Spec, staging: &Path) -> Record {
    let mut contents = Vec::new();
    for (path, bytes) in &spec.files {
        let staged = staging.join(format!("{}-{}", spec.name, path.replace('/', "_")));
        std::fs::write(&staged, bytes).unwrap();
        contents.push(ArtifactManifestEntry {
            path: (*path).into(),
            digest: md5_b64(bytes),
            size: bytes.len() as i64,
            local_path: staged.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    for (path, uri) in &spec.refs {
        contents.push(ArtifactManifestEntry {
            path: (*path).into(),
            digest: format!("etag-{path}"),
            r#ref: (*uri).into(),
            size: 10,
            ..Default::default()
        });
    }
    Record {
        record_type: Some(RecordType::Artifact(ArtifactRecord {
            run_id: run_id.into(),
            project: "proj".into(),
            r#type: spec.kind.into(),
            name: spec.name.clone(),
            digest: wandb_digest(&contents),
            aliases: spec.aliases.iter().map(|a| (*a).to_owned()).collect(),
            finalize: true,
            client_id: format!("client-{run_id}-{}", spec.name),
            sequence_client_id: format!("seq-{run_id}-{}", spec.name),
            metadata: r#"{"k":1}"#.into(),
            manifest: Some(ArtifactManifest {
                version: 1,
                storage_policy: "wandb-storage-policy-v1".into(),
                storage_policy_config: vec![StoragePolicyConfigItem {
                    key: "storageLayout".into(),
                    value_json: "\"V2\"".into(),
                }],
                contents,
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Writes a run with `specs` logged as artifacts and `uses` as `use_artifact` records (before
/// the exit record), staging the files in `staging`; returns the `.wandb` file.
fn write_artifact_run(
    wandb_dir: &Path,
    staging: &Path,
    run_id: &str,
    specs: &[Spec],
    uses: &[UseArtifactRecord],
) -> PathBuf {
    std::fs::create_dir_all(staging).unwrap();
    let dir = wandb_dir.join(format!("offline-run-20260101_000000-{run_id}"));
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let mut all = records(&RunSpec::new(run_id, 20));
    let exit = all.pop().unwrap();
    for spec in specs {
        all.push(artifact_record(run_id, spec, staging));
    }
    for used in uses {
        all.push(Record {
            record_type: Some(RecordType::UseArtifact(used.clone())),
            ..Default::default()
        });
    }
    all.push(exit);
    let path = dir.join(format!("run-{run_id}.wandb"));
    let mut writer = Writer::create(&path).unwrap();
    for record in &all {
        writer.append_record(record).unwrap();
    }
    writer.close().unwrap();
    path
}

fn total(state: &BackendState, count: impl Fn(&ArtifactState) -> u64) -> u64 {
    state.artifacts.iter().map(count).sum()
}

/// Every artifact of [`standard`] is on the server once, committed, with every file's content
/// (as staged), and no protocol error.
fn assert_complete(state: &BackendState, run_id: &str, staging: &Path, what: &str) {
    let specs = standard(run_id);
    assert_eq!(
        state.artifacts.len(),
        specs.len(),
        "{what}: artifact versions"
    );
    for spec in &specs {
        let versions = state.artifacts_named(&spec.name);
        assert_eq!(versions.len(), 1, "{what}: versions of {}", spec.name);
        let artifact = versions[0];
        assert!(artifact.committed, "{what}: {} not committed", spec.name);
        assert_eq!(artifact.version.as_deref(), Some("v0"), "{what}");
        assert_eq!(artifact.created_by.as_deref(), Some(run_id), "{what}");
        assert!(artifact.errors.is_empty(), "{what}: {:?}", artifact.errors);
        assert_eq!(artifact.counters.manifest_puts, 1, "{what}: {}", spec.name);
        for (path, bytes) in &spec.files {
            let file = artifact.file(path).unwrap();
            assert!(file.stored && file.digest_matches, "{what}: {path}");
            let staged = staging.join(format!("{}-{}", spec.name, path.replace('/', "_")));
            assert_eq!(std::fs::read(staged).unwrap(), *bytes, "{what}");
        }
        for (path, uri) in &spec.refs {
            let file = artifact.file(path).unwrap();
            assert_eq!(file.reference.as_deref(), Some(*uri), "{what}");
            assert!(!file.stored, "{what}: a reference was uploaded");
        }
        assert_eq!(
            artifact.files.len(),
            spec.files.len() + spec.refs.len(),
            "{what}: files of {}",
            spec.name
        );
    }
}

#[test]
fn artifacts_are_committed_once_and_never_uploaded_twice() {
    let backend = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let staging = home.path().join("staging");
    let path = write_artifact_run(
        &home.path().join("wandb"),
        &staging,
        "artrun",
        &standard("artrun"),
        &[],
    );
    // A dry run lists the artifacts and sends nothing.
    let mut dry = options(&backend, vec![path.clone()]);
    dry.dry_run = true;
    let report = sync_paths(&dry).unwrap();
    assert_eq!(report.runs[0].result, RunResult::DryRun);
    let planned: Vec<(&str, u64, u64)> = report.runs[0]
        .artifacts
        .iter()
        .map(|a| (a.name.as_str(), a.files, a.references))
        .collect();
    assert_eq!(
        planned,
        [("run-artrun-tbl", 1, 0), ("model", 1, 0), ("dataset", 2, 1)]
    );
    assert_eq!(report.runs[0].artifacts[1].bytes, 65_536);
    assert!(backend.state().artifacts.is_empty());

    let report = sync_paths(&options(&backend, vec![path.clone()])).unwrap();
    assert_eq!(report.runs[0].artifacts.len(), 3);
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    let state = backend.state();
    assert_complete(&state, "artrun", &staging, "first sync");
    assert_eq!(total(&state, |a| a.counters.file_puts), STANDARD_FILES);
    let model = state.artifacts_named("model")[0];
    assert_eq!(model.aliases, ["latest", "best"]);
    assert_eq!(model.metadata, Some(serde_json::json!({"k": 1})));
    assert_eq!(model.artifact_type, "model");
    assert!(state.runs[0].complete);

    // A re-sync with the ledger sends nothing for committed artifacts.
    let mut opts = options(&backend, vec![path.clone()]);
    opts.include_synced = true;
    let report = sync_paths(&opts).unwrap();
    assert_eq!(report.runs[0].result, RunResult::Synced);
    let again = backend.state();
    assert_eq!(artifacts_essence(&again), artifacts_essence(&state));
    assert_eq!(total(&again, |a| a.counters.create_calls), 3);
    assert_eq!(total(&again, |a| a.counters.file_puts), STANDARD_FILES);

    // Without the ledger, the server's digests say the artifacts are committed: no uploads.
    let mut ledger = path.as_os_str().to_owned();
    ledger.push(".ledger.json");
    std::fs::remove_file(PathBuf::from(ledger)).unwrap();
    let report = sync_paths(&opts).unwrap();
    assert_eq!(report.runs[0].result, RunResult::Synced);
    let fresh = backend.state();
    assert_eq!(artifacts_essence(&fresh), artifacts_essence(&state));
    assert_eq!(total(&fresh, |a| a.counters.create_calls), 6);
    assert_eq!(total(&fresh, |a| a.counters.file_puts), STANDARD_FILES);
    assert_eq!(total(&fresh, |a| a.counters.manifest_puts), 3);
    assert_eq!(total(&fresh, |a| a.counters.commit_calls), 3);
}

#[test]
fn faults_during_artifact_upload_commit_each_artifact_once() {
    let op = |name: &str| Route::GraphqlOperation(name.to_owned());
    let cases: Vec<(&str, FaultRule, u64)> = vec![
        (
            "500 on CreateArtifact",
            FaultRule::new(op("CreateArtifact"), FaultAction::Status { code: 500 }).times(2),
            0,
        ),
        (
            "reset on CreateArtifact",
            FaultRule::new(op("CreateArtifact"), FaultAction::Reset),
            0,
        ),
        (
            "dropped CreateArtifact reply",
            FaultRule::new(op("CreateArtifact"), FaultAction::DropResponse).after(1),
            0,
        ),
        (
            "503 on CreateArtifactFiles",
            FaultRule::new(op("CreateArtifactFiles"), FaultAction::Status { code: 503 }),
            0,
        ),
        (
            "502 on a file PUT",
            FaultRule::new(Route::ArtifactUpload, FaultAction::Status { code: 502 }).times(2),
            0,
        ),
        (
            "reset on a file PUT",
            FaultRule::new(Route::ArtifactUpload, FaultAction::Reset).after(1),
            0,
        ),
        // The server stored the file but the reply was lost: the retry sends it again.
        (
            "dropped file PUT reply",
            FaultRule::new(Route::ArtifactUpload, FaultAction::DropResponse),
            1,
        ),
        (
            "reset on the manifest",
            FaultRule::new(op("CreateArtifactManifest"), FaultAction::Reset).after(1),
            0,
        ),
        (
            "503 on CommitArtifact",
            FaultRule::new(op("CommitArtifact"), FaultAction::Status { code: 503 }),
            0,
        ),
        (
            "reset on CommitArtifact",
            FaultRule::new(op("CommitArtifact"), FaultAction::Reset).after(2),
            0,
        ),
        (
            "dropped CommitArtifact reply",
            FaultRule::new(op("CommitArtifact"), FaultAction::DropResponse),
            0,
        ),
        // Permanent refusals end the run; the re-run finishes without uploading again.
        (
            "400 on CommitArtifact",
            FaultRule::new(op("CommitArtifact"), FaultAction::Status { code: 400 }).after(1),
            0,
        ),
        (
            "404 on a file PUT",
            FaultRule::new(Route::ArtifactUpload, FaultAction::Status { code: 404 }).after(2),
            0,
        ),
    ];
    for (what, rule, extra_puts) in cases {
        let backend = TestBackend::start().unwrap();
        let home = tempfile::tempdir().unwrap();
        let staging = home.path().join("staging");
        let path = write_artifact_run(
            &home.path().join("wandb"),
            &staging,
            "faultrun",
            &standard("faultrun"),
            &[],
        );
        backend.faults().push(rule);
        let first = sync_paths(&options(&backend, vec![path.clone()])).unwrap();
        assert!(
            backend.faults().injected_count() > 0,
            "{what}: no fault injected"
        );
        if first.runs[0].result != RunResult::Synced {
            assert_eq!(first.runs[0].result, RunResult::Failed, "{what}");
            let second = sync_paths(&options(&backend, vec![path.clone()])).unwrap();
            assert_eq!(second.runs[0].result, RunResult::Synced, "{what}: re-run");
        }
        let state = backend.state();
        assert_complete(&state, "faultrun", &staging, what);
        assert_eq!(
            total(&state, |a| a.counters.file_puts),
            STANDARD_FILES + extra_puts,
            "{what}: file PUTs"
        );
        assert!(state.runs[0].complete, "{what}");
    }
}

#[test]
fn kill_9_between_the_put_and_the_commit_commits_once() {
    let backend = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let staging = home.path().join("staging");
    let path = write_artifact_run(
        &home.path().join("wandb"),
        &staging,
        "killart",
        &standard("killart"),
        &[],
    );
    // The first commit hangs, so the process is killed after the files and the manifest went
    // up and before the artifact is committed.
    backend.faults().push(FaultRule::new(
        Route::GraphqlOperation("CommitArtifact".into()),
        FaultAction::Delay { ms: 60_000 },
    ));
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
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut child = command().spawn().unwrap();
    let waiting = backend.wait_for(Duration::from_secs(30), |s| {
        s.request_log
            .iter()
            .any(|e| e.operation.as_deref() == Some("CommitArtifact"))
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = waiting.expect("the sync never reached CommitArtifact");
    assert!(before.artifacts.iter().all(|a| !a.committed));
    assert_eq!(total(&before, |a| a.counters.manifest_puts), 1);
    backend.faults().clear();

    let started = Instant::now();
    let status = command().status().unwrap();
    assert!(status.success(), "re-run failed: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let state = backend.state();
    assert_complete(&state, "killart", &staging, "after kill -9");
    assert_eq!(total(&state, |a| a.counters.file_puts), STANDARD_FILES);
}

#[test]
fn missing_or_changed_staged_files_are_reported_and_make_the_run_partial() {
    let backend = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let staging = home.path().join("staging");
    let path = write_artifact_run(
        &home.path().join("wandb"),
        &staging,
        "gone",
        &standard("gone"),
        &[],
    );
    let missing = staging.join("dataset-sub_b.txt");
    std::fs::remove_file(&missing).unwrap();
    let changed = staging.join("model-weights.bin");
    std::fs::write(&changed, b"not the weights").unwrap();
    let report = sync_paths(&options(&backend, vec![path])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Partial, "{run:?}");
    assert_eq!(report.exit_code(), 1);
    let refused = |p: &Path| {
        run.refused
            .iter()
            .find(|r| r.path == p.to_string_lossy())
            .unwrap_or_else(|| panic!("{} not reported: {:?}", p.display(), run.refused))
    };
    assert!(
        refused(&missing).reason.contains("missing"),
        "{:?}",
        run.refused
    );
    assert!(refused(&missing).reason.contains("sub/b.txt"));
    assert!(
        refused(&changed).reason.contains("changed"),
        "{:?}",
        run.refused
    );
    // The artifact with a missing file never reached the server; the one with a changed file
    // is left uncommitted, without the changed bytes; the Table is committed.
    let state = backend.state();
    assert!(state.artifacts_named("dataset").is_empty());
    let model = state.artifacts_named("model")[0];
    assert!(!model.committed);
    assert_eq!(model.counters.file_puts, 0);
    assert!(state.artifacts_named("run-gone-tbl")[0].committed);
}

#[test]
fn use_artifact_records_are_sent_once() {
    let backend = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let staging = home.path().join("staging");
    let producer = write_artifact_run(
        &home.path().join("wandb"),
        &staging,
        "producer",
        &standard("producer"),
        &[],
    );
    sync_paths(&options(&backend, vec![producer])).unwrap();
    let model = backend.state().artifacts_named("model")[0].clone();
    let used = UseArtifactRecord {
        id: model.id.clone(),
        r#type: "model".into(),
        name: "model".into(),
        ..Default::default()
    };
    let consumer = write_artifact_run(
        &home.path().join("wandb"),
        &staging,
        "consumer",
        &[],
        &[used],
    );
    let mut opts = options(&backend, vec![consumer]);
    let report = sync_paths(&opts).unwrap();
    assert_eq!(report.runs[0].result, RunResult::Synced);
    opts.include_synced = true;
    sync_paths(&opts).unwrap();
    let state = backend.state();
    let model = state.artifacts_named("model")[0];
    assert_eq!(model.used_by, ["consumer"]);
    assert_eq!(model.counters.use_calls, 1);
    assert!(model.errors.is_empty(), "{:?}", model.errors);
}

/// The SDK script: a Table, `log_artifact` of a file and of a directory (with a `file://`
/// reference: `s3://` needs boto3).
const SDK_SCRIPT: &str = r#"
import os, wandb
os.makedirs("data/dir/sub", exist_ok=True)
open("data/weights.bin", "wb").write(bytes(range(256)) * 40)
open("data/dir/a.txt", "w").write("alpha\n")
open("data/dir/sub/b.txt", "w").write("beta\n")
open("data/remote.csv", "w").write("x,y\n1,2\n")
run = wandb.init(project="p", id="sdkart01", config={"a": 1})
run.log({"tbl": wandb.Table(columns=["x", "y"], data=[[1, "a"], [2, "b"]]), "x": 1})
model = wandb.Artifact("model", type="model", metadata={"k": 1}, description="weights")
model.add_file("data/weights.bin")
run.log_artifact(model, aliases=["best"])
dataset = wandb.Artifact("dataset", type="dataset")
dataset.add_dir("data/dir")
dataset.add_reference("file://" + os.path.abspath("data/remote.csv"))
run.log_artifact(dataset)
run.finish()
"#;

fn sdk_command(python: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(python);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WANDB_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(home)
        .env("HOME", home)
        .env("WANDB_DIR", home)
        .env("WANDB_CONFIG_DIR", home.join("config"))
        .env("WANDB_CACHE_DIR", home.join("cache"))
        .env("WANDB_DATA_DIR", home.join("sdkdata"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[test]
fn sdk_artifacts_match_the_official_wandb_sync() {
    let Some(python) = sdk_python() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let status = sdk_command(&python, home.path())
        .env("WANDB_MODE", "offline")
        .args(["-c", SDK_SCRIPT])
        .status()
        .unwrap();
    assert!(status.success(), "the SDK run failed");
    let run_dir = std::fs::read_dir(home.path().join("wandb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("offline-run-"))
        .unwrap();

    let ours = TestBackend::start().unwrap();
    let report = sync_paths(&options(&ours, vec![run_dir.clone()])).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );

    let official = TestBackend::start().unwrap();
    let status = sdk_command(&python, home.path())
        .env("WANDB_BASE_URL", official.base_url())
        .env("WANDB_API_KEY", official.api_key())
        .args(["-m", "wandb", "sync", "--include-synced"])
        .arg(&run_dir)
        .status()
        .unwrap();
    assert!(status.success(), "official wandb sync failed");

    let theirs = official.state();
    let mine = ours.state();
    assert_eq!(theirs.artifacts.len(), 3, "{:?}", theirs.artifacts);
    for artifact in theirs.artifacts.iter().chain(&mine.artifacts) {
        assert!(artifact.committed, "{}", artifact.name);
        assert!(
            artifact.errors.is_empty(),
            "{}: {:?}",
            artifact.name,
            artifact.errors
        );
        for (path, file) in &artifact.files {
            assert!(
                file.reference.is_some() || (file.stored && file.digest_matches),
                "{}: {path}",
                artifact.name
            );
        }
    }
    let table = theirs.artifacts_named("run-sdkart01-tbl");
    assert_eq!(table[0].artifact_type, "run_table");
    let reference = theirs.artifacts_named("dataset")[0]
        .file("remote.csv")
        .and_then(|f| f.reference.clone())
        .unwrap();
    assert!(reference.starts_with("file://"), "{reference}");
    let want = artifacts_essence(&theirs);
    let got = artifacts_essence(&mine);
    for (key, theirs_one) in want.as_object().unwrap() {
        assert_eq!(Some(theirs_one), got.get(key), "artifact {key}");
    }
    assert_eq!(want, got);
    // The same files, once each.
    let puts = |s: &BackendState| total(s, |a| a.counters.file_puts);
    assert_eq!(puts(&theirs), puts(&mine));
}

#[test]
fn a_manifest_kept_in_a_separate_file_is_read_where_it_is() {
    use std::io::Write as _;
    let backend = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let staging = home.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    // As the SDK writes manifests of more than 100,000 entries: gzipped JSON lines.
    let spec = standard("bigman").pop().unwrap();
    let mut record = artifact_record("bigman", &spec, &staging);
    let Some(RecordType::Artifact(artifact)) = record.record_type.as_mut() else {
        unreachable!()
    };
    let manifest = artifact.manifest.as_mut().unwrap();
    let list = home.path().join("entries.jl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&list).unwrap(),
        flate2::Compression::fast(),
    );
    for entry in manifest.contents.drain(..) {
        let mut line =
            serde_json::json!({"path": entry.path, "digest": entry.digest, "size": entry.size});
        if !entry.local_path.is_empty() {
            line["local_path"] = entry.local_path.into();
        }
        if !entry.r#ref.is_empty() {
            line["ref"] = entry.r#ref.into();
        }
        writeln!(gz, "{line}").unwrap();
    }
    gz.finish().unwrap();
    manifest.manifest_file_path = list.to_string_lossy().into_owned();

    let dir = home.path().join("wandb/offline-run-20260101_000000-bigman");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let mut all = records(&RunSpec::new("bigman", 3));
    let exit = all.pop().unwrap();
    all.push(record);
    all.push(exit);
    let path = dir.join("run-bigman.wandb");
    let mut writer = Writer::create(&path).unwrap();
    for r in &all {
        writer.append_record(r).unwrap();
    }
    writer.close().unwrap();

    let report = sync_paths(&options(&backend, vec![path])).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    assert!(list.exists(), "the manifest file was removed");
    let state = backend.state();
    let dataset = state.artifacts_named("dataset")[0];
    assert!(dataset.committed);
    assert!(dataset.errors.is_empty(), "{:?}", dataset.errors);
    let paths: Vec<&str> = dataset.files.keys().map(String::as_str).collect();
    assert_eq!(paths, ["a.txt", "remote.csv", "sub/b.txt"]);
    assert!(dataset.files["sub/b.txt"].stored);
    assert!(
        report.runs[0].warnings.is_empty(),
        "{:?}",
        report.runs[0].warnings
    );
}

#[test]
fn incremental_artifacts_register_their_manifest_with_update_artifact_manifest() {
    let backend = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let staging = home.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let spec = standard("incr").remove(1);
    let mut record = artifact_record("incr", &spec, &staging);
    if let Some(RecordType::Artifact(artifact)) = record.record_type.as_mut() {
        artifact.incremental_beta1 = true;
    }
    let dir = home.path().join("wandb/offline-run-20260101_000000-incr");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let mut all = records(&RunSpec::new("incr", 3));
    let exit = all.pop().unwrap();
    all.push(record);
    all.push(exit);
    let path = dir.join("run-incr.wandb");
    let mut writer = Writer::create(&path).unwrap();
    for r in &all {
        writer.append_record(r).unwrap();
    }
    writer.close().unwrap();

    let report = sync_paths(&options(&backend, vec![path])).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    let state = backend.state();
    let model = state.artifacts_named("model")[0];
    assert!(model.committed);
    assert!(model.errors.is_empty(), "{:?}", model.errors);
    assert_eq!(model.counters.create_manifest_calls, 1);
    assert_eq!(model.counters.update_manifest_calls, 1);
    assert_eq!(model.counters.manifest_puts, 1);
    assert!(model.files["weights.bin"].stored);
    let manifest_request = state
        .request_log
        .iter()
        .find(|e| e.operation.as_deref() == Some("CreateArtifactManifest"))
        .and_then(|e| e.variables.clone())
        .unwrap();
    assert_eq!(manifest_request["manifestType"], "INCREMENTAL");
    assert_eq!(manifest_request["name"], "wandb_manifest.incremental.json");
}

/// A run written by our logger that logs a Table, so also its `run_table` artifact, whose file
/// the logger stages in the run folder (`artifacts/staging/`) under an absolute `local_path`.
/// Returns the run folder once the run finished.
pub(crate) fn logger_table_run(work: &Path) -> PathBuf {
    use wandb_logger::media::Table;
    use wandb_logger::{Env, InitOptions, LoadContext, Setup, SetupOptions, json, row};
    let mut env = Env::from_pairs([
        ("WANDB_MODE", "offline"),
        ("WANDB_X_HANDLE_SIGTERM", "false"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB_X_DISABLE_STATS", "true"),
    ]);
    env.set("WANDB_SILENT", "true");
    std::fs::create_dir_all(work).unwrap();
    let context = LoadContext::new(env, work)
        .with_home(work)
        .with_hostname("testhost");
    let setup = Setup::new(SetupOptions::default().context(context)).unwrap();
    let run = setup.init(InitOptions::new().project("tables")).unwrap();
    let mut table = Table::new(["epoch", "loss"]);
    for epoch in 0..20 {
        table
            .add_row(vec![
                json::Value::Int(epoch),
                json::Value::Float(1.0 / (epoch as f64 + 1.0)),
            ])
            .unwrap();
    }
    run.log(row! {"results" => run.media("results", &table).unwrap()})
        .unwrap();
    let run_dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    run_dir
}

/// The run folder's `.wandb` file and its one staged artifact file.
pub(crate) fn record_and_staged(run_dir: &Path) -> (PathBuf, PathBuf) {
    let find = |dir: &Path, pick: &dyn Fn(&Path) -> bool| {
        let found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| pick(p))
            .collect();
        assert_eq!(found.len(), 1, "{}: {found:?}", dir.display());
        found[0].clone()
    };
    let record = find(run_dir, &|p| p.extension().is_some_and(|e| e == "wandb"));
    let staged = find(&run_dir.join("artifacts/staging"), &|p| p.is_file());
    (record, staged)
}

#[test]
fn a_moved_logger_run_finds_its_staged_table_in_its_own_folder() {
    let home = tempfile::tempdir().unwrap();
    let first = logger_table_run(&home.path().join("before"));
    let rel = first.strip_prefix(home.path().join("before")).unwrap();
    // Moved after it finished (as rsync or tar to another machine would): every `local_path`
    // in its records names the old place.
    std::fs::rename(home.path().join("before"), home.path().join("after")).unwrap();
    let moved = home.path().join("after").join(rel);
    assert!(!first.exists());
    let (record, staged) = record_and_staged(&moved);
    let bytes = std::fs::read(&staged).unwrap();

    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![record])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Synced, "{run:?}");
    assert!(run.refused.is_empty(), "{:?}", run.refused);
    let state = backend.state();
    let name = format!("run-{}-results", run.run_id);
    let versions = state.artifacts_named(&name);
    assert_eq!(versions.len(), 1, "{:?}", state.artifacts);
    let artifact = versions[0];
    assert_eq!(artifact.artifact_type, "run_table");
    assert!(artifact.committed, "{artifact:?}");
    assert!(artifact.errors.is_empty(), "{:?}", artifact.errors);
    let file = artifact.file("results.table.json").unwrap();
    assert!(file.stored && file.digest_matches, "{file:?}");
    assert_eq!(file.digest, wandb_format::artifact::file_digest(&bytes));
    assert_eq!(file.size, Some(bytes.len() as u64));
}

#[test]
fn a_moved_logger_run_with_a_tampered_staged_table_is_refused_by_name() {
    let home = tempfile::tempdir().unwrap();
    let first = logger_table_run(&home.path().join("before"));
    let rel = first.strip_prefix(home.path().join("before")).unwrap();
    std::fs::rename(home.path().join("before"), home.path().join("after")).unwrap();
    let moved = home.path().join("after").join(rel);
    let (record, staged) = record_and_staged(&moved);
    // Same size, other bytes: only the digest tells.
    let mut bytes = std::fs::read(&staged).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&staged, &bytes).unwrap();

    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![record])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Partial, "{run:?}");
    assert_eq!(run.refused.len(), 1, "{:?}", run.refused);
    let refused = &run.refused[0];
    let old_path = first
        .join("artifacts/staging")
        .join(staged.file_name().unwrap());
    assert_eq!(refused.path, old_path.to_string_lossy(), "{refused:?}");
    for part in [
        "results.table.json",
        &format!("run-{}-results", run.run_id),
        &staged.to_string_lossy(),
        "missing",
        "changed",
    ] {
        assert!(refused.reason.contains(part), "{part:?}: {refused:?}");
    }
    let state = backend.state();
    let name = format!("run-{}-results", run.run_id);
    assert!(
        state.artifacts_named(&name).iter().all(|a| !a.committed),
        "{:?}",
        state.artifacts
    );
}

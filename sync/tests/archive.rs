//! Archives written by `wandb-archive`: `wandb-sync runs.tar.zst` reads the runs in place and
//! gives the server what the run folders give (saved files, large ones streamed from the
//! archive, files from symlinks leading out, staged artifact files), keeps only its state in
//! `runs.tar.zst.sync/`, so a second sync skips the run, and an interrupted sync (a failing
//! server, or `kill -9` of the real binary) resumes exactly once; a damaged frame loses only the
//! rows it held.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wandb_archive::{PackOptions, pack};
use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::{FaultAction, FaultRule, Route, TestBackend};

use crate::common::{
    RunSpec, assert_clean, assert_same, essence, kill_when_rows, options, sync_command, write_run,
};

/// Bytes of the large saved file: above the 16 MiB kept in memory, so it streams from the
/// archive.
const BIG: usize = (16 << 20) + 4321;

fn pack_to(inputs: Vec<PathBuf>, output: &Path) {
    std::fs::create_dir_all(output.parent().unwrap()).unwrap();
    pack_runs(inputs, output, false);
}

/// Packs `inputs` into `output` at level 1 (`remove_source` as asked) and returns the report.
fn pack_runs(
    inputs: Vec<PathBuf>,
    output: &Path,
    remove_source: bool,
) -> wandb_archive::PackReport {
    pack(&PackOptions {
        inputs,
        output: output.to_path_buf(),
        level: 1,
        threads: 2,
        remove_source,
        repack: false,
        progress: None,
    })
    .unwrap()
}

/// A run with saved files: a small one, a large one and one linked from outside the run.
fn run_with_files(home: &Path, id: &str, rows: u64) -> PathBuf {
    let mut spec = RunSpec::new(id, rows);
    spec.console_every = 100;
    spec.stats_every = 100;
    spec.files = vec!["a.txt".into(), "big.bin".into(), "linked.txt".into()];
    let run = write_run(&home.join("wandb"), &spec);
    let files = run.parent().unwrap().join("files");
    let big: Vec<u8> = (0..BIG).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(files.join("big.bin"), big).unwrap();
    let outside = home.join("notes/linked.txt");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::write(&outside, b"saved from outside the run\n").unwrap();
    std::fs::remove_file(files.join("linked.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, files.join("linked.txt")).unwrap();
    run
}

/// Syncs `run` from its folder and `archive` (holding only it) to a backend each: both must be
/// synced, clean and the same field by field. Returns the two states (folder, archive).
fn synced_both_ways(
    run: &Path,
    archive: &Path,
) -> (wandb_testkit::BackendState, wandb_testkit::BackendState) {
    let from_folder = TestBackend::start().unwrap();
    let report = sync_paths(&options(&from_folder, vec![run.to_path_buf()])).unwrap();
    assert_eq!(report.runs.len(), 1);
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs
    );
    let from_archive = TestBackend::start().unwrap();
    let report = sync_paths(&options(&from_archive, vec![archive.to_path_buf()])).unwrap();
    assert_eq!(report.runs.len(), 1);
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs
    );
    let (want, got) = (from_folder.state(), from_archive.state());
    assert_eq!(got.runs.len(), 1);
    assert_clean(&got.runs[0]);
    assert_same(
        &essence(&want.runs[0]),
        &essence(&got.runs[0]),
        "archive vs folder",
    );
    (want, got)
}

/// Every file under `dir`, relative to it.
fn names_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_archive_syncs_like_its_folders_and_resumes_from_its_state() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("arch", 400);
    spec.console_every = 100;
    let run = write_run(&home.path().join("wandb"), &spec);
    let archive = home.path().join("moved/runs.tar.zst");
    pack_to(vec![run.clone()], &archive);
    synced_both_ways(&run, &archive);

    // Only the state is next to the archive (nothing unpacked); a second sync skips the run.
    let state = home.path().join("moved/runs.tar.zst.sync");
    let folder = run
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        names_under(&state),
        [".synced", ".ledger.json", ".lock"]
            .map(|end| format!("{folder}/run-arch.wandb{end}"))
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
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
    let again = sync_paths(&options(&TestBackend::start().unwrap(), vec![archive])).unwrap();
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
    pack_runs(vec![dir], &archive, true);
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

#[test]
fn saved_files_stream_from_the_archive_as_from_the_folder() {
    let home = tempfile::tempdir().unwrap();
    let run = run_with_files(home.path(), "files", 300);
    let archive = home.path().join("moved/runs.tar.zst");
    pack_to(vec![run.clone()], &archive);

    let (want, got) = synced_both_ways(&run, &archive);
    for name in ["a.txt", "big.bin", "linked.txt"] {
        let (w, g) = (
            want.runs[0].file(name).unwrap(),
            got.runs[0].file(name).unwrap(),
        );
        assert_eq!((w.size, &w.sha256), (g.size, &g.sha256), "{name}");
    }
    assert_eq!(got.runs[0].file("big.bin").unwrap().size, BIG as u64);

    // --no-follow-links refuses the file that came from a symlink, as in the folder.
    let mut strict = options(&TestBackend::start().unwrap(), vec![archive.clone()]);
    strict.no_follow_links = true;
    strict.dry_run = true;
    strict.include_synced = true;
    let report = sync_paths(&strict).unwrap();
    let refused: Vec<&str> = report.runs[0]
        .refused
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(refused, ["linked.txt"], "{:?}", report.runs[0]);
    assert!(
        report.runs[0].files.iter().any(|f| f == "big.bin"),
        "{:?}",
        report.runs[0].files
    );
}

#[test]
fn an_interrupted_sync_of_an_archive_resumes_exactly_once() {
    let home = tempfile::tempdir().unwrap();
    let run = run_with_files(home.path(), "resume", 1500);
    let archive = home.path().join("runs.tar.zst");
    pack_to(vec![run.clone()], &archive);
    let clean = TestBackend::start().unwrap();
    let mut opts = options(&clean, vec![run]);
    opts.chunk_bytes = 8192;
    sync_paths(&opts).unwrap();
    let want = essence(&clean.state().runs[0]);

    // The server refuses file_stream for good after a few requests: the run fails midway.
    let backend = TestBackend::start().unwrap();
    backend.faults().push(
        FaultRule::new(Route::FileStream, FaultAction::Status { code: 400 })
            .after(4)
            .times(u32::MAX),
    );
    let mut opts = options(&backend, vec![archive.clone()]);
    opts.chunk_bytes = 8192;
    let report = sync_paths(&opts).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Failed,
        "{:?}",
        report.runs
    );
    let partial = backend.state().runs[0].history.len();
    assert!(
        partial > 0 && partial < 1500,
        "{partial} rows before the failure"
    );
    backend.faults().clear();
    let report = sync_paths(&opts).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs
    );
    assert_resumed_exactly_once(&backend.state().runs[0], &want, 1500);
}

/// Runs the real binary on `path` to the end; it must succeed.
fn sync_to_end(backend: &TestBackend, home: &Path, path: &Path) {
    let out = command(backend, home)
        .args(["--chunk-bytes", "8192"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn command(backend: &TestBackend, home: &Path) -> Command {
    let mut cmd = sync_command(backend, home);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// After a resumed sync the server holds exactly what a clean sync gave: every history row
/// once, no gap or changed line, every file uploaded once.
fn assert_resumed_exactly_once(
    run: &wandb_testkit::RunState,
    want: &serde_json::Value,
    rows: usize,
) {
    assert_clean(run);
    assert_eq!(run.history.len(), rows);
    assert_same(want, &essence(run), "after resuming");
    for (name, file) in &run.files {
        assert_eq!(
            file.put_count, 1,
            "{name} uploaded {} times",
            file.put_count
        );
    }
}

#[test]
fn kill_9_during_a_sync_from_an_archive_resumes_exactly_once() {
    let home = tempfile::tempdir().unwrap();
    let run = run_with_files(home.path(), "killarch", 800);
    let archive = home.path().join("moved/runs.tar.zst");
    pack_to(vec![run.clone()], &archive);
    let clean = TestBackend::start().unwrap();
    sync_to_end(&clean, home.path(), &run);
    let want = essence(&clean.state().runs[0]);
    let marker = home
        .path()
        .join("moved/runs.tar.zst.sync")
        .join(run.parent().unwrap().file_name().unwrap())
        .join("run-killarch.wandb.synced");

    for kill_after_rows in [1usize, 400] {
        let _ = std::fs::remove_dir_all(home.path().join("moved/runs.tar.zst.sync"));
        let backend = TestBackend::start().unwrap();
        backend
            .faults()
            .delay_all(Route::FileStream, Duration::from_millis(25));
        let child = command(&backend, home.path())
            .args(["--chunk-bytes", "8192"])
            .arg(&archive)
            .spawn()
            .unwrap();
        kill_when_rows(&backend, child, kill_after_rows);
        assert!(!marker.exists(), "killed run marked synced");
        backend.faults().clear();
        sync_to_end(&backend, home.path(), &archive);
        assert!(marker.exists());
        let state = backend.state();
        assert_eq!(state.runs.len(), 1);
        assert_resumed_exactly_once(&state.runs[0], &want, 800);
    }
}

#[test]
fn a_damaged_frame_loses_only_its_rows_and_the_rest_syncs() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("damaged", 12_000);
    spec.floats = 30;
    let run = write_run(&home.path().join("wandb"), &spec);
    let archive = home.path().join("runs.tar.zst");
    pack_to(vec![run], &archive);
    // Flip a byte in the middle of a frame that holds only the middle of the .wandb member.
    let (offset, frames) = {
        let opened = wandb_archive::Archive::open(&archive).unwrap();
        let member = opened.record_members(None)[0].clone();
        let end = member.data_offset + member.size;
        let frames = opened.frames().to_vec();
        let frame = frames
            .iter()
            .find(|f| f.d_offset > member.data_offset && f.d_offset + f.d_len < end)
            .copied()
            .expect("a frame inside the member");
        (frame.c_offset + frame.c_len / 2, frames.len())
    };
    assert!(frames >= 3);
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= 0x55;
    std::fs::write(&archive, bytes).unwrap();

    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![archive])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Partial, "{run:?}");
    assert!(
        run.damage
            .iter()
            .any(|d| d.reason.contains("lost to damage in the archive")),
        "{:?}",
        run.damage
    );
    let state = backend.state();
    let rows = state.runs[0]
        .history
        .iter()
        .filter(|r| !r.is_null())
        .count();
    assert!(rows > 1000 && rows < 12_000, "{rows} rows synced");
    assert!(
        state.runs[0].complete,
        "the records after the damage are synced too"
    );
}

#[test]
fn a_table_staged_inside_the_run_is_packed_once_and_synced_from_the_archive() {
    use wandb_archive::{Archive, Origin, STAGED_DIR};

    let home = tempfile::tempdir().unwrap();
    let run_dir = crate::artifacts::logger_table_run(&home.path().join("work"));
    let (_, staged) = crate::artifacts::record_and_staged(&run_dir);
    let bytes = std::fs::read(&staged).unwrap();
    let archive = home.path().join("runs.tar.zst");
    pack_runs(vec![run_dir.clone()], &archive, true);
    assert!(!run_dir.exists(), "the run folder was not removed");

    // One member holds the staged file: the run's own, standing for its `local_path`.
    let opened = Archive::open(&archive).unwrap();
    let entry = &opened.index().unwrap().runs[0];
    let name = staged.file_name().unwrap().to_str().unwrap();
    let holding: Vec<_> = entry
        .files
        .iter()
        .filter(|f| f.path.ends_with(name))
        .collect();
    assert_eq!(holding.len(), 1, "{:?}", entry.files);
    assert!(
        holding[0]
            .path
            .ends_with(&format!("/artifacts/staging/{name}")),
        "{:?}",
        holding[0]
    );
    assert_eq!(holding[0].origin, Origin::Staged);
    assert_eq!(holding[0].source.as_deref(), staged.to_str());
    assert!(
        entry.files.iter().all(|f| !f.path.contains(STAGED_DIR)),
        "{:?}",
        entry.files
    );
    assert!(entry.refused.is_empty(), "{:?}", entry.refused);

    // The run folder is gone: the sync reads the Table from the archive, and a copy unpacked
    // elsewhere finds it in its own `artifacts/staging/`.
    let unpacked = home.path().join("unpacked");
    wandb_archive::unpack(&opened, &unpacked, &[]).unwrap();
    let unpacked_run = unpacked.join(run_dir.file_name().unwrap());
    let (unpacked_record, _) = crate::artifacts::record_and_staged(&unpacked_run);
    for input in [archive, unpacked_record] {
        let backend = TestBackend::start().unwrap();
        let report = sync_paths(&options(&backend, vec![input.clone()])).unwrap();
        let run = &report.runs[0];
        assert_eq!(
            run.result,
            RunResult::Synced,
            "{}: {run:?}",
            input.display()
        );
        let state = backend.state();
        let versions = state.artifacts_named(&format!("run-{}-results", run.run_id));
        assert_eq!(versions.len(), 1, "{:?}", state.artifacts);
        assert!(versions[0].committed);
        let file = versions[0].file("results.table.json").unwrap();
        assert!(file.stored && file.digest_matches, "{file:?}");
        assert_eq!(file.digest, wandb_format::artifact::file_digest(&bytes));
    }
}

#[test]
fn a_table_of_a_run_moved_before_it_was_packed_syncs_from_the_archive() {
    use wandb_archive::{Archive, Origin};

    let home = tempfile::tempdir().unwrap();
    let before = crate::artifacts::logger_table_run(&home.path().join("before"));
    let rel = before.strip_prefix(home.path().join("before")).unwrap();
    std::fs::rename(home.path().join("before"), home.path().join("after")).unwrap();
    let moved = home.path().join("after").join(rel);
    let (_, staged) = crate::artifacts::record_and_staged(&moved);
    let bytes = std::fs::read(&staged).unwrap();
    let archive = home.path().join("runs.tar.zst");
    let report = pack_runs(vec![moved.clone()], &archive, false);
    // Its `local_path` names the old place: the run's own staged file stands for it.
    assert!(report.refused.is_empty(), "{report:?}");
    let opened = Archive::open(&archive).unwrap();
    let entry = &opened.index().unwrap().runs[0];
    let name = staged.file_name().unwrap().to_str().unwrap();
    let member = entry
        .files
        .iter()
        .find(|f| f.path.ends_with(&format!("/artifacts/staging/{name}")))
        .unwrap();
    let old_path = before.join("artifacts/staging").join(name);
    assert_eq!(member.origin, Origin::Staged);
    assert_eq!(member.source.as_deref(), old_path.to_str());
    assert_eq!(
        entry
            .files
            .iter()
            .filter(|f| f.path.ends_with(name))
            .count(),
        1
    );
    std::fs::remove_dir_all(&moved).unwrap();

    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![archive])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Synced, "{run:?}");
    let state = backend.state();
    let versions = state.artifacts_named(&format!("run-{}-results", run.run_id));
    assert_eq!(versions.len(), 1, "{:?}", state.artifacts);
    assert!(versions[0].committed);
    let file = versions[0].file("results.table.json").unwrap();
    assert!(file.stored && file.digest_matches, "{file:?}");
    assert_eq!(file.digest, wandb_format::artifact::file_digest(&bytes));
}

/// The local id of the sweep in [`runs_of_a_sweep_sync_from_the_archive_to_one_sweep`].
const SWEEP_ID: &str = "arc12345";
/// Its `sweep.yaml`.
const SWEEP_YAML: &str =
    "method: grid\nparameters:\n  lr:\n    values:\n    - 0.1\n    - 0.01\nprogram: train.py\n";

/// One run of sweep [`SWEEP_ID`] written by our logger with a sweep agent's environment, and
/// its param file `wandb/sweep-<id>/config-<run>.yaml`.
fn logger_sweep_run(root: &Path, run_id: &str, lr: f64) -> PathBuf {
    use wandb_logger::{Env, InitOptions, LoadContext, Setup, SetupOptions, row};
    let sweep_dir = root.join("wandb").join(format!("sweep-{SWEEP_ID}"));
    std::fs::create_dir_all(&sweep_dir).unwrap();
    let params = sweep_dir.join(format!("config-{run_id}.yaml"));
    std::fs::write(&params, format!("lr:\n  value: {lr}\n")).unwrap();
    let env = Env::from_pairs([
        ("WANDB_MODE", "offline"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB_X_DISABLE_STATS", "true"),
        ("WANDB_X_HANDLE_SIGTERM", "false"),
        ("WANDB_PROJECT", "sweepproj"),
        ("WANDB_SWEEP_ID", SWEEP_ID),
        ("WANDB_SWEEP_PARAM_PATH", params.to_str().unwrap()),
        ("WANDB_RUN_ID", run_id),
    ]);
    let context = LoadContext::new(env, root)
        .with_home(root)
        .with_hostname("testhost");
    let setup = Setup::new(SetupOptions::default().context(context)).unwrap();
    let run = setup
        .init(InitOptions::new().config(&serde_json::json!({"lr": 1.0})))
        .unwrap();
    run.log(row! {"loss" => lr}).unwrap();
    let dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    dir
}

/// Syncs `input` to `backend` (everything again with `again`): every run synced (or skipped as
/// synced), none warning, each attached to the backend's one sweep, created once.
fn assert_one_sweep(backend: &TestBackend, input: &Path, again: bool, runs: &[&str]) {
    let mut opts = options(backend, vec![input.to_path_buf()]);
    opts.include_synced = again;
    let report = sync_paths(&opts).unwrap();
    assert_eq!(report.runs.len(), runs.len(), "{:?}", report.runs);
    for run in &report.runs {
        assert_eq!(
            run.result,
            RunResult::Synced,
            "{}: {run:?}",
            input.display()
        );
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    }
    let state = backend.state();
    assert_eq!(state.sweeps.len(), 1, "{:?}", state.sweeps);
    let sweep = &state.sweeps[0];
    assert_eq!(sweep.config.as_deref(), Some(SWEEP_YAML));
    assert_eq!(sweep.project, "sweepproj");
    assert_eq!(sweep.upserts, 1, "one UpsertSweep for every run and sync");
    let mut attached = sweep.runs.clone();
    attached.sort();
    attached.dedup();
    assert_eq!(attached, runs);
    for run_id in runs {
        let run = backend.find_run(run_id).unwrap();
        assert_eq!(run.sweep.as_deref(), Some(sweep.name.as_str()), "{run_id}");
    }
}

#[test]
fn runs_of_a_sweep_sync_from_the_archive_to_one_sweep() {
    use wandb_archive::Archive;

    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("work");
    let ids = ["arcrun1", "arcrun2", "arcrun3"];
    for (i, id) in ids.iter().enumerate() {
        logger_sweep_run(&root, id, 0.1 / (i as f64 + 1.0));
    }
    let sweep_dir = root.join(format!("wandb/sweep-{SWEEP_ID}"));
    std::fs::write(sweep_dir.join("sweep.yaml"), SWEEP_YAML).unwrap();
    std::fs::write(
        sweep_dir.join("sweep.json"),
        serde_json::json!({"id": SWEEP_ID, "entity": null, "project": "sweepproj",
            "method": "grid", "created_at": "2026-12-01T00:00:00Z"})
        .to_string(),
    )
    .unwrap();
    // A mapping of an earlier sync from the folder stays out of the archive.
    std::fs::write(
        sweep_dir.join("sweep.synced.json"),
        r#"{"id": "x", "created": []}"#,
    )
    .unwrap();

    // Without the sweep folder, pack warns, naming the sweep and the folder, and goes on.
    let aside = home.path().join("aside");
    std::fs::rename(&sweep_dir, &aside).unwrap();
    let report = pack_runs(
        vec![root.join("wandb")],
        &home.path().join("nosweep.tar.zst"),
        false,
    );
    assert_eq!(report.packed.len(), 3);
    let warning = report.warnings.iter().find(|w| w.contains(SWEEP_ID));
    assert!(
        warning.is_some_and(|w| w.contains(&sweep_dir.display().to_string())),
        "{:?}",
        report.warnings
    );
    std::fs::rename(&aside, &sweep_dir).unwrap();

    let archive = home.path().join("runs.tar.zst");
    pack_to(vec![root.join("wandb")], &archive);
    let opened = Archive::open(&archive).unwrap();
    let index = opened.index().unwrap();
    assert_eq!(index.sweeps.len(), 1, "{:?}", index.sweeps);
    let names: Vec<&str> = index.sweeps[0]
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    let folder = format!("sweep-{SWEEP_ID}");
    let expected: Vec<String> = ids
        .iter()
        .map(|id| format!("{folder}/config-{id}.yaml"))
        .chain([
            format!("{folder}/sweep.json"),
            format!("{folder}/sweep.yaml"),
        ])
        .collect();
    assert_eq!(names, expected);
    let members = opened
        .members()
        .iter()
        .filter(|m| m.run() == folder)
        .count();
    assert_eq!(members, expected.len(), "the sweep folder is stored once");
    assert_eq!(opened.runs().len(), 3, "{:?}", opened.runs());

    // From the archive: one sweep, every run attached; a re-sync creates no second one.
    let backend = TestBackend::start().unwrap();
    assert_one_sweep(&backend, &archive, false, &ids);
    let mapping = wandb_archive::tools::state_dir(&archive)
        .join(&folder)
        .join("sweep.synced.json");
    let text = std::fs::read_to_string(&mapping).unwrap();
    assert!(text.contains(&backend.state().sweeps[0].name), "{text}");
    assert_one_sweep(&backend, &archive, true, &ids);

    // Unpacked by our unpack, the sweep folder is beside the run folders.
    let unpacked = home.path().join("unpacked");
    wandb_archive::unpack(&opened, &unpacked, &[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(unpacked.join(&folder).join("sweep.yaml")).unwrap(),
        SWEEP_YAML
    );
    assert!(!unpacked.join(&folder).join("sweep.synced.json").exists());
    let backend = TestBackend::start().unwrap();
    assert_one_sweep(&backend, &unpacked, false, &ids);

    // Packing a later run of the sweep into the archive stores the folder again, once, with
    // the new run's param file; packing a run of no sweep keeps the folder as it is.
    logger_sweep_run(&root, "arcrun4", 0.5);
    pack_to(vec![root.join("wandb")], &archive);
    let plain = write_run(
        &home.path().join("other/wandb"),
        &RunSpec::new("plainrun", 5),
    );
    pack_to(vec![plain], &archive);
    let opened = Archive::open(&archive).unwrap();
    let index = opened.index().unwrap();
    assert_eq!(index.runs.len(), 5);
    assert_eq!(index.sweeps.len(), 1);
    assert_eq!(index.sweeps[0].files.len(), expected.len() + 1);
    assert!(opened.damage().is_empty());
    for member in opened.members().iter().filter(|m| m.run() == folder) {
        opened.verify_member(member).unwrap();
    }
    let backend = TestBackend::start().unwrap();
    let mut opts = options(&backend, vec![archive.clone()]);
    opts.include_synced = true;
    let report = sync_paths(&opts).unwrap();
    assert_eq!(report.runs.len(), 5);
    assert!(report.runs.iter().all(|r| r.result == RunResult::Synced));
    let state = backend.state();
    assert_eq!(state.sweeps.len(), 1);
    assert_eq!(state.sweeps[0].runs.len(), 4, "{:?}", state.sweeps);
}

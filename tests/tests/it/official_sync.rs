//! Files written by our `wandb_format::Writer` are uploaded by the official `wandb sync` (0.31.0) to
//! our test backend, and the backend's reconstructed history equals the rows in the file, row for row.

use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, LogFile, Recovery, ScanItem, Writer};
use wandb_integration_tests::{official_sync, sdk_fixture, sdk_python};
use wandb_testkit::TestBackend;

#[test]
fn official_sync_uploads_a_file_written_by_our_writer() {
    let Some(python) = sdk_python() else { return };
    for (scenario, run_id) in [("plain", "fxplain0"), ("multiblock", "fxmulti0")] {
        let scratch = tempfile::tempdir().unwrap();
        let run_dir = scratch
            .path()
            .join(format!("wandb/offline-run-20260101_000000-{run_id}"));
        let fixture = sdk_fixture(scenario);
        wandb_integration_tests::copy_tree(&fixture.join("files"), &run_dir.join("files")).unwrap();

        // Write the SDK's records again with our writer.
        let source = LogFile::open(fixture.join(format!("run-{run_id}.wandb"))).unwrap();
        let ours = run_dir.join(format!("run-{run_id}.wandb"));
        let mut writer = Writer::create(&ours).unwrap();
        for item in source.scan(Recovery::Strict) {
            let ScanItem::Record(raw) = item.unwrap() else {
                panic!("damage in fixture")
            };
            writer.append(&raw.payload).unwrap();
        }
        writer.close().unwrap();

        // The rows as our reader sees them: (step, number of items).
        let mut rows = Vec::new();
        for entry in LogFile::open(&ours).unwrap().records(Recovery::Strict) {
            if let Entry::Record { record, .. } = entry.unwrap()
                && let Some(RecordType::History(history)) = record.record_type
            {
                rows.push((history.step.map_or(0, |s| s.num), history.item.len()));
            }
        }

        let backend = TestBackend::start().unwrap();
        let out = official_sync(
            &python,
            &run_dir,
            &backend.base_url(),
            backend.api_key(),
            scratch.path(),
        )
        .unwrap();
        assert!(
            out.status.success(),
            "wandb sync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = backend.find_run(run_id).unwrap_or_else(|| {
            panic!(
                "{scenario}: run not uploaded; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(run.history.len(), rows.len(), "{scenario}: history rows");
        for (row, (step, _)) in run.history.iter().zip(&rows) {
            assert_eq!(row["_step"].as_i64().unwrap(), *step, "{scenario}");
        }
        assert_eq!(run.exit_code, Some(0), "{scenario}: exit code");
        assert!(run.complete, "{scenario}: run not complete");
        assert!(
            run_dir.join(format!("run-{run_id}.wandb.synced")).exists(),
            "{scenario}: not marked synced"
        );
    }
}

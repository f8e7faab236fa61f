//! Derived paths: the wandb directory, run directory names and run paths.

mod common;

use std::time::{Duration, SystemTime};

use common::Fixture;
use wandb_settings::{
    Overrides, RunPaths, generate_run_id, run_dir_name, timespec, timespec_at_offset,
};

#[test]
fn run_paths_follow_wandb_layout() {
    let fx = Fixture::new();
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup.settings().expect("valid");
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_088_966);
    let name = s.run_dir_name("n67z9ude", start);
    assert_eq!(name, format!("offline-run-{}-n67z9ude", timespec(start)));
    let paths = s.run_paths("n67z9ude", start);
    let run_dir = fx.cwd.join("wandb").join(&name);
    assert_eq!(paths, RunPaths::new(&run_dir, "n67z9ude"));
    assert_eq!(paths.transaction_log, run_dir.join("run-n67z9ude.wandb"));
    assert_eq!(paths.files_dir, run_dir.join("files"));
    assert_eq!(paths.logs_dir, run_dir.join("logs"));
    assert_eq!(paths.debug_log, run_dir.join("logs").join("debug.log"));
    assert_eq!(
        s.latest_run_symlink(),
        fx.cwd.join("wandb").join("latest-run")
    );
    assert_eq!(
        s.resume_file(),
        fx.cwd.join("wandb").join("wandb-resume.json")
    );

    let s = setup
        .resolve(
            &Overrides::default(),
            &Overrides::default().x_sync_dir_suffix("retry"),
        )
        .expect("valid");
    assert_eq!(
        s.run_dir_name("abc", start),
        format!("offline-run-{}-abc-retry", timespec(start))
    );
}

#[test]
fn timespec_is_local_time_format() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_088_966);
    assert_eq!(timespec_at_offset(start, 0), "20250813_124246");
    assert_eq!(
        timespec_at_offset(start, 5 * 3600 + 1800),
        "20250813_181246"
    );
    assert_eq!(
        run_dir_name("id", "20250813_124246", ""),
        "offline-run-20250813_124246-id"
    );
}

#[test]
fn run_id_generation() {
    let fx = Fixture::new();
    let s = fx.load().expect("loads");
    let id = s.run_id_or_generate();
    assert_eq!(id.len(), 8);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    assert_ne!(generate_run_id(), generate_run_id());
    let given = fx
        .setup(&Overrides::default().run_id("mine"))
        .expect("loads")
        .settings()
        .expect("valid");
    assert_eq!(given.run_id_or_generate(), "mine");
}

//! Helpers the themes share: running the official `wandb sync` and failing with what it said.

use std::path::Path;

use wandb_testkit::TestBackend;

/// Uploads `run_dir` with the official `wandb sync` to `backend` (its home and config under
/// `scratch`); panics with the run folder and the client's stderr when the sync fails.
pub(crate) fn official_sync_ok(
    python: &Path,
    run_dir: &Path,
    backend: &TestBackend,
    scratch: &Path,
) {
    let out = wandb_integration_tests::official_sync(
        python,
        run_dir,
        &backend.base_url(),
        backend.api_key(),
        scratch,
    )
    .unwrap();
    assert!(
        out.status.success(),
        "wandb sync {} failed: {}",
        run_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Uploads a copy of `run_dir` (in `scratch/theirs/`, since the official client writes its own
/// markers next to the file) with the official `wandb sync` to a new test backend, and returns
/// that backend.
pub(crate) fn official_sync_of_a_copy(
    python: &Path,
    run_dir: &Path,
    scratch: &Path,
) -> TestBackend {
    let theirs_dir = scratch.join("theirs").join(run_dir.file_name().unwrap());
    wandb_integration_tests::copy_tree(run_dir, &theirs_dir).unwrap();
    let backend = TestBackend::start().unwrap();
    official_sync_ok(python, &theirs_dir, &backend, scratch);
    backend
}

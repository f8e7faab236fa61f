//! Shared helpers for the cross-crate integration tests in `tests/it/`: locating the official SDK's
//! Python, the SDK fixtures, and running the official `wandb sync` against a test backend.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fixture run folder written by the official SDK 0.31.0 (`fixtures/sdk-0.31.0/<scenario>`).
pub fn sdk_fixture(scenario: &str) -> PathBuf {
    workspace_root().join("fixtures/sdk-0.31.0").join(scenario)
}

/// The Python with the official SDK (see `wandb_testkit::sdk_python`).
pub use wandb_testkit::sdk_python;

/// Runs the official `wandb sync` on `run_dir`, uploading to `base_url` with `api_key`, in a
/// hermetic environment (its own HOME and config dir under `scratch`).
///
/// # Errors
///
/// When the process cannot be started.
pub fn official_sync(
    python: &Path,
    run_dir: &Path,
    base_url: &str,
    api_key: &str,
    scratch: &Path,
) -> std::io::Result<Output> {
    let config_dir = scratch.join("wandb-config");
    std::fs::create_dir_all(&config_dir)?;
    Command::new(python)
        .args(["-m", "wandb", "sync", "--include-synced"])
        .arg(run_dir)
        .current_dir(scratch)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch)
        .env("WANDB_CONFIG_DIR", &config_dir)
        .env("WANDB_BASE_URL", base_url)
        .env("WANDB_API_KEY", api_key)
        .env("WANDB_SILENT", "true")
        .output()
}

/// Copies the regular files and folders of `from` into `to`, recursively (links are skipped).
///
/// # Errors
///
/// When reading or copying fails.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

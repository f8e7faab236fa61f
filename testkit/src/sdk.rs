//! Finding the official W&B SDK for compatibility tests: the Python interpreter named by
//! `WANDB_SDK_PYTHON` (which `scripts/test` sets after installing wandb 0.31.0 into `.venv`).
//!
//! Tests that need the SDK skip themselves on a developer machine without it, but fail under
//! CI (`CI=true`), where a skipped compatibility test would hide a regression.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Python with the official SDK, or `None` (after saying why on stderr) when
/// `WANDB_SDK_PYTHON` is unset or names an interpreter that cannot import `wandb`.
///
/// A relative path is tried against the current directory (the package folder under
/// `cargo test`) and then the workspace root, so `WANDB_SDK_PYTHON=.venv/bin/python` works
/// from either. The check runs once per process.
///
/// # Panics
///
/// When `CI=true` and the SDK is unavailable.
pub fn sdk_python() -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match FOUND.get_or_init(find) {
        Ok(path) => Some(path.clone()),
        Err(problem) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the official SDK is unavailable: {problem}"
            );
            eprintln!("skipping the official-SDK check: {problem}");
            None
        }
    }
}

fn find() -> Result<PathBuf, String> {
    let Some(path) = std::env::var_os("WANDB_SDK_PYTHON").filter(|path| !path.is_empty()) else {
        return Err("WANDB_SDK_PYTHON is not set".to_owned());
    };
    let path = resolve(PathBuf::from(path));
    let check = Command::new(&path)
        .args(["-c", "import wandb; print(wandb.__version__)"])
        .output();
    match check {
        Ok(out) if out.status.success() => {
            eprintln!(
                "using wandb {} from {}",
                String::from_utf8_lossy(&out.stdout).trim(),
                path.display()
            );
            Ok(path)
        }
        Ok(out) => Err(format!(
            "{} cannot import wandb: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(error) => Err(format!("cannot run {}: {error}", path.display())),
    }
}

/// `path` as given if it exists or is absolute, else from the workspace root if it exists there.
fn resolve(path: PathBuf) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path;
    }
    let from_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(&path);
    if from_root.exists() { from_root } else { path }
}

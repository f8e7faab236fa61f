//! Finding the official W&B SDK for compatibility tests, and reporting tests that cannot run.
//!
//! [`sdk_python`] returns the Python interpreter named by `WANDB_SDK_PYTHON` (which
//! `scripts/test` sets after installing wandb 0.31.0 into `.venv`). Tests that need something
//! this machine lacks (the SDK, root, a service) call [`skip`]: it prints a `SKIPPED` line on
//! stderr, appends it to the file named by `WANDB_TEST_SKIP_LOG` (which `scripts/test` sets and
//! counts at the end, since `cargo test` shows a test that returned early as `ok`), and panics
//! under CI (`CI=true`), where a skipped compatibility test would hide a regression.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Python with the official SDK, or `None` (after reporting the skip through [`skip`])
/// when `WANDB_SDK_PYTHON` is unset or names an interpreter that cannot import `wandb`.
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
            skip(&format!("the official SDK is unavailable: {problem}"));
            None
        }
    }
}

/// Reports that the calling test cannot run here and why; the caller then returns.
///
/// Prints `SKIPPED <test>: <reason>` on stderr and appends the same line to the file named by
/// `WANDB_TEST_SKIP_LOG`, if set. The test's name is its thread's name, which libtest sets.
///
/// # Panics
///
/// When `CI=true`: CI installs every component its tests need, so a skip there is a failure.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    let line = format!("SKIPPED {test}: {reason}");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, so this test may not skip: {line}"
    );
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("WANDB_TEST_SKIP_LOG").filter(|p| !p.is_empty()) {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(error) = appended {
            eprintln!(
                "cannot record the skip in {}: {error}",
                Path::new(&log).display()
            );
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
            String::from_utf8_lossy(&out.stderr).trim()
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

/// Runs `python -c script` with `input` on its stdin (written from a second thread, so a script
/// that prints before it has read everything cannot block) and returns its stdout.
///
/// # Errors
///
/// When the interpreter cannot be started or waited for, or the script exits unsuccessfully (the
/// error then holds its exit status and stderr).
pub fn python_script(python: &Path, script: &str, input: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::process::Stdio;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    let output = std::thread::scope(|scope| {
        let writer = scope.spawn(move || stdin.write_all(input));
        let output = child.wait_with_output();
        // A script that exits without reading all its input breaks the pipe: its status says more.
        let _ = writer.join();
        output
    })?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "python script failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(output.stdout)
}

//! Locating and reading the system and workspace settings files into one raw layer.
//!
//! As in W&B: both files are read in one step, the workspace file overriding the system file key
//! by key; only the `[default]` section counts; a file that cannot be read or parsed is treated
//! as empty (with a warning); `ignore_globs` is split on commas; `root_dir` and
//! `settings_system` are refused and `anonymous` is deprecated; a key starting with `_` means
//! `x_...`. If any value is invalid, no setting from either file is applied (W&B prints the
//! error and goes on), which is reported as [`Warning::SettingsFilesRejected`].
//!
//! Deviation, on purpose: W&B rejects both files when one holds a key that is not a W&B
//! setting at all; here such keys, and W&B settings this crate does not model, are ignored one
//! by one and reported in the ignored list.

use std::io;
use std::path::{Path, PathBuf};

use crate::env::WANDB_CONFIG_DIR;
use crate::environment::Env;
use crate::error::{IgnoredReason, IgnoredSetting, Warning};
use crate::ini::{self, IniItem};
use crate::known::is_wandb_setting;
use crate::raw::{Key, RawSettings};
use crate::source::{Source, Sourced};
use crate::validate::validate_layer;

/// The only section W&B reads.
const SECTION: &str = "default";

/// The settings file layer with everything worth reporting about it.
#[derive(Debug, Default)]
pub(crate) struct FileLayer {
    pub(crate) raw: RawSettings,
    pub(crate) ignored: Vec<IgnoredSetting>,
    pub(crate) warnings: Vec<Warning>,
    /// Files that held at least one setting.
    pub(crate) files_read: Vec<PathBuf>,
}

/// The system settings file: an explicit path, else `$WANDB_CONFIG_DIR/settings` (if set and not
/// empty), else `~/.config/wandb/settings`. `None` when there is no home directory to use.
pub(crate) fn system_settings_path(
    explicit: Option<&Path>,
    env: &Env,
    home: Option<&Path>,
) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(dir) = env.get_os(WANDB_CONFIG_DIR).filter(|d| !d.is_empty()) {
        return Some(expand_user(Path::new(dir), home).join("settings"));
    }
    home.map(|h| h.join(".config").join("wandb").join("settings"))
}

/// The `wandb` directory under `root`: `.wandb` if `use_dot` says so, or (when `use_dot` is
/// `None`) if `<root>/.wandb` exists; `wandb` otherwise.
pub(crate) fn wandb_dir(root: &Path, use_dot: Option<bool>) -> PathBuf {
    let dot = root.join(".wandb");
    if use_dot.unwrap_or_else(|| dot.exists()) {
        dot
    } else {
        root.join("wandb")
    }
}

/// `~` or `~/...` replaced by the home directory, when known.
pub(crate) fn expand_user(path: &Path, home: Option<&Path>) -> PathBuf {
    let Some(home) = home else {
        return path.to_path_buf();
    };
    let mut components = path.components();
    match components.next() {
        Some(std::path::Component::Normal(first)) if first == "~" => {
            home.join(components.as_path())
        }
        _ => path.to_path_buf(),
    }
}

/// Reads both files and builds the file layer.
pub(crate) fn load_files(system: Option<&Path>, workspace: &Path) -> FileLayer {
    let mut layer = FileLayer::default();
    // Key, value and source, in the order W&B's merged dict has them.
    let mut merged: Vec<(String, String, Source)> = Vec::new();

    let files = system
        .map(|p| (p, true))
        .into_iter()
        .chain(std::iter::once((workspace, false)));
    for (path, is_system) in files {
        let items = match read_items(path) {
            Ok(items) => items,
            Err(problem) => {
                layer.warnings.push(Warning::SettingsFileUnreadable {
                    path: path.to_path_buf(),
                    problem,
                });
                continue;
            }
        };
        if items.is_empty() {
            continue;
        }
        layer.files_read.push(path.to_path_buf());
        for IniItem { key, value, line } in items {
            let path = path.to_path_buf();
            let source = if is_system {
                Source::SystemFile { path, line }
            } else {
                Source::WorkspaceFile { path, line }
            };
            match merged.iter_mut().find(|(k, _, _)| *k == key) {
                Some(entry) => *entry = (key, value, source),
                None => merged.push((key, value, source)),
            }
        }
    }

    for (key, value, source) in merged {
        let name = match key.strip_prefix('_') {
            Some(rest) => format!("x_{rest}"),
            None => key.clone(),
        };
        let ignore = |reason| IgnoredSetting {
            name: key.clone(),
            origin: source.clone(),
            reason,
        };
        match name.as_str() {
            "anonymous" => layer.ignored.push(ignore(IgnoredReason::Deprecated)),
            "root_dir" | "settings_system" => {
                layer.ignored.push(ignore(IgnoredReason::NotAllowedInFile));
            }
            // W&B splits only ignore_globs in files: run_tags stays one tag.
            "run_tags" => layer.raw.run_tags = Some(Sourced::new(vec![value], source)),
            other => match Key::from_name(other) {
                Some(k) => layer.raw.set_text(k, &value, source),
                None if is_wandb_setting(other) => {
                    layer.ignored.push(ignore(IgnoredReason::Unsupported));
                }
                None => layer.ignored.push(ignore(IgnoredReason::Unknown)),
            },
        }
    }

    if let Err(error) = validate_layer(&layer.raw) {
        layer
            .warnings
            .push(Warning::SettingsFilesRejected { error });
        layer.raw = RawSettings::default();
    }
    layer
}

/// The `[default]` items of one file; empty if the file does not exist or has no such section.
fn read_items(path: &Path) -> Result<Vec<IniItem>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string().to_lowercase()),
    };
    let text = String::from_utf8(bytes).map_err(|_| "not valid utf-8".to_owned())?;
    let parsed = ini::parse(&text).map_err(|e| e.to_string())?;
    let items = parsed.section_items(SECTION).map_err(|e| e.to_string())?;
    Ok(items.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_path_choice() {
        let home = Path::new("/home/u");
        let env = Env::empty();
        assert_eq!(
            system_settings_path(None, &env, Some(home)),
            Some(PathBuf::from("/home/u/.config/wandb/settings"))
        );
        let env = Env::empty().with(WANDB_CONFIG_DIR, "~/cfg");
        assert_eq!(
            system_settings_path(None, &env, Some(home)),
            Some(PathBuf::from("/home/u/cfg/settings"))
        );
        let env = Env::empty().with(WANDB_CONFIG_DIR, "");
        assert_eq!(
            system_settings_path(None, &env, Some(home)),
            Some(PathBuf::from("/home/u/.config/wandb/settings"))
        );
        assert_eq!(
            system_settings_path(Some(Path::new("/x/s")), &env, Some(home)),
            Some(PathBuf::from("/x/s"))
        );
        assert_eq!(system_settings_path(None, &Env::empty(), None), None);
    }

    #[test]
    fn tilde_expansion() {
        let home = Some(Path::new("/h"));
        assert_eq!(expand_user(Path::new("~"), home), PathBuf::from("/h"));
        assert_eq!(
            expand_user(Path::new("~/a/b"), home),
            PathBuf::from("/h/a/b")
        );
        assert_eq!(expand_user(Path::new("~x/a"), home), PathBuf::from("~x/a"));
        assert_eq!(expand_user(Path::new("/a/~"), home), PathBuf::from("/a/~"));
        assert_eq!(expand_user(Path::new("~/a"), None), PathBuf::from("~/a"));
    }

    #[test]
    fn unreadable_file_is_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where a file is expected cannot be read.
        let layer = load_files(None, dir.path());
        assert_eq!(layer.warnings.len(), 1);
        assert!(layer.raw.is_empty());
    }
}

//! Turns command-line inputs into the list of `.wandb` files to read.
//!
//! An input is a file (taken as it is, whatever its name), a folder (searched for `*.wandb` files
//! in it and in sub-folders up to three levels down, so a run folder, a `wandb/` folder and the
//! project folder holding `wandb/` all work), or a glob pattern (expanded here too, for shells that
//! do not, e.g. `'wandb/*/run-*.wandb'`). Within a folder files come in name order, and symlinked
//! sub-folders (W&B's `latest-run`) are visited after the real ones.
//!
//! Each file is read once: files reached twice (through `latest-run`, a hard link, or two inputs)
//! are recognised by device and inode (by canonical path where there are no inodes), and the first
//! path given for them is kept.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// How deep folders are searched below the folder given.
const MAX_DEPTH: usize = 3;

/// The files found for `inputs`, in order and without duplicates, and the inputs that failed.
pub(crate) fn resolve(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<Error>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        if let Err(error) = expand(input, &mut found, &mut errors) {
            errors.push(error);
        }
    }
    let mut seen = HashSet::new();
    found.retain(|path| seen.insert(identity(path)));
    (found, errors)
}

/// Adds the files `input` stands for to `found`.
fn expand(input: &Path, found: &mut Vec<PathBuf>, errors: &mut Vec<Error>) -> Result<(), Error> {
    match fs::metadata(input) {
        Ok(metadata) if metadata.is_dir() => {
            let before = found.len();
            walk(input, 0, found, errors);
            if found.len() == before {
                return Err(Error::NoRecordFiles {
                    path: input.to_path_buf(),
                });
            }
            Ok(())
        }
        Ok(_) => {
            found.push(input.to_path_buf());
            Ok(())
        }
        Err(source) => {
            let text = input.to_string_lossy();
            if !text.contains(['*', '?', '[']) {
                return Err(Error::Io {
                    path: input.to_path_buf(),
                    action: "open",
                    source,
                });
            }
            let matches = glob::glob(&text).map_err(|source| Error::Pattern {
                pattern: text.to_string(),
                source,
            })?;
            let before = found.len();
            let mut paths = Vec::new();
            for entry in matches {
                match entry {
                    Ok(path) => paths.push(path),
                    Err(error) => errors.push(Error::Io {
                        path: error.path().to_path_buf(),
                        action: "read",
                        source: error.into(),
                    }),
                }
            }
            // Matches through a symlinked folder (`latest-run`) go last, so that the real path is
            // the one kept for a file matched twice.
            paths.sort_by_key(|path| through_symlink(path));
            for path in paths {
                if path.is_dir() {
                    walk(&path, 0, found, errors);
                } else {
                    found.push(path);
                }
            }
            if found.len() == before {
                return Err(Error::NoMatch {
                    pattern: text.to_string(),
                });
            }
            Ok(())
        }
    }
}

/// Adds the `.wandb` files in `folder` and its sub-folders (down to [`MAX_DEPTH`]) to `found`.
fn walk(folder: &Path, depth: usize, found: &mut Vec<PathBuf>, errors: &mut Vec<Error>) {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(source) => {
            errors.push(Error::Io {
                path: folder.to_path_buf(),
                action: "read folder",
                source,
            });
            return;
        }
    };
    let mut files = Vec::new();
    let mut folders = Vec::new();
    let mut linked_folders = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let is_link = entry.file_type().is_ok_and(|kind| kind.is_symlink());
        // `metadata` follows symlinks: a link to a run folder counts as a folder.
        let Ok(metadata) = fs::metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            if name.to_string_lossy().starts_with('.') || depth >= MAX_DEPTH {
                continue;
            }
            if is_link {
                linked_folders.push(path);
            } else {
                folders.push(path);
            }
        } else if path.extension().is_some_and(|ext| ext == "wandb") {
            files.push(path);
        }
    }
    files.sort();
    folders.sort();
    linked_folders.sort();
    found.extend(files);
    for sub in folders.into_iter().chain(linked_folders) {
        walk(&sub, depth + 1, found, errors);
    }
}

/// Whether a folder on the way to `path` is a symlink.
fn through_symlink(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .any(|dir| fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()))
}

/// What makes two paths the same file.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(path: &Path) -> Identity {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(metadata) = fs::metadata(path) {
            return Identity::Inode(metadata.dev(), metadata.ino());
        }
    }
    Identity::Path(fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b":W&B").unwrap();
    }

    #[test]
    fn folders_globs_and_latest_run_links_resolve_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let wandb = dir.path().join("wandb");
        let run_a = wandb.join("run-20240101_000000-aaaa/run-aaaa.wandb");
        let run_b = wandb.join("offline-run-20240102_000000-bbbb/run-bbbb.wandb");
        touch(&run_a);
        touch(&run_b);
        touch(&wandb.join("run-20240101_000000-aaaa/files/config.yaml"));
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            wandb.join("offline-run-20240102_000000-bbbb"),
            wandb.join("latest-run"),
        )
        .unwrap();

        let (files, errors) = resolve(&[dir.path().to_path_buf()]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(files, vec![run_b.clone(), run_a.clone()]);

        let pattern = wandb.join("*/run-*.wandb");
        let (files, errors) = resolve(&[pattern, run_a.clone()]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(files.len(), 2, "{files:?}");

        #[cfg(unix)]
        {
            let (files, _) = resolve(&[wandb.join("latest-run"), wandb.clone()]);
            assert_eq!(files, vec![wandb.join("latest-run/run-bbbb.wandb"), run_a]);
        }
    }

    #[test]
    fn missing_inputs_and_empty_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (files, errors) = resolve(&[
            dir.path().join("missing.wandb"),
            dir.path().join("*.wandb"),
            dir.path().to_path_buf(),
        ]);
        assert!(files.is_empty());
        assert!(matches!(errors[0], Error::Io { .. }), "{errors:?}");
        assert!(matches!(errors[1], Error::NoMatch { .. }), "{errors:?}");
        assert!(
            matches!(errors[2], Error::NoRecordFiles { .. }),
            "{errors:?}"
        );
    }
}

//! Resolving the files a run asked to upload, safely.
//!
//! A run folder may come from anyone, so a path in a `files` record is trusted only if it stays
//! inside the run's `files/` folder: absolute paths, `..` components, and symlinks (at any
//! level) that lead outside are refused. Only regular files are uploaded, so a FIFO or device
//! can never block or flood the syncer. Globs are expanded inside `files/` and each match is
//! checked the same way.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// A file that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SafeFile {
    /// Path relative to `files/`, with forward slashes (the name on the server).
    pub(crate) name: String,
    /// The real path on disk.
    pub(crate) path: PathBuf,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The path as written in the record.
    pub(crate) path: String,
    /// Why.
    pub(crate) reason: String,
}

/// Resolves one requested path (or glob) against `files_dir`: the files to upload, and the
/// matches refused. Missing files give nothing (W&B skips them with a warning).
pub(crate) fn resolve(files_dir: &Path, requested: &str) -> (Vec<SafeFile>, Vec<Refusal>) {
    match resolve_inner(files_dir, requested) {
        Ok(found) => found,
        Err(refusal) => (Vec::new(), vec![refusal]),
    }
}

fn resolve_inner(
    files_dir: &Path,
    requested: &str,
) -> Result<(Vec<SafeFile>, Vec<Refusal>), Refusal> {
    let refuse = |reason: &str| Refusal {
        path: requested.to_owned(),
        reason: reason.to_owned(),
    };
    if requested.is_empty() {
        return Err(refuse("empty path"));
    }
    if requested.contains('\0') {
        return Err(refuse("path contains a NUL byte"));
    }
    let relative = Path::new(requested);
    if relative.is_absolute() || requested.starts_with('/') || requested.starts_with('\\') {
        return Err(refuse("absolute path"));
    }
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(refuse("path leaves files/ through `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("absolute path")),
        }
    }
    let Ok(root) = files_dir.canonicalize() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let candidates: Vec<PathBuf> = if requested.contains(['*', '?', '[']) {
        let Some(dir) = files_dir.to_str() else {
            return Err(refuse("path is not valid UTF-8"));
        };
        let pattern = format!("{}/{requested}", glob::Pattern::escape(dir));
        match glob::glob(&pattern) {
            Ok(paths) => paths.filter_map(std::result::Result::ok).collect(),
            Err(_) => return Err(refuse("invalid glob pattern")),
        }
    } else {
        vec![files_dir.join(relative)]
    };
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for candidate in candidates {
        let shown = candidate.strip_prefix(files_dir).map_or_else(
            |_| requested.to_owned(),
            |p| p.to_string_lossy().into_owned(),
        );
        let refuse_match = |reason: &str| Refusal {
            path: shown.clone(),
            reason: reason.to_owned(),
        };
        let real = match candidate.canonicalize() {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A dangling symlink or a missing file: nothing to upload.
                if candidate.symlink_metadata().is_ok() {
                    refused.push(refuse_match("symlink to a missing target"));
                }
                continue;
            }
            Err(_) => continue,
        };
        let Ok(inside) = real.strip_prefix(&root) else {
            refused.push(refuse_match("symlink points outside files/"));
            continue;
        };
        let meta = match real.metadata() {
            Ok(meta) => meta,
            Err(_) => continue,
        };
        if meta.is_dir() {
            continue;
        }
        if !meta.is_file() {
            refused.push(refuse_match("not a regular file"));
            continue;
        }
        // The server name is the path as requested (symlinks inside files/ keep their name).
        let name_path = candidate.strip_prefix(files_dir).unwrap_or(inside);
        let name = name_path
            .components()
            .filter_map(|c| match c {
                Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("/");
        if name.is_empty() {
            continue;
        }
        out.push(SafeFile { name, path: real });
    }
    Ok((out, refused))
}

/// Size and lowercase hex SHA-256 of a file, read in blocks.
pub(crate) fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Lowercase hex SHA-256 of bytes.
pub(crate) fn hash_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes_and_accepts_inside() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir_all(files.join("sub")).unwrap();
        std::fs::write(files.join("sub/a.txt"), b"a").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        assert_eq!(
            resolve(&files, "sub/a.txt").0,
            vec![SafeFile {
                name: "sub/a.txt".into(),
                path: files.join("sub/a.txt").canonicalize().unwrap()
            }]
        );
        assert_eq!(resolve(&files, "../secret").1.len(), 1);
        assert_eq!(resolve(&files, "/etc/passwd").1.len(), 1);
        assert_eq!(resolve(&files, "missing.txt"), (Vec::new(), Vec::new()));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret"), files.join("link")).unwrap();
            let (ok, refused) = resolve(&files, "link");
            assert!(ok.is_empty());
            assert!(refused[0].reason.contains("outside"), "{refused:?}");
            let (ok, refused) = resolve(&files, "*");
            assert!(ok.is_empty());
            assert_eq!(refused.len(), 1);
        }
        assert_eq!(resolve(&files, "sub/*.txt").0.len(), 1);
    }
}

//! `unpack`: members into a target folder, never outside it.
//!
//! Refused, by name: absolute names, names with `..`, symlink members whose target is absolute
//! or leads out of the target, hard links to names outside it, devices and FIFOs, and any path
//! that would go through a symlink already in the target. Files are written to a temporary name,
//! checked (SHA-256 from the index, or the frames' checksums) and renamed into place; symlinks
//! are made last, so no file is ever written through one.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::index::{INDEX_NAME, check_name};
use crate::read::{Archive, Member, hex};
use crate::tarfmt::Kind;

/// What `unpack` did.
#[derive(Debug, Default, Clone)]
pub struct UnpackReport {
    /// Members written (names).
    pub written: Vec<String>,
    /// Members refused: (name, reason).
    pub refused: Vec<(String, String)>,
    /// Members lost to damage: (name, reason).
    pub damaged: Vec<(String, String)>,
}

/// Unpacks the members of `runs` (all when empty) into `to`.
pub fn unpack(archive: &Archive, to: &Path, runs: &[String]) -> Result<UnpackReport> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, "create folder", e))?;
    let root = to.canonicalize().map_err(|e| Error::io(to, "resolve", e))?;
    let mut report = UnpackReport::default();
    let mut links = Vec::new();
    let mut hard_links = Vec::new();
    for member in archive.members() {
        if member.name == INDEX_NAME || member.name.starts_with(".wandb-archive/") {
            continue;
        }
        if !runs.is_empty() && !runs.iter().any(|r| r == member.run()) {
            continue;
        }
        let refuse = |report: &mut UnpackReport, reason: &str| {
            report
                .refused
                .push((member.name.clone(), reason.to_string()));
        };
        if let Err(reason) = check_name(&member.name) {
            refuse(&mut report, &reason);
            continue;
        }
        match member.kind {
            Kind::File => match write_file(archive, &root, member) {
                Ok(()) => report.written.push(member.name.clone()),
                Err(Outcome::Refused(r)) => refuse(&mut report, &r),
                Err(Outcome::Damaged(r)) => report.damaged.push((member.name.clone(), r)),
            },
            Kind::Dir => match safe_parent(&root, &member.name, true) {
                Ok(_) => report.written.push(member.name.clone()),
                Err(r) => refuse(&mut report, &r),
            },
            Kind::Symlink => match link_stays_inside(&member.name, &member.link) {
                Ok(()) => links.push(member.clone()),
                Err(r) => refuse(&mut report, &r),
            },
            Kind::HardLink => match check_name(&member.link) {
                Ok(()) => hard_links.push(member.clone()),
                Err(r) => refuse(
                    &mut report,
                    &format!(
                        "hard link to {:?} leading out of the target: {r}",
                        member.link
                    ),
                ),
            },
            Kind::Other(t) => refuse(
                &mut report,
                &format!(
                    "member of type {:?} (device, FIFO, ...) is never unpacked",
                    t as char
                ),
            ),
        }
    }
    for member in hard_links {
        let result = safe_parent(&root, &member.name, false).and_then(|dest| {
            let source = safe_parent(&root, &member.link, false)?;
            let meta = source
                .symlink_metadata()
                .map_err(|_| format!("hard link to {:?}, which was not unpacked", member.link))?;
            if !meta.is_file() {
                return Err(format!(
                    "hard link to {:?}, not a regular file",
                    member.link
                ));
            }
            let _ = std::fs::remove_file(&dest);
            std::fs::hard_link(&source, &dest).map_err(|e| format!("link: {e}"))
        });
        match result {
            Ok(()) => report.written.push(member.name.clone()),
            Err(r) => report.refused.push((member.name.clone(), r)),
        }
    }
    for member in links {
        let result = safe_parent(&root, &member.name, false).and_then(|dest| {
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(&member.link, &dest).map_err(|e| format!("symlink: {e}"))
        });
        match result {
            Ok(()) => report.written.push(member.name.clone()),
            Err(r) => report.refused.push((member.name.clone(), r)),
        }
    }
    Ok(report)
}

enum Outcome {
    Refused(String),
    Damaged(String),
}

fn write_file(archive: &Archive, root: &Path, member: &Member) -> std::result::Result<(), Outcome> {
    let dest = safe_parent(root, &member.name, false).map_err(Outcome::Refused)?;
    let parent = dest.parent().unwrap_or(root);
    let temp = tempfile::Builder::new()
        .prefix(".unpack.")
        .tempfile_in(parent)
        .map_err(|e| Outcome::Refused(format!("create: {e}")))?;
    let mut out = std::io::BufWriter::new(temp.as_file());
    let mut sha = Sha256::new();
    archive
        .read_range(member.data_offset, member.size, &mut |bytes| {
            sha.update(bytes);
            out.write_all(bytes)
        })
        .map_err(Outcome::Damaged)?;
    out.flush()
        .map_err(|e| Outcome::Refused(format!("write: {e}")))?;
    drop(out);
    if let Some(expected) = &member.sha256 {
        let got = hex(&sha.finalize());
        if &got != expected {
            return Err(Outcome::Damaged(format!(
                "SHA-256 {got}, the index says {expected}"
            )));
        }
    }
    let file: &File = temp.as_file();
    let _ = file.set_permissions(std::fs::Permissions::from_mode(member.mode & 0o777));
    let _ = file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(member.mtime));
    temp.persist(&dest)
        .map_err(|e| Outcome::Refused(format!("rename: {}", e.error)))?;
    Ok(())
}

/// The path of `name` under `root`, with its parent folders made; refuses a path that goes
/// through a symlink or a non-folder. With `is_dir`, `name` itself is made as a folder.
fn safe_parent(root: &Path, name: &str, is_dir: bool) -> std::result::Result<PathBuf, String> {
    check_name(name)?;
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut path = root.to_path_buf();
    let n_dirs = if is_dir {
        parts.len()
    } else {
        parts.len().saturating_sub(1)
    };
    for part in &parts[..n_dirs] {
        path.push(part);
        match path.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "would go through the symlink {}",
                    path.strip_prefix(root).unwrap_or(&path).display()
                ));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a folder", path.display())),
            Err(_) => {
                std::fs::create_dir(&path).map_err(|e| format!("create folder: {e}"))?;
            }
        }
    }
    if !is_dir && let Some(last) = parts.last() {
        path.push(last);
        // An existing symlink at the path is replaced by the rename, never written through.
    }
    Ok(path)
}

/// Whether a symlink member named `name` pointing to `target` stays inside the target folder.
pub fn link_stays_inside(name: &str, target: &str) -> std::result::Result<(), String> {
    let target_path = Path::new(target);
    if target.is_empty() {
        return Err("symlink with an empty target".into());
    }
    if target_path.is_absolute() {
        return Err(format!("symlink to the absolute path {target:?}"));
    }
    let mut depth: i64 = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .count() as i64
        - 1;
    for component in target_path.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(format!("symlink to {target:?} leading out of the target"));
        }
    }
    Ok(())
}

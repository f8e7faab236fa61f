//! What other tools need to read archives in place: archive inputs expanded into one virtual
//! path per `.wandb` member, `<archive>.tar.zst:<member name>`, and the bytes behind such a
//! path.
//!
//! `wandb-inspect runs.tar.zst` reads every run's record files, `runs.tar.zst:RUN` (a run folder
//! name or run id) one run's; each shows as `runs.tar.zst:<run folder>/<file>.wandb`.

use std::path::{Path, PathBuf};

use crate::read::{Archive, parse_spec};

/// One input after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expanded {
    /// Not an archive: resolve it by the ordinary input rules.
    Plain(PathBuf),
    /// The record files an archive input stands for, as virtual paths.
    Members(Vec<PathBuf>),
    /// An archive input that cannot be used.
    Problem {
        /// The input.
        input: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Expands each input that names an archive (`x.tar.zst`, `x.tar.zst:RUN`).
pub fn expand(inputs: &[PathBuf]) -> Vec<Expanded> {
    inputs
        .iter()
        .map(|input| {
            let Some((archive_path, run)) = parse_spec(input) else {
                return Expanded::Plain(input.clone());
            };
            let archive = match Archive::open(&archive_path) {
                Ok(archive) => archive,
                Err(error) => {
                    return Expanded::Problem {
                        input: input.clone(),
                        reason: error.to_string(),
                    };
                }
            };
            let members = archive.record_members(run.as_deref());
            if members.is_empty() {
                return Expanded::Problem {
                    input: input.clone(),
                    reason: match &run {
                        Some(run) => format!("the archive holds no run {run:?}"),
                        None => "the archive holds no .wandb file".into(),
                    },
                };
            }
            Expanded::Members(
                members
                    .iter()
                    .map(|m| virtual_path(&archive_path, &m.name))
                    .collect(),
            )
        })
        .collect()
}

/// `<archive>:<member>`.
pub fn virtual_path(archive: &Path, member: &str) -> PathBuf {
    let mut text = archive.as_os_str().to_owned();
    text.push(":");
    text.push(member);
    PathBuf::from(text)
}

/// The archive and member a virtual path names, when it is one (and no real file has that name).
pub fn split_virtual(path: &Path) -> Option<(PathBuf, String)> {
    if path.exists() {
        return None;
    }
    let text = path.to_str()?;
    let (archive, member) = text.rsplit_once(".tar.zst:")?;
    let archive = PathBuf::from(format!("{archive}.tar.zst"));
    (archive.is_file() && member.contains('/')).then(|| (archive, member.to_string()))
}

/// The bytes of the member a virtual path names: `None` when `path` is not a virtual path,
/// `Some(Err)` when the archive or member cannot be read (damage included).
pub fn read_virtual(path: &Path) -> Option<Result<Vec<u8>, String>> {
    let (archive_path, name) = split_virtual(path)?;
    Some((|| {
        let archive = Archive::open(&archive_path).map_err(|e| e.to_string())?;
        let member = archive
            .members()
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("{}: no member {name:?}", archive_path.display()))?;
        archive
            .read_member(member)
            .map_err(|e| format!("{}: {name}: {e}", archive_path.display()))
    })())
}

/// The folder next to an archive where tools keep per-run state: `runs.tar.zst.sync/`.
pub fn state_dir(archive: &Path) -> PathBuf {
    let mut text = archive.as_os_str().to_owned();
    text.push(".sync");
    PathBuf::from(text)
}

/// Name of the marker written in a run's state folder once its members are all there.
pub const UNPACKED_MARKER: &str = ".wandb-archive-unpacked";

/// One input for a tool that needs run folders on disk (`wandb-sync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Materialized {
    /// Not an archive: use it as it is.
    Plain(PathBuf),
    /// The run folders an archive input stands for, unpacked under [`state_dir`] (once: a run
    /// whose marker is there is not unpacked again, so the state a tool keeps next to its
    /// `.wandb` file, a ledger or a `.synced` marker, stays).
    Runs(Vec<PathBuf>),
    /// An archive input that cannot be used, or members of it that were lost to damage.
    Problem {
        /// The input.
        input: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Unpacks the runs that archive inputs name into the archive's [`state_dir`].
pub fn materialize(inputs: &[PathBuf]) -> Vec<Materialized> {
    let mut out = Vec::new();
    for input in inputs {
        let Some((archive_path, run)) = parse_spec(input) else {
            out.push(Materialized::Plain(input.clone()));
            continue;
        };
        let problem = |reason: String| Materialized::Problem {
            input: input.clone(),
            reason,
        };
        let archive = match Archive::open(&archive_path) {
            Ok(archive) => archive,
            Err(error) => {
                out.push(problem(error.to_string()));
                continue;
            }
        };
        let mut runs: Vec<String> = Vec::new();
        for member in archive.record_members(run.as_deref()) {
            let folder = member.run().to_string();
            if !runs.contains(&folder) {
                runs.push(folder);
            }
        }
        if runs.is_empty() {
            out.push(problem(match &run {
                Some(run) => format!("the archive holds no run {run:?}"),
                None => "the archive holds no .wandb file".into(),
            }));
            continue;
        }
        let state = state_dir(&archive_path);
        let mut dirs = Vec::new();
        for folder in runs {
            let dir = state.join(&folder);
            if !dir.join(UNPACKED_MARKER).exists() {
                match crate::unpack::unpack(&archive, &state, std::slice::from_ref(&folder)) {
                    Ok(report) if report.damaged.is_empty() && report.refused.is_empty() => {
                        let _ = std::fs::write(dir.join(UNPACKED_MARKER), b"");
                    }
                    Ok(report) => {
                        for (name, reason) in report.damaged.iter().chain(&report.refused) {
                            out.push(problem(format!("{name}: {reason}")));
                        }
                    }
                    Err(error) => {
                        out.push(problem(error.to_string()));
                        continue;
                    }
                }
            }
            dirs.push(dir);
        }
        out.push(Materialized::Runs(dirs));
    }
    out
}

/// For a run unpacked by [`materialize`] (or by `unpack`): the copy of the artifact file that
/// was staged at `local_path` when the run was packed, if the archive holds one. A tool that
/// reads an artifact's `local_path` looks here when that path does not exist on this machine.
pub fn staged_copy(run_dir: &Path, local_path: &str) -> Option<PathBuf> {
    let path = run_dir.join(crate::pack::staged_name(local_path));
    path.is_file().then_some(path)
}

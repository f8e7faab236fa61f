//! Where a run's records and files are read from: a run folder on disk, or a run inside an
//! archive written by `wandb-archive`, read in place.
//!
//! A run in an archive is never unpacked: its `.wandb` member is scanned window by window
//! (`wandb_archive::tools::scan_member`, decompressing only the run's frames), its `files/`
//! members and staged artifact files are read straight from their frames, and only sync's own
//! state (ledger, lock, `.synced` marker) is written, in `runs.tar.zst.sync/<run folder>/`
//! ([`wandb_archive::tools::state_dir`]), under the name the record file would have there.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use wandb_archive::tarfmt::Kind;
use wandb_archive::{Archive, Member, Origin};

/// Where one `.wandb` file's records and its run's files come from.
#[derive(Debug, Clone)]
pub(crate) enum RunSource {
    /// A `.wandb` file on disk; its run folder holds the files.
    Folder,
    /// A `.wandb` member of an archive.
    Archive(Arc<ArchiveRun>),
}

/// One run of an archive, as sync reads it.
#[derive(Debug)]
pub(crate) struct ArchiveRun {
    /// The archive file.
    pub(crate) archive_path: PathBuf,
    /// The run's folder name in the archive.
    pub(crate) folder: String,
    /// The `.wandb` member.
    pub(crate) record: Member,
    /// The run's files under `files/`: name relative to `files/`, member, whether it came from
    /// a symlink leading out of the run folder.
    pub(crate) files: Vec<(String, Member, bool)>,
    /// Files of the run that `pack` refused, relative to the run folder, with the reason.
    pub(crate) refused: Vec<(String, String)>,
    /// Artifact files staged outside the run folder: the manifest's `local_path` and the member
    /// holding its copy.
    pub(crate) staged: Vec<(String, Member)>,
    /// A handle on the open archive, from which each reader takes its own
    /// ([`Archive::handle`]).
    archive: Mutex<Archive>,
}

impl ArchiveRun {
    /// The run of `archive` that holds the `.wandb` member `record`.
    pub(crate) fn new(archive: &Archive, record: &Member) -> ArchiveRun {
        let folder = record.run().to_owned();
        let files_prefix = format!("{folder}/files/");
        let entry = archive
            .index()
            .and_then(|index| index.runs.iter().find(|run| run.name == folder));
        let origin_of = |name: &str| {
            entry
                .and_then(|run| run.files.iter().find(|f| f.path == name))
                .map(|f| (f.origin, f.source.clone()))
        };
        let mut files = Vec::new();
        let mut staged = Vec::new();
        for member in archive.members() {
            if member.kind != Kind::File || member.run() != folder {
                continue;
            }
            let origin = origin_of(&member.name);
            if let Some(rest) = member.name.strip_prefix(&files_prefix) {
                let linked = matches!(origin, Some((Origin::Linked, _)));
                files.push((rest.to_owned(), member.clone(), linked));
            }
            if let Some((Origin::Staged, Some(source))) = origin {
                staged.push((source, member.clone()));
            }
        }
        let refused = entry
            .map(|run| {
                run.refused
                    .iter()
                    .map(|r| (r.path.clone(), r.reason.clone()))
                    .collect()
            })
            .unwrap_or_default();
        ArchiveRun {
            archive_path: archive.path().to_path_buf(),
            folder,
            record: record.clone(),
            files,
            refused,
            staged,
            archive: Mutex::new(archive.handle()),
        }
    }

    /// A handle of its own on the archive (an empty frame cache), for one reader.
    pub(crate) fn handle(&self) -> Archive {
        self.archive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .handle()
    }

    /// The `.wandb` member's name (`<run folder>/<file>.wandb`).
    pub(crate) fn record_name(&self) -> &str {
        &self.record.name
    }

    /// The path that names the record file in reports: `<archive>:<run folder>/<file>.wandb`.
    pub(crate) fn shown_path(&self) -> PathBuf {
        wandb_archive::tools::virtual_path(&self.archive_path, &self.record.name)
    }

    /// The path sync's state for this record file derives from (`<path>.ledger.json`,
    /// `<path>.lock`, `<path>.synced`): where the record file would be in the archive's state
    /// folder. Nothing is written at that path itself.
    pub(crate) fn state_path(&self) -> PathBuf {
        wandb_archive::tools::state_dir(&self.archive_path).join(&self.record.name)
    }

    /// The copy of the artifact file staged at `local_path` that the archive holds.
    pub(crate) fn staged_member(&self, local_path: &str) -> Option<&Member> {
        self.staged
            .iter()
            .find(|(source, _)| source == local_path)
            .map(|(_, member)| member)
    }
}

/// The state folder of an archive run exists (made before the run's lock is taken).
pub(crate) fn prepare_state(state_path: &Path) -> std::io::Result<()> {
    match state_path.parent() {
        Some(dir) => std::fs::create_dir_all(dir),
        None => Ok(()),
    }
}

//! Sweeps: a run whose run record carries a sweep id is attached to a W&B sweep created from the
//! sweep's configuration on disk.
//!
//! `wandb-launch sweep` keeps a sweep in `<wandb folder>/sweep-<id>/`: `sweep.yaml` (the text
//! `UpsertSweep` sends, as `SweepConfig::upsert_yaml` writes it) and `sweep.json`
//! (`{"id", "entity", "project", "method", "created_at"}`). W&B's `UpsertSweep` does not let the
//! client name a new sweep (its input has an `id`, the storage id of a sweep to update, and no
//! name), so the local id is mapped to the name the server gave: the first run of a sweep to
//! sync creates it and writes the mapping to `sweep-<id>/sweep.synced.json`, keyed by server,
//! entity and project; every later run (in this sync, in parallel workers, or in a later sync)
//! reads the mapping and attaches with the server's name (UpsertBucket's `sweep`). Creation is
//! serialised within the process, so parallel workers create a sweep once.
//!
//! A run read from an archive (`wandb-archive pack` stores `sweep-<id>/` once, beside the run
//! folders) reads `sweep.yaml` and `sweep.json` from the archive's `sweep-<id>/` members, and
//! its mapping is `<archive>.sync/sweep-<id>/sweep.synced.json`, in the archive's state folder.
//!
//! Without `sweep.yaml` the run is synced without a sweep and the report warns, naming the
//! sweep id and the path looked at (the official `wandb sync` sends the local id as the sweep
//! name, which the server does not know). A failed or refused `UpsertSweep` fails the run before
//! anything of it is sent, so nothing goes up detached from its sweep for good.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::Api;
use crate::error::{Error, Result};
use crate::http::RetryClass;
use crate::source::ArchiveRun;

/// W&B's `UpsertSweep`, with the input fields the SDK's `wandb sweep` sends.
const UPSERT_SWEEP: &str = "mutation UpsertSweep($id: ID, $config: String, $description: String, $entityName: String, $projectName: String, $controller: JSONString, $scheduler: JSONString, $state: String, $priorRunsFilters: JSONString, $displayName: String) { upsertSweep(input: {id: $id, config: $config, description: $description, entityName: $entityName, projectName: $projectName, controller: $controller, scheduler: $scheduler, state: $state, priorRunsFilters: $priorRunsFilters, displayName: $displayName}) { sweep { id name project { id name entity { id name } } } configValidationWarnings } }";

/// The name of the mapping file in the sweep folder.
pub(crate) const MAPPING_FILE: &str = "sweep.synced.json";

/// Serialises sweep creation in the process (so parallel workers create each sweep once).
static CREATING: Mutex<()> = Mutex::new(());

/// Where a run's sweep is to be created: the run's destination as it will be upserted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SweepKey {
    pub(crate) base_url: String,
    /// Entity sent (`None`: the server's default).
    pub(crate) entity: Option<String>,
    /// Project sent (`None`: the server's default).
    pub(crate) project: Option<String>,
}

/// A sweep on the server, as its `UpsertSweep` reply named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServerSweep {
    #[serde(flatten)]
    pub(crate) key: SweepKey,
    /// The server's sweep name (what runs attach to).
    pub(crate) name: String,
    /// Its storage id.
    pub(crate) storage_id: String,
    /// The entity and project the server resolved.
    pub(crate) server_entity: String,
    pub(crate) server_project: String,
}

/// `sweep.synced.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Mapping {
    /// The local sweep id.
    id: String,
    /// One entry per server, entity and project the sweep was created in.
    created: Vec<ServerSweep>,
}

/// The local sweep's files.
#[derive(Debug, Clone)]
pub(crate) struct LocalSweep {
    /// The local id.
    pub(crate) id: String,
    /// `<wandb folder>/sweep-<id>`; for a run of an archive, `sweep-<id>` in the archive's
    /// state folder (where only the mapping is written).
    pub(crate) dir: PathBuf,
    /// The archive whose `sweep-<id>/` members hold `sweep.yaml` and `sweep.json`, for a run
    /// read from an archive.
    pub(crate) archive: Option<Arc<ArchiveRun>>,
}

impl LocalSweep {
    /// The sweep folder of sweep `id` for the run file `wandb_file`
    /// (`<wandb folder>/<run folder>/run-<id>.wandb`).
    /// A run in a `.wandb` folder also finds the sweep in the `wandb` folder beside it (where
    /// `wandb-launch` writes it).
    pub(crate) fn for_run(wandb_file: &Path, id: &str) -> LocalSweep {
        let wandb_dir = wandb_file
            .parent()
            .and_then(Path::parent)
            .unwrap_or_else(|| Path::new("."));
        let name = format!("sweep-{id}");
        let dir = wandb_dir.join(&name);
        let beside = (wandb_dir.file_name().is_some_and(|n| n == ".wandb"))
            .then(|| wandb_dir.parent().map(|p| p.join("wandb").join(&name)))
            .flatten()
            .filter(|d| !dir.is_dir() && d.is_dir());
        LocalSweep {
            id: id.to_owned(),
            dir: beside.unwrap_or(dir),
            archive: None,
        }
    }

    /// The sweep `id` of a run read from an archive: its files are the archive's
    /// `sweep-<id>/` members, its mapping goes to `<archive>.sync/sweep-<id>/`.
    pub(crate) fn for_archive_run(run: &Arc<ArchiveRun>, id: &str) -> LocalSweep {
        LocalSweep {
            id: id.to_owned(),
            dir: wandb_archive::tools::state_dir(&run.archive_path)
                .join(wandb_archive::sweep_folder(id)),
            archive: Some(Arc::clone(run)),
        }
    }

    /// `sweep.yaml` (for an archive, the `<archive>:sweep-<id>/sweep.yaml` it is read from).
    pub(crate) fn config_path(&self) -> PathBuf {
        self.file_path("sweep.yaml")
    }

    /// Where the sweep's file `name` is read from.
    fn file_path(&self, name: &str) -> PathBuf {
        match &self.archive {
            Some(run) => wandb_archive::tools::virtual_path(
                &run.archive_path,
                &format!("{}/{name}", wandb_archive::sweep_folder(&self.id)),
            ),
            None => self.dir.join(name),
        }
    }

    /// The content of the sweep's file `name` (from the folder, or the archive's member).
    fn read_file(&self, name: &str) -> std::io::Result<Vec<u8>> {
        let Some(run) = &self.archive else {
            return std::fs::read(self.dir.join(name));
        };
        let member_name = format!("{}/{name}", wandb_archive::sweep_folder(&self.id));
        let archive = run.handle();
        let member = archive
            .members()
            .iter()
            .find(|m| m.name == member_name && m.kind == wandb_archive::tarfmt::Kind::File)
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not in the archive")
            })?;
        archive.read_member(member).map_err(std::io::Error::other)
    }

    /// `sweep.json`'s entity and project, if the file is there and holds them.
    pub(crate) fn entity_project(&self) -> (Option<String>, Option<String>) {
        let Ok(bytes) = self.read_file("sweep.json") else {
            return (None, None);
        };
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
            return (None, None);
        };
        let text = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        (text("entity"), text("project"))
    }
}

/// What became of a run's sweep.
#[derive(Debug)]
pub(crate) enum Resolved {
    /// Attach the run to this sweep.
    Attach(ServerSweep),
    /// The run goes up without a sweep; the warning says why.
    Skip(String),
}

/// The server's sweep for `local` at `key`: from the mapping file, else created with
/// `UpsertSweep` from `sweep.yaml` (and the mapping written).
///
/// # Errors
///
/// A failure of `UpsertSweep` (the run fails, is not marked synced and the next sync tries
/// again; a refusal says how to sync without the sweep); missing files and an unwritable
/// mapping are [`Resolved::Skip`] or warnings instead.
pub(crate) fn resolve(
    api: &Api,
    local: &LocalSweep,
    key: &SweepKey,
    deadline: Instant,
) -> Result<(Resolved, Vec<String>)> {
    let config_path = local.config_path();
    let _creating = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
    let mapping_path = local.dir.join(MAPPING_FILE);
    let mut warnings = Vec::new();
    let mut mapping = match std::fs::read(&mapping_path) {
        Ok(bytes) => match serde_json::from_slice::<Mapping>(&bytes) {
            Ok(mapping) => mapping,
            Err(e) => {
                warnings.push(format!(
                    "sweep {}: {} is not a sweep mapping ({e}); the sweep is created again",
                    local.id,
                    mapping_path.display()
                ));
                Mapping::default()
            }
        },
        Err(_) => Mapping::default(),
    };
    if let Some(found) = mapping.created.iter().find(|s| s.key == *key) {
        return Ok((Resolved::Attach(found.clone()), warnings));
    }
    let config = match local
        .read_file("sweep.yaml")
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
    {
        Ok(text) => text,
        Err(e) => {
            return Ok((
                Resolved::Skip(format!(
                    "sweep {}: no sweep configuration at {} ({e}); the run is synced without its sweep",
                    local.id,
                    config_path.display()
                )),
                warnings,
            ));
        }
    };
    let variables = json!({
        "id": null, "config": config, "description": null,
        "entityName": key.entity, "projectName": key.project,
        "controller": null, "scheduler": null, "state": null,
        "priorRunsFilters": null, "displayName": null,
    });
    let data = match api.graphql(
        "UpsertSweep",
        UPSERT_SWEEP,
        variables,
        RetryClass::Api,
        deadline,
    ) {
        Ok(data) => data,
        Err(Error::Permanent { what, detail }) => {
            // The run fails rather than going up without its sweep for good; the user can move
            // the file away to sync without it.
            return Err(Error::Permanent {
                what: format!(
                    "{what} of sweep {} from {}",
                    local.id,
                    config_path.display()
                ),
                detail: match &local.archive {
                    None => format!(
                        "{detail} (move {} away to sync the runs without their sweep)",
                        config_path.display()
                    ),
                    Some(_) => format!(
                        "{detail} (unpack the archive and move sweep-{}/sweep.yaml away to sync the runs without their sweep)",
                        local.id
                    ),
                },
            });
        }
        Err(e) => return Err(e),
    };
    let text = |pointer: &str| {
        data.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let bad = |what: &str| Error::BadReply {
        what: "UpsertSweep".into(),
        detail: format!("no {what} in the reply"),
    };
    let sweep = ServerSweep {
        key: key.clone(),
        name: text("/upsertSweep/sweep/name").ok_or_else(|| bad("sweep.name"))?,
        storage_id: text("/upsertSweep/sweep/id").unwrap_or_default(),
        server_entity: text("/upsertSweep/sweep/project/entity/name").unwrap_or_default(),
        server_project: text("/upsertSweep/sweep/project/name").unwrap_or_default(),
    };
    if let Some(list) = data
        .pointer("/upsertSweep/configValidationWarnings")
        .and_then(Value::as_array)
    {
        for warning in list.iter().filter_map(Value::as_str) {
            warnings.push(format!("sweep {}: the server warns: {warning}", local.id));
        }
    }
    mapping.id.clone_from(&local.id);
    mapping.created.push(sweep.clone());
    let written = serde_json::to_vec_pretty(&mapping)
        .map_err(std::io::Error::other)
        .and_then(|bytes| write_atomic(&mapping_path, &bytes));
    if let Err(e) = written {
        warnings.push(format!(
            "sweep {}: created as {} but its mapping {} could not be written ({e}): a later sync creates the sweep again",
            local.id,
            sweep.name,
            mapping_path.display()
        ));
    }
    Ok((Resolved::Attach(sweep), warnings))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_folder_is_next_to_the_run_folder() {
        let local =
            LocalSweep::for_run(Path::new("/p/wandb/offline-run-x-abc/run-abc.wandb"), "s1");
        assert_eq!(local.dir, Path::new("/p/wandb/sweep-s1"));
        assert_eq!(
            local.config_path(),
            Path::new("/p/wandb/sweep-s1/sweep.yaml")
        );
    }

    #[test]
    fn a_run_in_dot_wandb_finds_the_sweep_in_wandb_beside_it() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join(".wandb/offline-run-x-abc/run-abc.wandb");
        let own = root.path().join(".wandb/sweep-s1");
        let beside = root.path().join("wandb/sweep-s1");
        assert_eq!(LocalSweep::for_run(&file, "s1").dir, own);
        std::fs::create_dir_all(&beside).unwrap();
        assert_eq!(LocalSweep::for_run(&file, "s1").dir, beside);
        std::fs::create_dir_all(&own).unwrap();
        assert_eq!(LocalSweep::for_run(&file, "s1").dir, own);
    }

    #[test]
    fn sweep_json_gives_entity_and_project() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalSweep {
            id: "s1".into(),
            dir: dir.path().to_path_buf(),
            archive: None,
        };
        assert_eq!(local.entity_project(), (None, None));
        std::fs::write(
            dir.path().join("sweep.json"),
            r#"{"id": "s1", "entity": "", "project": "p", "method": "grid", "created_at": "x"}"#,
        )
        .unwrap();
        assert_eq!(local.entity_project(), (None, Some("p".to_owned())));
    }
}

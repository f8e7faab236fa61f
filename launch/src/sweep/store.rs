//! Where a sweep lives: `<queue folder>/sweeps/<sweep id>.json`, one JSON document
//! ([`SweepDoc`]) written atomically, beside a lock file that serialises the read-modify-write
//! of the controller and of `sweep pause | resume | stop | cancel`. `launch/QUEUE.md` ("Sweeps")
//! documents the layout.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wandb_sweeps::Sweep;

use super::error::{Error, Result};
use crate::queue::Queue;

/// Sub-folder of a queue folder holding its sweeps.
pub const SWEEPS: &str = "sweeps";

/// The version of [`SweepDoc`] this crate writes.
pub const SWEEP_DOC_VERSION: u32 = 1;

/// How long [`SweepStore::lock`] waits for another holder.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// A lock older than this is taken to be left by a process that died while holding it (a
/// controller tick or a command holds it for milliseconds).
const LOCK_STALE: Duration = Duration::from_secs(60);

/// One run the controller enqueued for the sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepItem {
    /// The run id (the item's `run_id`).
    pub run_id: String,
    /// The launch item that runs it.
    pub item: String,
    /// The proposal it runs.
    pub proposal: u64,
    /// Its metric history once the run ended (read once, then kept here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_metric: Option<FinalMetric>,
}

/// The sweep metric of a run that ended, as read from its `.wandb` file(s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalMetric {
    /// The run's state when it ended (W&B's name).
    pub state: wandb_sweeps::RunState,
    /// The metric's logged values in history order.
    pub history: Vec<f64>,
    /// The metric's summary value.
    pub summary: Option<f64>,
}

/// Everything `wandb-launch` keeps of a sweep: the core's [`Sweep`] state plus where and how
/// its runs are launched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepDoc {
    /// Document version ([`SWEEP_DOC_VERSION`]).
    pub version: u32,
    /// The queue its runs go to.
    pub queue: String,
    /// W&B entity of its runs (from `--entity`, else the configuration's `entity`).
    pub entity: Option<String>,
    /// W&B project of its runs (from `--project`, else the configuration's `project`).
    pub project: Option<String>,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// The `WANDB_DIR` of every run (absolute): runs go to `<wandb_dir>/wandb/run-*`, the
    /// sweep's files to `<wandb_dir>/wandb/sweep-<id>/`.
    pub wandb_dir: PathBuf,
    /// The runs' working folder (absolute), where `program` is found.
    pub working_dir: PathBuf,
    /// `${interpreter}` (W&B's agent uses `python`).
    pub interpreter: String,
    /// The resource of the runs' items (`local-process`, `slurm`).
    pub resource: String,
    /// Resource args of the runs' items.
    #[serde(default)]
    pub resource_args: Map<String, Value>,
    /// The core's state: configuration, proposals, runs, best run.
    pub sweep: Sweep,
    /// The runs enqueued, in order.
    #[serde(default)]
    pub runs: Vec<SweepItem>,
    /// Run ids the controller stopped (Hyperband, cancel), so each is stopped once.
    #[serde(default)]
    pub stopped: Vec<String>,
}

impl SweepDoc {
    /// The sweep id.
    pub fn id(&self) -> &str {
        &self.sweep.id
    }

    /// `<wandb_dir>/wandb/sweep-<id>`: the param files, `sweep.yaml` and `sweep.json`.
    pub fn sweep_dir(&self) -> PathBuf {
        self.wandb_dir
            .join("wandb")
            .join(format!("sweep-{}", self.sweep.id))
    }
}

/// The sweeps of one queue.
#[derive(Clone, Debug)]
pub struct SweepStore {
    dir: PathBuf,
    queue: Queue,
}

/// True for a sweep id this crate makes or accepts: 1 to 64 of `[a-z0-9]`, the rule of an
/// item id ([`crate::queue::valid_id`]).
pub fn valid_sweep_id(id: &str) -> bool {
    crate::queue::valid_id(id)
}

impl SweepStore {
    /// The sweeps of `queue` (creates `<queue>/sweeps/` when missing).
    pub fn open(queue: Queue) -> Result<SweepStore> {
        let dir = queue.dir().join(SWEEPS);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create sweeps folder", e))?;
        Ok(SweepStore { dir, queue })
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The state file of sweep `id`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.lock"))
    }

    /// True when sweep `id` exists here.
    pub fn contains(&self, id: &str) -> bool {
        valid_sweep_id(id) && self.path(id).is_file()
    }

    /// The ids of the sweeps here, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, "list sweeps", e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, "list sweeps", e))?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && valid_sweep_id(id)
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Reads sweep `id`.
    pub fn load(&self, id: &str) -> Result<SweepDoc> {
        if !self.contains(id) {
            return Err(Error::NoSuchSweep {
                sweep: id.to_owned(),
                searched: self.queue.dir().display().to_string(),
            });
        }
        let path = self.path(id);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, "read sweep state", e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::StateJson {
            sweep: id.to_owned(),
            path,
            source,
        })
    }

    /// Writes sweep `doc` atomically (readers see the old document or the new one).
    pub fn save(&self, doc: &SweepDoc) -> Result<()> {
        let path = self.path(doc.id());
        let bytes = serde_json::to_vec_pretty(doc).map_err(|source| Error::StateJson {
            sweep: doc.id().to_owned(),
            path: path.clone(),
            source,
        })?;
        crate::fsutil::write_atomic(&path, &bytes)?;
        Ok(())
    }

    /// Writes a new sweep; an existing one with the same id is an error.
    pub fn create(&self, doc: &SweepDoc) -> Result<()> {
        if self.path(doc.id()).exists() {
            return Err(Error::Invalid {
                field: "sweep id".into(),
                reason: format!("{} exists already in {}", doc.id(), self.dir.display()),
            });
        }
        self.save(doc)
    }

    /// Takes sweep `id`'s lock (a file created exclusively), waiting up to 10 s for another
    /// holder; a lock file older than a minute is removed as left by a dead process.
    pub fn lock(&self, id: &str) -> Result<SweepLock> {
        let path = self.lock_path(id);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let _ = writeln!(file, "{}", std::process::id());
                    return Ok(SweepLock { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > LOCK_STALE);
                    if stale {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::Locked {
                            sweep: id.to_owned(),
                            path,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(Error::io(&path, "create sweep lock", e)),
            }
        }
    }
}

/// A held sweep lock; dropping it releases the lock.
#[derive(Debug)]
pub struct SweepLock {
    path: PathBuf,
}

impl Drop for SweepLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Finds sweep `id`: in queue `queue` when given, else in every queue under `root`.
pub fn find_sweep(root: &Path, queue: Option<&str>, id: &str) -> Result<SweepStore> {
    if let Some(name) = queue {
        let dir = root.join(name);
        if !dir.is_dir() {
            return Err(Error::NoSuchSweep {
                sweep: id.to_owned(),
                searched: dir.display().to_string(),
            });
        }
        let store = SweepStore::open(Queue::open(root, name)?)?;
        return if store.contains(id) {
            Ok(store)
        } else {
            Err(Error::NoSuchSweep {
                sweep: id.to_owned(),
                searched: dir.display().to_string(),
            })
        };
    }
    let not_found = || Error::NoSuchSweep {
        sweep: id.to_owned(),
        searched: format!("the queues of {}", root.display()),
    };
    let Ok(entries) = fs::read_dir(root) else {
        return Err(not_found());
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| {
            valid_sweep_id(id)
                && root
                    .join(name)
                    .join(SWEEPS)
                    .join(format!("{id}.json"))
                    .is_file()
        })
        .collect();
    names.sort();
    match names.first() {
        Some(name) => SweepStore::open(Queue::open(root, name)?),
        None => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn doc(id: &str) -> SweepDoc {
        let config = wandb_sweeps::SweepConfig::from_yaml_str(
            "command: [\"true\"]\nmethod: grid\nparameters:\n  a:\n    values: [1, 2]\n",
            None,
        )
        .unwrap();
        SweepDoc {
            version: SWEEP_DOC_VERSION,
            queue: "q1".into(),
            entity: None,
            project: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            wandb_dir: "/tmp".into(),
            working_dir: "/tmp".into(),
            interpreter: "python".into(),
            resource: "local-process".into(),
            resource_args: Map::new(),
            sweep: Sweep::new(id, config, wandb_sweeps::SweepOptions::default()),
            runs: Vec::new(),
            stopped: Vec::new(),
        }
    }

    #[test]
    fn a_sweep_round_trips_and_is_found_among_the_queues() {
        let root = tempfile::tempdir().unwrap();
        let store = SweepStore::open(Queue::open(root.path(), "q1").unwrap()).unwrap();
        Queue::open(root.path(), "q0").unwrap();
        store.create(&doc("abc12345")).unwrap();
        assert!(store.create(&doc("abc12345")).is_err(), "ids are unique");
        assert_eq!(store.load("abc12345").unwrap(), doc("abc12345"));
        assert_eq!(store.ids().unwrap(), ["abc12345"]);
        let found = find_sweep(root.path(), None, "abc12345").unwrap();
        assert_eq!(found.queue().name(), "q1");
        assert!(matches!(
            find_sweep(root.path(), Some("q0"), "abc12345"),
            Err(Error::NoSuchSweep { .. })
        ));
        assert!(matches!(
            store.load("../etc"),
            Err(Error::NoSuchSweep { .. })
        ));
        std::fs::write(store.path("bad00000"), b"{\"version\": 1").unwrap();
        let err = store.load("bad00000").unwrap_err().to_string();
        assert!(
            err.contains("sweep bad00000") && err.contains("bad00000.json"),
            "{err}"
        );
    }

    #[test]
    fn the_lock_is_exclusive_and_a_stale_one_is_taken_over() {
        let root = tempfile::tempdir().unwrap();
        let store = SweepStore::open(Queue::open(root.path(), "q1").unwrap()).unwrap();
        let held = store.lock("abc12345").unwrap();
        let path = store.lock_path("abc12345");
        assert!(path.exists());
        drop(held);
        assert!(!path.exists(), "released on drop");
        // Left by a process that died two minutes ago.
        std::fs::write(&path, b"1\n").unwrap();
        let old = SystemTime::now() - Duration::from_secs(120);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let _taken = store.lock("abc12345").unwrap();
    }
}

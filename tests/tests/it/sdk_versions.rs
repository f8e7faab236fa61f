//! Runs written by several official SDK versions (`fixtures/compat/<version>/`, made by
//! `fixtures/generate_compat.py`) are synced twice, by the official `wandb sync` 0.31 and by
//! `wandb-sync`, each to its own test backend; the two reconstructed runs must be equal field by
//! field, apart from the deliberate differences listed in `sync/README.md` ("Deliberate
//! differences from the official sync"), each of which is checked to be exactly that difference.
//!
//! The SDK recorded absolute paths into these runs (artifact files staged under the data folder,
//! `wandb.save` symlinks to the user's file), all under `/tmp/wandb-offline-fixtures/<version>/`.
//! The committed tree is laid at that exact place first ([`lay_root`]: idempotent, and safe when
//! several test processes do it at once), so those paths resolve as they did for the SDK.
//!
//! The whole matrix runs in this one test, a few runs at a time; it prints a table of
//! `version / kind / field: equal | deliberate (row) | NOT EQUAL` and fails on any `NOT EQUAL`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use wandb_settings::Secret;
use wandb_sync::{SyncOptions, sync_paths};
use wandb_testkit::compare::{essence, normalize_config};
use wandb_testkit::{ArtifactState, BackendState, TestBackend};

/// Where the generator made the runs, and where the test lays them again.
const ROOT_BASE: &str = "/tmp/wandb-offline-fixtures";

/// Runs synced at once (each sync is mostly waiting on the official client's start-up).
const PARALLEL: usize = 3;

/// The committed versions, oldest first.
fn versions() -> Vec<String> {
    let dir = wandb_integration_tests::workspace_root().join("fixtures/compat");
    let mut versions: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort_by_key(|v| {
        v.split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    versions
}

/// One entry of a tree: a folder, a file's bytes or a symlink's target.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

fn walk(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                out.insert(rel, Node::Link(std::fs::read_link(&path).unwrap()));
            } else if kind.is_dir() {
                out.insert(rel, Node::Dir);
                go(root, &path, out);
            } else {
                out.insert(rel, Node::File(std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

/// Copies `from` to `to`, symlinks as symlinks (their targets unchanged).
fn copy_with_links(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_with_links(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Lays `fixtures/compat/<version>` at `/tmp/wandb-offline-fixtures/<version>` unless an identical
/// tree is already there. A new tree is built beside it and renamed into place, so a concurrent
/// test process sees either no tree, the old one or the whole new one.
fn lay_root(version: &str) -> PathBuf {
    let source = wandb_integration_tests::workspace_root()
        .join("fixtures/compat")
        .join(version);
    let want = walk(&source);
    let dest = Path::new(ROOT_BASE).join(version);
    for _ in 0..5 {
        if walk(&dest) == want {
            return dest;
        }
        std::fs::create_dir_all(ROOT_BASE).unwrap();
        let unique = format!(
            ".{version}.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        );
        let fresh = Path::new(ROOT_BASE).join(format!("{unique}.new"));
        let _ = std::fs::remove_dir_all(&fresh);
        copy_with_links(&source, &fresh);
        if dest.exists() {
            let old = Path::new(ROOT_BASE).join(format!("{unique}.old"));
            if std::fs::rename(&dest, &old).is_ok() {
                let _ = std::fs::remove_dir_all(&old);
            }
        }
        if std::fs::rename(&fresh, &dest).is_err() {
            // Another process put its tree there first: check it on the next round.
            let _ = std::fs::remove_dir_all(&fresh);
        }
    }
    assert!(walk(&dest) == want, "cannot lay {}", dest.display());
    dest
}

/// What both syncs made of one run.
struct Outcome {
    version: String,
    kind: String,
    theirs: Value,
    ours: Value,
    ours_result: String,
}

/// The fixture kind of a run folder (`offline-run-<time>-<id>`), from its run id.
fn kind_of(run_id: &str) -> &'static str {
    match run_id {
        "cmpmedia" => "media",
        "cmpartif" => "artifacts",
        "cmpkilld" => "killed",
        _ => "other",
    }
}

fn sync_both(python: &Path, version: &str, run_dir: &Path) -> Outcome {
    let name = run_dir.file_name().unwrap().to_string_lossy().into_owned();
    let run_id = name.rsplit('-').next().unwrap().to_owned();
    let scratch = tempfile::tempdir().unwrap();
    let theirs_dir = scratch.path().join("theirs/wandb").join(&name);
    let ours_dir = scratch.path().join("ours/wandb").join(&name);
    copy_with_links(run_dir, &theirs_dir);
    copy_with_links(run_dir, &ours_dir);

    let official = TestBackend::start().unwrap();
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = wandb_integration_tests::official_sync(
        python,
        &theirs_dir,
        &official.base_url(),
        official.api_key(),
        &home,
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{version} {name}: official wandb sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let backend = TestBackend::start().unwrap();
    let mut options = SyncOptions::new(
        vec![ours_dir],
        backend.base_url(),
        Some(Secret::new(backend.api_key())),
    );
    options.run_timeout = Duration::from_secs(60);
    let report = sync_paths(&options).unwrap();
    let ours_result = report
        .runs
        .first()
        .map_or_else(|| "no run".to_owned(), |r| format!("{:?}", r.result));

    let theirs = run_essence(python, &official.state(), &run_id);
    let ours = run_essence(python, &backend.state(), &run_id);
    Outcome {
        version: version.to_owned(),
        kind: kind_of(&run_id).to_owned(),
        theirs,
        ours,
        ours_result,
    }
}

/// `essence` of the run, with the artifacts it logged or used added as `artifacts`.
/// The uploaded `config.yaml` is parsed (by PyYAML, which the SDK brings) and compared as data,
/// normalized like the config.
fn run_essence(python: &Path, state: &BackendState, run_id: &str) -> Value {
    let Some(run) = state.find_run(run_id) else {
        return Value::Null;
    };
    let mut value = essence(run);
    value["config.yaml"] = run
        .file("config.yaml")
        .and_then(|f| f.text())
        .map_or(Value::Null, |text| parse_yaml(python, text));
    let mut artifacts: Vec<Value> = state
        .artifacts
        .iter()
        .filter(|a| {
            a.created_by.as_deref() == Some(run_id) || a.used_by.iter().any(|u| u == run_id)
        })
        .map(artifact_essence)
        .collect();
    artifacts.sort_by_key(Value::to_string);
    value["artifacts"] = Value::Array(artifacts);
    value
}

fn parse_yaml(python: &Path, text: &str) -> Value {
    let script = "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))";
    let stdout = wandb_testkit::python_script(python, script, text.as_bytes())
        .unwrap_or_else(|e| panic!("cannot parse config.yaml ({e}):\n{text}"));
    normalize_config(serde_json::from_slice(&stdout).unwrap())
}

/// The parts of an artifact both clients must agree on: not the server ids or the client ids
/// (random per client), nor the request counters.
fn artifact_essence(artifact: &ArtifactState) -> Value {
    let mut aliases = artifact.aliases.clone();
    aliases.sort();
    let files: serde_json::Map<String, Value> = artifact
        .files
        .iter()
        .map(|(path, f)| {
            let file = json!({
                "digest": f.digest, "size": f.size, "reference": f.reference,
                "stored": f.stored, "sha256": f.sha256, "digest_matches": f.digest_matches,
            });
            (path.clone(), file)
        })
        .collect();
    let mut manifest = artifact.manifest.clone().unwrap_or(Value::Null);
    if let Some(Value::Object(contents)) = manifest.get_mut("contents") {
        for entry in contents.values_mut() {
            if let Some(entry) = entry.as_object_mut() {
                // The server id of the artifact that first stored the content.
                entry.remove("birthArtifactID");
            }
        }
    }
    json!({
        "type": artifact.artifact_type, "name": artifact.name, "version": artifact.version,
        "digest": artifact.digest, "description": artifact.description,
        "metadata": artifact.metadata, "aliases": aliases, "tags": artifact.tags,
        "ttl": artifact.ttl_duration_seconds, "state": artifact.state,
        "committed": artifact.committed, "created_by": artifact.created_by,
        "used_by": artifact.used_by, "files": files, "manifest": manifest,
        "manifest_digest": artifact.manifest_digest, "errors": artifact.errors,
    })
}

/// A deliberate difference: its row in `sync/README.md`'s table, and a check that `theirs` and
/// `ours` differ exactly in that way (anything more is still a failure).
struct Deliberate {
    row: &'static str,
    field: &'static str,
    explains: fn(version: &str, theirs: &Value, ours: &Value) -> bool,
}

fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// `ours` is `theirs` with more rows at the end.
fn extends(theirs: &Value, ours: &Value) -> bool {
    match (theirs.as_array(), ours.as_array()) {
        (Some(t), Some(o)) => o.len() > t.len() && o[..t.len()] == t[..],
        _ => false,
    }
}

/// Every key `theirs` has, `ours` has with the same value, and `ours` has at least one more.
fn superset(theirs: &Value, ours: &Value) -> bool {
    match (theirs.as_object(), ours.as_object()) {
        (Some(t), Some(o)) => o.len() > t.len() && t.iter().all(|(k, v)| o.get(k) == Some(v)),
        _ => false,
    }
}

/// The artifacts with `local_path` taken out of each manifest entry and the manifest's own MD5
/// (which then differs) blanked.
fn without_local_paths(artifacts: &Value) -> Value {
    let mut artifacts = artifacts.clone();
    for artifact in artifacts.as_array_mut().into_iter().flatten() {
        artifact["manifest_digest"] = Value::Null;
        if let Some(Value::Object(contents)) = artifact.pointer_mut("/manifest/contents") {
            for entry in contents.values_mut() {
                if let Some(entry) = entry.as_object_mut() {
                    entry.remove("local_path");
                }
            }
        }
    }
    artifacts
}

const DELIBERATE: &[Deliberate] = &[
    // D4: the manifest we upload has no `local_path` (where the SDK staged each file on the
    // machine that wrote the run); everything else of the artifact is the same.
    Deliberate {
        row: "D4",
        field: "artifacts",
        explains: |_, theirs, ours| without_local_paths(theirs) == without_local_paths(ours),
    },
    // D1: 0.15-0.17 write their last row and final summary after the `exit` record; the official
    // sync stops at `exit`, we keep them.
    Deliberate {
        row: "D1",
        field: "history",
        explains: |version, theirs, ours| minor(version) < 18 && extends(theirs, ours),
    },
    Deliberate {
        row: "D1",
        field: "summary",
        explains: |version, theirs, ours| minor(version) < 18 && superset(theirs, ours),
    },
    Deliberate {
        row: "D1",
        field: "events",
        explains: |version, theirs, ours| minor(version) < 18 && extends(theirs, ours),
    },
    Deliberate {
        row: "D1",
        field: "files",
        explains: |version, theirs, ours| {
            minor(version) < 18
                && match (theirs.as_object(), ours.as_object()) {
                    (Some(t), Some(o)) => {
                        t.keys().eq(o.keys())
                            && t.iter().all(|(k, v)| {
                                k == "wandb-summary.json" && superset(v, &o[k]) || o[k] == *v
                            })
                    }
                    _ => false,
                }
        },
    },
];

/// The fields compared, in table order (`essence`'s keys).
const FIELDS: &[&str] = &[
    "entity",
    "project",
    "run_id",
    "display_name",
    "notes",
    "tags",
    "group",
    "job_type",
    "config",
    "summary",
    "history",
    "events",
    // Compared without each line's timestamp prefix (`RunState::console_text`): deliberate
    // difference D2 (ours are the file's, the official sync's are the sync's).
    "console",
    "console_stderr",
    // `config.yaml` is "present" here and compared as data below.
    "files",
    "uploaded",
    "complete",
    "exit_code",
    "preempting",
    "alerts",
    "artifacts",
    "config.yaml",
];

/// One cell of the table.
fn judge(version: &str, field: &str, theirs: &Value, ours: &Value) -> Result<String, String> {
    if theirs == ours {
        return Ok("equal".to_owned());
    }
    for rule in DELIBERATE {
        if rule.field == field && (rule.explains)(version, theirs, ours) {
            return Ok(format!("deliberate ({})", rule.row));
        }
    }
    Err(format!(
        "NOT EQUAL\n      official: {}\n      ours:     {}",
        short(theirs),
        short(ours)
    ))
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 1500 {
        format!("{}… ({} bytes)", &text[..1500], text.len())
    } else {
        text
    }
}

#[test]
fn every_sdk_version_syncs_like_the_official_sync() {
    let Some(python) = wandb_integration_tests::sdk_python() else {
        return;
    };
    let mut jobs = Vec::new();
    for version in versions() {
        let root = lay_root(&version);
        let mut runs: Vec<PathBuf> = std::fs::read_dir(root.join("wandb"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        runs.sort();
        for run in runs {
            jobs.push((version.clone(), run));
        }
    }
    assert!(!jobs.is_empty(), "no fixtures under fixtures/compat");

    let queue = Mutex::new(jobs.into_iter());
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some((version, run)) = next else { break };
                    let outcome = sync_both(&python, &version, &run);
                    outcomes.lock().unwrap().push(outcome);
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| (&a.version, &a.kind).cmp(&(&b.version, &b.kind)));

    let mut table = String::new();
    let mut failures = 0;
    for outcome in &outcomes {
        writeln!(
            table,
            "{} {} (our sync: {}):",
            outcome.version, outcome.kind, outcome.ours_result
        )
        .unwrap();
        // D3: damage is named. A killed run ends in a torn record, which our report names
        // (the run is `Partial`); the official sync says nothing. Every other run is `Synced`.
        let want_result = if outcome.kind == "killed" {
            "Partial"
        } else {
            "Synced"
        };
        if outcome.ours_result != want_result {
            failures += 1;
            writeln!(table, "  our report: NOT {want_result}").unwrap();
        } else if want_result == "Partial" {
            writeln!(table, "  our report: deliberate (D3)").unwrap();
        }
        for field in FIELDS {
            let theirs = outcome.theirs.get(field).unwrap_or(&Value::Null);
            let ours = outcome.ours.get(field).unwrap_or(&Value::Null);
            let cell = judge(&outcome.version, field, theirs, ours).unwrap_or_else(|e| {
                failures += 1;
                e
            });
            writeln!(table, "  {field}: {cell}").unwrap();
        }
    }
    eprintln!("{table}");
    assert_eq!(failures, 0, "{failures} field(s) differ:\n{table}");
}

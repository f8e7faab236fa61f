//! What a sync did, per run and overall, and its `--json` form.
//!
//! # `--json` output
//!
//! JSON Lines on stdout, each line an envelope `{"type": ..., "data": ...}`:
//!
//! * `{"type": "run", "data": <RunReport>}`: one per `.wandb` file considered, in input order.
//!   A path refused before reading (not a regular file, not a `.wandb` log) is a `failed` run
//!   with the reason in `error`.
//! * `{"type": "warning", "data": {"message": ...}}`: an input that holds no run.
//! * `{"type": "summary", "data": {"runs": N, "synced": N, "failed": N, "skipped": N,
//!   "rows": N, "files": N, "bytes": N, "seconds": F, "exit_code": N}}`: last line.
//!
//! Fields of a run: `path`, `run_id`, `entity`, `project`, `result` (one of the
//! [`RunResult`] names below), `rows` (history rows sent or, with `--dry-run`, to send),
//! `rows_total`, `events`, `console_lines`, `files` (names uploaded), `bytes` (request bytes
//! sent), `exit_code` (the run's, as reported to the server), `damage` (skipped spans),
//! `refused` (file paths refused), `warnings`, `error`, `seconds`, `url`. New fields and types
//! may be added; consumers should ignore unknown ones.

use std::path::PathBuf;

use serde::Serialize;

/// The outcome for one `.wandb` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunResult {
    /// Everything was acknowledged; `.synced` was written.
    Synced,
    /// Everything valid was acknowledged and `.synced` was written, but damaged spans were
    /// skipped or file paths refused.
    Partial,
    /// Something failed; the ledger keeps what was acknowledged, so a re-run resumes.
    Failed,
    /// Skipped: already synced (use `--include-synced`).
    SkippedSynced,
    /// Skipped: an online run (use `--include-online`).
    SkippedOnline,
    /// Skipped: another process is syncing it (use `--wait-locked` to wait).
    Locked,
    /// `--dry-run`: nothing was sent.
    DryRun,
}

impl RunResult {
    /// Whether this outcome makes the exit code 1.
    pub fn is_failure(self) -> bool {
        matches!(self, RunResult::Failed | RunResult::Partial)
    }

    /// Whether the run was skipped without being read.
    pub fn is_skipped(self) -> bool {
        matches!(
            self,
            RunResult::SkippedSynced | RunResult::SkippedOnline | RunResult::Locked
        )
    }

    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Synced => "synced",
            RunResult::Partial => "partial",
            RunResult::Failed => "failed",
            RunResult::SkippedSynced => "skipped_synced",
            RunResult::SkippedOnline => "skipped_online",
            RunResult::Locked => "locked",
            RunResult::DryRun => "dry_run",
        }
    }
}

/// A damaged span skipped while reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamageReport {
    /// File offset where the damage starts.
    pub offset: u64,
    /// Bytes skipped.
    pub length: u64,
    /// Why.
    pub reason: String,
}

/// A file path refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedFile {
    /// The path as written in the run.
    pub path: String,
    /// Why it was refused.
    pub reason: String,
}

/// One artifact of a run: committed by the sync (or found committed on the server), or, with
/// `--dry-run`, one that would be uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactReport {
    /// Collection name (`run-<id>-<key>` for a Table).
    pub name: String,
    /// Artifact type (`run_table`, `model`, `dataset`, ...).
    pub kind: String,
    /// Files in its manifest that are uploaded from where the SDK staged them.
    pub files: u64,
    /// Their bytes, as the manifest declares them.
    pub bytes: u64,
    /// Reference entries (`s3://`, `file://`, ...), recorded but never read.
    pub references: u64,
}

/// What happened to one `.wandb` file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// The `.wandb` file.
    pub path: PathBuf,
    /// The run id it was synced to.
    pub run_id: String,
    /// The entity (as resolved by the server, or requested).
    pub entity: Option<String>,
    /// The project.
    pub project: Option<String>,
    /// The outcome.
    pub result: RunResult,
    /// History rows sent in this invocation (or to send, with `--dry-run`).
    pub rows: u64,
    /// History rows in the file.
    pub rows_total: u64,
    /// Events (system metrics) lines in the file.
    pub events: u64,
    /// Console lines in the file.
    pub console_lines: u64,
    /// Files uploaded (or to upload, with `--dry-run`), by name.
    pub files: Vec<String>,
    /// Request body bytes sent.
    pub bytes: u64,
    /// The exit code reported for the run.
    pub exit_code: Option<i32>,
    /// Damaged spans skipped.
    pub damage: Vec<DamageReport>,
    /// File paths refused.
    pub refused: Vec<RefusedFile>,
    /// Artifacts committed (or to upload, with `--dry-run`), in file order.
    pub artifacts: Vec<ArtifactReport>,
    /// Other things worth knowing (missing exit record, invalid values, oversize lines).
    pub warnings: Vec<String>,
    /// The error, for failed runs.
    pub error: Option<String>,
    /// Seconds spent.
    pub seconds: f64,
    /// The run's page, when known.
    pub url: Option<String>,
}

impl RunReport {
    /// An empty report for `path` with the given result.
    pub fn new(path: PathBuf, run_id: String, result: RunResult) -> Self {
        RunReport {
            path,
            run_id,
            entity: None,
            project: None,
            result,
            rows: 0,
            rows_total: 0,
            events: 0,
            console_lines: 0,
            files: Vec::new(),
            bytes: 0,
            exit_code: None,
            damage: Vec::new(),
            refused: Vec::new(),
            artifacts: Vec::new(),
            warnings: Vec::new(),
            error: None,
            seconds: 0.0,
            url: None,
        }
    }
}

/// The whole sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// One entry per `.wandb` file considered, in input order, after the paths refused.
    pub runs: Vec<RunReport>,
    /// Inputs that hold no run.
    pub warnings: Vec<String>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Totals over a [`Report`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Files considered.
    pub runs: usize,
    /// Synced (including partial).
    pub synced: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped (synced, online, locked).
    pub skipped: usize,
    /// History rows sent.
    pub rows: u64,
    /// Files uploaded.
    pub files: usize,
    /// Request bytes sent.
    pub bytes: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// The process exit code.
    pub exit_code: i32,
}

impl Report {
    /// 0 when every run synced (or was skipped), 1 when some failed or were only partly synced,
    /// or when no run was found at all.
    pub fn exit_code(&self) -> i32 {
        if self.runs.is_empty() || self.runs.iter().any(|r| r.result.is_failure()) {
            1
        } else {
            0
        }
    }

    /// Totals.
    pub fn totals(&self) -> Totals {
        Totals {
            runs: self.runs.len(),
            synced: self
                .runs
                .iter()
                .filter(|r| matches!(r.result, RunResult::Synced | RunResult::Partial))
                .count(),
            failed: self
                .runs
                .iter()
                .filter(|r| r.result == RunResult::Failed)
                .count(),
            skipped: self.runs.iter().filter(|r| r.result.is_skipped()).count(),
            rows: self.runs.iter().map(|r| r.rows).sum(),
            files: self.runs.iter().map(|r| r.files.len()).sum(),
            bytes: self.runs.iter().map(|r| r.bytes).sum(),
            seconds: self.seconds,
            exit_code: self.exit_code(),
        }
    }

    /// The `--json` lines (see the module docs).
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for run in &self.runs {
            let line = serde_json::json!({"type": "run", "data": run});
            out.push_str(&line.to_string());
            out.push('\n');
        }
        for warning in &self.warnings {
            let line = serde_json::json!({"type": "warning", "data": {"message": warning}});
            out.push_str(&line.to_string());
            out.push('\n');
        }
        let line = serde_json::json!({"type": "summary", "data": self.totals()});
        out.push_str(&line.to_string());
        out.push('\n');
        out
    }

    /// A human-readable table (the warnings are not in it: the CLI prints them on stderr).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for run in &self.runs {
            let place =
                crate::sync::run_name(run.entity.as_deref(), run.project.as_deref(), &run.run_id);
            out.push_str(&format!(
                "{:<15} {place}  rows {}/{}  files {}  bytes {}  ({})\n",
                run.result.as_str(),
                run.rows,
                run.rows_total,
                run.files.len(),
                run.bytes,
                run.path.display()
            ));
            for d in &run.damage {
                out.push_str(&format!(
                    "    skipped {} damaged bytes at offset {}: {}\n",
                    d.length, d.offset, d.reason
                ));
            }
            for r in &run.refused {
                out.push_str(&format!("    refused file {:?}: {}\n", r.path, r.reason));
            }
            for w in &run.warnings {
                out.push_str(&format!("    warning: {w}\n"));
            }
            if let Some(e) = &run.error {
                out.push_str(&format!("    error: {e}\n"));
            }
            match run.result {
                RunResult::SkippedOnline => out.push_str(
                    "    an online run (its folder's name does not start with offline-): \
                     --include-online syncs it\n",
                ),
                RunResult::SkippedSynced => {
                    out.push_str("    already synced: --include-synced syncs it again\n");
                }
                RunResult::DryRun => dry_run_plan(run, &mut out),
                _ => {}
            }
            if let Some(url) = &run.url
                && matches!(run.result, RunResult::Synced | RunResult::Partial)
            {
                out.push_str(&format!("    {url}\n"));
            }
        }
        let t = self.totals();
        out.push_str(&format!(
            "{} run(s): {} synced, {} failed, {} skipped; {} rows, {} files, {} bytes in {:.2} s\n",
            t.runs, t.synced, t.failed, t.skipped, t.rows, t.files, t.bytes, t.seconds
        ));
        out
    }
}

/// What a `--dry-run` would have sent for `run`, request by request.
fn dry_run_plan(run: &RunReport, out: &mut String) {
    let project = run.project.as_deref().unwrap_or("the default project");
    let entity = run
        .entity
        .as_deref()
        .unwrap_or("the server's default entity");
    out.push_str(&format!(
        "    would send UpsertBucket: run {} in project {project}, entity {entity} (config, tags, \
         metadata)\n",
        run.run_id
    ));
    let mut streamed = vec![format!("{} history row(s)", run.rows)];
    if run.events > 0 {
        streamed.push(format!("{} system-metrics line(s)", run.events));
    }
    if run.console_lines > 0 {
        streamed.push(format!("{} console line(s)", run.console_lines));
    }
    streamed.push("the summary".into());
    let exit = run.exit_code.map_or_else(
        || "no exit code".to_owned(),
        |code| format!("exit code {code}"),
    );
    out.push_str(&format!(
        "    would send file_stream: {}, then complete with {exit}\n",
        streamed.join(", ")
    ));
    for artifact in &run.artifacts {
        out.push_str(&format!(
            "    would send CreateArtifact for artifact {} ({}): {} file(s) of {} bytes to PUT, \
             {} reference(s), then its manifest and CommitArtifact\n",
            artifact.name, artifact.kind, artifact.files, artifact.bytes, artifact.references
        ));
    }
    if run.files.is_empty() {
        return;
    }
    let files_dir = run
        .path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("files");
    out.push_str(&format!(
        "    would send CreateRunFiles for {} file(s), then a PUT of each:\n",
        run.files.len()
    ));
    for name in &run.files {
        match std::fs::metadata(files_dir.join(name)) {
            Ok(meta) if meta.is_file() => {
                out.push_str(&format!("        {name} ({} bytes)\n", meta.len()));
            }
            _ => out.push_str(&format!("        {name} (made from the run's records)\n")),
        }
    }
}

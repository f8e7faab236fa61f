//! The `wandb-archive` command line: `pack`, `list`, `verify`, `unpack`.
//!
//! Exit codes, as `wandb-inspect`: 0 everything intact (or packed), 1 it ran but found damage,
//! refused files or runs it could not remove, 2 usage or I/O error (an archive that cannot be
//! opened at all, nothing to pack).

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::pack::{DEFAULT_LEVEL, PackOptions, pack};
use crate::read::Archive;
use crate::unpack::unpack;

/// Pack W&B run folders into one seekable tar.zst archive; list, verify and unpack it.
#[derive(Debug, Parser)]
#[command(name = "wandb-archive", version)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A `wandb-archive` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack run folders, `wandb/` folders, `.wandb` files or globs into an archive.
    Pack {
        /// Inputs (the same rules as wandb-sync and wandb-inspect).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The archive to write (an existing one keeps its runs; inputs it holds are skipped).
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// zstd compression level.
        #[arg(long, default_value_t = DEFAULT_LEVEL, allow_negative_numbers = true)]
        level: i32,
        /// Compression threads (default: every core).
        #[arg(short = 'T', long)]
        threads: Option<usize>,
        /// Delete each packed run folder once the archive is verified (never a run still being
        /// written).
        #[arg(long)]
        remove_source: bool,
        /// Pack runs again that the existing archive already holds.
        #[arg(long)]
        repack: bool,
    },
    /// List the runs and files of an archive.
    List {
        /// The archive.
        archive: PathBuf,
        /// Only these runs (archive folder names).
        runs: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Verify every file's SHA-256 (and every frame's checksum).
    Verify {
        /// The archive.
        archive: PathBuf,
        /// Only these runs.
        runs: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Unpack all runs, or the runs named, into a folder.
    Unpack {
        /// The archive.
        archive: PathBuf,
        /// Only these runs.
        runs: Vec<String>,
        /// Target folder (default: the current folder).
        #[arg(long, default_value = ".")]
        to: PathBuf,
    },
}

/// Runs a command, printing to stdout and stderr; returns the exit code.
pub fn run(cli: &Cli) -> u8 {
    match &cli.command {
        Command::Pack {
            paths,
            output,
            level,
            threads,
            remove_source,
            repack,
        } => {
            let bar = progress_bar();
            let opts = PackOptions {
                inputs: paths.clone(),
                output: output.clone(),
                level: *level,
                threads: threads.unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
                }),
                remove_source: *remove_source,
                repack: *repack,
                progress: bar.as_ref().map(progress_of),
            };
            let result = pack(&opts);
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            match result {
                Ok(report) => {
                    for problem in &report.input_errors {
                        eprintln!("wandb-archive: error: {problem}");
                    }
                    for warning in &report.warnings {
                        eprintln!("wandb-archive: warning: {warning}");
                    }
                    for (run, path, reason) in &report.refused {
                        eprintln!("wandb-archive: refused: {run}: {path}: {reason}");
                    }
                    for name in &report.skipped {
                        eprintln!(
                            "wandb-archive: {name}: already in the archive (--repack packs it again)"
                        );
                    }
                    for (dir, reason) in &report.not_removed {
                        eprintln!("wandb-archive: kept {}: {reason}", dir.display());
                    }
                    for dir in &report.removed {
                        eprintln!("wandb-archive: removed {}", dir.display());
                    }
                    for id in &report.sweeps {
                        eprintln!("wandb-archive: sweep-{id}/: sweep folder packed");
                    }
                    let ratio = if report.bytes_out > 0 {
                        report.bytes_in as f64 / report.bytes_out as f64
                    } else {
                        0.0
                    };
                    eprintln!(
                        "wandb-archive: {}: {} runs packed, {} kept, {} skipped; {} bytes in, {} bytes out ({ratio:.1}x); verified",
                        output.display(),
                        report.packed.len(),
                        report.kept.len(),
                        report.skipped.len(),
                        report.bytes_in,
                        report.bytes_out
                    );
                    u8::from(report.has_problems())
                }
                Err(error) => {
                    eprintln!("wandb-archive: error: {error}");
                    2
                }
            }
        }
        Command::List {
            archive,
            runs,
            json,
        } => with_archive(archive, |a| list(a, runs, *json)),
        Command::Verify {
            archive,
            runs,
            json,
        } => with_archive(archive, |a| verify(a, runs, *json)),
        Command::Unpack { archive, runs, to } => {
            with_archive(archive, |a| match unpack(a, to, runs) {
                Ok(report) => {
                    for (name, reason) in &report.refused {
                        eprintln!("wandb-archive: refused member {name:?}: {reason}");
                    }
                    for (name, reason) in &report.damaged {
                        eprintln!("wandb-archive: damaged member {name:?}: {reason}");
                    }
                    report_damage(a);
                    eprintln!(
                        "wandb-archive: {} members unpacked into {}, {} refused, {} damaged",
                        report.written.len(),
                        to.display(),
                        report.refused.len(),
                        report.damaged.len()
                    );
                    u8::from(
                        !report.refused.is_empty()
                            || !report.damaged.is_empty()
                            || !a.damage().is_empty(),
                    )
                }
                Err(error) => {
                    eprintln!("wandb-archive: error: {error}");
                    2
                }
            })
        }
    }
}

/// A bar on stderr when it is a terminal: the run being packed, bytes read and their rate.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} {bytes} read ({bytes_per_sec}), {elapsed}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(bar)
}

fn progress_of(bar: &indicatif::ProgressBar) -> crate::pack::Progress {
    let bar = bar.clone();
    crate::pack::Progress(std::sync::Arc::new(move |event| {
        use crate::pack::ProgressEvent;
        match event {
            ProgressEvent::Run(name) => bar.set_message(format!("packing {name}:")),
            ProgressEvent::Bytes(n) => bar.inc(n),
            ProgressEvent::Verifying => bar.set_message("verifying the archive:".to_string()),
        }
    }))
}

fn with_archive(path: &std::path::Path, f: impl FnOnce(&Archive) -> u8) -> u8 {
    match Archive::open(path) {
        Ok(archive) => f(&archive),
        Err(error) => {
            eprintln!("wandb-archive: error: {error}");
            2
        }
    }
}

fn report_damage(archive: &Archive) {
    if let Some(problem) = archive.index_problem() {
        eprintln!(
            "wandb-archive: {}: index not usable ({problem}); members listed from the tar headers",
            archive.path().display()
        );
    }
    for damage in archive.damage() {
        match damage.frame {
            Some(frame) => eprintln!(
                "wandb-archive: {}: damage in frame {frame} at offset {}: {}",
                archive.path().display(),
                damage.offset,
                damage.reason
            ),
            None => eprintln!(
                "wandb-archive: {}: damage at offset {}: {}",
                archive.path().display(),
                damage.offset,
                damage.reason
            ),
        }
    }
}

fn selected<'a>(
    archive: &'a Archive,
    runs: &'a [String],
) -> impl Iterator<Item = &'a crate::Member> {
    archive
        .members()
        .iter()
        .filter(move |m| runs.is_empty() || runs.iter().any(|r| r == m.run()))
}

fn damage_json(archive: &Archive) -> serde_json::Value {
    archive
        .damage()
        .iter()
        .map(|d| json!({"offset": d.offset, "frame": d.frame, "reason": d.reason}))
        .collect()
}

fn list(archive: &Archive, runs: &[String], as_json: bool) -> u8 {
    let mut out = std::io::stdout().lock();
    let origin_of = |name: &str| {
        archive.index().and_then(|i| {
            i.runs
                .iter()
                .flat_map(|r| &r.files)
                .find(|f| f.path == name)
                .map(|f| (f.origin, f.source.clone(), f.frame))
        })
    };
    if as_json {
        let members: Vec<_> = selected(archive, runs)
            .map(|m| {
                let origin = origin_of(&m.name);
                json!({
                    "run": m.run(),
                    "path": m.name,
                    "size": m.size,
                    "sha256": m.sha256,
                    "header_offset": m.header_offset,
                    "data_offset": m.data_offset,
                    "frame": origin.as_ref().map(|o| o.2),
                    "origin": origin.as_ref().map(|o| o.0),
                    "source": origin.and_then(|o| o.1),
                })
            })
            .collect();
        let doc = json!({
            "archive": archive.path(),
            "index": archive.index().is_some(),
            "index_problem": archive.index_problem(),
            "frames": archive.frames().len(),
            "members": members,
            "damage": damage_json(archive),
        });
        let _ = writeln!(out, "{doc:#}");
    } else {
        let mut current = "";
        for member in selected(archive, runs) {
            if member.run() != current {
                current = member.run();
                let _ = writeln!(out, "{current}/");
            }
            let from = origin_of(&member.name)
                .and_then(|o| o.1)
                .map(|s| format!("  (from {s})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:>12}  {}{from}", member.size, member.name);
        }
    }
    report_damage(archive);
    u8::from(!archive.damage().is_empty())
}

fn verify(archive: &Archive, runs: &[String], as_json: bool) -> u8 {
    let mut results = Vec::new();
    let mut n_bad = 0usize;
    for member in selected(archive, runs) {
        let result = archive.verify_member(member);
        if result.is_err() {
            n_bad += 1;
        }
        results.push((member, result));
    }
    let damaged = n_bad > 0 || !archive.damage().is_empty() || archive.index().is_none();
    if as_json {
        let members: Vec<_> = results
            .iter()
            .map(|(m, r)| {
                json!({
                    "path": m.name,
                    "size": m.size,
                    "ok": r.is_ok(),
                    "error": r.as_ref().err(),
                    "header_offset": m.header_offset,
                })
            })
            .collect();
        let doc = json!({
            "archive": archive.path(),
            "ok": !damaged,
            "index": archive.index().is_some(),
            "index_problem": archive.index_problem(),
            "members": members,
            "damage": damage_json(archive),
        });
        let _ = writeln!(std::io::stdout().lock(), "{doc:#}");
    } else {
        for (member, result) in &results {
            if let Err(reason) = result {
                eprintln!(
                    "wandb-archive: damaged member {:?} (tar offset {}): {reason}",
                    member.name, member.header_offset
                );
            }
        }
        report_damage(archive);
        println!(
            "{}: {} members, {} intact, {} damaged{}",
            archive.path().display(),
            results.len(),
            results.len() - n_bad,
            n_bad,
            if archive.index().is_some() {
                ""
            } else {
                " (no index: checked by frame checksums only)"
            }
        );
    }
    u8::from(damaged)
}

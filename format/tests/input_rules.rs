//! The input rules of `wandb_format::inputs`, case by case from the shared table
//! (`input_rules/table.rs`, which the CLI tests of `wandb-sync` and `wandb-inspect` run too).

#![allow(clippy::unwrap_used)]

#[path = "input_rules/table.rs"]
mod table;

use std::path::{Path, PathBuf};

use table::{CASES, Problem};
use wandb_format::inputs::{self, FileKind, InputError};

fn problem_of(error: &InputError) -> Problem {
    match error {
        InputError::NotFound { .. } => Problem::NotFound,
        InputError::NoMatch { .. } => Problem::NoMatch,
        InputError::NotRegular {
            kind: FileKind::Fifo,
            ..
        } => Problem::Fifo,
        InputError::NotRegular {
            kind: FileKind::Directory,
            ..
        } => Problem::Folder,
        InputError::NotWandb { .. } => Problem::NotWandb,
        InputError::NoRun { .. } => Problem::NoRun,
        other => panic!("unexpected problem: {other}"),
    }
}

#[test]
fn every_rule_of_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    table::build(root);
    let at = |p: &str| root.join(p);
    for case in CASES {
        let args: Vec<PathBuf> = case.args.iter().map(|a| at(a)).collect();
        let resolved = inputs::resolve(&args);
        let mut problems: Vec<(Problem, PathBuf)> = Vec::new();
        let mut files = Vec::new();
        for error in &resolved.problems {
            assert_eq!(error.is_warning(), problem_of(error).is_warning());
            problems.push((problem_of(error), error.path().to_path_buf()));
        }
        // The second step: the header check of each file found.
        for input in &resolved.files {
            files.push((input.path.clone(), input.is_offline()));
            if let Err(error) = inputs::check_header(&input.path, false) {
                problems.push((problem_of(&error), error.path().to_path_buf()));
                let text = error.to_string();
                assert!(text.contains(problem_of(&error).message()), "{text}");
            }
        }
        let want_files: Vec<(PathBuf, bool)> =
            case.files.iter().map(|(p, off)| (at(p), *off)).collect();
        assert_eq!(files, want_files, "case: {}", case.name);
        let want_problems: Vec<(Problem, PathBuf)> =
            case.problems.iter().map(|(k, p)| (*k, at(p))).collect();
        assert_eq!(problems, want_problems, "case: {}", case.name);
        for error in &resolved.problems {
            let text = error.to_string();
            let want = format!(
                "{}: {}",
                error.path().display(),
                problem_of(error).message()
            );
            assert!(text.starts_with(&want), "{text} should start with {want}");
        }
    }
}

#[test]
fn the_run_folder_of_a_linked_file_is_the_link_target() {
    let tmp = tempfile::tempdir().unwrap();
    table::build(tmp.path());
    let resolved = inputs::resolve(&[tmp.path().join("proj/wandb/latest-run")]);
    let [input] = resolved.files.as_slice() else {
        panic!("{resolved:?}");
    };
    let target = tmp
        .path()
        .join("proj/wandb/offline-run-20260102_000000-bbbb")
        .canonicalize()
        .unwrap();
    assert_eq!(input.run_dir, target);
}

#[test]
fn a_fifo_swapped_in_after_resolving_is_refused_by_the_header_check() {
    let tmp = tempfile::tempdir().unwrap();
    table::build(tmp.path());
    let fifo = tmp.path().join("fifo/offline-run-f/run-ffff.wandb");
    // check_header opens without blocking and checks the handle: no writer, no hang.
    let error = inputs::check_header(&fifo, false).unwrap_err();
    assert!(
        matches!(
            error,
            InputError::NotRegular {
                kind: FileKind::Fifo,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn short_files_pass_the_header_check_only_when_partial_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let path: &Path = &tmp.path().join("run-new.wandb");
    std::fs::write(path, b":W&").unwrap();
    assert!(inputs::check_header(path, true).is_ok());
    let error = inputs::check_header(path, false).unwrap_err();
    assert!(error.to_string().contains("3a 57 26 (\":W&\")"), "{error}");
    std::fs::write(path, b"").unwrap();
    assert!(inputs::check_header(path, true).is_ok());
    let error = inputs::check_header(path, false).unwrap_err();
    assert!(error.to_string().contains("the file is empty"), "{error}");
}

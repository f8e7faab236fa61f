//! The input rules as one table (see `wandb_format::inputs`): a folder tree and, per case, the
//! inputs given, the files expected (in order) and the problems expected.
//!
//! Shared by format's test of the resolver and by the CLI tests of `wandb-sync` and
//! `wandb-inspect` (included there with `#[path]`), so every tool is held to the same rules.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;

use wandb_format::proto::{self, Record, record::RecordType};
use wandb_format::{Durability, Writer};

/// A problem a case expects, with the text every tool prints for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The input does not exist.
    NotFound,
    /// A pattern matching nothing.
    NoMatch,
    /// A FIFO refused without being opened.
    Fifo,
    /// A folder named `*.wandb` refused.
    Folder,
    /// A regular file whose bytes are not a `.wandb` log (found by the header check).
    NotWandb,
    /// An input holding no run (a warning).
    NoRun,
}

impl Problem {
    /// What the message for the path says after `PATH: `.
    pub fn message(self) -> &'static str {
        match self {
            Problem::NotFound => "no such file or folder",
            Problem::NoMatch => "no such file, and nothing matches it as a pattern",
            Problem::Fifo => {
                "is a FIFO (named pipe), not a regular file: refused without opening it"
            }
            Problem::Folder => "is a directory, not a regular file: refused without opening it",
            Problem::NotWandb => {
                "not a .wandb log: it starts with 68 65 6c 6c 6f 20 77 6f 72 6c 64 0a (\"hello world.\")"
            }
            Problem::NoRun => "holds no run",
        }
    }

    /// Whether the problem is with the input as given (a tool may stop before doing anything).
    pub fn about_argument(self) -> bool {
        matches!(self, Problem::NotFound | Problem::NoMatch)
    }

    /// Whether it is only a warning.
    pub fn is_warning(self) -> bool {
        self == Problem::NoRun
    }
}

/// One case: inputs (relative to the tree's root, which is the working directory), the files
/// expected as `(path as reached, offline)`, and the problems expected as `(problem, path)`.
pub struct Case {
    pub name: &'static str,
    pub args: &'static [&'static str],
    pub files: &'static [(&'static str, bool)],
    pub problems: &'static [(Problem, &'static str)],
}

const A: &str = "proj/wandb/offline-run-20260101_000000-aaaa/run-aaaa.wandb";
const B: &str = "proj/wandb/offline-run-20260102_000000-bbbb/run-bbbb.wandb";
const C: &str = "proj/wandb/run-20260103_000000-cccc/run-cccc.wandb";
const LATEST_B: &str = "proj/wandb/latest-run/run-bbbb.wandb";

/// The cases.
pub const CASES: &[Case] = &[
    Case {
        name: "a run folder: its .wandb files, not those in files/",
        args: &["proj/wandb/offline-run-20260101_000000-aaaa"],
        files: &[(A, true)],
        problems: &[],
    },
    Case {
        name: "a wandb folder: runs one level down, latest-run read once",
        args: &["proj/wandb"],
        files: &[(A, true), (B, true), (C, false)],
        problems: &[],
    },
    Case {
        name: "a project folder: runs two levels down, hidden folders skipped",
        args: &["proj"],
        files: &[(A, true), (B, true), (C, false)],
        problems: &[],
    },
    Case {
        name: "a symlinked run folder is judged by the folder it points to",
        args: &["proj/wandb/latest-run"],
        files: &[(LATEST_B, true)],
        problems: &[],
    },
    Case {
        name: "a file reached twice is kept under the first path",
        args: &["proj/wandb/latest-run", "proj/wandb", B],
        files: &[(LATEST_B, true), (A, true), (C, false)],
        problems: &[],
    },
    Case {
        name: "patterns are expanded, matches through symlinks last",
        args: &["proj/wandb/*/run-*.wandb"],
        files: &[(A, true), (B, true), (C, false)],
        problems: &[],
    },
    Case {
        name: "a file named explicitly is taken whatever its name",
        args: &["loose.wandb.bak", A],
        files: &[("loose.wandb.bak", false), (A, true)],
        problems: &[],
    },
    Case {
        name: "runs deeper than two levels are not searched",
        args: &["deep", "deep/a"],
        files: &[("deep/a/b/offline-run-d/run-dddd.wandb", true)],
        problems: &[(Problem::NoRun, "deep")],
    },
    Case {
        name: "a folder without runs is a warning",
        args: &["empty"],
        files: &[],
        problems: &[(Problem::NoRun, "empty")],
    },
    Case {
        name: "missing paths and patterns matching nothing are errors",
        args: &["missing", "nomatch-*.wandb", A],
        files: &[(A, true)],
        problems: &[
            (Problem::NotFound, "missing"),
            (Problem::NoMatch, "nomatch-*.wandb"),
        ],
    },
    Case {
        name: "a FIFO is refused without being opened, found or named",
        args: &["fifo", "fifo/offline-run-f/run-ffff.wandb"],
        files: &[],
        problems: &[
            (Problem::Fifo, "fifo/offline-run-f/run-ffff.wandb"),
            (Problem::Fifo, "fifo/offline-run-f/run-ffff.wandb"),
        ],
    },
    Case {
        name: "a folder named *.wandb is refused",
        args: &["dirnamed", "dirnamed/offline-run-g/run-gggg.wandb"],
        files: &[],
        problems: &[
            (Problem::Folder, "dirnamed/offline-run-g/run-gggg.wandb"),
            (Problem::Folder, "dirnamed/offline-run-g/run-gggg.wandb"),
        ],
    },
    Case {
        name: "a .wandb name on bytes that are not a .wandb log",
        args: &["junk"],
        files: &[("junk/offline-run-j/run-jjjj.wandb", true)],
        problems: &[(Problem::NotWandb, "junk/offline-run-j/run-jjjj.wandb")],
    },
];

/// Writes a small valid run file: header, a run record, an exit record.
pub fn write_run_file(path: &Path, run_id: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = Writer::create(path).unwrap();
    let run = Record {
        num: 1,
        record_type: Some(RecordType::Run(proto::RunRecord {
            run_id: run_id.into(),
            project: "rules".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let exit = Record {
        num: 2,
        record_type: Some(RecordType::Exit(proto::RunExitRecord::default())),
        ..Default::default()
    };
    writer.append_record(&run).unwrap();
    writer.append_record(&exit).unwrap();
    writer.persist(Durability::SyncData).unwrap();
}

/// Builds the tree the cases refer to under `root`.
pub fn build(root: &Path) {
    write_run_file(&root.join(A), "aaaa");
    write_run_file(
        &root.join("proj/wandb/offline-run-20260101_000000-aaaa/files/inner.wandb"),
        "inner",
    );
    write_run_file(&root.join(B), "bbbb");
    write_run_file(&root.join(C), "cccc");
    std::os::unix::fs::symlink(
        "offline-run-20260102_000000-bbbb",
        root.join("proj/wandb/latest-run"),
    )
    .unwrap();
    write_run_file(
        &root.join("proj/.hidden/offline-run-h/run-hhhh.wandb"),
        "hhhh",
    );
    write_run_file(&root.join("deep/a/b/offline-run-d/run-dddd.wandb"), "dddd");
    write_run_file(&root.join("loose.wandb.bak"), "loose");
    std::fs::create_dir_all(root.join("empty/sub")).unwrap();
    std::fs::write(root.join("empty/sub/notes.txt"), b"no run here\n").unwrap();
    std::fs::create_dir_all(root.join("fifo/offline-run-f")).unwrap();
    let fifo = root.join("fifo/offline-run-f/run-ffff.wandb");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
    std::fs::create_dir_all(root.join("dirnamed/offline-run-g/run-gggg.wandb")).unwrap();
    std::fs::create_dir_all(root.join("junk/offline-run-j")).unwrap();
    std::fs::write(
        root.join("junk/offline-run-j/run-jjjj.wandb"),
        b"hello world\n",
    )
    .unwrap();
}

//! Turning command-line inputs into the `.wandb` files to read: one set of rules for every tool
//! (`wandb-sync`, `wandb-inspect`, and the tools that come after them).
//!
//! # Rules
//!
//! 1. **A file** named as an input is taken whatever its name (`run-x.wandb.bak` too).
//! 2. **A folder** is a *run folder* when it directly holds entries named `*.wandb` that are not
//!    folders: those entries are its files, in name order, and its sub-folders (`files/`, `logs/`,
//!    `tmp/`) are not searched.
//!    Any other folder is searched for run folders in its sub-folders, down to [`MAX_DEPTH`] (two)
//!    levels below it: a run folder, a `wandb/` folder (runs one level down) and the project folder
//!    holding `wandb/` or `.wandb/` (runs two levels down) all work. Hidden sub-folders other than
//!    `.wandb` are skipped. Real sub-folders come first, in name order, then symlinked ones
//!    (`latest-run`), in name order.
//! 3. **Symlinks** are judged by what they point to: a link to a file is a file, a link to a folder
//!    is a folder, so `wandb/latest-run` is a run folder. [`Input::run_dir`] is the folder that holds
//!    the file with every symlink resolved (`.../offline-run-20250813_124246-n67z9ude` for a file
//!    reached through `latest-run`), and [`Input::is_offline`] judges that folder's name.
//! 4. **A pattern** (holding `*`, `?` or `[`) that is not an existing path is expanded here, for
//!    shells that do not: matches in name order, those that are or go through a symlink last, each
//!    match then taken by rules 1 to 3.
//! 5. **Once each.** A file reached twice (through `latest-run`, a hard link, two inputs) is kept
//!    once, under the first path that reached it; files are identified by device and inode (by
//!    canonical path where there are no inodes).
//! 6. **Only regular files.** An input, or a `*.wandb` entry of a folder, that is not a regular file
//!    (a folder named `*.wandb`, a FIFO, a socket, a device) is refused with
//!    [`InputError::NotRegular`], naming its type, and is never opened.
//! 7. **Problems do not stop the other inputs.** A path that does not exist, a pattern that is
//!    invalid or matches nothing, a folder that cannot be listed, a refused entry: each is an error
//!    in [`Resolved::problems`]. An input that exists but holds no run is a warning
//!    ([`InputError::NoRun`]). Tools exit non-zero on errors, and with 1 when nothing at all was
//!    found.
//!
//! [`check_header`] is the second step, for tools that want to refuse a file that is not a `.wandb`
//! log before reading it: it opens the file without blocking (a FIFO swapped in after the first
//! check cannot hang it), checks the opened handle is a regular file, and reads its first bytes;
//! [`InputError::NotWandb`] shows them in hex and as text.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, Metadata};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

pub use crate::error::FileKind;
use crate::framing::FILE_HEADER;
use crate::reader::{irregular, open_regular};

/// How many folder levels below a folder input are searched for run folders.
pub const MAX_DEPTH: usize = 2;

/// How many leading bytes [`InputError::NotWandb`] shows.
const SHOWN_BYTES: usize = 16;

/// One `.wandb` file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The file, by the path that reached it (e.g. `wandb/latest-run/run-x.wandb`).
    pub path: PathBuf,
    /// The folder holding the file, with every symlink resolved (the run folder `latest-run`
    /// points to, say). Equal to the parent of `path` when it cannot be resolved.
    pub run_dir: PathBuf,
}

impl Input {
    /// Whether the run folder's name says the run was written offline (`offline-run-...`): the
    /// rule W&B's sync uses to skip online runs.
    pub fn is_offline(&self) -> bool {
        self.run_dir
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("offline-"))
    }
}

/// What [`resolve`] found: the files, in input order without duplicates, and the problems.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The files found.
    pub files: Vec<Input>,
    /// Errors and warnings ([`InputError::is_warning`]), in the order they were met.
    pub problems: Vec<InputError>,
}

impl Resolved {
    /// The problems that are errors.
    pub fn errors(&self) -> impl Iterator<Item = &InputError> {
        self.problems.iter().filter(|p| !p.is_warning())
    }

    /// The problems that are warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &InputError> {
        self.problems.iter().filter(|p| p.is_warning())
    }
}

/// A problem with an input (see the module docs for which are errors and which warnings).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The path does not exist (and is not a pattern).
    #[error("{path}: no such file or folder", path = .path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// An I/O error while looking at a path.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What was being done, e.g. "list folder".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A pattern that is not a valid glob.
    #[error("{pattern}: invalid glob pattern: {source}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        #[source]
        source: glob::PatternError,
    },
    /// A pattern that matches nothing.
    #[error("{pattern}: no such file, and nothing matches it as a pattern")]
    NoMatch {
        /// The pattern as given.
        pattern: String,
    },
    /// A path that is not a regular file where a `.wandb` file was expected; it was not opened.
    #[error("{path}: is a {kind}, not a regular file: refused without opening it", path = .path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// A file that does not start with the `.wandb` header.
    #[error("{path}: {reason}", path = .path.display(), reason = not_wandb_reason(.found))]
    NotWandb {
        /// The file.
        path: PathBuf,
        /// Its first bytes (up to 16).
        found: Vec<u8>,
    },
    /// An input that exists but holds no `.wandb` file (a warning).
    #[error(
        "{path}: holds no run: no .wandb file in it or in its sub-folders ({MAX_DEPTH} levels down)",
        path = .path.display()
    )]
    NoRun {
        /// The input as given.
        path: PathBuf,
    },
}

impl InputError {
    /// Whether this is a warning rather than an error.
    pub fn is_warning(&self) -> bool {
        matches!(self, InputError::NoRun { .. })
    }

    /// Whether the problem is with an input as given (missing, a pattern that is invalid or
    /// matches nothing), rather than with something found through it.
    pub fn is_about_argument(&self) -> bool {
        matches!(
            self,
            InputError::NotFound { .. } | InputError::Pattern { .. } | InputError::NoMatch { .. }
        )
    }

    /// The path (or pattern) concerned.
    pub fn path(&self) -> &Path {
        match self {
            InputError::NotFound { path }
            | InputError::Io { path, .. }
            | InputError::NotRegular { path, .. }
            | InputError::NotWandb { path, .. }
            | InputError::NoRun { path } => path,
            InputError::Pattern { pattern, .. } | InputError::NoMatch { pattern } => {
                Path::new(pattern)
            }
        }
    }
}

/// Leading bytes shown in hex and as text: `it starts with 68 69 0a ("hi.")`, or that there are
/// none.
struct Shown<'a>(&'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the file is empty");
        }
        f.write_str("it starts with ")?;
        describe_bytes(self.0, f)
    }
}

/// Why a file whose first bytes are `found` is not a `.wandb` log: `not a .wandb log: it starts
/// with 68 69 0a ("hi."), where a .wandb log starts with 3a 57 26 42 e1 be 00 (":W&B...")`.
pub fn not_wandb_reason(found: &[u8]) -> String {
    let mut expected = String::new();
    let _ = describe_bytes(&FILE_HEADER, &mut expected);
    format!(
        "not a .wandb log: {}, where a .wandb log starts with {expected}",
        Shown(found)
    )
}

/// Writes `bytes` as hex pairs followed by their printable form, non-printable bytes as `.`:
/// `3a 57 26 42 e1 be 00 (":W&B...")`.
pub fn describe_bytes(bytes: &[u8], out: &mut impl fmt::Write) -> fmt::Result {
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.write_char(' ')?;
        }
        write!(out, "{byte:02x}")?;
    }
    out.write_str(" (\"")?;
    for &byte in bytes {
        let printable = byte.is_ascii_graphic() || byte == b' ';
        out.write_char(if printable { char::from(byte) } else { '.' })?;
    }
    out.write_str("\")")
}

/// Resolves `inputs` by the rules in the module docs.
pub fn resolve(inputs: &[PathBuf]) -> Resolved {
    let mut resolver = Resolver::default();
    for input in inputs {
        let reached = resolver.reached;
        let problems = resolver.out.problems.len();
        resolver.input(input);
        if resolver.reached == reached && resolver.out.problems.len() == problems {
            resolver.out.problems.push(InputError::NoRun {
                path: input.clone(),
            });
        }
    }
    resolver.out
}

/// Checks that `path` is a regular file that starts with the `.wandb` header, without blocking.
///
/// The file is opened non-blocking and the opened handle is checked to be a regular file, so a
/// FIFO or device put in place of the path after [`resolve`] looked at it is refused, not read.
/// With `allow_partial`, a file shorter than the header whose bytes begin it (a file a writer has
/// just created) passes too.
pub fn check_header(path: &Path, allow_partial: bool) -> Result<(), InputError> {
    let (mut file, _) = open_regular(path).map_err(|error| match error {
        crate::Error::NotRegularFile { path, kind } => InputError::NotRegular { path, kind },
        crate::Error::Io {
            path,
            action,
            source,
        } => InputError::Io {
            path,
            action,
            source,
        },
        other => InputError::Io {
            path: path.to_path_buf(),
            action: "open",
            source: io::Error::other(other.to_string()),
        },
    })?;
    let mut found = Vec::with_capacity(SHOWN_BYTES);
    (&mut file)
        .take(SHOWN_BYTES as u64)
        .read_to_end(&mut found)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
    let partial_ok = allow_partial && found.len() < FILE_HEADER.len();
    if found.starts_with(&FILE_HEADER) || (partial_ok && FILE_HEADER.starts_with(&found)) {
        return Ok(());
    }
    Err(InputError::NotWandb {
        path: path.to_path_buf(),
        found,
    })
}

/// What makes two paths the same file.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

fn identity(path: &Path, metadata: &Metadata) -> Identity {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let _ = path;
        Identity::Inode(metadata.dev(), metadata.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Identity::Path(fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
    }
}

#[derive(Default)]
struct Resolver {
    out: Resolved,
    seen: HashSet<Identity>,
    /// Files reached so far, duplicates included (an input whose files were all seen before still
    /// holds runs).
    reached: usize,
}

impl Resolver {
    fn input(&mut self, input: &Path) {
        match fs::metadata(input) {
            Ok(metadata) => self.take(input, &metadata),
            Err(source) if source.kind() == io::ErrorKind::NotFound => {
                let text = input.to_string_lossy();
                if text.contains(['*', '?', '[']) {
                    self.pattern(&text);
                } else if fs::symlink_metadata(input).is_ok() {
                    self.problem(InputError::Io {
                        path: input.to_path_buf(),
                        action: "follow symlink",
                        source,
                    });
                } else {
                    self.problem(InputError::NotFound {
                        path: input.to_path_buf(),
                    });
                }
            }
            Err(source) => self.problem(InputError::Io {
                path: input.to_path_buf(),
                action: "stat",
                source,
            }),
        }
    }

    fn problem(&mut self, error: InputError) {
        self.out.problems.push(error);
    }

    /// A path given or matched: a file, a folder, or something refused.
    fn take(&mut self, path: &Path, metadata: &Metadata) {
        match irregular(metadata) {
            None => self.file(path, metadata),
            Some(FileKind::Directory) if !is_wandb_name(path) => self.folder(path, 0),
            Some(kind) => self.problem(InputError::NotRegular {
                path: path.to_path_buf(),
                kind,
            }),
        }
    }

    fn file(&mut self, path: &Path, metadata: &Metadata) {
        self.reached += 1;
        if !self.seen.insert(identity(path, metadata)) {
            return;
        }
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let run_dir = fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        self.out.files.push(Input {
            path: path.to_path_buf(),
            run_dir,
        });
    }

    fn pattern(&mut self, pattern: &str) {
        let matches = match glob::glob(pattern) {
            Ok(matches) => matches,
            Err(source) => {
                return self.problem(InputError::Pattern {
                    pattern: pattern.to_owned(),
                    source,
                });
            }
        };
        let mut paths = Vec::new();
        for entry in matches {
            match entry {
                Ok(path) => paths.push(path),
                Err(error) => self.problem(InputError::Io {
                    path: error.path().to_path_buf(),
                    action: "read",
                    source: error.into(),
                }),
            }
        }
        if paths.is_empty() {
            return self.problem(InputError::NoMatch {
                pattern: pattern.to_owned(),
            });
        }
        // Stable: name order within each group.
        paths.sort_by_key(|path| through_symlink(path));
        for path in paths {
            match fs::metadata(&path) {
                Ok(metadata) => self.take(&path, &metadata),
                Err(source) => self.problem(InputError::Io {
                    path,
                    action: "follow symlink",
                    source,
                }),
            }
        }
    }

    /// A folder at `depth` below the input: a run folder, or searched for run folders.
    fn folder(&mut self, folder: &Path, depth: usize) {
        let entries = match fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(source) => {
                return self.problem(InputError::Io {
                    path: folder.to_path_buf(),
                    action: "list folder",
                    source,
                });
            }
        };
        let mut wandb_entries = Vec::new();
        let mut others = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) if is_wandb_name(Path::new(&entry.file_name())) => {
                    wandb_entries.push(entry.path());
                }
                Ok(entry) => others.push(entry),
                Err(source) => self.problem(InputError::Io {
                    path: folder.to_path_buf(),
                    action: "list folder",
                    source,
                }),
            }
        }
        wandb_entries.sort();
        let mut run_files = Vec::new();
        let mut refused = Vec::new();
        for path in wandb_entries {
            match fs::metadata(&path) {
                Ok(metadata) => match irregular(&metadata) {
                    None => run_files.push((path, metadata)),
                    Some(kind) => refused.push(InputError::NotRegular { path, kind }),
                },
                Err(source) => refused.push(InputError::Io {
                    path,
                    action: "follow symlink",
                    source,
                }),
            }
        }
        // A folder named `*.wandb` alone does not make a run folder.
        let run_folder = !run_files.is_empty()
            || refused.iter().any(|e| {
                !matches!(
                    e,
                    InputError::NotRegular {
                        kind: FileKind::Directory,
                        ..
                    }
                )
            });
        self.out.problems.extend(refused);
        if run_folder {
            for (path, metadata) in run_files {
                self.file(&path, &metadata);
            }
            return;
        }
        if depth >= MAX_DEPTH {
            return;
        }
        let mut real = Vec::new();
        let mut linked = Vec::new();
        for entry in others {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name != ".wandb" {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                real.push(path);
            } else if kind.is_symlink() && fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                linked.push(path);
            }
        }
        real.sort();
        linked.sort();
        for sub in real.into_iter().chain(linked) {
            self.folder(&sub, depth + 1);
        }
    }
}

/// Whether the path's name ends in `.wandb` (a name that is only `.wandb` does not).
fn is_wandb_name(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "wandb")
}

/// Whether `path` or a folder on the way to it is a symlink.
fn through_symlink(path: &Path) -> bool {
    path.ancestors()
        .filter(|dir| !dir.as_os_str().is_empty())
        .any(|dir| fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_hex_and_as_text() {
        let mut text = String::new();
        describe_bytes(b"PK\x03\x04 a\"", &mut text).unwrap();
        assert_eq!(text, "50 4b 03 04 20 61 22 (\"PK.. a\"\")");
    }
}

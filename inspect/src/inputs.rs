//! Turns command-line inputs into the list of `.wandb` files to read, by the rules every tool
//! shares: `wandb_format::inputs` (files whatever their name, run folders, `wandb/` folders and the
//! folder holding them, globs; symlinked run folders such as `latest-run` followed; each file once,
//! by device and inode; anything but a regular file refused without being opened).

use std::path::PathBuf;

use wandb_archive::tools::Expanded;
use wandb_format::inputs::{self, InputError};

/// What the inputs stand for.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// The files, in input order and without duplicates.
    pub(crate) files: Vec<PathBuf>,
    /// Inputs that could not be used (missing, refused, unreadable).
    pub(crate) errors: Vec<InputError>,
    /// Inputs that hold no `.wandb` file.
    pub(crate) warnings: Vec<InputError>,
}

/// Resolves `inputs`. An archive (`runs.tar.zst`, or `runs.tar.zst:RUN` for one run, a run
/// folder name or id) stands for its runs' `.wandb` members, named
/// `runs.tar.zst:<run folder>/<file>` and read out of the archive in place
/// (`wandb_archive::tools`); every other input goes by format's rules, in input order.
pub(crate) fn resolve(inputs: &[PathBuf]) -> Resolved {
    let mut out = Resolved::default();
    let mut plain = Vec::new();
    for item in wandb_archive::tools::expand(inputs) {
        match item {
            Expanded::Plain(path) => plain.push(path),
            Expanded::Members(paths) => {
                resolve_plain(&std::mem::take(&mut plain), &mut out);
                out.files.extend(paths);
            }
            Expanded::Problem { input, reason } => {
                resolve_plain(&std::mem::take(&mut plain), &mut out);
                out.errors.push(InputError::Io {
                    path: input,
                    action: "read archive",
                    source: std::io::Error::other(reason),
                });
            }
        }
    }
    resolve_plain(&plain, &mut out);
    out
}

fn resolve_plain(plain: &[PathBuf], out: &mut Resolved) {
    if plain.is_empty() {
        return;
    }
    let resolved = inputs::resolve(plain);
    out.files
        .extend(resolved.files.into_iter().map(|input| input.path));
    for problem in resolved.problems {
        if problem.is_warning() {
            out.warnings.push(problem);
        } else {
            out.errors.push(problem);
        }
    }
}

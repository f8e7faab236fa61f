//! Turns command-line inputs into the list of `.wandb` files to read, by the rules every tool
//! shares: `wandb_format::inputs` (files whatever their name, run folders, `wandb/` folders and the
//! folder holding them, globs; symlinked run folders such as `latest-run` followed; each file once,
//! by device and inode; anything but a regular file refused without being opened).

use std::path::PathBuf;

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

/// Resolves `inputs`.
pub(crate) fn resolve(inputs: &[PathBuf]) -> Resolved {
    let resolved = inputs::resolve(inputs);
    let mut out = Resolved {
        files: resolved.files.into_iter().map(|input| input.path).collect(),
        ..Resolved::default()
    };
    for problem in resolved.problems {
        if problem.is_warning() {
            out.warnings.push(problem);
        } else {
            out.errors.push(problem);
        }
    }
    out
}

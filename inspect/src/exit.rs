//! The process exit status of `wandb-inspect`, and how per-file outcomes combine into it.

use std::process::ExitCode;

/// How a run of `wandb-inspect` ended; the discriminant is the process exit code.
///
/// Outcomes of several files combine with [`Exit::merge`]: the most severe one wins
/// (`Interrupted` > `Error` > `Damage` > `Ok`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Exit {
    /// Everything was read and no damage was found (a torn tail is only a warning, except under
    /// `verify --strict`). A closed output pipe also ends the run with this status.
    #[default]
    Ok = 0,
    /// Every file was read, and at least one holds damage; or no input held a `.wandb` file.
    Damage = 1,
    /// A usage error, or an input that could not be read at all (missing, unreadable, not a
    /// regular file, I/O error).
    Error = 2,
    /// `--follow` was stopped by Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

impl Exit {
    /// The more severe of two outcomes.
    #[must_use]
    pub fn merge(self, other: Exit) -> Exit {
        self.max(other)
    }

    /// The numeric exit code.
    #[must_use]
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_outcome_wins() {
        assert_eq!(Exit::Ok.merge(Exit::Damage), Exit::Damage);
        assert_eq!(Exit::Error.merge(Exit::Damage), Exit::Error);
        assert_eq!(Exit::Damage.merge(Exit::Interrupted), Exit::Interrupted);
        assert_eq!(
            [Exit::Ok, Exit::Damage, Exit::Error, Exit::Interrupted].map(Exit::code),
            [0, 1, 2, 130]
        );
    }
}

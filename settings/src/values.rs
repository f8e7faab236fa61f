//! Typed values of the enumerated settings: mode, console and resume.

use std::fmt;

/// The mode a user asked for, with W&B's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `online`, W&B's default: log and upload live. Runs offline here.
    Online,
    /// `offline`: write the run locally, upload later with `wandb sync`.
    Offline,
    /// `dryrun`: an old name for `offline`.
    Dryrun,
    /// `disabled`: do nothing (every call is a no-op).
    Disabled,
    /// `shared`: online, with several writers to one run. Runs offline here.
    Shared,
    /// `run`: accepted by W&B and treated like `online`. Runs offline here.
    Run,
}

impl Mode {
    /// Every mode, in the order error messages list them.
    pub const ALL: [Mode; 6] = [
        Mode::Online,
        Mode::Offline,
        Mode::Dryrun,
        Mode::Disabled,
        Mode::Shared,
        Mode::Run,
    ];

    /// W&B's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Online => "online",
            Mode::Offline => "offline",
            Mode::Dryrun => "dryrun",
            Mode::Disabled => "disabled",
            Mode::Shared => "shared",
            Mode::Run => "run",
        }
    }

    /// The mode named `text` (exact, case-sensitive, as W&B).
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// What this implementation actually does: everything but `disabled` writes offline.
    pub fn effective(self) -> EffectiveMode {
        match self {
            Mode::Disabled => EffectiveMode::Disabled,
            _ => EffectiveMode::Offline,
        }
    }

    /// Whether the mode asks W&B to talk to the server while logging (`online`, `shared`, `run`).
    pub fn wants_online(self) -> bool {
        matches!(self, Mode::Online | Mode::Shared | Mode::Run)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the logger really does for a [`Mode`]: it never uploads while logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EffectiveMode {
    /// Write an offline run directory, to be uploaded later by `wandb-sync`.
    Offline,
    /// Do nothing.
    Disabled,
}

impl EffectiveMode {
    /// `offline` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            EffectiveMode::Offline => "offline",
            EffectiveMode::Disabled => "disabled",
        }
    }
}

impl fmt::Display for EffectiveMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Console capture method, after W&B's resolution of `auto` to `wrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Console {
    /// `off`: no capture.
    Off,
    /// `wrap` (also what `auto` means): wrap the program's stdout/stderr writes.
    Wrap,
    /// `redirect`: redirect the file descriptors.
    Redirect,
    /// `wrap_raw`: wrap, capturing raw output.
    WrapRaw,
    /// `wrap_emu`: wrap, through a terminal emulator.
    WrapEmu,
}

impl Console {
    /// The accepted names, in the order error messages list them.
    pub const NAMES: [&'static str; 6] =
        ["auto", "off", "wrap", "redirect", "wrap_raw", "wrap_emu"];

    /// W&B's name for the method.
    pub fn as_str(self) -> &'static str {
        match self {
            Console::Off => "off",
            Console::Wrap => "wrap",
            Console::Redirect => "redirect",
            Console::WrapRaw => "wrap_raw",
            Console::WrapEmu => "wrap_emu",
        }
    }

    /// The method named `text` (exact, case-sensitive); `auto` gives [`Console::Wrap`].
    pub fn parse(text: &str) -> Option<Console> {
        match text {
            "auto" | "wrap" => Some(Console::Wrap),
            "off" => Some(Console::Off),
            "redirect" => Some(Console::Redirect),
            "wrap_raw" => Some(Console::WrapRaw),
            "wrap_emu" => Some(Console::WrapEmu),
            _ => None,
        }
    }
}

impl fmt::Display for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resume behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resume {
    /// `allow`: resume the run with this id if it exists, else start it.
    Allow,
    /// `must`: resume the run with this id; fail if it does not exist.
    Must,
    /// `never`: start a new run; fail if the id exists.
    Never,
    /// `auto`: resume the last run started from this directory, if it crashed.
    Auto,
}

impl Resume {
    /// The accepted names, in the order error messages list them.
    pub const NAMES: [&'static str; 4] = ["allow", "must", "never", "auto"];

    /// W&B's name for the behaviour.
    pub fn as_str(self) -> &'static str {
        match self {
            Resume::Allow => "allow",
            Resume::Must => "must",
            Resume::Never => "never",
            Resume::Auto => "auto",
        }
    }

    /// The behaviour named `text` (exact, case-sensitive).
    pub fn parse(text: &str) -> Option<Resume> {
        match text {
            "allow" => Some(Resume::Allow),
            "must" => Some(Resume::Must),
            "never" => Some(Resume::Never),
            "auto" => Some(Resume::Auto),
            _ => None,
        }
    }
}

impl fmt::Display for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("OFFLINE"), None);
        assert_eq!(Mode::Online.effective(), EffectiveMode::Offline);
        assert_eq!(Mode::Dryrun.effective(), EffectiveMode::Offline);
        assert_eq!(Mode::Disabled.effective(), EffectiveMode::Disabled);
        assert!(Mode::Shared.wants_online() && !Mode::Offline.wants_online());
    }

    #[test]
    fn console_auto_is_wrap() {
        assert_eq!(Console::parse("auto"), Some(Console::Wrap));
        for name in Console::NAMES.iter().skip(1) {
            assert_eq!(Console::parse(name).map(Console::as_str), Some(*name));
        }
        assert_eq!(Console::parse("Wrap"), None);
    }

    #[test]
    fn resume_names() {
        for name in Resume::NAMES {
            assert_eq!(Resume::parse(name).map(Resume::as_str), Some(name));
        }
        assert_eq!(Resume::parse("true"), None);
    }
}

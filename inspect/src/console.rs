//! Where output goes: data to stdout, diagnostics to stderr, colour only where it belongs.
//!
//! Colour is used on a stream only when it is a terminal and `NO_COLOR` is unset or empty
//! (<https://no-color.org>). Writes to stderr never fail a run; a write error on stdout ends the
//! run (a closed pipe quietly, with exit status 0, see `run.rs`).

use std::io::{self, IsTerminal as _, Write};

/// The two output streams of a run, and whether each gets colour.
pub struct Console<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    out_color: bool,
    err_color: bool,
}

impl std::fmt::Debug for Console<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("out_color", &self.out_color)
            .field("err_color", &self.err_color)
            .finish_non_exhaustive()
    }
}

impl<'a> Console<'a> {
    /// A console writing data to `out` and diagnostics to `err`, without colour.
    pub fn new(out: &'a mut dyn Write, err: &'a mut dyn Write) -> Self {
        Console {
            out,
            err,
            out_color: false,
            err_color: false,
        }
    }

    /// Turns colour on or off for each stream.
    #[must_use]
    pub fn with_colors(mut self, out_color: bool, err_color: bool) -> Self {
        self.out_color = out_color;
        self.err_color = err_color;
        self
    }

    /// Whether data on stdout may be coloured.
    pub(crate) fn out_color(&self) -> bool {
        self.out_color
    }

    /// Writes data to stdout.
    pub(crate) fn write_out(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }

    /// Flushes stdout.
    pub(crate) fn flush_out(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Prints `wandb-inspect: error: MESSAGE` on stderr.
    pub(crate) fn error(&mut self, message: &dyn std::fmt::Display) {
        self.diagnostic(Paint::Red, "error", message);
    }

    /// Prints `wandb-inspect: warning: MESSAGE` on stderr.
    pub(crate) fn warning(&mut self, message: &dyn std::fmt::Display) {
        self.diagnostic(Paint::Yellow, "warning", message);
    }

    fn diagnostic(&mut self, paint: Paint, level: &str, message: &dyn std::fmt::Display) {
        // Make sure data written so far comes out before the diagnostic that follows it.
        let _ = self.out.flush();
        let level = paint.apply(level, self.err_color);
        let _ = writeln!(self.err, "wandb-inspect: {level}: {message}");
        let _ = self.err.flush();
    }
}

/// Whether a stream that `is_terminal` should get colour, given the `NO_COLOR` convention.
pub(crate) fn color_wanted(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Colour detection for the process's own stdout and stderr.
pub(crate) fn stdio_colors() -> (bool, bool) {
    (
        color_wanted(io::stdout().is_terminal()),
        color_wanted(io::stderr().is_terminal()),
    )
}

/// The few colours used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Paint {
    Red,
    Green,
    Yellow,
    Cyan,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Red => "\x1b[1;31m",
            Paint::Green => "\x1b[32m",
            Paint::Yellow => "\x1b[33m",
            Paint::Cyan => "\x1b[36m",
        }
    }

    /// `text` wrapped in this colour when `enabled`.
    pub(crate) fn apply(self, text: &str, enabled: bool) -> String {
        let mut out = String::with_capacity(text.len() + 12);
        self.push(&mut out, text, enabled);
        out
    }

    /// Appends `text`, wrapped in this colour when `enabled`.
    pub(crate) fn push(self, out: &mut String, text: &str, enabled: bool) {
        if enabled {
            out.push_str(self.code());
            out.push_str(text);
            out.push_str("\x1b[0m");
        } else {
            out.push_str(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_terminals() {
        assert!(!color_wanted(false));
        assert_eq!(Paint::Red.apply("x", false), "x");
        assert_eq!(Paint::Green.apply("ok", true), "\x1b[32mok\x1b[0m");
    }
}

//! `files/output.log`: the console output as plain text, as the SDK 0.31 writes it offline.
//!
//! The writer feeds it the text of every `output_raw` record. Lines from both streams share the
//! file. A carriage return starts the current line over (so a `\r` progress bar leaves its last
//! state), a newline ends it; other control sequences are kept as they are. The file is created
//! with the first output, written through a buffer, flushed at flush points and at finish.
//! Problems with it are logged and otherwise ignored: the `.wandb` file is what matters, and
//! sync can rebuild this file from it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// The console text file of a run.
#[derive(Debug)]
pub(crate) struct OutputLog {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    failed: bool,
    /// The current, unfinished line of each stream (stderr, stdout).
    lines: [String; 2],
}

impl OutputLog {
    /// A log at `path`, created on first use.
    pub(crate) fn new(path: PathBuf) -> OutputLog {
        OutputLog {
            path,
            file: None,
            failed: false,
            lines: [String::new(), String::new()],
        }
    }

    /// Adds text written to a stream (`stdout` false means stderr).
    pub(crate) fn add(&mut self, stdout: bool, text: &str) {
        if self.failed {
            return;
        }
        let idx = usize::from(stdout);
        let mut rest = text;
        while let Some(pos) = rest.find(['\n', '\r']) {
            let (before, after) = rest.split_at(pos);
            if let Some(line) = self.lines.get_mut(idx) {
                line.push_str(before);
            }
            if after.starts_with('\n') {
                let line = self
                    .lines
                    .get_mut(idx)
                    .map(std::mem::take)
                    .unwrap_or_default();
                self.write_line(&line);
            } else if let Some(line) = self.lines.get_mut(idx) {
                line.clear();
            }
            rest = after.get(1..).unwrap_or_default();
        }
        if let Some(line) = self.lines.get_mut(idx) {
            line.push_str(rest);
        }
    }

    fn write_line(&mut self, line: &str) {
        if self.file.is_none() {
            match File::create(&self.path) {
                Ok(file) => self.file = Some(BufWriter::new(file)),
                Err(e) => return self.fail(&e),
            }
        }
        let result = match self.file.as_mut() {
            Some(file) => file
                .write_all(line.as_bytes())
                .and_then(|()| file.write_all(b"\n")),
            None => Ok(()),
        };
        if let Err(e) = result {
            self.fail(&e);
        }
    }

    fn fail(&mut self, error: &std::io::Error) {
        crate::diag::warning!(
            "{}: {error}; console text is still in the run log",
            self.path.display()
        );
        self.failed = true;
        self.file = None;
    }

    /// Hands buffered text to the operating system.
    pub(crate) fn flush(&mut self) {
        if let Some(file) = self.file.as_mut()
            && let Err(e) = file.flush()
        {
            self.fail(&e);
        }
    }

    /// Writes the unfinished lines and flushes.
    pub(crate) fn finish(&mut self) {
        for idx in 0..self.lines.len() {
            let line = self
                .lines
                .get_mut(idx)
                .map(std::mem::take)
                .unwrap_or_default();
            if !line.is_empty() && !self.failed {
                self.write_line(&line);
            }
        }
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_carriage_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        let mut log = OutputLog::new(path.clone());
        log.add(true, "step 1");
        log.add(true, "\n");
        log.add(true, "progress 10%\rprogress 50%\rprogress 100%\n");
        log.add(false, "warn");
        log.add(true, "no newline");
        log.finish();
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            "step 1\nprogress 100%\nwarn\nno newline\n"
        );
    }
}

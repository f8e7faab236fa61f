//! Console output: a small terminal emulator that turns `output_raw` chunks into numbered lines,
//! as wandb-core does before streaming `output.log`.
//!
//! Supported, as in wandb-core (reference 7.1): `\n` (next line, with an implicit carriage
//! return), `\r` (back to column 0), `ESC[A` / `ESC[B` (cursor up / down, optionally with a
//! count). Other escape sequences are kept as text. Lines are capped at [`MAX_LINE_CHARS`]
//! characters. Each stream (stdout, stderr) has its own cursor over a window of its last
//! [`WINDOW_LINES`] lines; both streams share one line numbering, and a line number is given out
//! only when the first character is written to a new line.
//!
//! Memory stays bounded: a line leaves memory once it has fallen out of its stream's window
//! and everything before it is final; final lines go to a spool (the plain-text `output.log`).

use std::collections::BTreeMap;

/// Longest line kept, in characters; the rest of a longer line is dropped.
pub(crate) const MAX_LINE_CHARS: usize = 4096;

/// How many recent lines a stream's cursor can reach.
pub(crate) const WINDOW_LINES: usize = 32;

/// Final lines waiting for an earlier, still-open line before they are written out; past this
/// they are written anyway (the earlier line's later changes then miss `output.log`).
const MAX_WAITING_FINAL: usize = 4096;

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug)]
struct Line {
    text: String,
    n_chars: usize,
    stream: Stream,
    /// Timestamp (microseconds since the epoch) of the last change.
    ts_micros: i64,
    final_: bool,
}

#[derive(Debug, Default)]
struct Cursor {
    /// Line numbers this stream can reach, oldest first.
    window: Vec<u64>,
    /// Index into `window`; `None` means a new line not yet given a number.
    row: Option<usize>,
    col: usize,
}

/// The emulator state for one run.
#[derive(Debug, Default)]
pub(crate) struct Terminal {
    lines: BTreeMap<u64, Line>,
    next_line: u64,
    stdout: Cursor,
    stderr: Cursor,
    /// Lines changed since the last [`Terminal::take_changed`].
    changed: BTreeMap<u64, ()>,
    /// Plain text of lines that are final, in line order, not yet taken.
    finished: String,
    /// Number of lines written to `finished` so far (all lines below this are gone).
    n_finished: u64,
}

impl Terminal {
    /// Whether any console output was seen.
    pub(crate) fn has_output(&self) -> bool {
        self.next_line > 0
    }

    /// Number of line numbers given out.
    pub(crate) fn n_lines(&self) -> u64 {
        self.next_line
    }

    /// Feeds one chunk of raw output.
    pub(crate) fn write(&mut self, stream: Stream, text: &str, ts_micros: i64) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\n' => self.newline(stream),
                '\r' => self.cursor(stream).col = 0,
                '\u{1b}' if chars.peek() == Some(&'[') => {
                    // Look ahead for ESC [ digits A|B without consuming anything else.
                    let mut lookahead = chars.clone();
                    lookahead.next();
                    let mut count = 0usize;
                    let mut n_digits = 0;
                    while let Some(d) = lookahead.peek().and_then(|d| d.to_digit(10)) {
                        count = count.saturating_mul(10).saturating_add(d as usize);
                        n_digits += 1;
                        lookahead.next();
                    }
                    let count = if n_digits == 0 { 1 } else { count.max(1) };
                    match lookahead.peek() {
                        Some('A') => {
                            lookahead.next();
                            chars = lookahead;
                            self.up(stream, count);
                        }
                        Some('B') => {
                            lookahead.next();
                            chars = lookahead;
                            self.down(stream, count);
                        }
                        _ => self.put(stream, c, ts_micros),
                    }
                }
                c => self.put(stream, c, ts_micros),
            }
        }
    }

    fn cursor(&mut self, stream: Stream) -> &mut Cursor {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    fn newline(&mut self, stream: Stream) {
        let cursor = self.cursor(stream);
        cursor.col = 0;
        match cursor.row {
            Some(row) if row + 1 < cursor.window.len() => cursor.row = Some(row + 1),
            _ => cursor.row = None,
        }
    }

    fn up(&mut self, stream: Stream, count: usize) {
        let cursor = self.cursor(stream);
        let current = cursor.row.unwrap_or(cursor.window.len());
        if cursor.window.is_empty() {
            return;
        }
        cursor.row = Some(current.saturating_sub(count));
    }

    fn down(&mut self, stream: Stream, count: usize) {
        let cursor = self.cursor(stream);
        if let Some(row) = cursor.row {
            let target = row.saturating_add(count);
            cursor.row = if target < cursor.window.len() {
                Some(target)
            } else {
                None
            };
        }
    }

    fn put(&mut self, stream: Stream, c: char, ts_micros: i64) {
        let (line_no, col) = {
            let next_line = self.next_line;
            let cursor = self.cursor(stream);
            let (line_no, allocated) = match cursor.row {
                Some(row) => (cursor.window.get(row).copied().unwrap_or(next_line), false),
                None => (next_line, true),
            };
            if allocated {
                cursor.window.push(line_no);
                cursor.row = Some(cursor.window.len() - 1);
            }
            (line_no, cursor.col)
        };
        if line_no == self.next_line {
            self.next_line += 1;
            self.lines.insert(
                line_no,
                Line {
                    text: String::new(),
                    n_chars: 0,
                    stream,
                    ts_micros,
                    final_: false,
                },
            );
            self.retire_old(stream);
        }
        self.cursor(stream).col = col + 1;
        let Some(line) = self.lines.get_mut(&line_no) else {
            return;
        };
        if col >= MAX_LINE_CHARS {
            return;
        }
        if col < line.n_chars {
            // Overwrite the character at `col`.
            let start = line
                .text
                .char_indices()
                .nth(col)
                .map_or(line.text.len(), |(i, _)| i);
            let end = line.text[start..]
                .chars()
                .next()
                .map_or(start, |old| start + old.len_utf8());
            line.text
                .replace_range(start..end, c.encode_utf8(&mut [0; 4]));
        } else {
            for _ in line.n_chars..col {
                line.text.push(' ');
            }
            line.text.push(c);
            line.n_chars = col + 1;
        }
        line.ts_micros = ts_micros;
        self.changed.insert(line_no, ());
    }

    /// Drops lines that fell out of `stream`'s window, marking them final.
    fn retire_old(&mut self, stream: Stream) {
        let cursor = self.cursor(stream);
        if cursor.window.len() <= WINDOW_LINES {
            return;
        }
        let excess = cursor.window.len() - WINDOW_LINES;
        let retired: Vec<u64> = cursor.window.drain(..excess).collect();
        if let Some(row) = cursor.row {
            cursor.row = Some(row.saturating_sub(excess));
        }
        for line_no in retired {
            if let Some(line) = self.lines.get_mut(&line_no) {
                line.final_ = true;
            }
        }
        self.flush_final(false);
    }

    /// Moves final lines at the front into `finished`.
    fn flush_final(&mut self, force: bool) {
        while let Some((&line_no, line)) = self.lines.first_key_value() {
            let waiting = self.lines.len() > MAX_WAITING_FINAL;
            if !(line.final_ || force || waiting) || self.changed.contains_key(&line_no) {
                break;
            }
            if let Some(line) = self.lines.remove(&line_no) {
                self.finished.push_str(&line.text);
                self.finished.push('\n');
                self.n_finished = line_no + 1;
            }
        }
    }

    /// The lines changed since the last call, formatted for file_stream, in line order. After
    /// this call, lines that are final are released.
    pub(crate) fn take_changed(&mut self) -> Vec<(u64, String)> {
        let changed = std::mem::take(&mut self.changed);
        let mut out = Vec::with_capacity(changed.len());
        for line_no in changed.keys() {
            if let Some(line) = self.lines.get(line_no) {
                out.push((*line_no, format_line(line)));
            }
        }
        self.flush_final(false);
        out
    }

    /// Forgets pending changes (used while replaying records the server already has).
    pub(crate) fn discard_changed(&mut self) {
        self.changed.clear();
        self.flush_final(false);
    }

    /// Takes the plain text of lines that became final since the last call.
    pub(crate) fn take_finished_text(&mut self) -> String {
        std::mem::take(&mut self.finished)
    }

    /// Marks every line final (end of the run) and takes the remaining plain text.
    pub(crate) fn finish(&mut self) -> String {
        for line in self.lines.values_mut() {
            line.final_ = true;
        }
        let changed = std::mem::take(&mut self.changed);
        self.flush_final(true);
        self.changed = changed;
        self.take_finished_text()
    }
}

/// `[ERROR ]<YYYY-MM-DDTHH:MM:SS.ffffff> <text>`, UTC.
fn format_line(line: &Line) -> String {
    let mut out = String::with_capacity(line.text.len() + 33);
    if line.stream == Stream::Stderr {
        out.push_str("ERROR ");
    }
    push_timestamp(&mut out, line.ts_micros);
    out.push(' ');
    out.push_str(&line.text);
    out
}

/// Writes `micros` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC).
pub(crate) fn push_timestamp(out: &mut String, micros: i64) {
    wandb_format::time::write_console_timestamp(out, micros);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn texts(t: &mut Terminal) -> Vec<(u64, String)> {
        t.take_changed()
            .into_iter()
            .map(|(n, l)| (n, l.split_once(' ').map(|(_, r)| r.to_owned()).unwrap_or(l)))
            .collect()
    }

    #[test]
    fn lines_and_carriage_returns() {
        let mut t = Terminal::default();
        t.write(Stream::Stdout, "a", 0);
        t.write(Stream::Stdout, "\n", 0);
        t.write(Stream::Stdout, "progress 1\rprogress 2\n", 0);
        t.write(Stream::Stderr, "oops\n", 0);
        t.write(Stream::Stdout, "tail", 0);
        let changed = t.take_changed();
        assert_eq!(changed.len(), 4);
        assert_eq!(changed[2].1, "ERROR 1970-01-01T00:00:00.000000 oops");
        assert_eq!(t.finish(), "a\nprogress 2\noops\ntail\n");
    }

    #[test]
    fn cursor_up_rewrites_earlier_line() {
        let mut t = Terminal::default();
        t.write(Stream::Stdout, "one\ntwo\n\u{1b}[2Aone!\n", 0);
        assert_eq!(
            texts(&mut t),
            vec![(0, "one!".to_owned()), (1, "two".to_owned())]
        );
        t.write(Stream::Stdout, "\u{1b}[B\u{1b}[Xkeep", 0);
        assert_eq!(t.finish(), "one!\ntwo\n\u{1b}[Xkeep\n");
    }

    #[test]
    fn long_lines_are_capped_and_old_lines_released() {
        let mut t = Terminal::default();
        let long = "x".repeat(MAX_LINE_CHARS + 10);
        t.write(Stream::Stdout, &long, 0);
        t.write(Stream::Stdout, "\n", 0);
        for i in 0..100 {
            t.write(Stream::Stdout, &format!("line {i}\n"), 0);
        }
        let _ = t.take_changed();
        let text = t.take_finished_text();
        assert!(text.starts_with(&"x".repeat(MAX_LINE_CHARS)));
        assert!(!text.starts_with(&"x".repeat(MAX_LINE_CHARS + 1)));
        assert!(t.lines.len() <= WINDOW_LINES + 1);
    }

    #[test]
    fn timestamps_format() {
        let mut s = String::new();
        push_timestamp(&mut s, 1_795_317_679_103_348);
        assert_eq!(s, "2026-11-22T03:21:19.103348");
    }
}

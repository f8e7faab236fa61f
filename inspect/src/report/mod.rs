//! `wandb-inspect report`: one self-contained HTML file per set of runs, readable offline.
//!
//! The page holds everything it shows: the style and a small hand-written script inline, chart data
//! as one JSON block, images as `data:` URIs, no font, no request to any address. Sections:
//! a panel per metric grouped by the key's prefix before the first `/` (as W&B's workspace does;
//! other keys under "Charts"), system metrics, summary and config tables, the console's last lines,
//! thumbnails of logged images, and the damage found. Each chart is an SVG the script draws from
//! the downsampled series (`plot::series`, 1,000 columns, so the page stays small whatever the
//! history length); it shows the values under the pointer, zooms on a dragged x range and resets on
//! double-click. Once every panel is drawn the script sets `data-rendered` on `<body>` to the number
//! of charts drawn (tests read it from the DOM).
//!
//! `--follow` reads each file once, then only the records added to it (`Following`, on format's
//! `Follower`), extending the downsampled series; it rewrites the page (temporary file and
//! rename, so a browser never sees half a page) at most once per poll interval when records
//! came, until each run's exit record has arrived, or Ctrl-C.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use prost::Message as _;
use wandb_format::json::{self, Value};
use wandb_format::{Entry, FILE_HEADER_LEN, Follower, RawRecord, Recovery, ScanItem};

use crate::cli::ReportArgs;
use crate::console::Console;
use crate::damage::{self, Opened};
use crate::error::Error;
use crate::exit::Exit;
use crate::plot::data::{RunData, RunReader, read_chunk, read_file};
use crate::plot::load_runs;
use crate::plot::series::{ChartOptions, Line, Panel, ReadOptions, downsample, panels};

/// Pixel columns the report's series are downsampled to at most (a zoom shows them all).
const COLUMNS: usize = 1000;
/// Fewest columns a line gets, however many lines the page has.
const MIN_COLUMNS: usize = 40;
/// Columns for all lines of the page together: with at most four points per column and about
/// 20 bytes per point, the chart data stays under about 2 MB whatever the history length.
const COLUMN_BUDGET: usize = 25_000;

/// Columns per line for `runs`: the budget shared by every (run, metric) line.
fn columns(runs: &[RunData]) -> usize {
    let lines: usize = runs
        .iter()
        .map(|run| run.metrics.len() + run.system.len())
        .sum();
    (COLUMN_BUDGET / lines.max(1)).clamp(MIN_COLUMNS, COLUMNS)
}
/// Images shown at most, and the largest image file inlined.
const MAX_IMAGES: usize = 24;
const MAX_IMAGE_BYTES: u64 = 256 << 10;
/// Console lines shown per run.
const CONSOLE_SHOWN: usize = 100;

/// How the report's runs are read: every series on its step metric, unsmoothed, reduced for at
/// most [`COLUMNS`] columns.
fn read_options() -> ReadOptions {
    ReadOptions {
        x: None,
        smooth: 0.0,
        log_y: false,
        columns: COLUMNS,
    }
}

/// Runs `report` over resolved `files`.
pub(crate) fn report_files(
    args: &ReportArgs,
    files: &[PathBuf],
    console: &mut Console<'_>,
) -> io::Result<Exit> {
    let keep = |_: &str| true;
    let options = read_options();
    if !args.follow {
        let (runs, exit) = load_runs(files, &keep, true, &options, console);
        return Ok(exit.merge(write_report(&args.output, &runs, console)));
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    if let Err(error) =
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))
    {
        console.warning(&format_args!("cannot handle Ctrl-C: {error}"));
    }
    let poll = Duration::from_millis(args.poll_ms.max(50));
    let mut following = Following::open(files, &keep, &options);
    let mut first = true;
    loop {
        let read = following.poll();
        if following.done() {
            let (runs, exit) = crate::plot::report_runs(following.finish(), console);
            return Ok(exit.merge(write_report(&args.output, &runs, console)));
        }
        // The page is rewritten at most once per poll interval, and only when records came.
        if read > 0 || first {
            first = false;
            let status = write_report(&args.output, &following.runs(), console);
            if status != Exit::Ok {
                return Ok(status);
            }
        }
        // Sleep in short ticks so Ctrl-C is seen at once.
        let mut waited = Duration::ZERO;
        while waited < poll {
            if interrupted.load(Ordering::Relaxed) {
                return Ok(Exit::Interrupted);
            }
            let tick = Duration::from_millis(25).min(poll - waited);
            std::thread::sleep(tick);
            waited += tick;
        }
    }
}

/// One followed input.
enum Source<'k> {
    /// A growing file: what was read of it, and the follower that reads what is added.
    Live(Box<RunReader<'k>>, Follower),
    /// An input that cannot grow (an archive member), read once.
    Fixed(Box<RunData>),
    /// An input that could not be read.
    Failed(Error),
}

/// The runs of a `report --follow`, each read incrementally: the file as it is when following
/// starts is read once (in parallel slices, like `report`), then each poll reads only the records
/// added since, and the downsampled series are extended, never rebuilt.
pub(crate) struct Following<'k> {
    sources: Vec<Source<'k>>,
}

impl<'k> Following<'k> {
    /// Reads `files` as they are now and starts following them.
    pub(crate) fn open(
        files: &[PathBuf],
        keep: &'k (dyn Fn(&str) -> bool + Sync),
        options: &ReadOptions,
    ) -> Self {
        let sources = files
            .iter()
            .map(|path| match Self::open_one(path, keep, options) {
                Ok(source) => source,
                Err(error) => Source::Failed(error),
            })
            .collect();
        Following { sources }
    }

    fn open_one(
        path: &Path,
        keep: &'k (dyn Fn(&str) -> bool + Sync),
        options: &ReadOptions,
    ) -> Result<Source<'k>, Error> {
        let mut reader = RunReader::new(path, keep, true, options);
        match damage::open(path)? {
            Opened::File(file) => read_file(&mut reader, &file, true),
            // Too short for a header yet: the writer may just have created the file.
            Opened::NoHeader(reported) if reported.torn_tail => {}
            Opened::NoHeader(reported) => {
                reader.add_damage(reported);
                return Ok(Source::Fixed(Box::new(reader.finish())));
            }
        }
        // What follows the last intact record (a record still being written) is read again by
        // the follower, so damage found there now is not damage.
        let resume = reader.end().max(FILE_HEADER_LEN);
        reader.forget_damage_from(resume);
        match Follower::open_at(path, resume, Recovery::SkipCorrupt) {
            Ok(follower) => Ok(Source::Live(Box::new(reader), follower)),
            // An archive member does not grow: what was read is all there is.
            Err(_) if wandb_archive::tools::read_virtual(path).is_some() => {
                Ok(Source::Fixed(Box::new(reader.finish())))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Reads what was added to each file since the last poll; returns the number of records read
    /// (intact or not), which is what an update costs.
    pub(crate) fn poll(&mut self) -> u64 {
        let mut read = 0;
        for source in &mut self.sources {
            let Source::Live(reader, follower) = source else {
                continue;
            };
            match follower.poll() {
                Ok(entries) => {
                    read += entries.len() as u64;
                    // Held-back tails are never reported by `poll`: no damage here is a torn tail.
                    apply_entries(reader, entries, u64::MAX);
                }
                Err(error) => *source = Source::Failed(error.into()),
            }
        }
        read
    }

    /// Whether every run has its exit record (or cannot be read on).
    pub(crate) fn done(&self) -> bool {
        self.sources.iter().all(|source| match source {
            Source::Live(reader, _) => reader.run().exit_code.is_some(),
            Source::Fixed(_) | Source::Failed(_) => true,
        })
    }

    /// The runs as read so far.
    pub(crate) fn runs(&self) -> Vec<RunData> {
        self.sources
            .iter()
            .filter_map(|source| match source {
                Source::Live(reader, _) => Some(reader.run().clone()),
                Source::Fixed(run) => Some((**run).clone()),
                Source::Failed(_) => None,
            })
            .collect()
    }

    /// Reads each file to its end once more, a torn tail included, and returns the runs.
    pub(crate) fn finish(self) -> Vec<Result<RunData, Error>> {
        self.sources
            .into_iter()
            .map(|source| match source {
                Source::Live(mut reader, follower) => {
                    let path = follower.path().to_path_buf();
                    let entries = follower.finish()?;
                    let file_len = std::fs::metadata(&path).map_or(u64::MAX, |m| m.len());
                    apply_entries(&mut reader, entries, file_len);
                    Ok(reader.finish())
                }
                Source::Fixed(run) => Ok(*run),
                Source::Failed(error) => Err(error),
            })
            .collect()
    }
}

/// Applies entries from a follower (records re-encoded, so they are read as a scan reads them).
fn apply_entries(reader: &mut RunReader<'_>, entries: Vec<Entry>, file_len: u64) {
    if entries.is_empty() {
        return;
    }
    let items: Vec<ScanItem<'static>> = entries
        .into_iter()
        .map(|entry| match entry {
            Entry::Record {
                offset,
                length,
                record,
            } => ScanItem::Record(RawRecord {
                offset,
                length,
                payload: Cow::Owned(record.encode_to_vec()),
            }),
            Entry::Damage(damage) => ScanItem::Damage(damage),
        })
        .collect();
    let keep = reader.keep();
    let chunk = read_chunk(&items, file_len, true, keep);
    reader.apply(chunk);
}

/// Builds and writes the page; errors are reported and give [`Exit::Error`].
fn write_report(out: &Path, runs: &[RunData], console: &mut Console<'_>) -> Exit {
    let html = build_html(runs);
    match write_atomic(out, html.as_bytes()) {
        Ok(()) => Exit::Ok,
        Err(error) => {
            console.error(&error);
            Exit::Error
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io_error = |action, source| Error::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&temp).map_err(|e| io_error("create", e))?;
    file.write_all(bytes).map_err(|e| io_error("write", e))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io_error("rename into place", e)
    })
}

/// The chart data of every section, by section name, in page order.
pub(crate) fn sections(runs: &[RunData]) -> Vec<(String, Vec<Panel>)> {
    let options = ChartOptions {
        metrics: Vec::new(),
        x: None,
        smooth: 0.0,
        log_y: false,
        columns: columns(runs),
    };
    let mut groups: Vec<(String, Vec<Panel>)> = Vec::new();
    for panel in panels(runs, &options) {
        let group = match panel.metric.split_once('/') {
            Some((prefix, _)) => prefix.to_string(),
            None => "Charts".to_string(),
        };
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, list)) => list.push(panel),
            None => groups.push((group, vec![panel])),
        }
    }
    // "Charts" (keys without a prefix) first, as W&B shows them.
    groups.sort_by_key(|(name, _)| name != "Charts");
    let system = system_panels(runs);
    if !system.is_empty() {
        groups.push(("System".to_string(), system));
    }
    groups
}

/// System metrics: seconds since each run's first sample on x.
fn system_panels(runs: &[RunData]) -> Vec<Panel> {
    let mut keys: Vec<&str> = runs
        .iter()
        .flat_map(|run| run.system.keys().map(String::as_str))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|key| {
            let lines: Vec<Line> = runs
                .iter()
                .filter_map(|run| {
                    let series = run.system.get(key)?;
                    let start = series
                        .times
                        .iter()
                        .copied()
                        .filter(|t| t.is_finite())
                        .fold(f64::INFINITY, f64::min);
                    let xs: Vec<f64> = series.times.iter().map(|t| t - start).collect();
                    let hi = xs
                        .iter()
                        .copied()
                        .filter(|x| x.is_finite())
                        .fold(0.0, f64::max);
                    Some(Line {
                        run: run.name.clone(),
                        points: xs.len(),
                        segments: downsample(&xs, &series.values, false, (0.0, hi), columns(runs)),
                    })
                })
                .collect();
            Panel {
                metric: key.to_string(),
                x: "seconds".to_string(),
                lines,
            }
        })
        .collect()
}

/// Appends `text` escaped for HTML text and attribute values.
fn escape(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
}

/// Appends a JSON string safe inside a `<script>` block (no `<`, so no `</script>`).
fn json_str(out: &mut String, text: &str) {
    let mut quoted = String::new();
    json::write_str(&mut quoted, text);
    out.push_str(&quoted.replace('<', "\\u003c"));
}

fn json_num(out: &mut String, value: f64) {
    if value.is_finite() {
        json::format_f64(value, out);
    } else {
        out.push_str("null");
    }
}

/// A y value at f32 precision (shortest digits that read back as the same f32: more than a
/// chart shows, and half the bytes of an f64); values outside f32's range as f64.
fn json_short(out: &mut String, value: f64) {
    #[allow(clippy::cast_possible_truncation)]
    let short = value as f32;
    if !short.is_finite() {
        json_num(out, value);
    } else if short != 0.0 && !(1e-4..1e15).contains(&short.abs()) {
        let _ = write!(out, "{short:e}");
    } else {
        let _ = write!(out, "{short}");
    }
}

/// The chart data as JSON: `[{"name":..,"panels":[{"metric":..,"x":..,"lines":[{"run":..,
/// "segments":[[x,y,x,y,..],..]}]}]}]`.
fn data_json(sections: &[(String, Vec<Panel>)], runs: &[RunData]) -> String {
    let mut out = String::from("{\"runs\":[");
    for (i, run) in runs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, &run.name);
    }
    out.push_str("],\"sections\":[");
    for (i, (name, panels)) in sections.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_str(&mut out, name);
        out.push_str(",\"panels\":[");
        for (j, panel) in panels.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"metric\":");
            json_str(&mut out, &panel.metric);
            out.push_str(",\"x\":");
            json_str(&mut out, &panel.x);
            out.push_str(",\"lines\":[");
            for (k, line) in panel.lines.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                out.push_str("{\"run\":");
                let index = runs.iter().position(|r| r.name == line.run).unwrap_or(0);
                out.push_str(&index.to_string());
                out.push_str(",\"segments\":[");
                for (s, segment) in line.segments.iter().enumerate() {
                    if s > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    for (p, &(x, y)) in segment.iter().enumerate() {
                        if p > 0 {
                            out.push(',');
                        }
                        json_num(&mut out, x);
                        out.push(',');
                        json_short(&mut out, y);
                    }
                    out.push(']');
                }
                out.push_str("]}");
            }
            out.push_str("]}");
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => {
            let mut text = String::new();
            other.write_to(&mut text);
            if text.len() > 300 {
                let mut end = 300;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push('…');
            }
            text
        }
    }
}

/// Appends `(key, text)` for `value`, nested objects flattened into dotted keys (as `summary`
/// shows them; a media object, with `_type`, stays whole).
fn flatten(out: &mut Vec<(String, String)>, key: &str, value: &Value) {
    match value.as_object() {
        Some(object) if !object.is_empty() && !object.contains_key("_type") => {
            for (sub, inner) in object.iter() {
                flatten(out, &format!("{key}.{sub}"), inner);
            }
        }
        _ => out.push((key.to_string(), value_text(value))),
    }
}

/// A table of keys and one column per run.
fn table(out: &mut String, id: &str, runs: &[RunData], map: impl Fn(&RunData) -> &json::Map) {
    let columns: Vec<Vec<(String, String)>> = runs
        .iter()
        .map(|run| {
            let mut rows = Vec::new();
            for (key, value) in map(run).iter() {
                flatten(&mut rows, key, value);
            }
            rows
        })
        .collect();
    let mut keys: Vec<&str> = columns
        .iter()
        .flat_map(|rows| rows.iter().map(|(key, _)| key.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        out.push_str("<p class=\"empty\">none</p>\n");
        return;
    }
    let _ = write!(out, "<table id=\"{id}\"><thead><tr><th>key</th>");
    for run in runs {
        out.push_str("<th>");
        escape(out, &run.name);
        out.push_str("</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for key in keys {
        out.push_str("<tr><td>");
        escape(out, key);
        out.push_str("</td>");
        for rows in &columns {
            out.push_str("<td>");
            if let Some((_, text)) = rows.iter().find(|(k, _)| k == key) {
                escape(out, text);
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn image_mime(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

/// The page.
pub(crate) fn build_html(runs: &[RunData]) -> String {
    let sections = sections(runs);
    let mut out = String::with_capacity(1 << 16);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n<title>");
    let title: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    escape(&mut out, &title.join(", "));
    out.push_str(" · wandb-inspect report</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style></head>\n<body>\n<h1>");
    escape(&mut out, &title.join(", "));
    out.push_str("</h1>\n<div class=\"runs\">");
    for (i, run) in runs.iter().enumerate() {
        let _ = write!(out, "<span class=\"run\"><i class=\"c{}\"></i>", i % 10);
        escape(&mut out, &run.name);
        out.push_str(" <small>");
        escape(
            &mut out,
            &format!(
                "{}{} · {} rows · {}",
                run.project,
                if run.id.is_empty() {
                    String::new()
                } else {
                    format!("/{}", run.id)
                },
                run.rows,
                match run.exit_code {
                    Some(code) => format!("exit {code}"),
                    None => "running or killed".to_string(),
                }
            ),
        );
        out.push_str("</small></span>");
    }
    out.push_str("</div>\n");
    let n_damage: usize = runs.iter().map(|r| r.damage.len()).sum();
    if n_damage > 0 {
        out.push_str("<section id=\"damage\"><h2>Damage</h2><table><thead><tr><th>file</th><th>offset</th><th>bytes</th><th>reason</th></tr></thead><tbody>\n");
        for run in runs {
            for d in &run.damage {
                out.push_str("<tr><td>");
                escape(&mut out, &run.path.display().to_string());
                let _ = write!(out, "</td><td>{}</td><td>{}</td><td>", d.offset, d.length);
                escape(
                    &mut out,
                    &format!(
                        "{}{}",
                        d.reason,
                        if d.torn_tail { " (torn tail)" } else { "" }
                    ),
                );
                out.push_str("</td></tr>\n");
            }
        }
        out.push_str("</tbody></table></section>\n");
    }
    for (i, (name, panels)) in sections.iter().enumerate() {
        let _ = write!(out, "<section class=\"charts\"><h2>");
        escape(&mut out, name);
        let _ = writeln!(
            out,
            " <small>{} panels</small></h2><div class=\"grid\" data-section=\"{i}\"></div></section>",
            panels.len()
        );
    }
    if sections.is_empty() {
        out.push_str("<p class=\"empty\">no numeric history metric</p>\n");
    }
    out.push_str("<section><h2>Summary</h2>\n");
    table(&mut out, "summary", runs, |run| &run.summary);
    out.push_str("</section>\n<section><h2>Config</h2>\n");
    table(&mut out, "config", runs, |run| &run.config);
    out.push_str("</section>\n");
    let mut shown = 0;
    let mut images = String::new();
    for run in runs {
        for image in &run.images {
            if shown >= MAX_IMAGES {
                break;
            }
            let Some(mime) = image_mime(&image.path) else {
                continue;
            };
            let small = std::fs::metadata(&image.path).is_ok_and(|m| m.len() <= MAX_IMAGE_BYTES);
            let Some(bytes) = small.then(|| std::fs::read(&image.path).ok()).flatten() else {
                continue;
            };
            shown += 1;
            images.push_str("<figure><img alt=\"\" src=\"data:");
            images.push_str(mime);
            images.push_str(";base64,");
            images.push_str(&base64::engine::general_purpose::STANDARD.encode(&bytes));
            images.push_str("\"><figcaption>");
            escape(
                &mut images,
                &format!("{} · {} · step {}", run.name, image.key, image.step),
            );
            images.push_str("</figcaption></figure>\n");
        }
    }
    if shown > 0 {
        out.push_str("<section id=\"images\"><h2>Images</h2><div class=\"images\">\n");
        out.push_str(&images);
        out.push_str("</div></section>\n");
    }
    if runs.iter().any(|run| !run.console.is_empty()) {
        out.push_str("<section id=\"console\"><h2>Console <small>last lines</small></h2>\n");
        for run in runs.iter().filter(|run| !run.console.is_empty()) {
            out.push_str("<h3>");
            escape(&mut out, &run.name);
            out.push_str("</h3><pre>");
            let skip = run.console.len().saturating_sub(CONSOLE_SHOWN);
            for line in run.console.iter().skip(skip) {
                escape(&mut out, line);
                out.push('\n');
            }
            out.push_str("</pre>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("<div id=\"tip\"></div>\n<script type=\"application/json\" id=\"data\">");
    out.push_str(&data_json(&sections, runs));
    out.push_str("</script>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body></html>\n");
    out
}

const STYLE: &str = r##"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1a1a1a;background:#fafafa}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:24px 0 8px}h3{font-size:13px;margin:12px 0 4px}
small{color:#777;font-weight:normal}.runs .run{margin-right:18px;font-size:13px}
.runs i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:6px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.panel{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px}
.panel h4{margin:0 0 4px;font-size:13px;font-weight:600}
.panel svg{width:100%;height:auto;display:block;cursor:crosshair;user-select:none}
.panel text{font-size:10px;fill:#666}.panel .axis{stroke:#ccc}.panel .grid-line{stroke:#f0f0f0}
table{border-collapse:collapse;background:#fff;font-size:12px}td,th{border:1px solid #e3e3e3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td{max-width:480px;overflow-wrap:anywhere}
pre{background:#111;color:#ddd;padding:10px;font-size:12px;overflow:auto;max-height:420px}
.images{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;background:#fff;border:1px solid #e3e3e3;padding:6px}
figure img{max-width:160px;max-height:160px;image-rendering:pixelated;display:block}figcaption{font-size:11px;color:#666}
#tip{position:fixed;pointer-events:none;background:rgba(255,255,255,.95);border:1px solid #ccc;padding:4px 8px;font-size:12px;display:none;white-space:nowrap}
.empty{color:#777}
.c0{background:#5a6fe0}.c1{background:#e87124}.c2{background:#2aa198}.c3{background:#d63b5c}.c4{background:#7c4dcc}
.c5{background:#4ca33b}.c6{background:#c29a1d}.c7{background:#3386d6}.c8{background:#8c563c}.c9{background:#666}
"##;

const SCRIPT: &str = r##"
(function(){
"use strict";
var D=JSON.parse(document.getElementById("data").textContent);
var COLORS=["#5a6fe0","#e87124","#2aa198","#d63b5c","#7c4dcc","#4ca33b","#c29a1d","#3386d6","#8c563c","#666"];
var NS="http://www.w3.org/2000/svg",W=440,H=240,L=52,R=10,T=8,B=26;
var tip=document.getElementById("tip");
function el(n,a,p){var e=document.createElementNS(NS,n);for(var k in a)e.setAttribute(k,a[k]);if(p)p.appendChild(e);return e;}
function fmt(v){var a=Math.abs(v);if(a!==0&&(a<1e-3||a>=1e6))return v.toExponential(2);return String(+v.toPrecision(5));}
function ticks(lo,hi,n){var s=(hi-lo)/n,m=Math.pow(10,Math.floor(Math.log10(s))),e=s/m;
 var st=(e<1.5?1:e<3?2:e<7?5:10)*m,out=[];for(var t=Math.ceil(lo/st)*st;t<=hi+st*1e-9;t+=st)out.push(t);return out;}
function panel(host,p){
 var box=document.createElement("div");box.className="panel";
 var h=document.createElement("h4");h.textContent=p.metric;box.appendChild(h);host.appendChild(box);
 var svg=el("svg",{viewBox:"0 0 "+W+" "+H,"data-metric":p.metric},box);
 var view=null,drag=null,sel=null;
 function bounds(){var x0=Infinity,x1=-Infinity,y0=Infinity,y1=-Infinity;
  p.lines.forEach(function(l){l.segments.forEach(function(s){for(var i=0;i<s.length;i+=2){var x=s[i],y=s[i+1];
   if(view&&(x<view[0]||x>view[1]))continue;if(x<x0)x0=x;if(x>x1)x1=x;if(y<y0)y0=y;if(y>y1)y1=y;}});});
  if(view){x0=view[0];x1=view[1];}
  if(!(x1>x0)){x0-=0.5;x1+=0.5;}if(!(y1>y0)){var m=Math.abs(y0)>0?Math.abs(y0)*0.1:0.5;y0-=m;y1+=m;}
  var pad=(y1-y0)*0.04;return [x0,x1,y0-pad,y1+pad];}
 var b;function sx(x){return L+(x-b[0])/(b[1]-b[0])*(W-L-R);}function sy(y){return H-B-(y-b[2])/(b[3]-b[2])*(H-T-B);}
 function draw(){
  while(svg.firstChild)svg.removeChild(svg.firstChild);b=bounds();
  ticks(b[2],b[3],4).forEach(function(t){var y=sy(t);el("line",{x1:L,x2:W-R,y1:y,y2:y,"class":"grid-line"},svg);
   var tx=el("text",{x:L-4,y:y+3,"text-anchor":"end"},svg);tx.textContent=fmt(t);});
  ticks(b[0],b[1],5).forEach(function(t){var x=sx(t);var tx=el("text",{x:x,y:H-B+14,"text-anchor":"middle"},svg);tx.textContent=fmt(t);});
  el("line",{x1:L,x2:W-R,y1:H-B,y2:H-B,"class":"axis"},svg);el("line",{x1:L,x2:L,y1:T,y2:H-B,"class":"axis"},svg);
  var xl=el("text",{x:W-R,y:H-2,"text-anchor":"end"},svg);xl.textContent=p.x;
  var clip="c"+Math.random().toString(36).slice(2);
  var cp=el("clipPath",{id:clip},el("defs",{},svg));el("rect",{x:L,y:T,width:W-L-R,height:H-T-B},cp);
  var g=el("g",{"clip-path":"url(#"+clip+")"},svg);
  p.lines.forEach(function(l){var d="";l.segments.forEach(function(s){for(var i=0;i<s.length;i+=2)d+=(i?"L":"M")+sx(s[i]).toFixed(1)+" "+sy(s[i+1]).toFixed(1);
   if(s.length===2)el("circle",{cx:sx(s[0]),cy:sy(s[1]),r:2.5,fill:COLORS[l.run%10]},g);});
   el("path",{d:d,fill:"none",stroke:COLORS[l.run%10],"stroke-width":1.6,"stroke-linejoin":"round","stroke-linecap":"round"},g);});
  sel=el("rect",{y:T,height:H-T-B,width:0,fill:"rgba(90,111,224,.15)"},svg);
  cursor=el("line",{y1:T,y2:H-B,stroke:"#aaa","stroke-dasharray":"3 3",visibility:"hidden"},svg);
 }
 var cursor;
 function dataX(ev){var r=svg.getBoundingClientRect();var px=(ev.clientX-r.left)*W/r.width;return [px,b[0]+(px-L)/(W-L-R)*(b[1]-b[0])];}
 function nearest(s,x){var lo=0,hi=s.length/2-1;while(lo<hi){var m=(lo+hi)>>1;if(s[2*m]<x)lo=m+1;else hi=m;}
  if(lo>0&&Math.abs(s[2*lo-2]-x)<Math.abs(s[2*lo]-x))lo--;return [s[2*lo],s[2*lo+1]];}
 svg.addEventListener("mousemove",function(ev){var q=dataX(ev);
  if(drag!==null){var a=Math.min(drag,q[0]),c=Math.max(drag,q[0]);sel.setAttribute("x",a);sel.setAttribute("width",c-a);}
  cursor.setAttribute("x1",q[0]);cursor.setAttribute("x2",q[0]);cursor.setAttribute("visibility","visible");
  var rows=[];p.lines.forEach(function(l){var best=null;l.segments.forEach(function(s){if(!s.length)return;var n=nearest(s,q[1]);
   if(!best||Math.abs(n[0]-q[1])<Math.abs(best[0]-q[1]))best=n;});
   if(best)rows.push('<span style="color:'+COLORS[l.run%10]+'">\u25A0</span> '+esc(D.runs[l.run])+": "+fmt(best[1])+" @ "+fmt(best[0]));});
  tip.innerHTML=rows.join("<br>");tip.style.display=rows.length?"block":"none";
  tip.style.left=(ev.clientX+14)+"px";tip.style.top=(ev.clientY+10)+"px";});
 svg.addEventListener("mouseleave",function(){tip.style.display="none";cursor.setAttribute("visibility","hidden");drag=null;sel.setAttribute("width",0);});
 svg.addEventListener("mousedown",function(ev){drag=dataX(ev)[0];ev.preventDefault();});
 svg.addEventListener("mouseup",function(ev){if(drag===null)return;var q=dataX(ev)[0],a=Math.min(drag,q),c=Math.max(drag,q);drag=null;
  if(c-a>4){var x0=b[0]+(a-L)/(W-L-R)*(b[1]-b[0]),x1=b[0]+(c-L)/(W-L-R)*(b[1]-b[0]);view=[x0,x1];}draw();});
 svg.addEventListener("dblclick",function(){view=null;draw();});
 draw();return 1;
}
function esc(t){return String(t).replace(/[&<>"]/g,function(c){return {"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c];});}
var drawn=0;
document.querySelectorAll(".grid[data-section]").forEach(function(host){
 var s=D.sections[+host.getAttribute("data-section")];s.panels.forEach(function(p){drawn+=panel(host,p);});});
document.body.setAttribute("data-rendered",String(drawn));
})();
"##;

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::mpsc;

    use wandb_format::proto::{self, Record, record::RecordType};

    /// A history row as the logger writes it.
    fn row(step: i64) -> Record {
        let item = |key: &str, value_json: String| proto::HistoryItem {
            nested_key: vec![key.to_string()],
            value_json,
            ..Default::default()
        };
        Record {
            num: step + 2,
            record_type: Some(RecordType::History(proto::HistoryRecord {
                item: vec![
                    item("_step", step.to_string()),
                    item("_runtime", format!("{}", 0.5 + step as f64)),
                    item("train/loss", format!("{}", 1.0 / (step as f64 + 1.0))),
                    item("val/acc", format!("{}", step as f64 / 1000.0)),
                ],
                step: Some(proto::HistoryStep { num: step }),
                info: None,
            })),
            ..Default::default()
        }
    }

    /// What the writer thread is asked to append.
    enum Step {
        /// This many rows, the last one cut in two: only its first half is written.
        RowsAndHalf(i64),
        /// The rest of the cut row and this many rows more.
        Rest(i64),
        /// The exit record.
        Exit,
    }

    /// Appends framed records to `path` as told, like a live run; replies with the number of
    /// whole records the file has gained.
    fn writer(path: std::path::PathBuf, steps: mpsc::Receiver<Step>, done: mpsc::Sender<u64>) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut framer =
            wandb_format::Framer::at_offset(std::fs::metadata(&path).map_or(0, |m| m.len()));
        let (mut next, mut held) = (0i64, Vec::new());
        for step in steps {
            // The rest of a cut record goes first; it completes one record.
            let mut bytes = std::mem::take(&mut held);
            let completed = u64::from(!bytes.is_empty());
            let (rows, half, exit) = match step {
                Step::RowsAndHalf(n) => (n - 1, true, false),
                Step::Rest(n) => (n, false, false),
                Step::Exit => (0, false, true),
            };
            for _ in 0..rows {
                framer.frame(&row(next).encode_to_vec(), &mut bytes);
                next += 1;
            }
            if half {
                let mut record = Vec::new();
                framer.frame(&row(next).encode_to_vec(), &mut record);
                next += 1;
                let cut = record.len() / 2;
                bytes.extend_from_slice(&record[..cut]);
                held = record[cut..].to_vec();
            }
            if exit {
                let record = Record {
                    num: next + 2,
                    record_type: Some(RecordType::Exit(proto::RunExitRecord::default())),
                    ..Default::default()
                };
                framer.frame(&record.encode_to_vec(), &mut bytes);
            }
            file.write_all(&bytes).unwrap_or_else(|e| panic!("{e}"));
            file.flush().unwrap_or_else(|e| panic!("{e}"));
            let gained = completed + rows.unsigned_abs() + u64::from(exit);
            if done.send(gained).is_err() {
                return;
            }
        }
    }

    #[test]
    fn follow_reads_only_the_records_added_and_extends_the_page() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("run-live.wandb");
        let mut start = wandb_format::FILE_HEADER.to_vec();
        let mut framer = wandb_format::Framer::new();
        let run = Record {
            num: 1,
            record_type: Some(RecordType::Run(proto::RunRecord {
                run_id: "live".to_string(),
                display_name: "live-run".to_string(),
                ..Default::default()
            })),
            ..Default::default()
        };
        framer.frame(&run.encode_to_vec(), &mut start);
        std::fs::write(&path, &start).unwrap_or_else(|e| panic!("{e}"));
        let (to_writer, steps) = mpsc::channel();
        let (gained, from_writer) = mpsc::channel();
        let thread = std::thread::spawn({
            let path = path.clone();
            move || writer(path, steps, gained)
        });
        let ask = |step: Step| {
            to_writer.send(step).unwrap_or_else(|e| panic!("{e}"));
            from_writer
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("the writer did not answer: {e}"))
        };
        // 1,000 rows, the last cut in two: the first read takes the run record and 999 rows, and
        // reports no damage for the half record at the end.
        assert_eq!(ask(Step::RowsAndHalf(1000)), 999);
        let keep = |_: &str| true;
        let mut following = Following::open(std::slice::from_ref(&path), &keep, &read_options());
        let runs = following.runs();
        assert_eq!((runs[0].records, runs[0].rows), (1000, 999));
        assert!(runs[0].damage.is_empty(), "{:?}", runs[0].damage);
        assert!(build_html(&runs).contains("999 rows"));
        let mut total = 999 + 1;
        // Each update reads the records added, not the file: 50 (the held half and 49 more),
        // then 200 with a cut record again, then the rest of it and 10 more.
        for (step, expected) in [
            (Step::Rest(49), 50),
            (Step::RowsAndHalf(200), 199),
            (Step::Rest(10), 11),
        ] {
            assert_eq!(ask(step), expected);
            let read = following.poll();
            assert_eq!(read, expected, "records read by one update");
            total += expected;
            let runs = following.runs();
            assert_eq!(runs[0].records, total);
            let rows = total - 1;
            assert_eq!(runs[0].rows, rows);
            assert!(runs[0].damage.is_empty(), "{:?}", runs[0].damage);
            let loss = runs[0].metric("train/loss").map(|s| s.stream.count());
            assert_eq!(loss, Some(rows as usize));
            assert!(build_html(&runs).contains(&format!("{rows} rows")));
            assert!(!following.done());
        }
        // Nothing new: nothing read.
        assert_eq!(following.poll(), 0);
        assert_eq!(ask(Step::Exit), 1);
        assert_eq!(following.poll(), 1);
        assert!(following.done());
        let runs: Vec<RunData> = following
            .finish()
            .into_iter()
            .map(|run| run.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(runs[0].exit_code, Some(0));
        assert_eq!(runs[0].records, total + 1);
        drop(to_writer);
        thread
            .join()
            .unwrap_or_else(|_| panic!("the writer thread panicked"));
    }

    #[test]
    fn script_data_cannot_close_its_block() {
        let mut out = String::new();
        json_str(&mut out, "</script><b>");
        assert!(!out.contains('<'), "{out}");
        let mut out = String::new();
        escape(&mut out, "<a href=\"x\">&'");
        assert_eq!(out, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}

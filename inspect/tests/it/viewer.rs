//! `plot` and `report`: the images decode with the expected size, and the report, loaded by a real
//! browser (headless Chromium, with the network blocked), draws one chart per metric, shows the
//! summary table and references nothing outside the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wandb_inspect::Exit;

use crate::util::{fixture, inspect};

/// Panel size `plot` draws (see `plot/draw.rs`).
const PANEL: (u32, u32) = (640, 400);

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    // Not blank: the lines and text make more than one colour.
    let first = &pixels[..3];
    assert!(
        pixels
            .chunks(info.line_size / info.width as usize)
            .any(|px| &px[..3] != first),
        "the image is one colour"
    );
    (info.width, info.height)
}

#[test]
fn plot_png_has_a_panel_per_metric_in_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chart.png");
    let result = inspect(&[&"plot", &fixture("define_metric"), &"-o", &out]);
    assert_eq!(result.exit, Exit::Ok, "{}", result.stderr);
    // 8 metrics (step_x is an x axis only): 3 columns, 3 rows.
    assert_eq!(png_size(&out), (3 * PANEL.0, 3 * PANEL.1));

    let out = dir.path().join("two.png");
    let result = inspect(&[
        &"plot",
        &fixture("define_metric"),
        &fixture("plain"),
        &"--metrics",
        &"loss,val/*",
        &"--smooth",
        &"0.6",
        &"--log-y",
        &"-o",
        &out,
    ]);
    assert_eq!(result.exit, Exit::Ok, "{}", result.stderr);
    let (width, height) = png_size(&out);
    assert_eq!(
        height,
        PANEL.1 * (width / PANEL.0).max(1).div_ceil(3).max(1)
    );
    assert!(width >= 2 * PANEL.0, "{width}");
}

#[test]
fn plot_svg_is_an_svg_of_the_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chart.svg");
    let result = inspect(&[
        &"plot",
        &fixture("define_metric"),
        &"--metrics",
        &"loss,acc",
        &"-o",
        &out,
    ]);
    assert_eq!(result.exit, Exit::Ok, "{}", result.stderr);
    let svg = std::fs::read_to_string(&out).unwrap();
    let head = svg.lines().next().unwrap();
    assert!(
        head.starts_with(&format!(
            "<svg width=\"{}\" height=\"{}\"",
            2 * PANEL.0,
            PANEL.1
        )),
        "{head}"
    );
    assert!(svg.contains(">\nloss\n</text>") || svg.contains(">loss</text>"));
    assert!(svg.contains("<polyline"), "no line drawn");
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn plot_refuses_an_unknown_output_type_and_reports_damage() {
    let dir = tempfile::tempdir().unwrap();
    let result = inspect(&[&"plot", &fixture("plain"), &"-o", &dir.path().join("x.jpg")]);
    assert_eq!(result.exit, Exit::Error);
    assert!(result.stderr.contains(".png or .svg"), "{}", result.stderr);

    let damaged = damaged_copy(dir.path());
    let out = dir.path().join("damaged.png");
    let result = inspect(&[&"plot", &damaged, &"-o", &out]);
    assert_eq!(result.exit, Exit::Damage, "{}", result.stderr);
    assert!(
        result.stderr.contains("damage: offset"),
        "{}",
        result.stderr
    );
    png_size(&out);
}

/// A copy of the define_metric fixture with a flipped byte in the middle.
fn damaged_copy(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(fixture("define_metric")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let path = dir.join("run-damaged.wandb");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn media_run() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/compat/0.31.0/wandb/offline-run-20261201_195954-cmpmedia")
}

/// Every `http://` or `https://` in the page is the SVG namespace name the script passes to
/// `createElementNS` (an identifier, never fetched); no `src`, `href`, `url(` or `@import` names
/// another file.
fn assert_self_contained(html: &str) {
    let allowed = "http://www.w3.org/2000/svg";
    let mut rest = html;
    while let Some(at) = rest.find("http") {
        let tail = &rest[at..];
        if tail.starts_with("http://") || tail.starts_with("https://") {
            assert!(
                tail.starts_with(allowed),
                "external reference: {}",
                &tail[..tail.len().min(80)]
            );
        }
        rest = &rest[at + 4..];
    }
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            let value = &rest[at + attr.len()..];
            assert!(
                value.starts_with("data:"),
                "{attr}{}",
                &value[..value.len().min(60)]
            );
            rest = value;
        }
    }
    assert!(!html.contains("@import") && !html.contains("url(http"));
}

#[test]
fn report_is_one_self_contained_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let damaged = damaged_copy(dir.path());
    let result = inspect(&[
        &"report",
        &fixture("console"),
        &media_run(),
        &damaged,
        &"-o",
        &out,
    ]);
    assert_eq!(result.exit, Exit::Damage, "{}", result.stderr);
    let html = std::fs::read_to_string(&out).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("<section id=\"damage\">"));
    assert!(html.contains("<table id=\"summary\">") && html.contains("<table id=\"config\">"));
    assert_eq!(
        html.matches("<img alt=\"\" src=\"data:image/png;base64,")
            .count(),
        3
    );
    assert!(html.contains("<section id=\"console\">"));
    assert!(html.len() < 2 << 20, "{} bytes", html.len());
}

/// Runs Chromium headless on `page` with `mode` (`--dump-dom` or `--screenshot=...`), the network
/// blocked, bounded in time; returns stdout and stderr.
fn chromium(browser: &Path, page: &Path, mode: &str, profile: &Path) -> (String, String) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1400,1800",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read_out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let read_err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (read_out.join().unwrap(), read_err.join().unwrap())
}

#[test]
fn report_renders_in_chromium() {
    let browser = Path::new("/usr/bin/chromium");
    if !browser.exists() {
        wandb_testkit::skip("/usr/bin/chromium is missing (apt-get install chromium)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let result = inspect(&[
        &"report",
        &fixture("define_metric"),
        &media_run(),
        &"-o",
        &out,
    ]);
    assert_eq!(result.exit, Exit::Ok, "{}", result.stderr);
    let html = std::fs::read_to_string(&out).unwrap();
    let panels = html.matches("\"metric\":").count();
    assert!(panels >= 10, "{panels} panels in the data");

    let (dom, log) = chromium(browser, &out, "--dump-dom", &dir.path().join("profile1"));
    assert!(
        dom.contains(&format!("data-rendered=\"{panels}\"")),
        "the script did not draw {panels} charts:\n{}",
        &dom[..dom.len().min(2000)]
    );
    assert_eq!(dom.matches("<svg viewBox=").count(), panels);
    for metric in ["loss", "val/acc", "train/loss"] {
        assert!(
            dom.contains(&format!("data-metric=\"{metric}\"")),
            "no chart of {metric}"
        );
    }
    assert!(dom.contains("<path d=\"M"), "no line drawn");
    assert!(dom.contains("<table id=\"summary\">"));
    assert!(
        dom.contains("<td>loss.min</td>"),
        "summary table lacks loss.min"
    );
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(
            !line.contains("Uncaught") && !line.contains("Error"),
            "{line}"
        );
    }

    let shot = dir.path().join("report.png");
    chromium(
        browser,
        &out,
        &format!("--screenshot={}", shot.display()),
        &dir.path().join("p2"),
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let info = decoder.read_info().unwrap();
    assert_eq!((info.info().width, info.info().height), (1400, 1800));
}

#[test]
fn report_follow_rewrites_the_page_until_the_exit_record() {
    use std::io::Write as _;

    use crate::util::{exit_record, history_record, run_record};
    use wandb_format::{Durability, Writer};

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run-live.wandb");
    let out = tmp.path().join("live.html");
    let mut writer = Writer::create(&path).unwrap();
    writer.append_record(&run_record(1, "live")).unwrap();
    for step in 0..3 {
        writer
            .append_record(&history_record(step + 2, step, &[("loss", "0.5".into())]))
            .unwrap();
    }
    writer.persist(Durability::Flush).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wandb-inspect"))
        .args(["report", "--follow", "--poll-ms", "50", "-o"])
        .arg(&out)
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // The first page: 3 rows, the run still going.
    loop {
        let page = std::fs::read_to_string(&out).unwrap_or_default();
        if page.contains("3 rows") {
            assert!(page.contains("running or killed"));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no first page");
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.close().unwrap();
    let mut framer = wandb_format::Framer::at_offset(std::fs::metadata(&path).unwrap().len());
    let mut bytes = Vec::new();
    for step in 3..50 {
        let record = history_record(step + 2, step, &[("loss", "0.25".into())]);
        framer.frame(&prost::Message::encode_to_vec(&record), &mut bytes);
    }
    framer.frame(
        &prost::Message::encode_to_vec(&exit_record(52, 0)),
        &mut bytes,
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(&bytes).unwrap();
    file.flush().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("report --follow did not stop at the exit record");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(
        page.contains("50 rows") && page.contains("exit 0"),
        "final page"
    );
}

#[test]
fn report_of_many_long_runs_stays_under_2_mb() {
    use crate::util::{history_record, run_record};

    let tmp = tempfile::tempdir().unwrap();
    for index in 0..30 {
        let dir = tmp.path().join(format!("run-{index:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut writer =
            wandb_format::Writer::create(dir.join(format!("run-r{index:02}.wandb"))).unwrap();
        writer
            .append_record(&run_record(1, &format!("r{index:02}")))
            .unwrap();
        for step in 0..2_000 {
            let metrics: Vec<(String, String)> = (0..10)
                .map(|m| {
                    let value = (f64::from(step) * 0.37 + f64::from(m)).sin() / 3.0;
                    (format!("train/m{m}"), format!("{value}"))
                })
                .collect();
            let metrics: Vec<(&str, String)> = metrics
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            writer
                .append_record(&history_record(
                    i64::from(step) + 2,
                    i64::from(step),
                    &metrics,
                ))
                .unwrap();
        }
        writer.close().unwrap();
    }
    let out = tmp.path().join("report.html");
    let result = inspect(&[&"report", &tmp.path(), &"-o", &out]);
    assert_eq!(result.exit, Exit::Ok, "{}", result.stderr);
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size < 2 << 20, "{size} bytes");
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(html.matches("\"metric\":").count(), 10);
    assert_eq!(html.matches("{\"run\":").count(), 300);
}

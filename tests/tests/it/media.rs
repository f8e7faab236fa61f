//! Media written by `wandb-logger` (images, histograms, tables) against the same inputs logged by
//! the official SDK 0.31: the same `_type` fields and keys, the same PNG pixels, the same
//! histogram bins, the same table file; and both the official `wandb sync` and ours upload our
//! media files to the test backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, LogFile, Recovery, json, proto};
use wandb_logger::media::{Channels, Histogram, Image, Table};
use wandb_logger::{InitOptions, LogOptions, row};
use wandb_settings::Secret;
use wandb_sync::{RunResult, SyncOptions, sync_paths};
use wandb_testkit::TestBackend;

use crate::common::official_sync_of_a_copy;

/// The inputs of `media_sdk/write_media.py`.
struct Inputs {
    rgb: Vec<u8>,
    grey: Vec<u8>,
    rgba: Vec<u8>,
    spread: Vec<f64>,
}

fn inputs() -> Inputs {
    Inputs {
        rgb: (0..36u32).map(|i| (i * 7 % 256) as u8).collect(),
        grey: (0..12u32).map(|i| (i * 20) as u8).collect(),
        rgba: vec![100; 16],
        spread: (0..1000u32)
            .map(|i| f64::from((i * 37) % 101) / 7.0 - 3.0)
            .collect(),
    }
}

/// Logs the inputs with our logger into `dir`, the JPEG being `photo`; returns the run folder.
fn log_ours(dir: &Path, photo: &Path, run_id: &str) -> PathBuf {
    let input = inputs();
    let run = wandb_logger::init(
        InitOptions::new()
            .mode("offline")
            .dir(dir)
            .project("media")
            .id(run_id)
            .console("off"),
    )
    .unwrap();
    let image = |w, h, c, px: &[u8]| Image::from_pixels(w, h, c, px).unwrap();
    let table = Table::with_rows(
        ["a", "b", "c"],
        vec![
            vec![
                json::Value::Int(1),
                json::Value::String("x".into()),
                json::Value::Float(2.5),
            ],
            vec![
                json::Value::Int(2),
                json::Value::String("y".into()),
                json::Value::Null,
            ],
        ],
    )
    .unwrap();
    let ints = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.5];
    run.log(row! {
        "img" => run.media("img", &image(3, 4, Channels::Rgb, &input.rgb).with_caption("cap")).unwrap(),
        "grey" => run.media("grey", &image(4, 3, Channels::Grey, &input.grey)).unwrap(),
        "rgba" => run.media("rgba", &image(2, 2, Channels::Rgba, &input.rgba)).unwrap(),
        "photo" => run.media("photo", &Image::from_file(photo).unwrap()).unwrap(),
        "h" => Histogram::from_values(&ints, 4).unwrap(),
        "spread" => Histogram::from_values(&input.spread, Histogram::DEFAULT_BINS).unwrap(),
        "h2" => Histogram::from_bins(vec![1.0, 2.0, 3.0], vec![0.0, 1.0, 2.0, 3.0]).unwrap(),
        "tab" => run.media("tab", &table).unwrap(),
    })
    .unwrap();
    let nested = run
        .media_at("img", 1, &image(4, 3, Channels::Grey, &input.grey))
        .unwrap();
    run.log_with(
        row! {"nested" => row!{"img" => nested}},
        LogOptions::new().step(1),
    )
    .unwrap();
    let run_dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    run_dir
}

/// Runs `write_media.py` with the SDK in `dir`; `None` (after a visible skip) if the SDK's
/// Python lacks NumPy or Pillow.
fn log_theirs(python: &Path, dir: &Path) -> Option<PathBuf> {
    let has_modules = Command::new(python)
        .args(["-c", "import numpy, PIL"])
        .output()
        .unwrap();
    if !has_modules.status.success() {
        wandb_testkit::skip(&format!(
            "{} has no numpy or pillow (scripts/test installs them)",
            python.display()
        ));
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/media_sdk/write_media.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(dir)
        .current_dir(dir)
        .env("HOME", dir)
        .env("WANDB_CONFIG_DIR", dir.join("config"))
        .env("WANDB_DATA_DIR", dir.join("data"))
        .env("WANDB_CACHE_DIR", dir.join("cache"))
        .env("WANDB_SILENT", "true")
        .env_remove("WANDB_API_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "write_media.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wandb_dir = dir.join("wandb");
    let run_dir = std::fs::read_dir(&wandb_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("offline-run-")
        })
        .unwrap();
    Some(run_dir)
}

/// A run's history rows (item paths dotted) and the paths of its `files` records.
fn read_run(run_dir: &Path) -> (Vec<BTreeMap<String, json::Value>>, Vec<String>) {
    let log = std::fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wandb"))
        .unwrap();
    let (mut rows, mut files) = (Vec::new(), Vec::new());
    for entry in LogFile::open(&log).unwrap().records(Recovery::Strict) {
        let Entry::Record { record, .. } = entry.unwrap() else {
            panic!("damage in {}", log.display())
        };
        match record.record_type {
            Some(RecordType::History(history)) => rows.push(items(&history.item)),
            Some(RecordType::Files(f)) => files.extend(f.files.into_iter().map(|f| f.path)),
            _ => {}
        }
    }
    (rows, files)
}

/// The run's one `run_table` artifact: (type, artifact digest, entry path and digest), and its
/// staged file's bytes.
fn run_table(run_dir: &Path) -> ((String, String, String, String), Vec<u8>) {
    let log = std::fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wandb"))
        .unwrap();
    let mut found = Vec::new();
    for entry in LogFile::open(&log).unwrap().records(Recovery::Strict) {
        if let Entry::Record { record, .. } = entry.unwrap()
            && let Some(RecordType::Artifact(artifact)) = record.record_type
        {
            found.push(artifact);
        }
    }
    assert_eq!(found.len(), 1, "{}", log.display());
    let artifact = found.remove(0);
    let entry = artifact.manifest.unwrap().contents.remove(0);
    let bytes = std::fs::read(&entry.local_path).unwrap();
    (
        (artifact.r#type, artifact.digest, entry.path, entry.digest),
        bytes,
    )
}

fn items(items: &[proto::HistoryItem]) -> BTreeMap<String, json::Value> {
    items
        .iter()
        .map(|item| {
            let path = if item.key.is_empty() {
                item.nested_key.join(".")
            } else {
                item.key.clone()
            };
            (path, json::parse(&item.value_json).unwrap())
        })
        .collect()
}

/// The fields logged under `key` (the items `key.<field>`, as wandb-core flattens them).
fn fields(row: &BTreeMap<String, json::Value>, key: &str) -> BTreeMap<String, json::Value> {
    let prefix = format!("{key}.");
    row.iter()
        .filter_map(|(path, v)| {
            path.strip_prefix(&prefix)
                .map(|f| (f.to_owned(), v.clone()))
        })
        .collect()
}

/// `media/images/img_0_<20 hex>.png` → `media/images/img_0_*.png`.
fn name_pattern(path: &str) -> String {
    let (stem, ext) = match path.find(".table.json") {
        Some(i) => path.split_at(i),
        None => path.split_at(path.rfind('.').unwrap()),
    };
    let (base, hash) = stem.rsplit_once('_').unwrap();
    assert_eq!(hash.len(), 20, "{path}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{path}");
    format!("{base}_*{ext}")
}

fn pixels(path: &Path) -> (png::ColorType, u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.color_type, info.width, info.height, buf)
}

fn str_field<'a>(map: &'a BTreeMap<String, json::Value>, field: &str) -> &'a str {
    map.get(field)
        .and_then(json::Value::as_str)
        .unwrap_or_else(|| panic!("{field} in {map:?}"))
}

#[test]
fn media_match_what_the_sdk_writes_for_the_same_inputs() {
    let Some(python) = wandb_integration_tests::sdk_python() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let Some(theirs_dir) = log_theirs(&python, scratch.path()) else {
        return;
    };
    let ours_dir = log_ours(
        &scratch.path().join("ours"),
        &scratch.path().join("photo.jpg"),
        "mediaour",
    );
    let (theirs_rows, theirs_files) = read_run(&theirs_dir);
    let (ours_rows, ours_files) = read_run(&ours_dir);
    assert_eq!(theirs_rows.len(), 2);
    assert_eq!(ours_rows.len(), 2);

    // The table's `run_table` artifact: the same staged bytes, entry digest and artifact
    // digest (the name holds each run's id).
    let (theirs_table, ours_table) = (run_table(&theirs_dir), run_table(&ours_dir));
    assert_eq!(ours_table.0, theirs_table.0, "artifact and entry digests");
    assert_eq!(
        String::from_utf8_lossy(&ours_table.1),
        String::from_utf8_lossy(&theirs_table.1),
        "the staged .table.json"
    );

    // The same files announced, with the same names up to the content hash.
    let patterns = |files: &[String]| -> Vec<String> {
        let mut p: Vec<String> = files
            .iter()
            .filter(|f| f.starts_with("media/"))
            .map(|f| name_pattern(f))
            .collect();
        p.sort();
        p
    };
    assert_eq!(patterns(&ours_files), patterns(&theirs_files));

    for (row_idx, keys) in [
        (
            0,
            &["img", "grey", "rgba", "photo", "h", "spread", "h2", "tab"][..],
        ),
        (1, &["nested.img"][..]),
    ] {
        for key in keys {
            let theirs = fields(&theirs_rows[row_idx], key);
            let ours = fields(&ours_rows[row_idx], key);
            // A table points at its `run_table` artifact (`artifact_path`,
            // `_latest_artifact_path`) in both.
            let their_keys: Vec<&String> = theirs.keys().collect();
            assert_eq!(ours.keys().collect::<Vec<_>>(), their_keys, "{key}: fields");
            for field in [
                "_type", "format", "width", "height", "caption", "ncols", "nrows", "log_mode",
                "values", "bins",
            ] {
                assert!(
                    ours.get(field).map(|v| v.to_string())
                        == theirs.get(field).map(|v| v.to_string()),
                    "{key}.{field}: ours {:?}, the SDK's {:?}",
                    ours.get(field),
                    theirs.get(field)
                );
            }
            match str_field(&theirs, "_type") {
                "image-file" | "table-file" => {
                    let (our_path, their_path) =
                        (str_field(&ours, "path"), str_field(&theirs, "path"));
                    assert_eq!(name_pattern(our_path), name_pattern(their_path), "{key}");
                    let our_file = ours_dir.join("files").join(our_path);
                    let their_file = theirs_dir.join("files").join(their_path);
                    let our_bytes = std::fs::read(&our_file).unwrap();
                    assert_eq!(str_field(&ours, "sha256"), sha256_hex(&our_bytes), "{key}");
                    assert_eq!(ours["size"].as_u64(), Some(our_bytes.len() as u64), "{key}");
                    if their_path.ends_with(".png") {
                        assert_eq!(pixels(&our_file), pixels(&their_file), "{key}: pixels");
                    } else if their_path.ends_with(".jpg") {
                        // A file logged as it is: byte for byte the same, same name.
                        assert_eq!(our_path, their_path);
                        assert_eq!(our_bytes, std::fs::read(&their_file).unwrap());
                    } else {
                        let parse =
                            |p: &Path| json::parse(&std::fs::read_to_string(p).unwrap()).unwrap();
                        assert!(
                            parse(&our_file).equivalent(&parse(&their_file)),
                            "{key}: table file"
                        );
                    }
                }
                "histogram" => {}
                other => panic!("{key}: unexpected type {other}"),
            }
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let mut out = String::new();
    for b in sha2::Sha256::digest(bytes).iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A run with media from our logger is uploaded by the official `wandb sync` and by ours: every
/// media file arrives with the content the history values name, and the two reconstructed runs
/// hold the same media values.
#[test]
fn both_syncs_upload_our_media() {
    let Some(python) = wandb_integration_tests::sdk_python() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    // A JPEG made by our own encoder is not needed: any PNG file logged as a file will do.
    let photo = scratch.path().join("photo.png");
    let png = Image::from_pixels(2, 1, Channels::Rgb, &[1, 2, 3, 4, 5, 6]).unwrap();
    std::fs::write(&photo, pixels_file(&png)).unwrap();
    let run_dir = log_ours(scratch.path(), &photo, "mediasyn");
    let (rows, files) = read_run(&run_dir);

    let theirs = official_sync_of_a_copy(&python, &run_dir, scratch.path());

    let ours = TestBackend::start().unwrap();
    let mut options = SyncOptions::new(
        vec![run_dir.clone()],
        ours.base_url(),
        Some(Secret::new(ours.api_key())),
    );
    options.run_timeout = Duration::from_secs(120);
    let report = sync_paths(&options).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );

    for (who, backend) in [("official sync", &theirs), ("our sync", &ours)] {
        let run = backend
            .find_run("mediasyn")
            .unwrap_or_else(|| panic!("{who}: no run"));
        assert_eq!(run.history.len(), 2, "{who}");
        for file in files.iter().filter(|f| f.starts_with("media/")) {
            let uploaded = run
                .file(file)
                .unwrap_or_else(|| panic!("{who}: {file} not uploaded"));
            let local = std::fs::read(run_dir.join("files").join(file)).unwrap();
            assert_eq!(uploaded.sha256, sha256_hex(&local), "{who}: {file}");
        }
        for key in ["img", "grey", "rgba", "photo", "tab"] {
            let logged = fields(&rows[0], key);
            let value = &run.history[0][key];
            assert_eq!(
                value["path"].as_str(),
                Some(str_field(&logged, "path")),
                "{who}: {key}"
            );
            assert_eq!(
                value["sha256"].as_str(),
                Some(str_field(&logged, "sha256")),
                "{who}: {key}"
            );
            let file = run.file(str_field(&logged, "path")).unwrap();
            assert_eq!(
                file.sha256,
                str_field(&logged, "sha256"),
                "{who}: {key} content"
            );
        }
        assert_eq!(run.history[0]["h"]["_type"], "histogram", "{who}");
        assert_eq!(
            run.history[0]["spread"]["values"].as_array().map(Vec::len),
            Some(64),
            "{who}"
        );
        assert_eq!(
            run.history[1]["nested"]["img"]["_type"], "image-file",
            "{who}"
        );
        let summary = run.summary.as_ref().unwrap();
        assert_eq!(summary["img"]["_type"], "image-file", "{who}: summary");
    }

    // The table's `run_table` artifact: committed by both syncs with the same digest and the
    // one entry, whose content the server holds.
    let tables = |backend: &TestBackend| {
        let state = backend.state();
        let found = state.artifacts_named("run-mediasyn-tab");
        assert_eq!(found.len(), 1, "{:?}", state.artifacts);
        let artifact = found[0].clone();
        assert_eq!(artifact.artifact_type, "run_table");
        assert!(
            artifact.committed && artifact.errors.is_empty(),
            "{artifact:?}"
        );
        let entry = artifact.file("tab.table.json").unwrap().clone();
        assert!(entry.stored && entry.digest_matches, "{entry:?}");
        (artifact.digest, entry)
    };
    assert_eq!(tables(&theirs), tables(&ours));
}

/// The PNG bytes of an image (written to disk to be logged as a file).
fn pixels_file(image: &Image) -> Vec<u8> {
    use wandb_logger::media::FileMedia as _;
    image.bytes().to_vec()
}

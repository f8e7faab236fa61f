//! The writer thread: flush barriers and timed flushes, backpressure, saved files, several runs
//! at once, and I/O errors (a full disk, an unusable folder) reported rather than panicking.

use std::fs;
use std::time::{Duration, Instant};

use wandb_format::proto::record::RecordType;
use wandb_logger::{Backpressure, Error, InitOptions, SavePolicy, WriterOptions, row};

use crate::common::{
    Workspace, history, kind, log_path, read_records, read_records_tolerant, run_child,
};

#[test]
fn flush_is_a_barrier() {
    let ws = Workspace::new();
    let run = ws
        .setup
        .init(
            InitOptions::new()
                .writer(WriterOptions::default().flush_interval(Duration::from_secs(3600))),
        )
        .unwrap();
    let path = log_path(&run);
    for round in 1..=3u64 {
        for i in 0..1000u64 {
            run.log(row! {"i" => i}).unwrap();
        }
        run.flush().unwrap();
        let (records, torn) = read_records_tolerant(&path);
        assert!(!torn);
        assert_eq!(history(&records).len() as u64, round * 1000);
    }
    run.sync().unwrap();
    run.finish().unwrap();
}

#[test]
fn data_reaches_the_os_within_the_flush_interval() {
    let ws = Workspace::new();
    let run = ws
        .setup
        .init(
            InitOptions::new()
                .writer(WriterOptions::default().flush_interval(Duration::from_millis(20))),
        )
        .unwrap();
    let path = log_path(&run);
    for i in 0..10 {
        run.log(row! {"i" => i}).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (records, _) = read_records_tolerant(&path);
        if history(&records).len() == 10 {
            // The coalesced summary came with it.
            assert!(records.iter().any(|r| kind(r) == "summary"));
            break;
        }
        assert!(Instant::now() < deadline, "rows not flushed in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    run.finish().unwrap();
}

#[test]
fn lossy_backpressure_counts_what_it_drops() {
    let ws = Workspace::new();
    let run = ws
        .setup
        .init(
            InitOptions::new().writer(
                WriterOptions::default()
                    .queue_capacity(1)
                    .backpressure(Backpressure::Drop),
            ),
        )
        .unwrap();
    let path = log_path(&run);
    let n = 20_000u64;
    for i in 0..n {
        run.log(row! {"i" => i}).unwrap();
    }
    let summary = run.finish().unwrap();
    assert_eq!(summary.rows + summary.dropped, n);
    let rows = history(&read_records(&path));
    assert_eq!(rows.len() as u64, summary.rows);
    // Kept rows are in order, with consecutive steps (a dropped row never took a step).
    assert!(rows.iter().enumerate().all(|(i, r)| r.step == i as i64));
}

#[test]
fn bounded_wait_then_drop() {
    let ws = Workspace::new();
    let run = ws
        .setup
        .init(
            InitOptions::new().writer(
                WriterOptions::default()
                    .queue_capacity(4)
                    .backpressure(Backpressure::BlockFor(Duration::from_micros(1))),
            ),
        )
        .unwrap();
    for i in 0..5_000u64 {
        run.log(row! {"i" => i}).unwrap();
    }
    let dropped = run.dropped();
    let summary = run.finish().unwrap();
    assert_eq!(summary.dropped, dropped.max(summary.dropped));
    assert_eq!(summary.rows + summary.dropped, 5_000);
}

#[test]
fn saved_files_are_copied_and_recorded() {
    let ws = Workspace::new();
    let run = ws.setup.init(InitOptions::new()).unwrap();
    let src = ws.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("now.txt"), "now").unwrap();
    fs::write(src.join("end.txt"), "end v1").unwrap();
    fs::write(src.join("sub/live.txt"), "live v1").unwrap();
    let now = run.save(src.join("now.txt"), SavePolicy::Now).unwrap();
    run.save(src.join("end.txt"), SavePolicy::End).unwrap();
    let live = run
        .save_relative(src.join("sub/live.txt"), &src, SavePolicy::Live)
        .unwrap();
    assert_eq!(fs::read_to_string(&now).unwrap(), "now");
    assert!(live.ends_with("files/sub/live.txt"), "{}", live.display());
    // Errors come back to the caller without hurting the run.
    let missing = run
        .save(src.join("missing.txt"), SavePolicy::Now)
        .unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
    let outside = run
        .save_relative(ws.path().join("x.txt"), &src, SavePolicy::Now)
        .unwrap_err();
    assert!(
        matches!(outside, Error::InvalidArgument { .. }),
        "{outside:?}"
    );
    run.log(row! {"a" => 1}).unwrap();
    // END and LIVE files are copied again at finish.
    fs::write(src.join("end.txt"), "end v2").unwrap();
    fs::write(src.join("sub/live.txt"), "live v2").unwrap();
    let files = run.files_dir().unwrap().to_path_buf();
    let path = log_path(&run);
    run.finish().unwrap();
    assert_eq!(fs::read_to_string(files.join("end.txt")).unwrap(), "end v2");
    assert_eq!(
        fs::read_to_string(files.join("sub/live.txt")).unwrap(),
        "live v2"
    );
    let items: Vec<(String, i32)> = read_records(&path)
        .into_iter()
        .filter_map(|r| match r.record_type {
            Some(RecordType::Files(f)) => Some(f.files),
            _ => None,
        })
        .flatten()
        .map(|f| (f.path, f.policy))
        .collect();
    assert_eq!(
        items,
        [
            ("now.txt".to_owned(), 0),
            ("end.txt".to_owned(), 1),
            ("sub/live.txt".to_owned(), 2)
        ]
    );
}

#[test]
fn several_runs_at_once_and_finish_is_final() {
    let ws = Workspace::new();
    let runs: Vec<_> = (0..4)
        .map(|i| {
            ws.setup
                .init(InitOptions::new().id(format!("multi{i:03}")))
                .unwrap()
        })
        .collect();
    assert_eq!(ws.setup.active_runs().len(), 4);
    std::thread::scope(|scope| {
        for run in &runs {
            scope.spawn(move || {
                for i in 0..2_000u64 {
                    run.log(row! {"i" => i}).unwrap();
                }
            });
        }
    });
    let sink = runs[0].sink();
    let paths: Vec<_> = runs.iter().map(log_path).collect();
    for run in runs {
        let summary = run.finish().unwrap();
        assert_eq!(summary.rows, 2_000);
    }
    assert!(ws.setup.active_runs().is_empty());
    assert!(sink.is_closed());
    assert!(matches!(
        sink.output(wandb_logger::OutputStream::Stdout, "late"),
        Err(Error::Finished { .. })
    ));
    for path in paths {
        let records = read_records(&path);
        assert_eq!(records.iter().filter(|r| kind(r) == "exit").count(), 1);
    }
}

#[test]
fn setup_teardown_finishes_unfinished_runs() {
    let ws = Workspace::new();
    let a = ws.setup.init(InitOptions::new().id("teardowa")).unwrap();
    let b = ws.setup.init(InitOptions::new().id("teardowb")).unwrap();
    a.log(row! {"x" => 1}).unwrap();
    b.log_at(3, row! {"y" => 2}).unwrap();
    let paths = [log_path(&a), log_path(&b)];
    let summaries = ws.setup.teardown().unwrap();
    assert_eq!(summaries.len(), 2);
    assert!(matches!(
        a.log(row! {"x" => 2}),
        Err(Error::Finished { .. })
    ));
    // Dropping the handles later does not finish again.
    drop((a, b));
    for path in paths {
        let records = read_records(&path);
        assert_eq!(records.iter().filter(|r| kind(r) == "exit").count(), 1);
        assert_eq!(
            history(&records).len(),
            1,
            "pending row written at teardown"
        );
    }
}

#[test]
fn dropping_a_run_finishes_it() {
    let ws = Workspace::new();
    let run = ws.setup.init(InitOptions::new()).unwrap();
    run.log(row! {"x" => 1}).unwrap();
    let path = log_path(&run);
    drop(run);
    let records = read_records(&path);
    let Some(RecordType::Exit(exit)) = &records.last().unwrap().record_type else {
        panic!("no exit record");
    };
    assert_eq!(exit.exit_code, 0);
}

#[test]
fn unusable_folder_is_an_error_not_a_panic() {
    let ws = Workspace::new();
    // A regular file where the root folder should be: fails even as root.
    let blocker = ws.path().join("not-a-dir");
    fs::write(&blocker, "x").unwrap();
    let err = ws
        .setup
        .init(InitOptions::new().dir(blocker.join("sub")))
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("create run directory"), "{err}");
}

/// `init` on a full disk (a 3-byte file size limit, in a child process) fails and leaves no
/// `.wandb` file behind, empty or partial.
#[test]
fn init_on_a_full_disk_fails_and_leaves_no_record_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("init_disk_full", dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("INIT_FULL "))
        .unwrap_or_else(|| panic!("no result line:\n{stdout}\n{stderr}"));
    assert!(line.starts_with("error "), "{line}");
    // The failure is the record file's header, not something earlier.
    assert!(line.contains("run-initfull.wandb"), "{line}");
    let mut left = Vec::new();
    let mut folders = vec![dir.path().to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                folders.push(entry.path());
            } else if entry.path().extension().is_some_and(|e| e == "wandb") {
                left.push(entry.path());
            }
        }
    }
    assert!(left.is_empty(), "init left {left:?} ({line})");
}

/// A file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes writes fail like a full disk:
/// the next calls and `finish` report it, nothing panics, and the file reads back cleanly up
/// to the failure. Runs in a child process (the limit is per process).
#[test]
fn disk_full_errors_come_back_and_the_file_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("disk_full", dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DISK_FULL "))
        .unwrap_or_else(|| panic!("no result line:\n{stdout}\n{stderr}"));
    let accepted: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
    assert!(line.contains("write"), "{line}");
    let path = crate::common::find_run(dir.path(), "diskfull");
    assert!(fs::metadata(&path).unwrap().len() <= crate::child::DISK_LIMIT);
    let (records, _torn) = read_records_tolerant(&path);
    let rows = history(&records);
    assert!(!rows.is_empty());
    assert!(rows.len() as u64 <= accepted);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.step, i as i64);
        assert_eq!(row.items["i"].as_i64(), Some(i as i64));
    }
}

//! Scenarios run in a child process: this binary re-run as `it --exact child::entry` with
//! `WANDB_LOGGER_IT_CHILD` naming the scenario and `WANDB_DIR` (and `HOME`,
//! `WANDB_CONFIG_DIR`) set to a fresh folder. Without the variable, `entry` does nothing.
//!
//! These use the process-wide singleton (`wandb_logger::init`), signals, `fork` and resource
//! limits, which must not leak into the other tests.

#![allow(unsafe_code)]

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use wandb_logger::{Error, InitOptions, Overrides, Run, WriterOptions, row};

use crate::common::CHILD_VAR;

/// File size limit of the `disk_full` scenario.
pub(crate) const DISK_LIMIT: u64 = 256 * 1024;

#[test]
fn entry() {
    let Ok(name) = std::env::var(CHILD_VAR) else {
        return;
    };
    match name.as_str() {
        "disk_full" => disk_full(),
        "init_disk_full" => init_disk_full(),
        "kill9" => kill9(),
        "panic_drop" => panic_drop(),
        "panic_elsewhere" => panic_elsewhere(),
        "fork" => fork(),
        "sigterm" => sigterm(),
        "singleton" => singleton(),
        "console" => console(),
        "dropped_row" => dropped_row(),
        other => panic!("unknown scenario {other}"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The test harness may have printed "test child::entry ... " without a newline.
    writeln!(out, "\n{line}").unwrap();
    out.flush().unwrap();
}

/// `init` with a file size limit of 3 bytes (fewer than the 7-byte header): prints the error, or
/// that it succeeded.
fn init_disk_full() {
    // SAFETY: as in `disk_full`.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 3,
            rlim_max: 3,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    match wandb_logger::init(InitOptions::new().id("initfull")) {
        Ok(_) => say("INIT_FULL ok"),
        Err(error) => say(&format!("INIT_FULL error {error}")),
    }
}

fn disk_full() {
    // SAFETY: plain libc calls with valid arguments; ignoring SIGXFSZ turns writes past the
    // limit into EFBIG errors instead of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: DISK_LIMIT,
            rlim_max: DISK_LIMIT,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let run = wandb_logger::init(InitOptions::new().id("diskfull")).unwrap();
    let pad = "x".repeat(200);
    let mut accepted = 0u64;
    let mut error = None;
    for i in 0..1_000_000u64 {
        match run.log(row! {"i" => i, "pad" => pad.as_str()}) {
            Ok(()) => accepted += 1,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        if i % 100 == 99
            && let Err(e) = run.flush()
        {
            error = Some(e);
            break;
        }
    }
    let error = error.expect("the size limit must surface as an error");
    assert!(matches!(error, Error::Write { .. }), "{error:?}");
    // Later calls keep failing with the same error, and finish reports it too.
    assert!(run.log(row! {"i" => 0}).is_err());
    assert!(run.sync().is_err());
    let finish = run.finish().unwrap_err();
    assert!(matches!(finish.error, Error::Write { .. }));
    say(&format!("DISK_FULL {accepted} {error} | {finish}"));
}

fn kill9() {
    let run = wandb_logger::init(InitOptions::new().id("killnine")).unwrap();
    let mut i = 0u64;
    loop {
        run.log(row! {"i" => i, "x" => i as f64 * 0.5}).unwrap();
        i += 1;
        if i.is_multiple_of(5_000) {
            run.flush().unwrap();
            say(&format!("FLUSHED {i}"));
        }
    }
}

fn panic_drop() {
    let run = wandb_logger::init(InitOptions::new().id("panicdrp")).unwrap();
    run.log(row! {"a" => 1}).unwrap();
    say("PANICKING");
    panic!("simulated training failure");
}

static ELSEWHERE: OnceLock<Run> = OnceLock::new();

fn panic_elsewhere() {
    let run = wandb_logger::init(
        InitOptions::new()
            .id("panicels")
            .writer(WriterOptions::default().flush_interval(Duration::from_secs(3600))),
    )
    .unwrap();
    let run = ELSEWHERE.get_or_init(|| run);
    run.log(row! {"a" => 1}).unwrap();
    // A panic on a worker thread: the hook flushes every run; the process goes on.
    let worker = std::thread::spawn(|| panic!("worker failure"));
    assert!(worker.join().is_err());
    run.log(row! {"a" => 2}).unwrap();
    // A panic on a thread named "main" (the process's main thread, as far as the hook can
    // tell) ends the process: the hook finishes the run with exit code 1, although the run
    // is owned by a static that is never dropped.
    let main = std::thread::Builder::new()
        .name("main".into())
        .spawn(|| panic!("fatal failure"))
        .unwrap();
    assert!(main.join().is_err());
    say("PANICKED");
    std::process::exit(0);
}

fn fork() {
    let run_a = wandb_logger::init(InitOptions::new().id("forkpare")).unwrap();
    for i in 0..10 {
        run_a.log(row! {"i" => i}).unwrap();
    }
    run_a.flush().unwrap();
    // SAFETY: `fork` is called with no locks of ours held (the writer is idle after the
    // flush); the child only runs code that is safe after fork and leaves through `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| forked_child(run_a))) {
                Ok(()) => 0,
                Err(_) => 3,
            };
        // SAFETY: leaving the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "child status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child failed");
    // The parent's run is untouched by the child and goes on.
    for i in 10..20 {
        run_a.log(row! {"i" => i}).unwrap();
    }
    let summary = run_a.finish().unwrap();
    assert_eq!(summary.rows, 20);
    say("FORK OK");
}

fn forked_child(run_a: Run) {
    // The parent's run refuses to be used here...
    assert!(matches!(
        run_a.log(row! {"i" => 99}),
        Err(Error::ForkedChild { .. })
    ));
    assert!(matches!(run_a.flush(), Err(Error::ForkedChild { .. })));
    // ...the singleton is fresh...
    assert!(wandb_logger::singleton().is_none());
    let run_b = wandb_logger::init(InitOptions::new().id("forkchld")).unwrap();
    for i in 0..5 {
        run_b.log(row! {"j" => i}).unwrap();
    }
    // ...teardown finishes only the child's own run...
    let finished = wandb_logger::teardown().unwrap();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].run_id, "forkchld");
    assert_eq!(finished[0].rows, 5);
    drop(run_b);
    // ...and dropping the parent's handle does not finish it.
    drop(run_a);
}

fn sigterm() {
    let run = wandb_logger::init(InitOptions::new().id("sigterm0")).unwrap();
    for i in 0..100 {
        run.log(row! {"i" => i}).unwrap();
    }
    // A row waiting for its step to be committed: written when SIGTERM ends the process.
    run.log_at(100, row! {"i" => 100}).unwrap();
    run.flush().unwrap();
    say("READY");
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn singleton() {
    assert!(wandb_logger::singleton().is_none());
    let setup = wandb_logger::setup(Overrides::default().project("p1")).unwrap();
    assert!(wandb_logger::singleton().is_some());
    let a = wandb_logger::init(InitOptions::new().id("singlea1")).unwrap();
    assert_eq!(a.settings().project.as_deref(), Some("p1"));
    // setup() again updates the same singleton.
    let again = wandb_logger::setup(Overrides::default().entity("e2")).unwrap();
    assert_eq!(again.active_runs(), ["singlea1"]);
    let b = wandb_logger::init(InitOptions::new().id("singleb1")).unwrap();
    assert_eq!(b.settings().entity.as_deref(), Some("e2"));
    assert_eq!(b.settings().project.as_deref(), Some("p1"));
    a.log(row! {"x" => 1}).unwrap();
    b.log(row! {"y" => 1}).unwrap();
    assert_eq!(setup.active_runs().len(), 2);
    let finished = wandb_logger::teardown().unwrap();
    assert_eq!(finished.len(), 2);
    assert!(wandb_logger::singleton().is_none());
    assert!(matches!(
        a.log(row! {"x" => 2}),
        Err(Error::Finished { .. })
    ));
    // A change of WANDB_* variables after setup is detectable.
    let fresh = wandb_logger::setup(Overrides::default()).unwrap();
    assert!(!fresh.env_changed());
    // SAFETY: this child process runs a single test thread and no other thread reads the
    // environment concurrently.
    unsafe { std::env::set_var("WANDB_PROJECT", "changed-after-setup") };
    assert!(fresh.env_changed());
    say("SINGLETON OK");
}

fn console() {
    let run = wandb_logger::init(InitOptions::new().id("console0")).unwrap();
    println!("stdout line 1");
    eprintln!("stderr line");
    print!("progress 10%\rprogress 100%\n");
    println!("utf-8: héllo ✓");
    print!("no newline at the end");
    run.log(row! {"a" => 1}).unwrap();
    let files = run.files_dir().unwrap().to_path_buf();
    run.finish().unwrap();
    // After finish, output is no longer captured.
    say(&format!("CONSOLE DONE {}", files.display()));
}

/// Logs a row at a step already passed, with no `log` backend installed: the drop must be
/// reported on stderr (unless `WANDB_SILENT` is set by the test).
fn dropped_row() {
    let run = wandb_logger::init(InitOptions::new().id("dropped")).unwrap();
    run.log_at(5, row! {"a" => 1.0}).unwrap();
    run.log_at(2, row! {"a" => 2.0}).unwrap();
    let summary = run.finish().unwrap();
    say(&format!("out_of_order={}", summary.out_of_order));
}

//! The run's `EnvironmentRecord` (W&B's machine snapshot, uploaded as `wandb-metadata.json`).
//!
//! The official SDK writes two environment records with the same `writer_id`: a software one
//! (os, python, started_at, args, program, root, host, executable, git) and, from its system
//! monitor, a hardware one (cpu counts and model, memory, disk, slurm, GPUs). Readers merge
//! them. We write everything that is cheap in one record from [`environment_record`], and let
//! the sampler thread add a second, GPU-only record when NVML finds GPUs (see
//! [`crate::system::SystemMonitor::gpu_environment`]), because initialising NVML can take
//! seconds.
//!
//! Cost: about half a millisecond on Linux, most of it reading `/proc/cpuinfo`; git detection
//! reads a few files, and only falls back to running `git` (bounded by
//! [`EnvironmentInputs::git_timeout`]) for repositories using reftable or config includes.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, SystemTime};

use wandb_format::proto::{CpuInfo, DiskInfo, EnvironmentRecord, GitRepoRecord, MemoryInfo};

use crate::system::{git, sys};

/// What [`environment_record`] needs from the run and its settings.
///
/// Build it with [`EnvironmentInputs::new`] and override fields as needed.
#[derive(Debug, Clone)]
pub(crate) struct EnvironmentInputs<'a> {
    /// Identifies the writer (W&B uses a UUIDv7 per process); the same id must go on the GPU
    /// record from the sampler so that readers merge the two.
    pub(crate) writer_id: &'a str,
    /// When the run started.
    pub(crate) started_at: SystemTime,
    /// The run's root directory (W&B's `root_dir` setting, the working directory by default).
    /// Recorded as `root`, and where git detection starts.
    pub(crate) root_dir: &'a Path,
    /// Host name (W&B's `host` setting); `None` asks the OS.
    pub(crate) host: Option<&'a str>,
    /// The program (W&B's `program` setting); `None` records the current executable's path.
    pub(crate) program: Option<&'a str>,
    /// Command-line arguments without the program name; `None` takes the process's own.
    pub(crate) args: Option<&'a [String]>,
    /// The W&B user name (W&B's `username` setting, from `WANDB_USERNAME` or the logged-in
    /// account); the SDK leaves it empty offline. It is *not* the OS login name.
    pub(crate) username: Option<&'a str>,
    /// File system paths whose size and usage go into `disk` (W&B's `x_stats_disk_paths`,
    /// default `/`).
    pub(crate) disk_paths: &'a [String],
    /// Whether to look for a git repository around [`EnvironmentInputs::root_dir`] (W&B's
    /// `disable_git` turns it off).
    pub(crate) detect_git: bool,
    /// The remote URL to record instead of detecting one (W&B's `git_remote_url`), recorded
    /// as given. Setting this or [`EnvironmentInputs::git_commit`] skips detection.
    pub(crate) git_remote_url: Option<&'a str>,
    /// The commit to record instead of detecting one (W&B's `git_commit`).
    pub(crate) git_commit: Option<&'a str>,
    /// Upper bound on running the git executable when the fast path cannot decide.
    pub(crate) git_timeout: Duration,
}

/// The default disk path list, `["/"]`.
pub(crate) fn default_disk_paths() -> Vec<String> {
    vec!["/".to_owned()]
}

impl<'a> EnvironmentInputs<'a> {
    /// Inputs with the defaults: OS host name, current executable, process arguments, no user
    /// name, git detection (bounded by 2 s), and the given disk paths.
    pub(crate) fn new(
        writer_id: &'a str,
        started_at: SystemTime,
        root_dir: &'a Path,
        disk_paths: &'a [String],
    ) -> Self {
        Self {
            writer_id,
            started_at,
            root_dir,
            host: None,
            program: None,
            args: None,
            username: None,
            disk_paths,
            detect_git: true,
            git_remote_url: None,
            git_commit: None,
            git_timeout: Duration::from_secs(2),
        }
    }
}

/// Builds the environment record: everything but the GPUs (see the module docs).
///
/// Never fails: a fact that cannot be read is left at its default (empty or zero).
pub(crate) fn environment_record(inputs: &EnvironmentInputs<'_>) -> EnvironmentRecord {
    let executable = std::env::current_exe()
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = match inputs.args {
        Some(args) => args.to_vec(),
        None => std::env::args_os()
            .skip(1)
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect(),
    };
    let host = match inputs.host {
        Some(host) => host.to_owned(),
        None => gethostname::gethostname().to_string_lossy().into_owned(),
    };
    let facts = host_facts();
    let disk = inputs
        .disk_paths
        .iter()
        .filter_map(|path| {
            let usage = sys::fs_usage(Path::new(path))?;
            Some((
                path.clone(),
                DiskInfo {
                    total: usage.total,
                    used: usage.used,
                },
            ))
        })
        .collect();
    let git = if inputs.git_remote_url.is_some() || inputs.git_commit.is_some() {
        Some(GitRepoRecord {
            remote_url: inputs.git_remote_url.unwrap_or_default().to_owned(),
            commit: inputs.git_commit.unwrap_or_default().to_owned(),
        })
    } else if inputs.detect_git {
        git::detect(inputs.root_dir, inputs.git_timeout).map(|info| GitRepoRecord {
            remote_url: info.remote_url.unwrap_or_default(),
            commit: info.commit.unwrap_or_default(),
        })
    } else {
        None
    };
    EnvironmentRecord {
        os: os_string(),
        started_at: Some(inputs.started_at.into()),
        args,
        program: inputs
            .program
            .map_or_else(|| executable.clone(), str::to_owned),
        git,
        root: inputs.root_dir.to_string_lossy().into_owned(),
        host,
        username: inputs.username.unwrap_or_default().to_owned(),
        executable,
        cpu_count: facts.cpu_count,
        cpu_count_logical: facts.cpu_count_logical,
        disk,
        memory: facts.memory_total.map(|total| MemoryInfo { total }),
        // The SDK fills only the model here (the counts are top-level fields).
        cpu: (!facts.cpu_model.is_empty()).then(|| CpuInfo {
            model: facts.cpu_model.clone(),
            ..CpuInfo::default()
        }),
        slurm: slurm_vars(std::env::vars_os()),
        writer_id: inputs.writer_id.to_owned(),
        ..EnvironmentRecord::default()
    }
}

/// CPU and memory facts of this machine.
#[cfg(target_os = "linux")]
fn host_facts() -> crate::system::linux::HostFacts {
    crate::system::linux::host_facts(&crate::system::linux::Roots::default())
}

/// CPU counts only: physical cores are not known here, so both counts are the logical one.
#[cfg(not(target_os = "linux"))]
fn host_facts() -> HostFactsFallback {
    let logical = std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(0);
    HostFactsFallback {
        cpu_count: logical,
        cpu_count_logical: logical,
        cpu_model: String::new(),
        memory_total: None,
    }
}

/// The facts [`environment_record`] uses, off Linux.
#[cfg(not(target_os = "linux"))]
struct HostFactsFallback {
    cpu_count: u32,
    cpu_count_logical: u32,
    cpu_model: String,
    memory_total: Option<u64>,
}

/// The OS string in the style of Python's `platform.platform()`, which the SDK records:
/// `Linux-6.1.0-18-amd64-x86_64-with-glibc2.36` (kernel name, release, machine, C library).
pub(crate) fn os_string() -> String {
    let Some(name) = sys::uname() else {
        return format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    };
    let mut os = format!("{}-{}-{}", name.sysname, name.release, name.machine);
    if let Some(version) = sys::glibc_version() {
        os.push_str("-with-glibc");
        os.push_str(&version);
    }
    os
}

/// `SLURM_*` variables, keyed as wandb-core keys them: the name without `SLURM_`, lower-cased
/// (`SLURM_JOB_ID` becomes `job_id`). Variables that are not valid Unicode are skipped.
pub(crate) fn slurm_vars(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> std::collections::BTreeMap<String, String> {
    vars.into_iter()
        .filter_map(|(key, value)| {
            let key = key.into_string().ok()?;
            let suffix = key.strip_prefix("SLURM_")?;
            Some((suffix.to_ascii_lowercase(), value.into_string().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn record_fields() {
        let started = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_317_673_615_847);
        let tmp = tempfile::tempdir().unwrap();
        let disks = default_disk_paths();
        let args = vec!["--child".to_owned(), "console".to_owned()];
        let mut inputs = EnvironmentInputs::new("writer-1", started, tmp.path(), &disks);
        inputs.args = Some(&args);
        inputs.host = Some("vm");
        let record = environment_record(&inputs);

        assert_eq!(record.writer_id, "writer-1");
        assert_eq!(record.host, "vm");
        assert_eq!(record.args, args);
        assert_eq!(record.root, tmp.path().to_string_lossy());
        let started_at = record.started_at.unwrap();
        assert_eq!(
            (started_at.seconds, started_at.nanos),
            (1_795_317_673, 615_847_000)
        );
        assert!(!record.executable.is_empty());
        assert_eq!(record.program, record.executable);
        assert!(record.python.is_empty());
        assert!(record.username.is_empty());
        assert!(
            record.git.is_none(),
            "a fresh temp dir is not in a repository"
        );
        assert!(record.cpu_count >= 1 && record.cpu_count <= record.cpu_count_logical);
        if cfg!(unix) {
            let root_disk = &record.disk["/"];
            assert!(root_disk.total > 0 && root_disk.used <= root_disk.total);
        }
        if cfg!(target_os = "linux") {
            assert!(record.memory.unwrap().total > 0);
            assert!(record.os.starts_with("Linux-"), "{}", record.os);
            assert!(record.os.contains(std::env::consts::ARCH), "{}", record.os);
        }
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(record.os.contains("-with-glibc2."), "{}", record.os);
        }
        // Records encode (prost), and no GPU fields appear here.
        assert!(record.gpu_nvidia.is_empty() && record.gpu_count == 0);
    }

    #[test]
    fn git_in_a_temp_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let status = Command::new("git")
                .args(args)
                .current_dir(tmp.path())
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .unwrap();
            assert!(status.status.success(), "{status:?}");
            String::from_utf8(status.stdout).unwrap().trim().to_owned()
        };
        git(&["init", "-q"]);
        git(&["commit", "-q", "--allow-empty", "-m", "x"]);
        git(&["remote", "add", "origin", "https://tok@github.com/o/r.git"]);
        let head = git(&["rev-parse", "HEAD"]);

        let disks: Vec<String> = Vec::new();
        let inputs = EnvironmentInputs::new("w", SystemTime::now(), tmp.path(), &disks);
        let record = environment_record(&inputs);
        assert_eq!(
            record.git,
            Some(GitRepoRecord {
                remote_url: "https://github.com/o/r.git".into(),
                commit: head,
            })
        );
        assert!(record.disk.is_empty());

        let mut disabled = inputs.clone();
        disabled.detect_git = false;
        assert_eq!(environment_record(&disabled).git, None);
        let mut known = inputs;
        known.git_remote_url = Some("r");
        assert_eq!(
            environment_record(&known).git,
            Some(GitRepoRecord {
                remote_url: "r".into(),
                commit: String::new()
            })
        );
    }

    #[test]
    fn slurm_keys_are_lower_cased_suffixes() {
        let vars = [
            ("SLURM_JOB_ID", "42"),
            ("SLURM_NTASKS", "8"),
            ("NOT_SLURM_X", "1"),
            ("SLURM", "no"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let slurm = slurm_vars(vars);
        assert_eq!(slurm.len(), 2);
        assert_eq!(slurm["job_id"], "42");
        assert_eq!(slurm["ntasks"], "8");
    }

    #[test]
    fn cheap_enough_for_init() {
        let disks = default_disk_paths();
        let root = std::env::temp_dir();
        let inputs = EnvironmentInputs::new("w", SystemTime::now(), &root, &disks);
        let _ = environment_record(&inputs); // Warm the page cache.
        let start = std::time::Instant::now();
        let n_runs = 20;
        for _ in 0..n_runs {
            let _ = environment_record(&inputs);
        }
        let per_call = start.elapsed() / n_runs;
        // Typically ~0.3 ms; the bound only catches accidental subprocesses or scans.
        assert!(per_call < Duration::from_millis(10), "{per_call:?}");
    }
}

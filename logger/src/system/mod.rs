//! System metrics and the machine snapshot: W&B's `stats` and `environment` records.
//!
//! * [`SystemMonitor`] samples CPU, memory, disk, network and NVIDIA GPUs into a
//!   `StatsRecord` with W&B's keys (no `system.` prefix; sync adds it) and JSON values.
//! * [`spawn_sampler`] runs a monitor on its own thread every `interval` (W&B:
//!   `x_stats_sampling_interval`, 15 s) and hands each record to a sink;
//!   [`sampler::SamplerHandle::stop`] returns promptly.
//! * [`environment_record`] builds the `EnvironmentRecord` (os, host, program, args, git, CPU,
//!   memory, disk, SLURM) in well under a millisecond.
//!
//! Key names, units and value shapes follow the records of the official SDK 0.31 (whose system
//! monitor is the Rust `wandb-symon`): values are JSON numbers written the way `serde_json`
//! writes an `f64` (`0.0`, `3.0`, `13.723509613511709`), "MB" and "GB" are MiB and GiB, counters
//! (`network.*`, `disk.*.in`/`out`, `network.tcpRetransmits`) count from the first sample, and
//! CPU percentages need two samples, so the first record has none. On Linux everything is read
//! from `/proc` and `/sys` (see `linux.rs` for why not `sysinfo`); elsewhere only disk usage and
//! GPUs are reported. Nothing here panics on odd system files: unreadable facts are skipped.

mod environment;
mod git;
mod gpu;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
mod procfs;
pub(crate) mod sampler;
mod sys;

use std::time::SystemTime;

use wandb_format::proto::{EnvironmentRecord, StatsItem, StatsRecord, stats_record};

pub(crate) use crate::system::environment::{
    EnvironmentInputs, default_disk_paths, environment_record,
};
pub(crate) use crate::system::sampler::{SystemRecord, spawn_sampler};

/// What a [`SystemMonitor`] watches.
#[derive(Debug, Clone)]
pub(crate) struct MonitorConfig {
    /// The process whose CPU, memory and threads go into `cpu` and `proc.*` (W&B's
    /// `x_stats_pid`, the current process by default). Linux only.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) pid: u32,
    /// Whether `cpu` and `proc.*` also count the process's descendants (W&B's
    /// `x_stats_track_process_tree`, off by default: on kernels without
    /// `/proc/<pid>/task/<tid>/children` it costs a scan of `/proc`). Linux only.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) track_process_tree: bool,
    /// File system paths for `disk.<path>.usage*` (W&B's `x_stats_disk_paths`, default `/`).
    pub(crate) disk_paths: Vec<String>,
    /// Whether to look for NVIDIA GPUs through NVML.
    pub(crate) nvidia_gpus: bool,
    /// The writer id of the run's environment record, repeated on the GPU environment record.
    pub(crate) writer_id: String,
}

impl MonitorConfig {
    /// Watches the current process, the `/` file system and any NVIDIA GPUs.
    pub(crate) fn new(writer_id: impl Into<String>) -> Self {
        Self {
            pid: std::process::id(),
            track_process_tree: false,
            disk_paths: default_disk_paths(),
            nvidia_gpus: true,
            writer_id: writer_id.into(),
        }
    }
}

/// Takes system metric samples. Construction does no IO; the first [`SystemMonitor::sample`]
/// (or [`SystemMonitor::gpu_environment`]) loads NVML and reads the baselines, so create the
/// monitor anywhere and use it on the sampler thread.
#[derive(Debug)]
pub(crate) struct SystemMonitor {
    config: MonitorConfig,
    #[cfg(target_os = "linux")]
    host: linux::LinuxHost,
    /// NVML state: not tried yet, absent, or loaded.
    gpus: GpuState,
}

#[derive(Debug)]
enum GpuState {
    Untried,
    Absent,
    Nvidia(Box<gpu::NvidiaGpus>),
}

impl SystemMonitor {
    /// A monitor for `config`. Does no IO.
    pub(crate) fn new(config: MonitorConfig) -> Self {
        Self {
            #[cfg(target_os = "linux")]
            host: linux::LinuxHost::new(
                linux::Roots::default(),
                config.pid,
                config.track_process_tree,
                config.disk_paths.clone(),
            ),
            gpus: if config.nvidia_gpus {
                GpuState::Untried
            } else {
                GpuState::Absent
            },
            config,
        }
    }

    /// Samples every metric now into a `StatsRecord` (stats_type SYSTEM, timestamp now).
    ///
    /// Keys whose value is not finite are left out (JSON has no NaN, and W&B never writes one
    /// here).
    pub(crate) fn sample(&mut self) -> StatsRecord {
        let timestamp = SystemTime::now();
        let mut metrics: Vec<(String, f64)> = Vec::with_capacity(32);
        #[cfg(target_os = "linux")]
        self.host.sample(&mut metrics);
        #[cfg(not(target_os = "linux"))]
        self.sample_portable(&mut metrics);
        if let Some(gpus) = self.gpus() {
            gpus.sample(&mut metrics);
        }
        stats_record(timestamp, metrics)
    }

    /// The GPU-only environment record (GPU names, memory, CUDA version...) when NVML finds
    /// NVIDIA GPUs; `None` otherwise. Loads NVML on first use, which can be slow: call it on
    /// the sampler thread ([`spawn_sampler`] does).
    pub(crate) fn gpu_environment(&mut self) -> Option<EnvironmentRecord> {
        let writer_id = self.config.writer_id.clone();
        self.gpus().map(|gpus| gpus.environment(&writer_id))
    }

    fn gpus(&mut self) -> Option<&gpu::NvidiaGpus> {
        if matches!(self.gpus, GpuState::Untried) {
            self.gpus = match gpu::NvidiaGpus::init() {
                Some(gpus) => GpuState::Nvidia(Box::new(gpus)),
                None => GpuState::Absent,
            };
        }
        match &self.gpus {
            GpuState::Nvidia(gpus) => Some(gpus),
            GpuState::Untried | GpuState::Absent => None,
        }
    }

    /// Off Linux: disk usage only.
    #[cfg(not(target_os = "linux"))]
    fn sample_portable(&mut self, metrics: &mut Vec<(String, f64)>) {
        for path in &self.config.disk_paths {
            if let Some(usage) = sys::fs_usage(std::path::Path::new(path)) {
                if let Some(percent) = usage.used_percent() {
                    metrics.push((format!("disk.{path}.usagePercent"), percent));
                }
                metrics.push((
                    format!("disk.{path}.usageGB"),
                    usage.used as f64 / (1024.0 * 1024.0 * 1024.0),
                ));
            }
        }
    }
}

/// Builds the record from (key, value) pairs, writing each value as JSON.
fn stats_record(timestamp: SystemTime, metrics: Vec<(String, f64)>) -> StatsRecord {
    StatsRecord {
        stats_type: stats_record::StatsType::System as i32,
        timestamp: Some(timestamp.into()),
        item: metrics
            .into_iter()
            .filter_map(|(key, value)| {
                Some(StatsItem {
                    key,
                    value_json: json_number(value)?,
                })
            })
            .collect(),
        info: None,
    }
}

/// An `f64` as JSON text, exactly as `serde_json` (and so the SDK's system monitor) writes it:
/// shortest round-trip digits, integral values with `.0`, exponents as `1e16` or `1e-7`.
/// `None` for NaN and infinities.
///
/// This is deliberately *not* `wandb_format::json::format_f64` (Go's formatting, used for
/// history values): the SDK's stats records hold `0.0` and `3.0`, where Go would write `0`
/// and `3`.
fn json_number(value: f64) -> Option<String> {
    value
        .is_finite()
        .then(|| ryu::Buffer::new().format_finite(value).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_match_the_sdk() {
        let cases = [
            (0.0, "0.0"),
            (3.0, "3.0"),
            (13.723509613511709, "13.723509613511709"),
            (23236.31640625, "23236.31640625"),
            (1e16, "1e16"),
            (1.5e-7, "1.5e-7"),
            (-2.5, "-2.5"),
        ];
        for (value, text) in cases {
            assert_eq!(json_number(value).as_deref(), Some(text));
        }
        assert_eq!(json_number(f64::NAN), None);
        assert_eq!(json_number(f64::INFINITY), None);
    }

    #[test]
    fn non_finite_values_are_dropped() {
        let record = stats_record(
            SystemTime::UNIX_EPOCH,
            vec![("a".into(), 1.0), ("b".into(), f64::NAN)],
        );
        assert_eq!(record.item.len(), 1);
        assert_eq!(record.item[0].value_json, "1.0");
        assert_eq!(record.stats_type, 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sampling_smoke_test_on_this_machine() {
        let mut config = MonitorConfig::new("w");
        config.nvidia_gpus = true; // No GPU here: must report none, quietly.
        let mut monitor = SystemMonitor::new(config);
        let first = monitor.sample();
        let keys = |record: &StatsRecord| -> Vec<String> {
            record.item.iter().map(|item| item.key.clone()).collect()
        };
        let value = |record: &StatsRecord, key: &str| -> Option<f64> {
            record
                .item
                .iter()
                .find(|item| item.key == key)
                .map(|item| item.value_json.parse().unwrap())
        };
        let first_keys = keys(&first);
        for key in [
            "memory_percent",
            "proc.memory.rssMB",
            "proc.memory.percent",
            "proc.memory.availableMB",
            "proc.cpu.threads",
            "disk./.usagePercent",
            "disk./.usageGB",
            "network.sent",
            "network.recv",
        ] {
            assert!(
                first_keys.iter().any(|k| k == key),
                "{key} missing: {first_keys:?}"
            );
        }
        assert!(
            !first_keys.iter().any(|k| k == "cpu"),
            "CPU needs two samples"
        );
        assert_eq!(value(&first, "network.sent"), Some(0.0));
        assert!(!first_keys.iter().any(|k| k.starts_with("gpu.")));
        assert!(monitor.gpu_environment().is_none());

        // Burn some CPU so that `cpu` is positive.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(150) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let second = monitor.sample();
        let cpu = value(&second, "cpu").unwrap();
        assert!(cpu > 0.0 && cpu <= 100.0 * 64.0, "cpu {cpu}");
        assert!(value(&second, "cpu.0.cpu_percent").is_some());
        let rss = value(&second, "proc.memory.rssMB").unwrap();
        assert!(rss > 1.0 && rss < 64.0 * 1024.0, "rss {rss}");
        let threads = value(&second, "proc.cpu.threads").unwrap();
        assert!(threads >= 1.0);
        let percent = value(&second, "memory_percent").unwrap();
        assert!((0.0..=100.0).contains(&percent));
        let disk = value(&second, "disk./.usagePercent").unwrap();
        assert!((0.0..=100.0).contains(&disk));
        for item in &second.item {
            let v: f64 = item.value_json.parse().unwrap();
            assert!(
                v.is_finite() && v >= 0.0,
                "{} = {}",
                item.key,
                item.value_json
            );
            assert!(item.value_json.contains(['.', 'e']), "{}", item.value_json);
        }
        assert!(second.timestamp.unwrap().seconds > 1_600_000_000);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sampling_cost() {
        for track_process_tree in [false, true] {
            let mut config = MonitorConfig::new("w");
            config.track_process_tree = track_process_tree;
            let mut monitor = SystemMonitor::new(config);
            let _ = monitor.sample();
            let n_samples = 50;
            let start = std::time::Instant::now();
            for _ in 0..n_samples {
                let _ = monitor.sample();
            }
            let per_sample = start.elapsed() / n_samples;
            eprintln!("sample cost (track_process_tree={track_process_tree}): {per_sample:?}");
            assert!(
                per_sample < std::time::Duration::from_millis(20),
                "{per_sample:?}"
            );
        }
    }
}

//! Live system metrics on Linux, read straight from `/proc`, `/sys` and the cgroup v2 tree.
//!
//! Why not the `sysinfo` crate: one sample needs about ten small files, which we read and parse
//! in well under a millisecond without the crate's machinery (it refreshes every process and
//! CPU frequency it knows about). Reading the files ourselves also lets us reproduce W&B's exact
//! definitions (gopsutil's "used percent", cgroup-aware CPU normalisation, per-device disk IO,
//! TCP retransmits) and test the parsers on fixture text.
//!
//! The first [`LinuxHost::sample`] only takes baselines: counters (network, disk IO, TCP
//! retransmits) read `0.0`, and CPU percentages are missing because they need two readings,
//! exactly like the first stats record of the official SDK. Every read is best-effort: a file
//! that is missing or malformed drops the keys it feeds, nothing more.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::system::procfs::{self, CpuTimes, MemInfo, PidStat};
use crate::system::sys;

/// Bytes per mebibyte; W&B's "MB" keys are MiB.
const MIB: f64 = 1024.0 * 1024.0;
/// Bytes per gibibyte; W&B's "GB" keys are GiB.
const GIB: f64 = MIB * 1024.0;
/// `IFF_LOOPBACK` in `/sys/class/net/<if>/flags`.
const IFF_LOOPBACK: u64 = 0x8;
/// CPU percentages over a shorter window than this are too coarse (clock ticks are 10 ms), so
/// a sample that comes sooner keeps the older baseline and reports no CPU keys.
const MIN_CPU_WINDOW: Duration = Duration::from_millis(50);
/// Upper bound on the processes followed in a process tree (a guard against pid reuse loops).
const MAX_TREE: usize = 100_000;

/// Where the kernel's pseudo file systems are mounted; tests point these at fixture trees.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    /// Usually `/proc`.
    pub(crate) proc_dir: PathBuf,
    /// Usually `/sys`.
    pub(crate) sys_dir: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            proc_dir: PathBuf::from("/proc"),
            sys_dir: PathBuf::from("/sys"),
        }
    }
}

/// Samples one process (optionally with its descendants) and the host it runs on.
#[derive(Debug)]
pub(crate) struct LinuxHost {
    roots: Roots,
    pid: u32,
    track_process_tree: bool,
    disk_paths: Vec<String>,
    page_size: u64,
    ticks_per_second: f64,
    /// Baselines and cached facts, set up by the first sample.
    state: Option<State>,
}

#[derive(Debug, Default)]
struct State {
    /// What the process's CPU percentage is divided by: the cgroup CPU limit, or else the
    /// number of physical cores (W&B's normalisation).
    cpu_capacity: Option<f64>,
    /// The process's cgroup v2 directory, when it has a memory limit below physical memory.
    memory_cgroup: Option<(PathBuf, u64)>,
    /// Previous per-CPU times and when they were read.
    cpus: Option<(HashMap<usize, CpuTimes>, Instant)>,
    /// Previous CPU ticks of each process in the tree, and when they were read.
    process_ticks: Option<(HashMap<u32, u64>, Instant)>,
    network: CounterSet,
    tcp_retransmits_base: Option<u64>,
    /// Block devices behind the watched disk paths, with their baselines.
    disks: Vec<String>,
    disk_base: HashMap<String, (u64, u64)>,
    /// Whether each network interface counts (not loopback, not enslaved to a bridge or bond).
    interface_counts: HashMap<String, bool>,
    /// Whether `/proc/<pid>/task/<tid>/children` exists (CONFIG_PROC_CHILDREN).
    children_files: bool,
}

/// Per-name monotonic counters reported as "since the first reading".
///
/// A name that appears later counts from zero at its creation; a name that disappears keeps
/// contributing what it had counted, so the totals never go backwards.
#[derive(Debug, Default)]
struct CounterSet {
    base: HashMap<String, (u64, u64)>,
    last_delta: HashMap<String, (u64, u64)>,
    departed: (u64, u64),
    started: bool,
}

impl CounterSet {
    /// Feeds the current readings; returns the totals since the first call.
    fn update(&mut self, readings: &[(String, u64, u64)]) -> (u64, u64) {
        let first = !self.started;
        self.started = true;
        let mut seen = HashSet::new();
        let mut total = self.departed;
        for (name, a, b) in readings {
            seen.insert(name.as_str());
            let base =
                *self
                    .base
                    .entry(name.clone())
                    .or_insert(if first { (*a, *b) } else { (0, 0) });
            let delta = if *a < base.0 || *b < base.1 {
                // The counter went backwards: the interface was re-created. Keep what it had
                // counted so far and count the new one from zero.
                if let Some(old) = self.last_delta.get(name) {
                    self.departed = (
                        self.departed.0.saturating_add(old.0),
                        self.departed.1.saturating_add(old.1),
                    );
                    total = (total.0.saturating_add(old.0), total.1.saturating_add(old.1));
                }
                self.base.insert(name.clone(), (0, 0));
                (*a, *b)
            } else {
                (a - base.0, b - base.1)
            };
            self.last_delta.insert(name.clone(), delta);
            total = (
                total.0.saturating_add(delta.0),
                total.1.saturating_add(delta.1),
            );
        }
        let gone: Vec<String> = self
            .last_delta
            .keys()
            .filter(|name| !seen.contains(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(delta) = self.last_delta.remove(&name) {
                self.departed = (
                    self.departed.0.saturating_add(delta.0),
                    self.departed.1.saturating_add(delta.1),
                );
                total = (
                    total.0.saturating_add(delta.0),
                    total.1.saturating_add(delta.1),
                );
            }
            self.base.remove(&name);
        }
        total
    }
}

impl LinuxHost {
    /// A sampler for `pid` and the file systems holding `disk_paths`. Does no IO.
    pub(crate) fn new(
        roots: Roots,
        pid: u32,
        track_process_tree: bool,
        disk_paths: Vec<String>,
    ) -> Self {
        Self {
            roots,
            pid,
            track_process_tree,
            disk_paths,
            page_size: sys::page_size(),
            ticks_per_second: sys::clock_ticks() as f64,
            state: None,
        }
    }

    /// Reads the current metrics into `out` as (W&B key, value) pairs.
    pub(crate) fn sample(&mut self, out: &mut Vec<(String, f64)>) {
        let now = Instant::now();
        let mut state = match self.state.take() {
            Some(state) => state,
            None => self.initial_state(),
        };
        self.sample_cpus(&mut state, now, out);
        let meminfo = self
            .read("meminfo")
            .as_deref()
            .and_then(procfs::parse_meminfo);
        let memory_denominator = self.sample_memory(&state, meminfo, out);
        self.sample_process(&mut state, now, memory_denominator, out);
        self.sample_disks(&mut state, out);
        self.sample_network(&mut state, out);
        self.state = Some(state);
    }

    /// Facts that do not change during a run, read once.
    fn initial_state(&self) -> State {
        let cpuinfo = self
            .read("cpuinfo")
            .map(|text| procfs::parse_cpuinfo(&text))
            .unwrap_or_default();
        let cores = if cpuinfo.physical > 0 {
            cpuinfo.physical
        } else {
            cpuinfo.logical
        };
        let cgroup_dir = self.cgroup_dir();
        let cpu_limit = cgroup_dir
            .as_deref()
            .and_then(|dir| self.cgroup_cpu_limit(dir));
        let cpu_capacity = cpu_limit.or((cores > 0).then_some(f64::from(cores)));
        let total_memory = self
            .read("meminfo")
            .as_deref()
            .and_then(procfs::parse_meminfo)
            .map(|m| m.total);
        let memory_cgroup = cgroup_dir.and_then(|dir| {
            let limit = read_text(&dir.join("memory.max"))
                .as_deref()
                .and_then(procfs::parse_cgroup_u64)?;
            let below_physical = total_memory.is_none_or(|total| limit < total);
            (limit > 0 && below_physical).then_some((dir, limit))
        });
        let children_files = self
            .roots
            .proc_dir
            .join(format!("{pid}/task/{pid}/children", pid = self.pid))
            .exists();
        State {
            cpu_capacity,
            memory_cgroup,
            disks: self.resolve_disk_devices(),
            children_files,
            ..State::default()
        }
    }

    /// Reads `<proc>/<relative>`.
    fn read(&self, relative: &str) -> Option<String> {
        read_text(&self.roots.proc_dir.join(relative))
    }

    /// The cgroup v2 directory of the monitored process, if it is on the unified hierarchy.
    fn cgroup_dir(&self) -> Option<PathBuf> {
        let text = self.read(&format!("{}/cgroup", self.pid))?;
        let relative = procfs::parse_cgroup_v2_path(&text)?;
        let base = self.roots.sys_dir.join("fs/cgroup");
        let dir = base.join(relative.trim_start_matches('/'));
        // Refuse `..` tricks: the directory must stay under the cgroup mount.
        (dir.starts_with(&base) && !relative.split('/').any(|part| part == "..")).then_some(dir)
    }

    /// The tightest `cpu.max` limit of the cgroup and its ancestors, in CPUs.
    fn cgroup_cpu_limit(&self, dir: &Path) -> Option<f64> {
        let base = self.roots.sys_dir.join("fs/cgroup");
        dir.ancestors()
            .take_while(|ancestor| ancestor.starts_with(&base))
            .filter_map(|ancestor| {
                read_text(&ancestor.join("cpu.max"))
                    .as_deref()
                    .and_then(procfs::parse_cpu_max)
            })
            .reduce(f64::min)
    }

    /// The block devices (diskstats names) holding the watched paths.
    ///
    /// A path maps to the device of the longest mount point containing it. When the only path
    /// is `/` and it sits on a virtual file system (overlay in Docker, for instance), every real
    /// whole disk is watched instead, as W&B does.
    fn resolve_disk_devices(&self) -> Vec<String> {
        let mounts = self
            .read("self/mountinfo")
            .map(|text| procfs::parse_mountinfo(&text))
            .unwrap_or_default();
        let diskstats = self
            .read("diskstats")
            .map(|text| procfs::parse_diskstats(&text))
            .unwrap_or_default();
        let mut devices: Vec<String> = Vec::new();
        for path in &self.disk_paths {
            let mount = mounts
                .iter()
                .filter(|mount| path_is_under(path, &mount.mount_point))
                // `max_by_key` keeps the last of equals: the mount stacked on top wins.
                .max_by_key(|mount| mount.mount_point.len());
            let Some(mount) = mount else { continue };
            if let Some(disk) = diskstats
                .iter()
                .find(|d| d.major == mount.major && d.minor == mount.minor)
                && !devices.contains(&disk.name)
            {
                devices.push(disk.name.clone());
            }
        }
        if devices.is_empty() && self.disk_paths.iter().all(|path| path == "/") {
            let block = self.roots.sys_dir.join("block");
            devices = diskstats
                .iter()
                .filter(|d| !is_pseudo_device(&d.name) && block.join(&d.name).exists())
                .map(|d| d.name.clone())
                .collect();
        }
        devices
    }

    fn sample_cpus(&self, state: &mut State, now: Instant, out: &mut Vec<(String, f64)>) {
        let Some(text) = self.read("stat") else {
            return;
        };
        let current: HashMap<usize, CpuTimes> =
            procfs::parse_stat_per_cpu(&text).into_iter().collect();
        if let Some((previous, then)) = &state.cpus {
            if now.duration_since(*then) < MIN_CPU_WINDOW {
                return; // Keep the older baseline for a meaningful window next time.
            }
            let mut indices: Vec<&usize> = current.keys().collect();
            indices.sort_unstable();
            for index in indices {
                if let (Some(now_times), Some(then_times)) =
                    (current.get(index), previous.get(index))
                    && let Some(percent) = now_times.percent_since(*then_times)
                {
                    out.push((format!("cpu.{index}.cpu_percent"), percent));
                }
            }
        }
        state.cpus = Some((current, now));
    }

    /// System memory keys; returns the denominator for `proc.memory.percent`.
    fn sample_memory(
        &self,
        state: &State,
        meminfo: Option<MemInfo>,
        out: &mut Vec<(String, f64)>,
    ) -> Option<u64> {
        if let Some((dir, limit)) = &state.memory_cgroup
            && let Some(current) = read_text(&dir.join("memory.current"))
                .as_deref()
                .and_then(procfs::parse_cgroup_u64)
        {
            out.push((
                "memory_percent".into(),
                current as f64 / *limit as f64 * 100.0,
            ));
            out.push((
                "proc.memory.availableMB".into(),
                limit.saturating_sub(current) as f64 / MIB,
            ));
            return Some(*limit);
        }
        let meminfo = meminfo?;
        if let Some(percent) = meminfo.used_percent() {
            out.push(("memory_percent".into(), percent));
        }
        out.push((
            "proc.memory.availableMB".into(),
            meminfo.available as f64 / MIB,
        ));
        (meminfo.total > 0).then_some(meminfo.total)
    }

    fn sample_process(
        &self,
        state: &mut State,
        now: Instant,
        memory_denominator: Option<u64>,
        out: &mut Vec<(String, f64)>,
    ) {
        let tree = self.read_tree(state.children_files);
        if tree.first().is_none_or(|(pid, _)| *pid != self.pid) {
            return; // The process is gone (or /proc is unreadable).
        }
        let rss_bytes = tree.iter().fold(0u64, |acc, (_, s)| {
            acc.saturating_add(s.rss_pages.saturating_mul(self.page_size))
        });
        let threads = tree
            .iter()
            .fold(0u64, |acc, (_, s)| acc.saturating_add(s.threads));
        out.push(("proc.memory.rssMB".into(), rss_bytes as f64 / MIB));
        if let Some(denominator) = memory_denominator {
            out.push((
                "proc.memory.percent".into(),
                rss_bytes as f64 / denominator as f64 * 100.0,
            ));
        }
        out.push(("proc.cpu.threads".into(), threads as f64));

        let ticks: HashMap<u32, u64> = tree.iter().map(|(pid, s)| (*pid, s.cpu_ticks)).collect();
        if let Some((previous, then)) = &state.process_ticks {
            let elapsed = now.duration_since(*then);
            if elapsed < MIN_CPU_WINDOW {
                return; // Keep the older baseline.
            }
            let used: u64 = ticks
                .iter()
                .map(|(pid, t)| t.saturating_sub(previous.get(pid).copied().unwrap_or(0)))
                .fold(0, u64::saturating_add);
            let percent = used as f64 / self.ticks_per_second / elapsed.as_secs_f64() * 100.0;
            let normalised = match state.cpu_capacity {
                Some(capacity) if capacity > 0.0 => percent / capacity,
                _ => percent,
            };
            out.push(("cpu".into(), normalised));
        }
        state.process_ticks = Some((ticks, now));
    }

    /// The monitored process first, then (when tracking the tree) its descendants.
    fn read_tree(&self, children_files: bool) -> Vec<(u32, PidStat)> {
        let Some(root) = self.pid_stat(self.pid) else {
            return Vec::new();
        };
        let mut tree = vec![(self.pid, root)];
        if !self.track_process_tree {
            return tree;
        }
        let mut seen: HashSet<u32> = HashSet::from([self.pid]);
        if children_files {
            let mut next = 0;
            while let Some(&(pid, _)) = tree.get(next) {
                next += 1;
                for child in self.children(pid) {
                    if tree.len() < MAX_TREE
                        && seen.insert(child)
                        && let Some(stat) = self.pid_stat(child)
                    {
                        tree.push((child, stat));
                    }
                }
            }
        } else {
            // No children files: one pass over /proc, then walk the parent links.
            let mut by_parent: HashMap<u32, Vec<(u32, PidStat)>> = HashMap::new();
            let Ok(entries) = fs::read_dir(&self.roots.proc_dir) else {
                return tree;
            };
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid != self.pid
                    && let Some(stat) = self.pid_stat(pid)
                {
                    by_parent.entry(stat.ppid).or_default().push((pid, stat));
                }
            }
            let mut next = 0;
            while let Some(&(pid, _)) = tree.get(next) {
                next += 1;
                for (child, stat) in by_parent.remove(&pid).unwrap_or_default() {
                    if tree.len() < MAX_TREE && seen.insert(child) {
                        tree.push((child, stat));
                    }
                }
            }
        }
        tree
    }

    fn pid_stat(&self, pid: u32) -> Option<PidStat> {
        self.read(&format!("{pid}/stat"))
            .as_deref()
            .and_then(procfs::parse_pid_stat)
    }

    /// Direct children of `pid`, forked from any of its threads.
    fn children(&self, pid: u32) -> Vec<u32> {
        let Ok(tasks) = fs::read_dir(self.roots.proc_dir.join(format!("{pid}/task"))) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|task| read_text(&task.path().join("children")))
            .flat_map(|text| {
                text.split_ascii_whitespace()
                    .filter_map(|child| child.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }

    fn sample_disks(&self, state: &mut State, out: &mut Vec<(String, f64)>) {
        for path in &self.disk_paths {
            if let Some(usage) = sys::fs_usage(Path::new(path)) {
                if let Some(percent) = usage.used_percent() {
                    out.push((format!("disk.{path}.usagePercent"), percent));
                }
                out.push((format!("disk.{path}.usageGB"), usage.used as f64 / GIB));
            }
        }
        if state.disks.is_empty() {
            return;
        }
        let Some(text) = self.read("diskstats") else {
            return;
        };
        let first = state.disk_base.is_empty();
        let (mut total_in, mut total_out) = (0u64, 0u64);
        let mut any = false;
        for disk in procfs::parse_diskstats(&text) {
            if !state.disks.contains(&disk.name) {
                continue;
            }
            let base = *state
                .disk_base
                .entry(disk.name.clone())
                .or_insert(if first {
                    (disk.read_bytes, disk.written_bytes)
                } else {
                    (0, 0)
                });
            let read = disk.read_bytes.saturating_sub(base.0);
            let written = disk.written_bytes.saturating_sub(base.1);
            out.push((format!("disk.{}.in", disk.name), read as f64 / MIB));
            out.push((format!("disk.{}.out", disk.name), written as f64 / MIB));
            total_in = total_in.saturating_add(read);
            total_out = total_out.saturating_add(written);
            any = true;
        }
        if any {
            out.push(("disk.in".into(), total_in as f64 / MIB));
            out.push(("disk.out".into(), total_out as f64 / MIB));
        }
    }

    fn sample_network(&self, state: &mut State, out: &mut Vec<(String, f64)>) {
        if let Some(text) = self.read("net/dev") {
            let readings: Vec<(String, u64, u64)> = procfs::parse_net_dev(&text)
                .into_iter()
                .filter(|dev| self.interface_counts(&mut state.interface_counts, &dev.name))
                .map(|dev| (dev.name, dev.tx_bytes, dev.rx_bytes))
                .collect();
            let (sent, received) = state.network.update(&readings);
            out.push(("network.sent".into(), sent as f64));
            out.push(("network.recv".into(), received as f64));
        }
        if let Some(retransmits) = self
            .read("net/snmp")
            .as_deref()
            .and_then(procfs::parse_tcp_retransmits)
        {
            let base = *state.tcp_retransmits_base.get_or_insert(retransmits);
            out.push((
                "network.tcpRetransmits".into(),
                retransmits.saturating_sub(base) as f64,
            ));
        }
    }

    /// Whether an interface's traffic counts: not loopback, and not a port of a bridge or bond
    /// (whose traffic the master interface already counts). Cached per name.
    fn interface_counts(&self, cache: &mut HashMap<String, bool>, name: &str) -> bool {
        if let Some(counts) = cache.get(name) {
            return *counts;
        }
        let dir = self.roots.sys_dir.join("class/net").join(name);
        let counts = if dir.exists() {
            let loopback = read_text(&dir.join("flags"))
                .and_then(|flags| {
                    u64::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()
                })
                .is_some_and(|flags| flags & IFF_LOOPBACK != 0);
            !loopback && !dir.join("master").exists()
        } else {
            name != "lo"
        };
        cache.insert(name.to_owned(), counts);
        counts
    }
}

/// Whether `path` is `mount_point` or inside it (component-wise, so `/data2` is not under `/data`).
fn path_is_under(path: &str, mount_point: &str) -> bool {
    mount_point == "/"
        || path == mount_point
        || path
            .strip_prefix(mount_point)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Loop, RAM and compressed-RAM devices hold no real disk traffic.
fn is_pseudo_device(name: &str) -> bool {
    ["loop", "ram", "zram"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Reads a whole (small) file; `None` on any error, including invalid UTF-8.
fn read_text(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// What the environment record needs from `/proc`: CPU counts and model, and total memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct HostFacts {
    /// Physical cores (logical CPUs when the kernel does not say).
    pub(crate) cpu_count: u32,
    /// Logical CPUs.
    pub(crate) cpu_count_logical: u32,
    /// CPU model name.
    pub(crate) cpu_model: String,
    /// Total memory in bytes.
    pub(crate) memory_total: Option<u64>,
}

/// Reads [`HostFacts`] from `roots`.
pub(crate) fn host_facts(roots: &Roots) -> HostFacts {
    let cpuinfo = read_text(&roots.proc_dir.join("cpuinfo"))
        .map(|text| procfs::parse_cpuinfo(&text))
        .unwrap_or_default();
    let logical = if cpuinfo.logical > 0 {
        cpuinfo.logical
    } else {
        std::thread::available_parallelism()
            .ok()
            .and_then(|n| u32::try_from(n.get()).ok())
            .unwrap_or(0)
    };
    HostFacts {
        cpu_count: if cpuinfo.physical > 0 {
            cpuinfo.physical
        } else {
            logical
        },
        cpu_count_logical: logical,
        cpu_model: cpuinfo.model,
        memory_total: read_text(&roots.proc_dir.join("meminfo"))
            .as_deref()
            .and_then(procfs::parse_meminfo)
            .map(|m| m.total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (relative path, content) under a fresh temporary directory.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn make_host(proc_dir: &Path, sys_dir: &Path, pid: u32, track: bool) -> LinuxHost {
        LinuxHost::new(
            Roots {
                proc_dir: proc_dir.to_owned(),
                sys_dir: sys_dir.to_owned(),
            },
            pid,
            track,
            vec!["/".into()],
        )
    }

    fn get<'a>(items: &'a [(String, f64)], key: &str) -> Option<&'a f64> {
        items.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn stat_line(pid: u32, ppid: u32, ticks: u64, threads: u64, rss_pages: u64) -> String {
        format!(
            "{pid} (proc {pid}) S {ppid} 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 {threads} 0 1 1 {rss_pages} 0"
        )
    }

    #[test]
    fn fake_proc_tree_first_and_second_sample() {
        let proc_files = vec![
            (
                "stat".to_owned(),
                "cpu 1 1 1 1\ncpu0 100 0 0 100\ncpu1 100 0 0 100\n".to_owned(),
            ),
            (
                "meminfo".to_owned(),
                "MemTotal: 1048576 kB\nMemAvailable: 524288 kB\n".to_owned(),
            ),
            (
                "cpuinfo".to_owned(),
                "processor : 0\nprocessor : 1\n".to_owned(),
            ),
            ("10/stat".to_owned(), stat_line(10, 1, 100, 3, 256)),
            ("11/stat".to_owned(), stat_line(11, 10, 50, 2, 256)),
            ("12/stat".to_owned(), stat_line(12, 11, 50, 1, 256)),
            ("13/stat".to_owned(), stat_line(13, 1, 999, 9, 999)),
            (
                "net/dev".to_owned(),
                "h\nh\n lo: 5 0 0 0 0 0 0 0 5 0\n eth0: 1000 0 0 0 0 0 0 0 2000 0\n".to_owned(),
            ),
            (
                "net/snmp".to_owned(),
                "Tcp: RetransSegs\nTcp: 7\n".to_owned(),
            ),
        ];
        let files: Vec<(&str, &str)> = proc_files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let proc_dir = tree(&files);
        let sys_dir = tree(&[]);
        let mut host = make_host(proc_dir.path(), sys_dir.path(), 10, true);

        let mut first = Vec::new();
        host.sample(&mut first);
        assert_eq!(get(&first, "cpu"), None);
        assert_eq!(get(&first, "cpu.0.cpu_percent"), None);
        assert_eq!(get(&first, "network.sent"), Some(&0.0));
        assert_eq!(get(&first, "network.tcpRetransmits"), Some(&0.0));
        assert_eq!(get(&first, "memory_percent"), Some(&50.0));
        assert_eq!(get(&first, "proc.memory.availableMB"), Some(&512.0));
        assert_eq!(get(&first, "proc.cpu.threads"), Some(&6.0)); // 10, 11 and 12; not 13.
        let rss_mb = 3.0 * 256.0 * sys::page_size() as f64 / MIB;
        assert_eq!(get(&first, "proc.memory.rssMB"), Some(&rss_mb));

        // Advance the counters, wait past the minimum CPU window, sample again.
        fs::write(
            proc_dir.path().join("stat"),
            "cpu0 150 0 0 150\ncpu1 200 0 0 100\n",
        )
        .unwrap();
        fs::write(
            proc_dir.path().join("12/stat"),
            stat_line(12, 11, 60, 1, 256),
        )
        .unwrap();
        fs::write(
            proc_dir.path().join("net/dev"),
            "h\nh\n lo: 500 0 0 0 0 0 0 0 500 0\n eth0: 1100 0 0 0 0 0 0 0 2300 0\n",
        )
        .unwrap();
        fs::write(
            proc_dir.path().join("net/snmp"),
            "Tcp: RetransSegs\nTcp: 9\n",
        )
        .unwrap();
        std::thread::sleep(MIN_CPU_WINDOW);
        let mut second = Vec::new();
        host.sample(&mut second);
        assert_eq!(get(&second, "cpu.0.cpu_percent"), Some(&50.0));
        assert_eq!(get(&second, "cpu.1.cpu_percent"), Some(&100.0));
        let cpu = *get(&second, "cpu").unwrap();
        assert!(cpu > 0.0, "{cpu}");
        assert_eq!(get(&second, "network.sent"), Some(&300.0)); // Loopback excluded.
        assert_eq!(get(&second, "network.recv"), Some(&100.0));
        assert_eq!(get(&second, "network.tcpRetransmits"), Some(&2.0));
    }

    #[test]
    fn garbage_everywhere_never_panics() {
        let junk = "\u{0}\u{1}garbage ) ) ( 1 2 3\n:::\n0::/../../etc\n";
        let files: Vec<(&str, &str)> = [
            "stat",
            "meminfo",
            "cpuinfo",
            "10/stat",
            "10/cgroup",
            "net/dev",
            "net/snmp",
            "diskstats",
            "self/mountinfo",
        ]
        .iter()
        .map(|path| (*path, junk))
        .collect();
        let proc_dir = tree(&files);
        let sys_dir = tree(&[]);
        for track in [false, true] {
            let mut host = make_host(proc_dir.path(), sys_dir.path(), 10, track);
            for _ in 0..2 {
                let mut out = Vec::new();
                host.sample(&mut out);
                assert!(out.iter().all(|(k, _)| !k.starts_with("proc.")));
            }
        }
        // An empty root: nothing at all but the real disk usage of "/".
        let empty = tree(&[]);
        let mut host = make_host(empty.path(), empty.path(), 10, true);
        let mut out = Vec::new();
        host.sample(&mut out);
        assert!(out.iter().all(|(k, _)| k.starts_with("disk./.")), "{out:?}");
    }

    #[test]
    fn cgroup_limits_apply() {
        let proc_dir = tree(&[
            ("10/cgroup", "0::/job/step\n"),
            ("10/stat", &stat_line(10, 1, 0, 1, 1)),
            (
                "cpuinfo",
                "processor : 0\nprocessor : 1\nprocessor : 2\nprocessor : 3\n",
            ),
            (
                "meminfo",
                "MemTotal: 4194304 kB\nMemAvailable: 4000000 kB\n",
            ),
        ]);
        let sys_dir = tree(&[
            ("fs/cgroup/job/cpu.max", "50000 100000\n"),
            ("fs/cgroup/job/step/cpu.max", "max 100000\n"),
            ("fs/cgroup/job/step/memory.max", "1073741824\n"),
            ("fs/cgroup/job/step/memory.current", "268435456\n"),
        ]);
        let mut host = make_host(proc_dir.path(), sys_dir.path(), 10, false);
        let state = host.initial_state();
        assert_eq!(state.cpu_capacity, Some(0.5));
        let mut out = Vec::new();
        host.sample(&mut out);
        assert_eq!(get(&out, "memory_percent"), Some(&25.0));
        assert_eq!(get(&out, "proc.memory.availableMB"), Some(&768.0));
    }

    #[test]
    fn disk_devices_from_mountinfo() {
        let proc_dir = tree(&[
            (
                "self/mountinfo",
                "27 1 254:0 / / rw - ext4 /dev/vda rw\n40 27 8:17 / /data rw - ext4 /dev/sdb1 rw\n",
            ),
            (
                "diskstats",
                " 254 0 vda 1 0 2048 0 1 0 4096 0\n 8 17 sdb1 1 0 10 0 1 0 10 0\n 7 0 loop0 0 0 0 0 0 0 0 0\n",
            ),
        ]);
        let sys_dir = tree(&[]);
        let mut host = make_host(proc_dir.path(), sys_dir.path(), 10, false);
        host.disk_paths = vec!["/".into(), "/data/x".into(), "/data2".into()];
        assert_eq!(host.resolve_disk_devices(), vec!["vda", "sdb1"]);

        // Overlay root (major 0): fall back to every real whole disk.
        let proc_dir = tree(&[
            ("self/mountinfo", "1 0 0:50 / / rw - overlay overlay rw\n"),
            (
                "diskstats",
                " 254 0 vda 1 0 2048 0 1 0 4096 0\n 254 1 vda1 1 0 1 0 1 0 1 0\n 7 0 loop0 0 0 0 0 0 0 0 0\n",
            ),
        ]);
        let sys_dir = tree(&[("block/vda/size", "1"), ("block/loop0/size", "1")]);
        let host = make_host(proc_dir.path(), sys_dir.path(), 10, false);
        assert_eq!(host.resolve_disk_devices(), vec!["vda"]);
    }

    #[test]
    fn counter_set_survives_interfaces_coming_and_going() {
        let mut set = CounterSet::default();
        assert_eq!(set.update(&[("a".into(), 100, 10)]), (0, 0));
        assert_eq!(
            set.update(&[("a".into(), 150, 20), ("b".into(), 5, 5)]),
            (55, 15)
        );
        // "b" disappears: its 5/5 stay counted.
        assert_eq!(set.update(&[("a".into(), 160, 20)]), (65, 15));
        // "a" is re-created with fresh counters: what it had counted stays.
        assert_eq!(set.update(&[("a".into(), 3, 1)]), (68, 16));
        assert_eq!(set.update(&[("a".into(), 4, 1)]), (69, 16));
    }

    #[test]
    fn mount_prefix_is_component_wise() {
        assert!(path_is_under("/data/x", "/data"));
        assert!(path_is_under("/data", "/data"));
        assert!(!path_is_under("/data2", "/data"));
        assert!(path_is_under("/anything", "/"));
    }

    #[test]
    fn facts_of_this_machine() {
        let facts = host_facts(&Roots::default());
        assert!(facts.cpu_count_logical >= 1);
        assert!(facts.cpu_count >= 1 && facts.cpu_count <= facts.cpu_count_logical);
        assert!(facts.memory_total.unwrap_or(0) > 0);
    }
}

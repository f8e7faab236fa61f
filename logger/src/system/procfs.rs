//! Pure parsers for the Linux `/proc`, `/sys` and cgroup v2 files that the system monitor reads.
//!
//! Every function takes the text of one file and returns `None`, or skips the offending line,
//! on anything it does not understand: a missing field, a non-number, a truncated line. The
//! kernel, a container runtime or a process exiting half-way through a read can all produce odd
//! content, and none of it may panic the sampler. No function here does any IO, so the unit
//! tests at the bottom feed them fixture strings, including malformed ones.

use std::collections::HashMap;

/// Cumulative CPU time of one CPU from `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CpuTimes {
    /// Ticks spent doing anything but idling or waiting for IO.
    pub(crate) busy: u64,
    /// All ticks (busy, idle and iowait).
    pub(crate) total: u64,
}

impl CpuTimes {
    /// Busy share between an `earlier` reading and this one, in percent (0 to 100).
    ///
    /// `None` when no tick elapsed or a counter went backwards (CPU hot-plug resets them).
    pub(crate) fn percent_since(self, earlier: CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        if total == 0 {
            return None;
        }
        Some((busy as f64 / total as f64 * 100.0).clamp(0.0, 100.0))
    }
}

/// The per-CPU lines (`cpu0`, `cpu1`, ...) of `/proc/stat`, keyed by CPU number.
///
/// The aggregate `cpu` line is skipped. Guest time is already counted in user and nice time, so
/// it is left out of the total, as psutil and gopsutil do.
pub(crate) fn parse_stat_per_cpu(text: &str) -> Vec<(usize, CpuTimes)> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next() else { continue };
        let Some(index) = name.strip_prefix("cpu") else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue; // The aggregate "cpu" line, or garbage.
        };
        // user nice system idle iowait irq softirq steal [guest guest_nice]
        let values: Vec<u64> = fields.take(8).map_while(|f| f.parse().ok()).collect();
        let [user, nice, system, idle, rest @ ..] = values.as_slice() else {
            continue;
        };
        let iowait = rest.first().copied().unwrap_or(0);
        let others: u64 = rest.iter().skip(1).fold(0, |acc, v| acc.saturating_add(*v));
        let idle_all = idle.saturating_add(iowait);
        let busy = user
            .saturating_add(*nice)
            .saturating_add(*system)
            .saturating_add(others);
        cpus.push((
            index,
            CpuTimes {
                busy,
                total: busy.saturating_add(idle_all),
            },
        ));
    }
    cpus
}

/// The fields of `/proc/<pid>/stat` that the monitor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PidStat {
    /// Parent process id (field 4).
    pub(crate) ppid: u32,
    /// User plus system CPU time in clock ticks (fields 14 and 15).
    pub(crate) cpu_ticks: u64,
    /// Number of threads (field 20).
    pub(crate) threads: u64,
    /// Resident set size in pages (field 24).
    pub(crate) rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and `)`, so the
/// numeric fields are taken after the *last* `)`.
pub(crate) fn parse_pid_stat(text: &str) -> Option<PidStat> {
    let (_, after_comm) = text.rsplit_once(')')?;
    // Index 0 here is field 3 (state), so field N is at index N - 3.
    let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n.checked_sub(3)?)?.parse().ok() };
    Some(PidStat {
        ppid: u32::try_from(field(4)?).ok()?,
        cpu_ticks: field(14)?.saturating_add(field(15)?),
        threads: field(20)?,
        rss_pages: field(24)?,
    })
}

/// System memory from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemInfo {
    /// `MemTotal`.
    pub(crate) total: u64,
    /// `MemAvailable`, or free + buffers + cached on kernels older than 3.14.
    pub(crate) available: u64,
}

impl MemInfo {
    /// Used memory in percent: (total - available) / total, as gopsutil's `UsedPercent`.
    pub(crate) fn used_percent(self) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        Some(self.total.saturating_sub(self.available) as f64 / self.total as f64 * 100.0)
    }
}

/// Parses `/proc/meminfo` (values are in kB).
pub(crate) fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let mut values: HashMap<&str, u64> = HashMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(number) = rest.split_ascii_whitespace().next() else {
            continue;
        };
        if let Ok(kb) = number.parse::<u64>() {
            values.insert(key.trim(), kb.saturating_mul(1024));
        }
    }
    let total = *values.get("MemTotal")?;
    let available = match values.get("MemAvailable") {
        Some(available) => *available,
        None => ["MemFree", "Buffers", "Cached"]
            .iter()
            .filter_map(|key| values.get(key))
            .fold(0u64, |acc, v| acc.saturating_add(*v)),
    };
    Some(MemInfo { total, available })
}

/// One interface line of `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetDev {
    /// Interface name, e.g. `eth0`.
    pub(crate) name: String,
    /// Bytes received.
    pub(crate) rx_bytes: u64,
    /// Bytes sent.
    pub(crate) tx_bytes: u64,
}

/// Parses `/proc/net/dev`: two header lines, then `name: rx_bytes ... (8 rx fields) tx_bytes ...`.
pub(crate) fn parse_net_dev(text: &str) -> Vec<NetDev> {
    let mut devices = Vec::new();
    for line in text.lines() {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace() || c == '|') {
            continue; // Header lines ("Inter-|", " face |bytes").
        }
        let fields: Vec<u64> = counters
            .split_ascii_whitespace()
            .map_while(|f| f.parse().ok())
            .collect();
        let (Some(rx), Some(tx)) = (fields.first(), fields.get(8)) else {
            continue;
        };
        devices.push(NetDev {
            name: name.to_owned(),
            rx_bytes: *rx,
            tx_bytes: *tx,
        });
    }
    devices
}

/// `Tcp: RetransSegs` from `/proc/net/snmp`: a header line of names followed by a line of values.
pub(crate) fn parse_tcp_retransmits(text: &str) -> Option<u64> {
    let mut tcp_lines = text.lines().filter(|line| line.starts_with("Tcp:"));
    let header = tcp_lines.next()?;
    let values = tcp_lines.next()?;
    let index = header
        .split_ascii_whitespace()
        .position(|name| name == "RetransSegs")?;
    values.split_ascii_whitespace().nth(index)?.parse().ok()
}

/// One device line of `/proc/diskstats`, with its IO in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiskStat {
    /// Major device number.
    pub(crate) major: u32,
    /// Minor device number.
    pub(crate) minor: u32,
    /// Kernel device name, e.g. `vda` or `nvme0n1p2`.
    pub(crate) name: String,
    /// Bytes read (sectors read x 512; diskstats sectors are always 512 bytes).
    pub(crate) read_bytes: u64,
    /// Bytes written.
    pub(crate) written_bytes: u64,
}

/// Parses `/proc/diskstats`: `major minor name reads merged sectors_read ms writes merged
/// sectors_written ...`.
pub(crate) fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    const SECTOR: u64 = 512;
    let mut disks = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let number = |i: usize| -> Option<u64> { fields.get(i)?.parse().ok() };
        let parsed = (|| {
            Some(DiskStat {
                major: u32::try_from(number(0)?).ok()?,
                minor: u32::try_from(number(1)?).ok()?,
                name: (*fields.get(2)?).to_owned(),
                read_bytes: number(5)?.saturating_mul(SECTOR),
                written_bytes: number(9)?.saturating_mul(SECTOR),
            })
        })();
        if let Some(disk) = parsed {
            disks.push(disk);
        }
    }
    disks
}

/// One line of `/proc/<pid>/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Mount point, with the kernel's octal escapes (`\040` for a space) decoded.
    pub(crate) mount_point: String,
    /// Major number of the mounted device (0 for virtual file systems such as overlay or tmpfs).
    pub(crate) major: u32,
    /// Minor number of the mounted device.
    pub(crate) minor: u32,
}

/// Parses `/proc/<pid>/mountinfo`: `id parent major:minor root mount_point options ...`.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let (Some(device), Some(mount_point)) = (fields.get(2), fields.get(4)) else {
            continue;
        };
        let Some((major, minor)) = device.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        mounts.push(Mount {
            mount_point: unescape_octal(mount_point),
            major,
            minor,
        });
    }
    mounts
}

/// Decodes the `\NNN` octal escapes the kernel uses for spaces, tabs, newlines and backslashes
/// in mount points. Anything that is not a valid escape is kept as written.
fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(decoded) = u8::try_from(value) {
                out.push(decoded);
                i += 4;
                continue;
            }
        }
        out.push(byte);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What `/proc/cpuinfo` says about the CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CpuInfo {
    /// Number of `processor` entries (logical CPUs).
    pub(crate) logical: u32,
    /// Number of distinct (`physical id`, `core id`) pairs; 0 when the file has neither field
    /// (some ARM kernels), in which case callers fall back to the logical count.
    pub(crate) physical: u32,
    /// The first `model name`, e.g. `AMD EPYC`; empty when absent.
    pub(crate) model: String,
}

/// Parses `/proc/cpuinfo`: blocks of `key\t: value` lines, one block per logical CPU.
pub(crate) fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut cores: Vec<(String, String)> = Vec::new();
    let mut physical_id: Option<String> = None;
    let mut core_id: Option<String> = None;
    let mut flush = |physical_id: &mut Option<String>, core_id: &mut Option<String>| {
        if let (Some(p), Some(c)) = (physical_id.take(), core_id.take()) {
            let pair = (p, c);
            if !cores.contains(&pair) {
                cores.push(pair);
            }
        }
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            if line.trim().is_empty() {
                flush(&mut physical_id, &mut core_id);
            }
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "processor" => {
                flush(&mut physical_id, &mut core_id);
                info.logical = info.logical.saturating_add(1);
            }
            "physical id" => physical_id = Some(value.to_owned()),
            "core id" => core_id = Some(value.to_owned()),
            "model name" if info.model.is_empty() => info.model = value.to_owned(),
            _ => {}
        }
    }
    flush(&mut physical_id, &mut core_id);
    info.physical = u32::try_from(cores.len()).unwrap_or(u32::MAX);
    info
}

/// The cgroup v2 path of a process from `/proc/<pid>/cgroup` (the `0::<path>` line).
pub(crate) fn parse_cgroup_v2_path(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::trim)
        .filter(|path| path.starts_with('/'))
}

/// The CPU limit of a cgroup v2 `cpu.max` file (`<quota> <period>` or `max <period>`), in CPUs.
pub(crate) fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_ascii_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?; // "max" fails here: no limit.
    let period: f64 = fields.next().unwrap_or("100000").parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// A single number in a cgroup file such as `memory.max` or `memory.current`; `None` for `max`.
pub(crate) fn parse_cgroup_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  1000 20 300 5000 100 0 10 0 0 0\n\
        cpu0 600 10 200 2000 50 0 5 0 40 0\n\
        cpu1 400 10 100 3000 50 0 5 0 0 0\n\
        intr 12345 0 0\nctxt 999\nbtime 1700000000\n";

    #[test]
    fn stat_per_cpu_skips_aggregate_and_guest() {
        let cpus = parse_stat_per_cpu(STAT);
        assert_eq!(cpus.len(), 2);
        assert_eq!(
            cpus[0],
            (
                0,
                CpuTimes {
                    busy: 600 + 10 + 200 + 5,
                    total: 600 + 10 + 200 + 5 + 2000 + 50
                }
            )
        );
        assert_eq!(cpus[1].0, 1);
    }

    #[test]
    fn stat_per_cpu_tolerates_garbage() {
        assert!(parse_stat_per_cpu("").is_empty());
        assert!(
            parse_stat_per_cpu("cpu0 1 2\ncpuX 1 2 3 4\ncpu1 a b c d\n\u{0}\u{ffff}").is_empty()
        );
        // Old kernels with only four fields still parse.
        assert_eq!(
            parse_stat_per_cpu("cpu3 1 2 3 4"),
            vec![(3, CpuTimes { busy: 6, total: 10 })]
        );
        // Overflowing numbers are rejected rather than wrapped.
        assert!(parse_stat_per_cpu("cpu0 99999999999999999999999 1 1 1").is_empty());
    }

    #[test]
    fn cpu_percent_since() {
        let a = CpuTimes {
            busy: 100,
            total: 1000,
        };
        let b = CpuTimes {
            busy: 150,
            total: 1100,
        };
        assert_eq!(b.percent_since(a), Some(50.0));
        assert_eq!(a.percent_since(a), None);
        assert_eq!(a.percent_since(b), None); // Counter reset.
    }

    #[test]
    fn pid_stat_with_hostile_comm() {
        let text = "4242 (my ) (evil) prog) S 1 4242 4242 0 -1 4194560 1 0 0 0 \
                    250 50 0 0 20 0 7 0 123 456789 1234 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_pid_stat(text).unwrap();
        assert_eq!(
            stat,
            PidStat {
                ppid: 1,
                cpu_ticks: 300,
                threads: 7,
                rss_pages: 1234
            }
        );
    }

    #[test]
    fn pid_stat_malformed() {
        assert_eq!(parse_pid_stat(""), None);
        assert_eq!(parse_pid_stat("12 (no closing paren S 1 2 3"), None);
        assert_eq!(parse_pid_stat("12 (short) S 1 2 3"), None);
        assert_eq!(
            parse_pid_stat("12 (x) S -1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1 1"),
            None
        );
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:       24683656 kB\nMemFree:         1000000 kB\n\
                    MemAvailable:   22000000 kB\nBuffers: 10 kB\nHugePages_Total:       0\n";
        let info = parse_meminfo(text).unwrap();
        assert_eq!(info.total, 24683656 * 1024);
        assert_eq!(info.available, 22000000 * 1024);
        let percent = info.used_percent().unwrap();
        assert!((percent - (24683656.0 - 22000000.0) / 24683656.0 * 100.0).abs() < 1e-9);
    }

    #[test]
    fn meminfo_old_kernel_and_garbage() {
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(parse_meminfo(old).unwrap().available, 400 * 1024);
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: lots kB\n::::\n"), None);
        let zero = parse_meminfo("MemTotal: 0 kB\n").unwrap();
        assert_eq!(zero.used_percent(), None);
    }

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n \
        face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
        lo: 19561616   34066    0    0    0     0          0         0 19561616   34066    0    0    0     0       0          0\n  \
        eth0: 366823883   19747    0    0    0     0          0         0  1475719   16625    0    0    0     0       0          0\n";

    #[test]
    fn net_dev() {
        let devices = parse_net_dev(NET_DEV);
        assert_eq!(
            devices,
            vec![
                NetDev {
                    name: "lo".into(),
                    rx_bytes: 19561616,
                    tx_bytes: 19561616
                },
                NetDev {
                    name: "eth0".into(),
                    rx_bytes: 366823883,
                    tx_bytes: 1475719
                },
            ]
        );
        assert!(parse_net_dev("eth0: 1 2 3\nwlan0:\n: 1 2 3 4 5 6 7 8 9\n").is_empty());
    }

    #[test]
    fn tcp_retransmits() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
                    Tcp: 1 200 120000 -1 2955 2861 30 226 0 53220 50128 3 0 176 0\n";
        assert_eq!(parse_tcp_retransmits(text), Some(3));
        assert_eq!(parse_tcp_retransmits("Tcp: RetransSegs\n"), None);
        assert_eq!(parse_tcp_retransmits("Tcp: RetransSegs\nTcp: x\n"), None);
        assert_eq!(parse_tcp_retransmits(""), None);
    }

    #[test]
    fn diskstats() {
        let text = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n \
                    254       0 vda 176176 10018 8710066 132022 36414 66171 26886384 249763 0 31864 394987\n \
                    259 1 nvme0n1p1 1 2\n garbage\n";
        let disks = parse_diskstats(text);
        assert_eq!(disks.len(), 2);
        assert_eq!(
            disks[1],
            DiskStat {
                major: 254,
                minor: 0,
                name: "vda".into(),
                read_bytes: 8710066 * 512,
                written_bytes: 26886384 * 512
            }
        );
    }

    #[test]
    fn mountinfo() {
        let text = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                    40 27 8:17 / /mnt/my\\040disk rw - ext4 /dev/sdb1 rw\n\
                    41 27 8:18 / /mnt/bad\\9 rw - ext4 /dev/sdb2 rw\n\
                    broken line\n50 27 x:y / /z rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 4);
        assert_eq!(
            mounts[1],
            Mount {
                mount_point: "/".into(),
                major: 254,
                minor: 0
            }
        );
        assert_eq!(mounts[2].mount_point, "/mnt/my disk");
        assert_eq!(mounts[3].mount_point, "/mnt/bad\\9");
    }

    #[test]
    fn unescape_keeps_bad_escapes() {
        assert_eq!(unescape_octal("a\\134b"), "a\\b");
        assert_eq!(unescape_octal("\\777"), "\\777"); // 511 does not fit a byte.
        assert_eq!(unescape_octal("end\\04"), "end\\04");
        assert_eq!(unescape_octal("\\"), "\\");
    }

    #[test]
    fn cpuinfo_x86() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 1\nmodel name\t: AMD EPYC\nphysical id\t: 0\ncore id\t\t: 1\n\n\
                    processor\t: 2\nmodel name\t: AMD EPYC\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 3\nmodel name\t: AMD EPYC\nphysical id\t: 0\ncore id\t\t: 1\n";
        assert_eq!(
            parse_cpuinfo(text),
            CpuInfo {
                logical: 4,
                physical: 2,
                model: "AMD EPYC".into()
            }
        );
    }

    #[test]
    fn cpuinfo_arm_and_garbage() {
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n";
        assert_eq!(
            parse_cpuinfo(arm),
            CpuInfo {
                logical: 2,
                physical: 0,
                model: String::new()
            }
        );
        assert_eq!(parse_cpuinfo("\u{0}::::\n\n:"), CpuInfo::default());
    }

    #[test]
    fn cgroup_files() {
        let text = "9:name=systemd:/\n4:memory:/process_api/x\n0::/user.slice/session-1.scope\n";
        assert_eq!(
            parse_cgroup_v2_path(text),
            Some("/user.slice/session-1.scope")
        );
        assert_eq!(parse_cgroup_v2_path("4:memory:/x\n"), None);
        assert_eq!(parse_cgroup_v2_path("0::garbage\n"), None);
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("50000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("0 100000"), None);
        assert_eq!(parse_cpu_max("1 0"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cgroup_u64("max\n"), None);
        assert_eq!(parse_cgroup_u64("1073741824\n"), Some(1 << 30));
    }
}

//! Measures for benchmarks that report more than wall time.

/// User and system CPU seconds this process has used so far, from `/proc/self/stat` (clock ticks
/// of 1/100 s); 0 where that file is not there or does not parse. Take it before and after a
/// piece of work: the difference is that work's CPU time, all threads included.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_grow_with_work() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            eprintln!("SKIP cpu_seconds_grow_with_work: no /proc/self/stat on this system");
            return;
        }
        let before = cpu_seconds();
        // Spin until the clock ticks at least once (a tick is 10 ms of CPU); a reading that
        // never moves gives up after 10 s of wall time and fails.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while cpu_seconds() <= before && std::time::Instant::now() < give_up {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        assert!(cpu_seconds() > before);
    }
}

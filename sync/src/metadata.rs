//! Protojson for the environment snapshot: `wandb-metadata.json` and the `_wandb.e` config
//! entries, with the field names the SDK's proto declares (`startedAt`, `writerId`, `cpu_count`,
//! `gpu`, ...), default values left out, 64-bit integers as strings and timestamps in RFC 3339.

use wandb_format::proto::{EnvironmentRecord, GitRepoRecord};

use wandb_format::json::write_str;

/// A JSON object being written: compact, or indented by `indent` spaces per level.
struct ObjectWriter<'a> {
    out: &'a mut String,
    indent: Option<usize>,
    depth: usize,
    n_members: usize,
}

impl<'a> ObjectWriter<'a> {
    fn new(out: &'a mut String, indent: Option<usize>, depth: usize) -> Self {
        out.push('{');
        ObjectWriter {
            out,
            indent,
            depth,
            n_members: 0,
        }
    }

    fn key(&mut self, key: &str) {
        if self.n_members > 0 {
            self.out.push(',');
        }
        self.n_members += 1;
        self.newline(self.depth + 1);
        write_str(self.out, key);
        self.out.push(':');
        if self.indent.is_some() {
            self.out.push(' ');
        }
    }

    fn newline(&mut self, depth: usize) {
        if let Some(indent) = self.indent {
            self.out.push('\n');
            for _ in 0..depth * indent {
                self.out.push(' ');
            }
        }
    }

    fn string(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.key(key);
            write_str(self.out, value);
        }
    }

    fn u32(&mut self, key: &str, value: u32) {
        if value != 0 {
            self.key(key);
            self.out.push_str(&value.to_string());
        }
    }

    fn u64(&mut self, key: &str, value: u64) {
        if value != 0 {
            self.key(key);
            self.out.push_str(&format!("\"{value}\""));
        }
    }

    fn strings(&mut self, key: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        self.key(key);
        self.out.push('[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.newline(self.depth + 2);
            write_str(self.out, v);
        }
        self.newline(self.depth + 1);
        self.out.push(']');
    }

    fn object(&mut self, key: &str, build: impl FnOnce(&mut ObjectWriter<'_>)) {
        let mut inner_text = String::new();
        let mut inner = ObjectWriter::new(&mut inner_text, self.indent, self.depth + 1);
        build(&mut inner);
        if inner.n_members == 0 {
            return;
        }
        inner.finish();
        self.key(key);
        self.out.push_str(&inner_text);
    }

    fn objects<T>(&mut self, key: &str, items: &[T], build: impl Fn(&mut ObjectWriter<'_>, &T)) {
        if items.is_empty() {
            return;
        }
        self.key(key);
        self.out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.newline(self.depth + 2);
            let mut inner = ObjectWriter::new(self.out, self.indent, self.depth + 2);
            build(&mut inner, item);
            inner.finish();
        }
        self.newline(self.depth + 1);
        self.out.push(']');
    }

    fn finish(mut self) {
        if self.n_members > 0 {
            self.newline(self.depth);
        }
        self.out.push('}');
    }
}

/// The protojson text of an environment snapshot, compact or indented.
pub(crate) fn environment_json(env: &EnvironmentRecord, indent: Option<usize>) -> String {
    let mut out = String::new();
    let mut w = ObjectWriter::new(&mut out, indent, 0);
    w.string("os", &env.os);
    w.string("python", &env.python);
    if let Some(ts) = &env.started_at {
        w.key("startedAt");
        write_str(w.out, &rfc3339(ts.seconds, ts.nanos));
    }
    w.string("docker", &env.docker);
    w.strings("args", &env.args);
    w.string("program", &env.program);
    w.string("codePath", &env.code_path);
    w.string("codePathLocal", &env.code_path_local);
    if let Some(git) = &env.git {
        w.object("git", |o| git_json(o, git));
    }
    w.string("email", &env.email);
    w.string("root", &env.root);
    w.string("host", &env.host);
    w.string("username", &env.username);
    w.string("executable", &env.executable);
    w.string("colab", &env.colab);
    w.u32("cpu_count", env.cpu_count);
    w.u32("cpu_count_logical", env.cpu_count_logical);
    w.string("gpu", &env.gpu_type);
    w.u32("gpu_count", env.gpu_count);
    if !env.disk.is_empty() {
        w.object("disk", |o| {
            for (path, disk) in &env.disk {
                o.key(path);
                let mut inner = ObjectWriter::new(o.out, o.indent, o.depth + 1);
                inner.u64("total", disk.total);
                inner.u64("used", disk.used);
                inner.finish();
            }
        });
    }
    if let Some(memory) = &env.memory {
        w.object("memory", |o| o.u64("total", memory.total));
    }
    if let Some(cpu) = &env.cpu {
        w.object("cpu", |o| {
            o.u32("count", cpu.count);
            o.u32("countLogical", cpu.count_logical);
            o.string("model", &cpu.model);
        });
    }
    if let Some(apple) = &env.apple {
        w.object("apple", |o| {
            o.string("name", &apple.name);
            o.u32("ecpuCores", apple.ecpu_cores);
            o.u32("pcpuCores", apple.pcpu_cores);
            o.u32("gpuCores", apple.gpu_cores);
            o.u32("memoryGb", apple.memory_gb);
            o.u64("swapTotalBytes", apple.swap_total_bytes);
            o.u64("ramTotalBytes", apple.ram_total_bytes);
            o.string("macModel", &apple.mac_model);
        });
    }
    w.objects("gpu_nvidia", &env.gpu_nvidia, |o, g| {
        o.string("name", &g.name);
        o.u64("memoryTotal", g.memory_total);
        o.u32("cudaCores", g.cuda_cores);
        o.string("architecture", &g.architecture);
        o.string("uuid", &g.uuid);
        o.string("pciBusId", &g.pci_bus_id);
        if let Some(numa) = g.numa_node {
            o.key("numaNode");
            o.out.push_str(&numa.to_string());
        }
    });
    w.string("cudaVersion", &env.cuda_version);
    w.objects("gpu_amd", &env.gpu_amd, |o, g| {
        o.string("id", &g.id);
        o.string("uniqueId", &g.unique_id);
        o.string("vbiosVersion", &g.vbios_version);
        o.string("performanceLevel", &g.performance_level);
        o.string("gpuOverdrive", &g.gpu_overdrive);
        o.string("gpuMemoryOverdrive", &g.gpu_memory_overdrive);
        o.string("maxPower", &g.max_power);
        o.string("series", &g.series);
        o.string("model", &g.model);
        o.string("vendor", &g.vendor);
        o.string("sku", &g.sku);
        o.string("sclkRange", &g.sclk_range);
        o.string("mclkRange", &g.mclk_range);
    });
    if !env.slurm.is_empty() {
        w.object("slurm", |o| {
            for (k, v) in &env.slurm {
                o.key(k);
                write_str(o.out, v);
            }
        });
    }
    if let Some(t) = &env.trainium {
        w.object("trainium", |o| {
            o.string("name", &t.name);
            o.string("vendor", &t.vendor);
            o.u32("neuronDeviceCount", t.neuron_device_count);
            o.u32("neuroncorePerDeviceCount", t.neuroncore_per_device_count);
        });
    }
    if let Some(t) = &env.tpu {
        w.object("tpu", |o| {
            o.string("name", &t.name);
            o.u32("hbmGib", t.hbm_gib);
            o.u32("devicesPerChip", t.devices_per_chip);
            o.u32("count", t.count);
        });
    }
    if let Some(c) = &env.coreweave {
        w.object("coreweave", |o| {
            o.string("clusterName", &c.cluster_name);
            o.string("orgId", &c.org_id);
            o.string("region", &c.region);
        });
    }
    w.string("writerId", &env.writer_id);
    w.finish();
    out
}

fn git_json(o: &mut ObjectWriter<'_>, git: &GitRepoRecord) {
    o.string("remote", &git.remote_url);
    o.string("commit", &git.commit);
}

/// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protojson writes timestamps; times
/// protojson cannot write (outside years 1 to 9999) give the Unix epoch's text.
pub(crate) fn rfc3339(seconds: i64, nanos: i32) -> String {
    let mut out = String::new();
    if !wandb_format::time::write_rfc3339(&mut out, seconds, nanos.clamp(0, 999_999_999)) {
        out.clear();
        wandb_format::time::write_rfc3339(&mut out, 0, 0);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wandb_format::proto::{DiskInfo, MemoryInfo};

    #[test]
    fn environment_protojson() {
        let mut env = EnvironmentRecord {
            os: "Linux".into(),
            args: vec!["--x".into()],
            cpu_count: 2,
            memory: Some(MemoryInfo { total: 25 }),
            writer_id: "w1".into(),
            started_at: Some(prost_types::Timestamp {
                seconds: 1_795_317_678,
                nanos: 292_427_000,
            }),
            ..Default::default()
        };
        env.disk.insert("/".into(), DiskInfo { total: 9, used: 1 });
        assert_eq!(
            environment_json(&env, None),
            r#"{"os":"Linux","startedAt":"2026-11-22T03:21:18.292427Z","args":["--x"],"cpu_count":2,"disk":{"/":{"total":"9","used":"1"}},"memory":{"total":"25"},"writerId":"w1"}"#
        );
        let pretty = environment_json(&env, Some(2));
        let parsed: serde_json::Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(parsed["disk"]["/"]["used"], "1");
        assert!(pretty.contains("\n  \"os\": \"Linux\""));
    }
}

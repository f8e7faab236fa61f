//! NVIDIA GPU metrics through NVML, loaded at run time with `nvml-wrapper` (`libnvidia-ml.so.1`
//! on Linux, `nvml.dll` on Windows).
//!
//! Nothing links against the driver: on a machine without it, [`NvidiaGpus::init`] fails once,
//! cheaply (a failed `dlopen`), and the monitor reports no GPU keys. Initialising NVML on a
//! machine that has GPUs can take from tens of milliseconds to seconds, so it happens on the
//! sampler thread, never on the caller's. Each query that a GPU does not support (power on
//! some consumer cards, for instance) drops just that key.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use wandb_format::proto::{EnvironmentRecord, GpuNvidiaInfo};

/// An initialised NVML library and the number of GPUs it saw.
pub(crate) struct NvidiaGpus {
    nvml: Nvml,
    count: u32,
}

impl std::fmt::Debug for NvidiaGpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvidiaGpus")
            .field("count", &self.count)
            .finish()
    }
}

impl NvidiaGpus {
    /// Loads and initialises NVML; `None` when the library or the driver is absent, or when
    /// there is no GPU.
    pub(crate) fn init() -> Option<Self> {
        let nvml = match Nvml::init() {
            Ok(nvml) => nvml,
            Err(error) => {
                log::debug!("NVIDIA GPU monitoring disabled: {error}");
                return None;
            }
        };
        let count = nvml.device_count().ok().filter(|count| *count > 0)?;
        Some(Self { nvml, count })
    }

    /// Appends `gpu.<i>.*` metrics for every GPU.
    pub(crate) fn sample(&self, out: &mut Vec<(String, f64)>) {
        for index in 0..self.count {
            let Ok(device) = self.nvml.device_by_index(index) else {
                continue;
            };
            let key = |name: &str| format!("gpu.{index}.{name}");
            if let Ok(utilization) = device.utilization_rates() {
                out.push((key("gpu"), f64::from(utilization.gpu)));
                out.push((key("memory"), f64::from(utilization.memory)));
            }
            if let Ok(memory) = device.memory_info() {
                if memory.total > 0 {
                    out.push((
                        key("memoryAllocated"),
                        memory.used as f64 / memory.total as f64 * 100.0,
                    ));
                }
                out.push((key("memoryAllocatedBytes"), memory.used as f64));
            }
            if let Ok(celsius) = device.temperature(TemperatureSensor::Gpu) {
                out.push((key("temp"), f64::from(celsius)));
            }
            let power_mw = device.power_usage().ok();
            let limit_mw = device.enforced_power_limit().ok();
            if let Some(power) = power_mw {
                out.push((key("powerWatts"), f64::from(power) / 1000.0));
            }
            if let Some(limit) = limit_mw {
                out.push((key("enforcedPowerLimitWatts"), f64::from(limit) / 1000.0));
            }
            if let (Some(power), Some(limit)) = (power_mw, limit_mw)
                && limit > 0
            {
                out.push((
                    key("powerPercent"),
                    f64::from(power) / f64::from(limit) * 100.0,
                ));
            }
        }
    }

    /// The GPU part of the environment record: one `gpu_nvidia` entry per GPU, `gpu` (the first
    /// GPU's name), `gpu_count` and `cuda_version` (the driver's, e.g. `12.4`).
    pub(crate) fn environment(&self, writer_id: &str) -> EnvironmentRecord {
        let mut record = EnvironmentRecord {
            writer_id: writer_id.to_owned(),
            gpu_count: self.count,
            ..EnvironmentRecord::default()
        };
        if let Ok(version) = self.nvml.sys_cuda_driver_version() {
            record.cuda_version = format!(
                "{}.{}",
                nvml_wrapper::cuda_driver_version_major(version),
                nvml_wrapper::cuda_driver_version_minor(version)
            );
        }
        for index in 0..self.count {
            let Ok(device) = self.nvml.device_by_index(index) else {
                continue;
            };
            let info = GpuNvidiaInfo {
                name: device.name().unwrap_or_default(),
                memory_total: device.memory_info().map(|m| m.total).unwrap_or(0),
                cuda_cores: device.num_cores().unwrap_or(0),
                architecture: device
                    .architecture()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                uuid: device.uuid().unwrap_or_default(),
                pci_bus_id: device.pci_info().map(|p| p.bus_id).unwrap_or_default(),
                numa_node: device.numa_node_id().ok(),
            };
            if record.gpu_type.is_empty() {
                record.gpu_type.clone_from(&info.name);
            }
            record.gpu_nvidia.push(info);
        }
        record
    }
}

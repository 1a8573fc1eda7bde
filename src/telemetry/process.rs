//! `process_*` metrics read from `/proc/self` at scrape time (Linux), named as every Prometheus
//! client library names them.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug)]
pub struct ProcessCollector {
    clock_ticks_per_second: f64,
    page_size_bytes: f64,
}

impl ProcessCollector {
    pub fn new() -> ProcessCollector {
        // Linux's USER_HZ and page size are 100 and 4096 on every architecture Tocsin targets;
        // reading them needs libc's sysconf, which the workspace forbids (no unsafe).
        ProcessCollector {
            clock_ticks_per_second: 100.0,
            page_size_bytes: 4096.0,
        }
    }
}

/// Fields of `/proc/self/stat` after the command name, which may itself contain spaces.
fn stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

fn boot_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Field numbers are those of proc(5) minus 3 (pid, comm and state come before).
        if let Some(fields) = stat_fields() {
            let number = |index: usize| {
                fields
                    .get(index)
                    .and_then(|field| field.parse::<f64>().ok())
            };
            if let (Some(user), Some(system)) = (number(11), number(12)) {
                let seconds = (user + system) / self.clock_ticks_per_second;
                ConstCounter::new(seconds).encode(encoder.encode_descriptor(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds",
                    None,
                    MetricType::Counter,
                )?)?;
            }
            if let Some(virtual_bytes) = number(20) {
                gauge(
                    &mut encoder,
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes",
                    virtual_bytes,
                )?;
            }
            if let Some(resident_pages) = number(21) {
                gauge(
                    &mut encoder,
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes",
                    resident_pages * self.page_size_bytes,
                )?;
            }
            if let (Some(start_ticks), Some(boot)) = (number(19), boot_time_seconds()) {
                gauge(
                    &mut encoder,
                    "process_start_time_seconds",
                    "Start time of the process since the Unix epoch in seconds",
                    boot + start_ticks / self.clock_ticks_per_second,
                )?;
            }
        }
        if let Some(open) = open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                open,
            )?;
        }
        if let Some(max) = max_fds() {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                max,
            )?;
        }
        Ok(())
    }
}

//! Tocsin's own metrics, served on `/metrics`: build info, reloads, HTTP requests and the
//! process's CPU, memory and file descriptors. Names are `tocsin_*` with units, except the
//! `process_*` family, whose standard names dashboards already use.

mod process;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRequestLabels {
    pub handler: String,
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerLabels {
    pub handler: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    rustc_version: &'static str,
}

/// Request durations from 1 ms to about 30 s.
const HTTP_DURATION_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

pub struct Telemetry {
    /// Behind a lock so that parts created after start-up (the alerting runtime opens with the
    /// storage) can register their collectors.
    registry: Mutex<Registry>,
    http_requests: Family<HttpRequestLabels, Counter>,
    http_request_duration: Family<HandlerLabels, Histogram>,
    config_last_reload_successful: Gauge,
    config_last_reload_success_timestamp: Gauge<f64, AtomicU64>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let tocsin = registry.sub_registry_with_prefix("tocsin");
        tocsin.register(
            "build",
            "A metric with a constant '1' value labelled by the version and revision Tocsin was built from",
            Info::new(BuildLabels {
                version: crate::build_info::VERSION,
                revision: crate::build_info::REVISION,
                branch: crate::build_info::BRANCH,
                rustc_version: crate::build_info::RUSTC_VERSION,
            }),
        );
        let http_requests = Family::<HttpRequestLabels, Counter>::default();
        tocsin.register(
            "http_requests",
            "HTTP requests served, by handler and status code",
            http_requests.clone(),
        );
        let http_request_duration =
            Family::<HandlerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(HTTP_DURATION_BUCKETS)
            });
        tocsin.register_with_unit(
            "http_request_duration",
            "Time spent serving HTTP requests, by handler",
            Unit::Seconds,
            http_request_duration.clone(),
        );
        let config_last_reload_successful = Gauge::default();
        tocsin.register(
            "config_last_reload_successful",
            "Whether the last configuration reload attempt was successful (1) or not (0)",
            config_last_reload_successful.clone(),
        );
        let config_last_reload_success_timestamp = Gauge::<f64, AtomicU64>::default();
        tocsin.register_with_unit(
            "config_last_reload_success_timestamp",
            "Time of the last successful configuration reload, in seconds since the Unix epoch",
            Unit::Seconds,
            config_last_reload_success_timestamp.clone(),
        );
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        Telemetry {
            registry: Mutex::new(registry),
            http_requests,
            http_request_duration,
            config_last_reload_successful,
            config_last_reload_success_timestamp,
        }
    }

    /// Adds metrics read from another part of the node at scrape time.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry().register_collector(collector);
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record_reload(&self, successful: bool, at: jiff::Timestamp) {
        self.config_last_reload_successful
            .set(i64::from(successful));
        if successful {
            self.config_last_reload_success_timestamp
                .set(at.as_millisecond() as f64 / 1000.0);
        }
    }

    /// Whether the last reload attempt succeeded, and when the last successful one was
    /// (seconds since the epoch): what `/api/v1/status/runtimeinfo` reports.
    pub fn last_reload(&self) -> (bool, f64) {
        (
            self.config_last_reload_successful.get() != 0,
            self.config_last_reload_success_timestamp.get(),
        )
    }

    pub fn record_http_request(&self, handler: &str, code: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpRequestLabels {
                handler: handler.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.http_request_duration
            .get_or_create(&HandlerLabels {
                handler: handler.to_string(),
            })
            .observe(seconds);
    }

    /// The Prometheus text format 0.0.4, which every scraper reads.
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a metric's name.
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry())
        {
            tracing::error!(%error, "cannot encode metrics");
        }
        out
    }

    /// OpenMetrics 1.0 text, for scrapers that ask for it.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry()) {
            tracing::error!(%error, "cannot encode metrics");
        }
        out
    }
}

pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_documented_names() {
        let telemetry = Telemetry::new();
        telemetry.record_reload(false, jiff::Timestamp::UNIX_EPOCH);
        telemetry.record_http_request("/-/healthy", 200, 0.002);
        let text = telemetry.encode_text();
        for expected in [
            "tocsin_build_info{",
            "tocsin_config_last_reload_successful 0",
            "tocsin_http_requests_total{handler=\"/-/healthy\",code=\"200\"} 1",
            "tocsin_http_request_duration_seconds_bucket{",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(telemetry.encode_openmetrics().ends_with("# EOF\n"));
    }
}

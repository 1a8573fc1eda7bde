//! Remote read's numbers under Prometheus 2.42's names, so its dashboards work unchanged.
//!
//! Client, per endpoint (`remote_name`, `url`):
//! - `prometheus_remote_storage_read_queries_total{code}`: requests that got an answer, by
//!   HTTP status (a request that got none — network error, timeout — is not counted, as in
//!   Prometheus);
//! - `prometheus_remote_storage_remote_read_queries`: requests in flight;
//! - `prometheus_remote_storage_read_request_duration_seconds`: time until the answer's
//!   status and headers arrived.
//!
//! Server: `prometheus_api_remote_read_queries`, the `POST /api/v1/read` requests being
//! served (admitted past `--storage.remote.read-concurrent-limit`, until their answer is
//! written out).
//!
//! An endpoint's numbers survive reloads that keep its name and URL; those of endpoints no
//! longer configured are dropped.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Prometheus's `read_request_duration_seconds` buckets: the default ones, then 25 s and 60 s.
const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One endpoint's numbers.
#[derive(Debug)]
pub struct EndpointMetrics {
    pub remote_name: String,
    pub url: String,
    in_flight: AtomicI64,
    answered: Mutex<BTreeMap<u16, u64>>,
    duration: Histogram,
}

impl EndpointMetrics {
    fn new(remote_name: String, url: String) -> EndpointMetrics {
        EndpointMetrics {
            remote_name,
            url,
            in_flight: AtomicI64::new(0),
            answered: Mutex::new(BTreeMap::new()),
            duration: Histogram::new(DURATION_BUCKETS),
        }
    }

    /// Counts a request in flight until the guard is dropped (also when the request is cut
    /// by its timeout).
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// An answer arrived with `status` after `seconds`.
    pub fn answered(&self, status: u16, seconds: f64) {
        self.duration.observe(seconds);
        *lock(&self.answered).entry(status).or_insert(0) += 1;
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Answers by status so far.
    pub fn answers(&self) -> BTreeMap<u16, u64> {
        lock(&self.answered).clone()
    }
}

/// Decrements an in-flight gauge when dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request admitted by the server, counted in `prometheus_api_remote_read_queries` until
/// dropped; owns what it needs so a streamed answer can carry it.
#[derive(Debug)]
pub struct ServerQuery {
    metrics: Arc<ReadMetrics>,
}

impl Drop for ServerQuery {
    fn drop(&mut self) {
        self.metrics.server_queries.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every endpoint's numbers and the server's.
#[derive(Debug, Default)]
pub struct ReadMetrics {
    endpoints: Mutex<Vec<Arc<EndpointMetrics>>>,
    server_queries: AtomicI64,
}

impl ReadMetrics {
    /// The numbers of the endpoint named `remote_name` at `url`: the same ones as before a
    /// reload that kept both.
    pub fn endpoint(&self, remote_name: &str, url: &str) -> Arc<EndpointMetrics> {
        let mut endpoints = lock(&self.endpoints);
        if let Some(known) = endpoints
            .iter()
            .find(|known| known.remote_name == remote_name && known.url == url)
        {
            return Arc::clone(known);
        }
        let created = Arc::new(EndpointMetrics::new(
            remote_name.to_string(),
            url.to_string(),
        ));
        endpoints.push(Arc::clone(&created));
        created
    }

    /// Keeps only the endpoints in `current` (after a reload).
    pub fn retain(&self, current: &[Arc<EndpointMetrics>]) {
        lock(&self.endpoints).retain(|known| current.iter().any(|kept| Arc::ptr_eq(kept, known)));
    }

    /// Counts a request the server admitted, until the returned guard is dropped.
    pub fn server_query(self: &Arc<Self>) -> ServerQuery {
        self.server_queries.fetch_add(1, Ordering::Relaxed);
        ServerQuery {
            metrics: Arc::clone(self),
        }
    }

    pub fn server_queries(&self) -> i64 {
        self.server_queries.load(Ordering::Relaxed)
    }

    /// Writes every family.
    pub fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let endpoints = lock(&self.endpoints).clone();
        let labels = |endpoint: &EndpointMetrics| {
            vec![
                ("remote_name", endpoint.remote_name.clone()),
                ("url", endpoint.url.clone()),
            ]
        };
        {
            let mut family = encoder.encode_descriptor(
                "prometheus_remote_storage_read_queries",
                "The total number of remote read queries.",
                None,
                MetricType::Counter,
            )?;
            for endpoint in &endpoints {
                for (code, count) in endpoint.answers() {
                    let mut with_code = labels(endpoint);
                    with_code.push(("code", code.to_string()));
                    ConstCounter::new(count).encode(family.encode_family(&with_code)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "prometheus_remote_storage_remote_read_queries",
                "The number of in-flight remote read queries.",
                None,
                MetricType::Gauge,
            )?;
            for endpoint in &endpoints {
                ConstGauge::new(endpoint.in_flight())
                    .encode(family.encode_family(&labels(endpoint))?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "prometheus_remote_storage_read_request_duration_seconds",
                "Histogram of the latency for remote read requests.",
                None,
                MetricType::Histogram,
            )?;
            for endpoint in &endpoints {
                endpoint
                    .duration
                    .encode(family.encode_family(&labels(endpoint))?)?;
            }
        }
        ConstGauge::new(self.server_queries()).encode(encoder.encode_descriptor(
            "prometheus_api_remote_read_queries",
            "The current number of remote read queries being executed or waiting.",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

/// The collector the node registers: remote read's families at scrape time.
#[derive(Debug)]
pub struct ReadMetricsCollector(pub Arc<ReadMetrics>);

impl prometheus_client::collector::Collector for ReadMetricsCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_their_numbers_across_reloads_and_families_are_named_as_prometheus() {
        let metrics = Arc::new(ReadMetrics::default());
        let a = metrics.endpoint("a", "http://a/read");
        a.answered(200, 0.02);
        a.answered(503, 0.5);
        let guard = a.start();
        assert_eq!(a.in_flight(), 1);
        drop(guard);
        assert_eq!(a.in_flight(), 0);
        let again = metrics.endpoint("a", "http://a/read");
        assert!(Arc::ptr_eq(&a, &again));
        let b = metrics.endpoint("b", "http://b/read");
        a.answered(200, 0.01);
        metrics.retain(std::slice::from_ref(&b));
        // `a` was answered before removal: a reload dropping it removes its numbers.
        b.answered(404, 0.2);
        let admitted = metrics.server_query();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ReadMetricsCollector(Arc::clone(&metrics))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("prometheus_api_remote_read_queries 1\n"),
            "{text}"
        );
        assert!(
            !text.contains("remote_name=\"a\""),
            "a was removed:\n{text}"
        );
        assert!(text.contains(
            "prometheus_remote_storage_remote_read_queries{remote_name=\"b\",url=\"http://b/read\"} 0"
        ));
        // The text format names the counter's family without `_total`, its samples with it.
        assert!(
            text.contains("# TYPE prometheus_remote_storage_read_queries counter"),
            "{text}"
        );
        assert!(
            text.contains("prometheus_remote_storage_read_request_duration_seconds_count{remote_name=\"b\",url=\"http://b/read\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("prometheus_remote_storage_read_queries_total{remote_name=\"b\",url=\"http://b/read\",code=\"404\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("le=\"60.0\""),
            "Prometheus's buckets end at 60 s:\n{text}"
        );
        drop(admitted);
        assert_eq!(metrics.server_queries(), 0);
        // Counted by status.
        let c = metrics.endpoint("c", "http://c/read");
        c.answered(200, 0.1);
        c.answered(200, 0.1);
        assert_eq!(c.answers(), BTreeMap::from([(200, 2)]));
    }
}

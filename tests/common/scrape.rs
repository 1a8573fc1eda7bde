//! For the tests that drive a `ScrapeManager` in process against a temporary TSDB.

use std::time::Duration;
use tocsin::config::Config;
use tocsin::config::prometheus::ScrapeConfig;
use tocsin::ingest::scrape::STALE_NAN_BITS;
use tocsin::tsdb::{Matcher, Tsdb};

/// The scrape jobs of a `prometheus.yml` document.
pub fn jobs(yaml: &str) -> Vec<ScrapeConfig> {
    let mut config: Config = tocsin::config::parse_document(yaml, "p.yml").unwrap();
    config.finish().unwrap();
    config
        .scrape_configs
        .into_iter()
        .map(|job| job.value)
        .collect()
}

/// Every sample of the one series matching `name` and the label pairs (none if no series).
pub fn samples(tsdb: &Tsdb, name: &str, labels: &[(&str, &str)]) -> Vec<(i64, f64)> {
    let mut matchers = vec![Matcher::equal("__name__", name)];
    matchers.extend(labels.iter().map(|(n, v)| Matcher::equal(*n, *v)));
    let series: Vec<_> = tsdb
        .querier(i64::MIN, i64::MAX)
        .select(&matchers)
        .unwrap()
        .collect();
    assert!(
        series.len() <= 1,
        "{name} {labels:?}: {} series",
        series.len()
    );
    series
        .first()
        .map(|series| series.samples().collect())
        .unwrap_or_default()
}

pub fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// Polls `done` every 50 ms for up to 10 s.
pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

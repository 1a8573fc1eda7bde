//! The scrape loop's series cache (exposition text → labels and series reference): a
//! `metric_relabel_configs` change on reload is applied to series the cache already knew (they
//! are not served with their old labels), the series under the old labels get a stale marker,
//! and a series the target stops exposing gets its stale marker while the others go on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scrape::{is_stale, jobs, samples, wait_for};
use common::target::serve_router;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tocsin::ingest::scrape::{ScrapeManager, ScrapeOptions};
use tocsin::tsdb::{Tsdb, TsdbOptions};

/// Serves two series on `/metrics`; `cache_gone` only until `trimmed` is set.
async fn serve(trimmed: Arc<AtomicBool>) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let mut text = String::from("# TYPE cache_kept gauge\ncache_kept{a=\"1\"} 5\n");
            if !trimmed.load(Ordering::SeqCst) {
                text.push_str("# TYPE cache_gone gauge\ncache_gone{a=\"2\"} 6\n");
            }
            async move { text }
        }),
    );
    serve_router(app).await
}

fn config(address: std::net::SocketAddr, stage: &str) -> String {
    format!(
        concat!(
            "scrape_configs:\n",
            "- job_name: cache\n",
            "  scrape_interval: 1s\n",
            "  scrape_timeout: 1s\n",
            "  static_configs:\n",
            "  - targets: ['{address}']\n",
            "  metric_relabel_configs:\n",
            "  - target_label: stage\n",
            "    replacement: {stage}\n",
        ),
        address = address,
        stage = stage
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relabel_reload_and_vanished_series_are_not_served_from_the_cache() {
    let trimmed = Arc::new(AtomicBool::new(false));
    let address = serve(Arc::clone(&trimmed)).await;
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Arc::new(Tsdb::open(folder.path(), TsdbOptions::default()).unwrap());
    let manager = ScrapeManager::new(Arc::clone(&tsdb), ScrapeOptions::default()).unwrap();
    manager
        .apply_config(&jobs(&config(address, "one")), folder.path())
        .unwrap();
    wait_for("three scrapes", || manager.scrapes("cache") >= 3).await;
    let kept_one = samples(&tsdb, "cache_kept", &[("stage", "one"), ("a", "1")]);
    assert!(kept_one.len() >= 3, "{kept_one:?}");
    assert!(kept_one.iter().all(|&(_, v)| v == 5.0), "{kept_one:?}");

    // The target stops exposing `cache_gone`: one stale marker at the next scrape, and the
    // cached `cache_kept` goes on.
    trimmed.store(true, Ordering::SeqCst);
    let seen = manager.scrapes("cache");
    wait_for("two more scrapes", || manager.scrapes("cache") >= seen + 2).await;
    let gone = samples(&tsdb, "cache_gone", &[("stage", "one")]);
    assert!(is_stale(gone.last().unwrap().1), "{gone:?}");
    assert_eq!(gone.iter().filter(|(_, v)| is_stale(*v)).count(), 1);
    let kept_one = samples(&tsdb, "cache_kept", &[("stage", "one")]);
    assert!(!is_stale(kept_one.last().unwrap().1), "{kept_one:?}");

    // Reload with another relabeling: the same exposition line now has other labels.
    manager
        .apply_config(&jobs(&config(address, "two")), folder.path())
        .unwrap();
    wait_for("samples under the new labels", || {
        samples(&tsdb, "cache_kept", &[("stage", "two")]).len() >= 2
    })
    .await;
    let kept_two = samples(&tsdb, "cache_kept", &[("stage", "two"), ("a", "1")]);
    assert!(kept_two.iter().all(|&(_, v)| v == 5.0), "{kept_two:?}");
    // The old labels get a stale marker and nothing after it.
    wait_for("a stale marker under the old labels", || {
        samples(&tsdb, "cache_kept", &[("stage", "one")])
            .last()
            .is_some_and(|(_, v)| is_stale(*v))
    })
    .await;
    let seen = manager.scrapes("cache");
    wait_for("two more scrapes", || manager.scrapes("cache") >= seen + 2).await;
    let kept_one = samples(&tsdb, "cache_kept", &[("stage", "one")]);
    assert!(is_stale(kept_one.last().unwrap().1), "{kept_one:?}");
    let first_two = kept_two.first().unwrap().0;
    assert!(
        kept_one.iter().all(|&(t, v)| t < first_two || is_stale(v)),
        "no sample under the old labels after the reload: {kept_one:?}"
    );
    manager.stop().await;
}

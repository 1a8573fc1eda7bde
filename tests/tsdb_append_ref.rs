//! `Appender::append_ref`, the append path by series reference: a reference the head does not
//! have is a clear error (never a panic, never counted as a refusal); refusals by reference
//! are counted as by labels; and a batch whose new series head compactions removed before it
//! committed (even two of them) still lands, queryable and replayed after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use tocsin::tsdb::{AppendError, Labels, MatchKind, Matcher, Tsdb, TsdbOptions};

/// A small chunk range, so a few samples make the head compactable.
const RANGE: i64 = 10_000;

fn options() -> TsdbOptions {
    TsdbOptions {
        chunk_range_ms: RANGE,
        retention_ms: None,
        ..TsdbOptions::default()
    }
}

fn samples(tsdb: &Tsdb, name: &str) -> BTreeMap<i64, f64> {
    tsdb.querier(i64::MIN, i64::MAX)
        .select(&[Matcher::new(MatchKind::Equal, "__name__", name).unwrap()])
        .unwrap()
        .flat_map(|s| s.samples().collect::<Vec<_>>())
        .collect()
}

fn commit_one(tsdb: &Tsdb, labels: &Labels, t: i64, v: f64) -> u64 {
    let mut appender = tsdb.appender();
    let series_ref = appender.append(labels, t, v).unwrap();
    appender.commit().unwrap();
    series_ref
}

/// (out of order, duplicate, out of bounds) refusals counted so far.
fn refusals(tsdb: &Tsdb) -> (u64, u64, u64) {
    let counters = tsdb.append_counters();
    (
        counters.out_of_order.load(Ordering::Relaxed),
        counters.duplicate.load(Ordering::Relaxed),
        counters.out_of_bounds.load(Ordering::Relaxed),
    )
}

#[test]
fn unknown_references_are_an_error_not_a_panic() {
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(folder.path(), options()).unwrap();
    let mut appender = tsdb.appender();
    for unknown in [0, 1, 12_345, u64::MAX] {
        assert_eq!(
            appender.append_ref(unknown, 1_000, 1.0),
            Err(AppendError::UnknownSeries)
        );
    }
    assert!(appender.is_empty());
    let stats = appender.commit().unwrap();
    assert_eq!((stats.appended, stats.rejected), (0, 0));
    assert_eq!(
        refusals(&tsdb),
        (0, 0, 0),
        "a stale reference is no refusal"
    );
}

#[test]
fn refusals_by_reference_are_counted_like_refusals_by_labels() {
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(folder.path(), options()).unwrap();
    let labels = Labels::new([("__name__", "m")]);
    let series_ref = commit_one(&tsdb, &labels, 1_000, 1.0);

    let mut appender = tsdb.appender();
    assert_eq!(
        appender.append_ref(series_ref, 500, 1.0),
        Err(AppendError::OutOfOrder)
    );
    assert_eq!(
        appender.append_ref(series_ref, 1_000, 2.0),
        Err(AppendError::Duplicate)
    );
    // The same sample again is dropped silently, as Prometheus drops it.
    assert_eq!(appender.append_ref(series_ref, 1_000, 1.0), Ok(()));
    assert!(appender.is_empty());
    // Inside one batch: a sample older than the batch's own newest one is out of order, one
    // at its timestamp with another value a duplicate.
    appender.append_ref(series_ref, 3_000, 3.0).unwrap();
    assert_eq!(
        appender.append_ref(series_ref, 2_000, 2.0),
        Err(AppendError::OutOfOrder)
    );
    assert_eq!(
        appender.append_ref(series_ref, 3_000, 4.0),
        Err(AppendError::Duplicate)
    );
    // By labels, the same series gets the same reference and checks.
    assert_eq!(appender.append(&labels, 4_000, 4.0), Ok(series_ref));
    assert_eq!(
        appender.append(&labels, 3_500, 4.0),
        Err(AppendError::OutOfOrder)
    );
    let stats = appender.commit().unwrap();
    assert_eq!((stats.appended, stats.rejected), (2, 0));
    assert_eq!(refusals(&tsdb), (3, 2, 0));
    assert_eq!(
        samples(&tsdb, "m"),
        BTreeMap::from([(1_000, 1.0), (3_000, 3.0), (4_000, 4.0)])
    );

    // A sample accepted by reference that a commit in between made out of order is refused
    // at commit, counted, and not applied.
    let mut late = tsdb.appender();
    late.append_ref(series_ref, 5_000, 5.0).unwrap();
    let mut early = tsdb.appender();
    early.append_ref(series_ref, 6_000, 6.0).unwrap();
    early.commit().unwrap();
    let stats = late.commit().unwrap();
    assert_eq!((stats.appended, stats.rejected), (0, 1));
    assert_eq!(refusals(&tsdb), (4, 2, 0));
    assert_eq!(samples(&tsdb, "m").get(&5_000), None);

    // Replay gives the same series.
    let before = samples(&tsdb, "m");
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), options()).unwrap();
    assert_eq!(samples(&tsdb, "m"), before);
}

#[test]
fn a_reference_whose_series_a_compaction_removed_is_unknown_then_recreated_by_labels() {
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(folder.path(), options()).unwrap();
    let gone = Labels::new([("__name__", "gone")]);
    let driver = Labels::new([("__name__", "driver")]);
    let gone_ref = commit_one(&tsdb, &gone, 1_000, 1.0);
    commit_one(&tsdb, &driver, 1_000, 1.0);
    commit_one(&tsdb, &driver, 17_000, 2.0);
    let report = tsdb.compact().unwrap();
    assert_eq!(report.head_blocks, 1);
    // `gone` had samples only in the persisted range: the head dropped it.
    let mut appender = tsdb.appender();
    assert_eq!(
        appender.append_ref(gone_ref, 17_000, 3.0),
        Err(AppendError::UnknownSeries)
    );
    let again = appender.append(&gone, 17_000, 3.0).unwrap();
    appender.append_ref(again, 18_000, 4.0).unwrap();
    appender.commit().unwrap();
    let expected = BTreeMap::from([(1_000, 1.0), (17_000, 3.0), (18_000, 4.0)]);
    assert_eq!(samples(&tsdb, "gone"), expected);
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), options()).unwrap();
    assert_eq!(samples(&tsdb, "gone"), expected);
}

#[test]
fn a_batch_outliving_two_compactions_that_removed_its_new_series_still_lands() {
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(folder.path(), options()).unwrap();
    let driver = Labels::new([("__name__", "driver")]);
    let fresh = Labels::new([("__name__", "fresh")]);
    commit_one(&tsdb, &driver, 1_000, 1.0);
    commit_one(&tsdb, &driver, 17_000, 2.0);

    // The batch creates `fresh` (no samples in the head yet) and holds it.
    let mut batch = tsdb.appender();
    let fresh_ref = batch.append(&fresh, 100_000, 7.0).unwrap();
    batch.append_ref(fresh_ref, 101_000, 8.0).unwrap();

    // Two head compactions run meanwhile; the first removes the empty `fresh`.
    assert_eq!(tsdb.compact().unwrap().head_blocks, 1);
    commit_one(&tsdb, &driver, 33_000, 3.0);
    assert_eq!(tsdb.compact().unwrap().head_blocks, 1);
    let (series_before, _) = tsdb.head_stats();

    let stats = batch.commit().unwrap();
    assert_eq!((stats.appended, stats.rejected), (2, 0));
    assert_eq!(tsdb.head_stats().0, series_before + 1, "`fresh` is back");
    let expected = BTreeMap::from([(100_000, 7.0), (101_000, 8.0)]);
    assert_eq!(samples(&tsdb, "fresh"), expected);
    assert_eq!(refusals(&tsdb), (0, 0, 0));

    // Its Series record was written again, so a restart replays it.
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), options()).unwrap();
    assert_eq!(samples(&tsdb, "fresh"), expected);
    assert_eq!(tsdb.replay_report().unknown_series_samples, 0);
    let mut appender = tsdb.appender();
    let after_restart = appender.append(&fresh, 102_000, 9.0).unwrap();
    appender.append_ref(after_restart, 103_000, 10.0).unwrap();
    assert_eq!(appender.commit().unwrap().appended, 2);
}

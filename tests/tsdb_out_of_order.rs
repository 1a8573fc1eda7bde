//! The out-of-order window (`storage.tsdb.out_of_order_time_window`): samples older than their
//! series' newest one, but at most the window behind the head's newest sample, are accepted
//! and queryable, survive a restart (the `wbl/` write-behind log), and compact into blocks
//! that Tocsin and `promtool tsdb dump` read back; older ones are refused and counted as too
//! old. Without a window nothing out of order is accepted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use tocsin::tsdb::{AppendError, Labels, MatchKind, Matcher, Tsdb, TsdbOptions};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const PROMTOOL: &str = "/usr/bin/promtool";

fn options(window: i64) -> TsdbOptions {
    TsdbOptions {
        out_of_order_window_ms: window,
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

fn append_one(tsdb: &Tsdb, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
    let mut appender = tsdb.appender();
    appender.append(labels, t, v)?;
    appender.commit().unwrap();
    Ok(())
}

#[test]
fn without_a_window_out_of_order_samples_are_refused() {
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(folder.path(), options(0)).unwrap();
    let labels = Labels::new([("__name__", "m")]);
    append_one(&tsdb, &labels, 10 * MINUTE, 1.0).unwrap();
    assert_eq!(
        append_one(&tsdb, &labels, 5 * MINUTE, 1.0),
        Err(AppendError::OutOfOrder)
    );
    assert!(!folder.path().join("wbl").exists());
    assert_eq!(
        tsdb.append_counters().out_of_order.load(Ordering::Relaxed),
        1
    );
}

#[test]
fn window_accepts_queries_replays_and_compacts() {
    let folder = tempfile::tempdir().unwrap();
    let window = 30 * MINUTE;
    let labels = Labels::new([("__name__", "m")]);
    let other = Labels::new([("__name__", "m2")]);
    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    {
        let tsdb = Tsdb::open(folder.path(), options(window)).unwrap();
        // In order every minute up to 1 h, with the odd minutes left out.
        let mut appender = tsdb.appender();
        for minute in (0..=60).step_by(2) {
            appender
                .append(&labels, minute * MINUTE, minute as f64)
                .unwrap();
            expected.insert(minute * MINUTE, minute as f64);
        }
        appender.commit().unwrap();
        // The odd minutes of the last half hour arrive late, newest first: accepted.
        let mut appender = tsdb.appender();
        for minute in (31..60).rev().step_by(2) {
            appender
                .append(&labels, minute * MINUTE, minute as f64)
                .unwrap();
            expected.insert(minute * MINUTE, minute as f64);
        }
        appender.commit().unwrap();
        // Older than the window: refused, counted as too old.
        assert_eq!(
            append_one(&tsdb, &labels, 29 * MINUTE, 29.0),
            Err(AppendError::OutOfOrder)
        );
        assert_eq!(tsdb.append_counters().too_old.load(Ordering::Relaxed), 1);
        // A duplicate of an accepted out-of-order sample is dropped, the first value kept.
        let mut appender = tsdb.appender();
        appender.append(&labels, 31 * MINUTE, -1.0).unwrap();
        let stats = appender.commit().unwrap();
        assert_eq!(stats.appended, 0);
        // A new series starts behind the head's newest sample: in order for itself.
        append_one(&tsdb, &other, 45 * MINUTE, 7.0).unwrap();
        assert_eq!(samples(&tsdb, "m"), expected);
        assert_eq!(samples(&tsdb, "m2").len(), 1);
        assert_eq!(tsdb.stats().ooo_accepted, 15);
        assert!(folder.path().join("wbl").is_dir());
    }
    // Restart: the WBL brings the out-of-order samples back.
    let tsdb = Tsdb::open(folder.path(), options(window)).unwrap();
    assert_eq!(samples(&tsdb, "m"), expected);
    assert_eq!(samples(&tsdb, "m2").len(), 1);
    assert_eq!(tsdb.stats().head_ooo_samples, 15);

    // Move the head on by 4 h so the first range is cut into a block; the out-of-order samples
    // go with it.
    let mut appender = tsdb.appender();
    for minute in (61..=300).step_by(5) {
        appender
            .append(&labels, minute * MINUTE, minute as f64)
            .unwrap();
        expected.insert(minute * MINUTE, minute as f64);
    }
    appender.commit().unwrap();
    let report = tsdb.compact().unwrap();
    assert!(report.head_blocks >= 1, "{report:?}");
    assert_eq!(samples(&tsdb, "m"), expected);
    assert_eq!(
        tsdb.stats().head_ooo_samples,
        0,
        "all out-of-order samples are in blocks"
    );

    // With a 3 h window, out of order reaches into the range already persisted (blocks end at
    // 2 h; the newest sample is at 4 h 56 m): such a sample becomes a block of its own, which
    // overlaps the older one until compaction merges them.
    drop(tsdb);
    let window = 3 * HOUR;
    let tsdb = Tsdb::open(folder.path(), options(window)).unwrap();
    let persisted = 118 * MINUTE;
    let in_head = 280 * MINUTE + 30_000;
    append_one(&tsdb, &labels, persisted, 0.5).unwrap();
    append_one(&tsdb, &labels, in_head, 0.25).unwrap();
    expected.insert(persisted, 0.5);
    expected.insert(in_head, 0.25);
    // Behind both the window and the persisted blocks: out of bounds.
    assert!(append_one(&tsdb, &labels, 100 * MINUTE, 0.5).is_err());
    assert_eq!(
        tsdb.append_counters().out_of_bounds.load(Ordering::Relaxed),
        1
    );
    assert_eq!(samples(&tsdb, "m"), expected);
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), options(window)).unwrap();
    assert_eq!(samples(&tsdb, "m"), expected, "after a restart");
    // More data, another compaction: everything still reads back, from blocks now.
    let mut appender = tsdb.appender();
    for minute in (301..=600).step_by(5) {
        appender
            .append(&labels, minute * MINUTE, minute as f64)
            .unwrap();
        expected.insert(minute * MINUTE, minute as f64);
    }
    appender.commit().unwrap();
    tsdb.compact().unwrap();
    assert_eq!(samples(&tsdb, "m"), expected);
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), options(window)).unwrap();
    assert_eq!(
        samples(&tsdb, "m"),
        expected,
        "after compaction and restart"
    );
    drop(tsdb);

    if !Path::new(PROMTOOL).exists() {
        eprintln!("SKIPPED: {PROMTOOL} is missing (install the Debian package `prometheus`)");
        return;
    }
    // promtool reads the blocks (and the head) back with every accepted sample.
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "dump", "--match={__name__=\"m\"}"])
        .arg(folder.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dumped: BTreeMap<i64, f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let rest = line.rsplit_once("} ")?.1;
            let (value, t) = rest.split_once(' ')?;
            Some((t.parse().ok()?, value.parse().ok()?))
        })
        .collect();
    assert_eq!(dumped, expected);
}

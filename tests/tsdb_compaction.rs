//! Head compaction (blocks cut from the head every 2 h once it spans 3 h, WAL checkpointed),
//! block compaction (2 h → 6 h → 18 h) and retention, end to end: blocks appear in
//! `promtool tsdb list`, and reopening the folder returns every sample still retained.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use tocsin::tsdb::wal::checkpoint::list_checkpoints;
use tocsin::tsdb::wal::segment::list_segments;
use tocsin::tsdb::{Labels, Matcher, Tsdb, TsdbOptions};

const PROMTOOL: &str = "/usr/bin/promtool";
const HOUR: i64 = 3600 * 1000;
/// A multiple of 18 h (so of 2 h and 6 h), so blocks line up with every compaction window.
const T0: i64 = 1_700_000_000_000 / (18 * HOUR) * (18 * HOUR);

type Expected = BTreeMap<Labels, Vec<(i64, u64)>>;

fn labels(index: usize) -> Labels {
    Labels::new([
        ("__name__", "compaction_test".to_string()),
        ("instance", format!("host-{index}")),
    ])
}

fn value(index: usize, t: i64) -> f64 {
    (t / 1000) as f64 + index as f64 * 0.5
}

/// Appends `[from, to)` every `step` ms for `series` series, committing every 10 minutes of
/// data and compacting after each commit when `compact` is set.
fn append_range(
    tsdb: &Tsdb,
    expected: &mut Expected,
    series: usize,
    (from, to, step): (i64, i64, i64),
    compact: bool,
) {
    let mut t = from;
    while t < to {
        let mut appender = tsdb.appender();
        let batch_end = (t + 10 * 60 * 1000).min(to);
        while t < batch_end {
            for index in 0..series {
                let v = value(index, t);
                appender.append(&labels(index), t, v).unwrap();
                expected
                    .entry(labels(index))
                    .or_default()
                    .push((t, v.to_bits()));
            }
            t += step;
        }
        let stats = appender.commit().unwrap();
        assert_eq!(stats.rejected, 0);
        if compact {
            tsdb.compact().unwrap();
        }
    }
}

fn read_all(tsdb: &Tsdb, min_time: i64) -> Expected {
    tsdb.querier(min_time, i64::MAX)
        .select(&[Matcher::equal("__name__", "compaction_test")])
        .unwrap()
        .map(|series| {
            let samples = series.samples().map(|(t, v)| (t, v.to_bits())).collect();
            (series.labels, samples)
        })
        .collect()
}

fn promtool_list(folder: &Path) -> Option<String> {
    if !Path::new(PROMTOOL).exists() {
        eprintln!("SKIPPED promtool check: {PROMTOOL} is missing");
        return None;
    }
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "list", folder.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "promtool tsdb list failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("promtool tsdb list:\n{stdout}");
    Some(stdout)
}

fn block_ranges(tsdb_folder: &Path) -> Vec<(i64, i64, u32)> {
    let mut ranges = Vec::new();
    for entry in std::fs::read_dir(tsdb_folder).unwrap() {
        let path = entry.unwrap().path();
        if path.join("meta.json").exists() {
            let meta = tocsin::tsdb::block::read_meta(&path).unwrap();
            ranges.push((meta.min_time, meta.max_time, meta.compaction.level));
        }
    }
    ranges.sort();
    ranges
}

#[test]
fn eight_hours_become_blocks_and_a_checkpoint_and_come_back() {
    let folder = tempfile::tempdir().unwrap();
    let mut expected = Expected::new();
    {
        let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
        append_range(&tsdb, &mut expected, 20, (T0, T0 + 8 * HOUR, 15_000), false);
        assert!(tsdb.stats().head_pressure > 1.0);
        let report = tsdb.compact().unwrap();
        println!("{report:?}");
        // 8 h of head: [0, 2), [2, 4), [4, 6) are cut, leaving 2 h (< 3 h) in the head.
        assert_eq!(report.head_blocks, 3);
        assert_eq!(
            report.merged_blocks, 0,
            "the newest block is never merged yet"
        );
        let checkpoint = report.checkpoint.clone().unwrap();
        assert!(checkpoint.samples_dropped > 0 && checkpoint.samples_kept > 0);
        let stats = tsdb.stats();
        println!("{stats:?}");
        assert_eq!(stats.blocks, 3);
        assert_eq!(stats.head_compactions, 3);
        assert_eq!(stats.checkpoints, 1);
        assert_eq!(stats.head_min_time, Some(T0 + 6 * HOUR));
        assert!(stats.head_pressure < 1.0);
        assert_eq!(read_all(&tsdb, i64::MIN), expected);
        // Samples behind the blocks' end are refused now.
        let mut appender = tsdb.appender();
        assert!(appender.append(&labels(0), T0 + HOUR, 1.0).is_err());
        assert_eq!(tsdb.stats().refused_out_of_bounds, 1);
        // The folder is "crashed": dropped without any shutdown.
    }
    assert_eq!(
        block_ranges(folder.path()),
        vec![
            (T0, T0 + 2 * HOUR, 1),
            (T0 + 2 * HOUR, T0 + 4 * HOUR, 1),
            (T0 + 4 * HOUR, T0 + 6 * HOUR, 1)
        ]
    );
    let wal = folder.path().join("wal");
    let checkpoints = list_checkpoints(&wal).unwrap();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    assert!(
        list_segments(&wal)
            .unwrap()
            .iter()
            .all(|&s| s > checkpoints[0].0)
    );
    if let Some(list) = promtool_list(folder.path()) {
        assert_eq!(list.lines().count(), 4, "header and three blocks");
        assert!(list.contains(&T0.to_string()));
    }
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let replay = tsdb.replay_report();
    println!("{replay:?}");
    assert_eq!(replay.checkpoint, Some(checkpoints[0].0));
    assert_eq!(replay.corruptions, vec![]);
    assert_eq!(
        replay.samples,
        20 * 2 * 3600 / 15,
        "only the head's 2 h are replayed"
    );
    assert_eq!(read_all(&tsdb, i64::MIN), expected);
    // And the head goes on from there, through another compaction.
    let mut more = expected.clone();
    append_range(
        &tsdb,
        &mut more,
        20,
        (T0 + 8 * HOUR, T0 + 10 * HOUR, 15_000),
        true,
    );
    assert_eq!(read_all(&tsdb, i64::MIN), more);
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    assert_eq!(read_all(&tsdb, i64::MIN), more);
}

#[test]
fn blocks_are_merged_into_six_and_eighteen_hours() {
    let folder = tempfile::tempdir().unwrap();
    let mut expected = Expected::new();
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    append_range(&tsdb, &mut expected, 5, (T0, T0 + 33 * HOUR, 60_000), true);
    let ranges = block_ranges(folder.path());
    println!("{ranges:?}");
    // 33 h of data: the head holds [30, 33) h; [0, 18) h was merged to level 3 through
    // three 6 h blocks, [18, 24) is a 6 h block, and the 2 h blocks after it wait (the newest
    // is never merged, and [24, 30) is not complete without it).
    let h = |k: i64| T0 + k * HOUR;
    assert_eq!(
        ranges,
        vec![
            (h(0), h(18), 3),
            (h(18), h(24), 2),
            (h(24), h(26), 1),
            (h(26), h(28), 1),
            (h(28), h(30), 1),
        ]
    );
    for pair in ranges.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "blocks overlap: {ranges:?}");
    }
    let stats = tsdb.stats();
    assert_eq!(stats.block_compactions, 5, "{stats:?}");
    assert_eq!(read_all(&tsdb, i64::MIN), expected);
    if let Some(list) = promtool_list(folder.path()) {
        assert_eq!(list.lines().count(), ranges.len() + 1);
    }
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    assert_eq!(read_all(&tsdb, i64::MIN), expected);
}

#[test]
fn retention_by_time_and_by_size_deletes_whole_blocks() {
    let folder = tempfile::tempdir().unwrap();
    let mut expected = Expected::new();
    let options = TsdbOptions {
        retention_ms: Some(8 * HOUR),
        ..TsdbOptions::default()
    };
    let tsdb = Tsdb::open(folder.path(), options.clone()).unwrap();
    append_range(&tsdb, &mut expected, 5, (T0, T0 + 20 * HOUR, 60_000), true);
    let ranges = block_ranges(folder.path());
    println!("{ranges:?}");
    let newest_end = ranges.iter().map(|r| r.1).max().unwrap();
    assert!(
        ranges.iter().all(|r| newest_end - r.1 <= 8 * HOUR),
        "{ranges:?}"
    );
    assert!(tsdb.stats().retention_deletions > 0);
    // What is left reads back exactly: everything from the oldest kept block on.
    let oldest = ranges[0].0;
    let kept: Expected = expected
        .iter()
        .map(|(l, s)| {
            (
                l.clone(),
                s.iter().copied().filter(|&(t, _)| t >= oldest).collect(),
            )
        })
        .collect();
    assert_eq!(read_all(&tsdb, i64::MIN), kept);
    drop(tsdb);

    // A size limit below the WAL's own size leaves no block at all; the head stays.
    let options = TsdbOptions {
        retention_bytes: Some(1),
        ..options
    };
    let tsdb = Tsdb::open(folder.path(), options).unwrap();
    let report = tsdb.compact().unwrap();
    assert_eq!(report.retention_deleted as usize, ranges.len());
    assert_eq!(tsdb.num_blocks(), 0);
    assert!(block_ranges(folder.path()).is_empty());
    let head_min = tsdb.stats().head_min_time.unwrap();
    let in_head: Expected = expected
        .iter()
        .map(|(l, s)| {
            (
                l.clone(),
                s.iter().copied().filter(|&(t, _)| t >= head_min).collect(),
            )
        })
        .collect();
    assert_eq!(read_all(&tsdb, i64::MIN), in_head);
}

//! Deletion against a brute-force oracle: random series split between two blocks and the head,
//! random deletions (matchers and time ranges), then the querier must return exactly the
//! oracle's samples — right after the deletions, after a restart (head tombstones replayed from
//! the WAL, block tombstones read from their files), after `clean_tombstones` rewrote the
//! blocks, and after a head compaction cut the head into a block.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tocsin::tsdb::block::{BlockSeries, NewBlock, chunks_from_samples, write_block};
use tocsin::tsdb::tombstones::Tombstones;
use tocsin::tsdb::{Labels, MatchKind, Matcher, Tsdb, TsdbOptions};

const HOUR: i64 = 3600 * 1000;

fn labels_for(job: u8, instance: u8) -> Labels {
    Labels::new([
        ("__name__".to_string(), "m".to_string()),
        ("job".to_string(), format!("j{job}")),
        ("instance".to_string(), format!("i{instance}")),
    ])
}

fn value(labels: &Labels, t: i64) -> f64 {
    (labels.to_string().len() as i64 * 1000 + t / 1000) as f64
}

fn matcher_strategy() -> impl Strategy<Value = Vec<Matcher>> {
    let one = prop_oneof![
        Just(Matcher::new(MatchKind::Equal, "job", "j0").unwrap()),
        Just(Matcher::new(MatchKind::NotEqual, "job", "j1").unwrap()),
        Just(Matcher::new(MatchKind::RegexMatch, "instance", "i[01]").unwrap()),
        Just(Matcher::new(MatchKind::RegexNoMatch, "instance", "i2").unwrap()),
        Just(Matcher::new(MatchKind::Equal, "__name__", "m").unwrap()),
    ];
    proptest::collection::vec(one, 1..3)
}

#[derive(Debug, Clone)]
struct Case {
    series: Vec<(u8, u8)>,
    /// Per series: timestamps in minutes over 5 hours; where each goes is decided by time
    /// (block 1: [0, 2 h), block 2: [2 h, 4 h), head: from 4 h).
    minutes: Vec<BTreeSet<u16>>,
    deletions: Vec<(Vec<Matcher>, i64, i64)>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    proptest::collection::btree_set((0u8..2, 0u8..3), 1..6)
        .prop_flat_map(|series| {
            let series: Vec<_> = series.into_iter().collect();
            let count = series.len();
            (
                Just(series),
                proptest::collection::vec(proptest::collection::btree_set(0u16..300, 0..80), count),
                proptest::collection::vec((matcher_strategy(), 0i64..300, 0i64..120), 0..4),
            )
        })
        .prop_map(|(series, minutes, deletions)| Case {
            series,
            minutes,
            deletions: deletions
                .into_iter()
                .map(|(m, start, length)| (m, start * 60_000, (start + length) * 60_000))
                .collect(),
        })
}

type Data = BTreeMap<Labels, BTreeMap<i64, f64>>;

fn select_all(tsdb: &Tsdb) -> Data {
    let everything = [Matcher::new(MatchKind::Equal, "__name__", "m").unwrap()];
    tsdb.querier(i64::MIN, i64::MAX)
        .select(&everything)
        .unwrap()
        .map(|series| {
            let samples: BTreeMap<i64, f64> = series.samples().collect();
            (series.labels, samples)
        })
        .filter(|(_, samples)| !samples.is_empty())
        .collect()
}

fn populate(folder: &Path, case: &Case) -> (Tsdb, Data) {
    let mut oracle: Data = BTreeMap::new();
    let mut blocks: [Vec<BlockSeries>; 2] = [Vec::new(), Vec::new()];
    let mut head: Vec<(Labels, Vec<i64>)> = Vec::new();
    for (&(job, instance), minutes) in case.series.iter().zip(&case.minutes) {
        let labels = labels_for(job, instance);
        let mut parts: [Vec<(i64, f64)>; 3] = Default::default();
        for &minute in minutes {
            let t = i64::from(minute) * 60_000;
            let part = if t < 2 * HOUR {
                0
            } else if t < 4 * HOUR {
                1
            } else {
                2
            };
            parts[part].push((t, value(&labels, t)));
            oracle
                .entry(labels.clone())
                .or_default()
                .insert(t, value(&labels, t));
        }
        for block in 0..2 {
            blocks[block].push(BlockSeries {
                labels: labels.clone(),
                chunks: chunks_from_samples(&parts[block]),
            });
        }
        head.push((labels, parts[2].iter().map(|s| s.0).collect()));
    }
    for (number, series) in blocks.into_iter().enumerate() {
        let min_time = number as i64 * 2 * HOUR;
        write_block(
            folder,
            NewBlock {
                series,
                min_time,
                max_time: min_time + 2 * HOUR,
                created_unix_millis: 1 + number as u64,
            },
        )
        .unwrap();
    }
    let tsdb = Tsdb::open(folder, TsdbOptions::default()).unwrap();
    let mut appender = tsdb.appender();
    for (labels, timestamps) in &head {
        for &t in timestamps {
            appender.append(labels, t, value(labels, t)).unwrap();
        }
    }
    appender.commit().unwrap();
    (tsdb, oracle)
}

fn apply_to_oracle(oracle: &mut Data, matchers: &[Matcher], mint: i64, maxt: i64) {
    for (labels, samples) in oracle.iter_mut() {
        if matchers.iter().all(|m| m.matches_labels(labels)) {
            samples.retain(|&t, _| t < mint || t > maxt);
        }
    }
    oracle.retain(|_, samples| !samples.is_empty());
}

fn run(case: Case) -> Result<(), TestCaseError> {
    let folder = tempfile::tempdir().unwrap();
    let (tsdb, mut oracle) = populate(folder.path(), &case);
    prop_assert_eq!(&select_all(&tsdb), &oracle);
    for (matchers, mint, maxt) in &case.deletions {
        tsdb.delete(matchers, *mint, *maxt).unwrap();
        apply_to_oracle(&mut oracle, matchers, *mint, *maxt);
        prop_assert_eq!(
            &select_all(&tsdb),
            &oracle,
            "after deleting {:?} [{}, {}]",
            matchers,
            mint,
            maxt
        );
    }
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    prop_assert_eq!(&select_all(&tsdb), &oracle, "after a restart");
    tsdb.clean_tombstones().unwrap();
    prop_assert_eq!(&select_all(&tsdb), &oracle, "after clean_tombstones");
    // Samples far ahead push the head's deleted range into a block.
    let far = Labels::new([("__name__", "far")]);
    let mut appender = tsdb.appender();
    for step in 0..20 {
        appender
            .append(&far, 5 * HOUR + step * HOUR / 2, 1.0)
            .unwrap();
    }
    appender.commit().unwrap();
    tsdb.compact().unwrap();
    prop_assert_eq!(&select_all(&tsdb), &oracle, "after a head compaction");
    drop(tsdb);
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    prop_assert_eq!(&select_all(&tsdb), &oracle, "after compaction and restart");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn deletions_match_a_brute_force_oracle(case in case_strategy()) {
        run(case)?;
    }
}

#[test]
fn clean_tombstones_rewrites_blocks_without_deleted_samples() {
    let folder = tempfile::tempdir().unwrap();
    let keep = Labels::new([("__name__", "m"), ("k", "keep")]);
    let gone = Labels::new([("__name__", "m"), ("k", "gone")]);
    let samples: Vec<(i64, f64)> = (0..100).map(|i| (i * 60_000, i as f64)).collect();
    write_block(
        folder.path(),
        NewBlock {
            series: vec![
                BlockSeries {
                    labels: keep.clone(),
                    chunks: chunks_from_samples(&samples),
                },
                BlockSeries {
                    labels: gone.clone(),
                    chunks: chunks_from_samples(&samples),
                },
            ],
            min_time: 0,
            max_time: 2 * HOUR,
            created_unix_millis: 1,
        },
    )
    .unwrap();
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let gone_matcher = [Matcher::new(MatchKind::Equal, "k", "gone").unwrap()];
    assert_eq!(tsdb.delete(&gone_matcher, i64::MIN, i64::MAX).unwrap(), 1);
    // `keep` loses minutes 10..=19 only.
    let keep_matcher = [Matcher::new(MatchKind::Equal, "k", "keep").unwrap()];
    tsdb.delete(&keep_matcher, 10 * 60_000, 19 * 60_000)
        .unwrap();
    let block_folder = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("meta.json").exists())
        .unwrap();
    let stones = Tombstones::read_file(&block_folder).unwrap();
    assert_eq!(stones.total(), 2);
    let meta = tocsin::tsdb::block::read_meta(&block_folder).unwrap();
    assert_eq!(meta.stats.num_tombstones, 2);

    assert_eq!(tsdb.clean_tombstones().unwrap(), 1);
    assert!(!block_folder.exists(), "the old block is deleted");
    assert_eq!(tsdb.num_blocks(), 1);
    let data = select_all(&tsdb);
    assert_eq!(data.len(), 1);
    let kept: Vec<i64> = data[&keep].keys().map(|t| t / 60_000).collect();
    let expected: Vec<i64> = (0..100).filter(|m| !(10..=19).contains(m)).collect();
    assert_eq!(kept, expected);
    let new_folder = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("meta.json").exists())
        .unwrap();
    assert!(Tombstones::read_file(&new_folder).unwrap().is_empty());
    let meta = tocsin::tsdb::block::read_meta(&new_folder).unwrap();
    assert_eq!(meta.stats.num_samples, 90);
    assert_eq!(meta.stats.num_series, 1);
}

#[test]
fn snapshot_links_blocks_and_writes_the_head() {
    let folder = tempfile::tempdir().unwrap();
    let labels = Labels::new([("__name__", "m")]);
    write_block(
        folder.path(),
        NewBlock {
            series: vec![BlockSeries {
                labels: labels.clone(),
                chunks: chunks_from_samples(&[(0, 1.0), (60_000, 2.0)]),
            }],
            min_time: 0,
            max_time: 2 * HOUR,
            created_unix_millis: 1,
        },
    )
    .unwrap();
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let mut appender = tsdb.appender();
    appender.append(&labels, 2 * HOUR + 1, 3.0).unwrap();
    appender.append(&labels, 2 * HOUR + 2, 4.0).unwrap();
    appender.commit().unwrap();
    // A deletion made after the snapshot must not reach into it (tombstone files are replaced,
    // never written in place).
    let snapshot = folder.path().join("snapshots").join("s1");
    tsdb.snapshot(&snapshot, true).unwrap();
    tsdb.delete(
        &[Matcher::new(MatchKind::Equal, "__name__", "m").unwrap()],
        0,
        0,
    )
    .unwrap();
    let copy = Tsdb::open(&snapshot, TsdbOptions::default()).unwrap();
    assert_eq!(copy.num_blocks(), 2);
    let data = select_all(&copy);
    let values: Vec<f64> = data[&labels].values().copied().collect();
    assert_eq!(values, vec![1.0, 2.0, 3.0, 4.0]);
    drop(copy);
    let without_head = folder.path().join("snapshots").join("s2");
    tsdb.snapshot(&without_head, false).unwrap();
    let copy = Tsdb::open(&without_head, TsdbOptions::default()).unwrap();
    let data = select_all(&copy);
    let values: Vec<f64> = data[&labels].values().copied().collect();
    assert_eq!(
        values,
        vec![2.0],
        "the block's deleted sample stays deleted"
    );
}

#[test]
fn head_tombstones_are_a_prometheus_wal_record() {
    // The record Tocsin logs is the one Prometheus's decoder reads: type 3, ref BE64, varints.
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let labels = Labels::new([("__name__", "m")]);
    let mut appender = tsdb.appender();
    for t in 0..10 {
        appender.append(&labels, t * 1000, 1.0).unwrap();
    }
    appender.commit().unwrap();
    tsdb.delete(
        &[Matcher::new(MatchKind::Equal, "__name__", "m").unwrap()],
        2000,
        4000,
    )
    .unwrap();
    drop(tsdb);
    let wal = folder.path().join("wal");
    let mut stones = Vec::new();
    for number in tocsin::tsdb::wal::segment::list_segments(&wal).unwrap() {
        let contents = tocsin::tsdb::wal::segment::read_segment(
            &tocsin::tsdb::wal::segment::segment_path(&wal, number),
        )
        .unwrap();
        for bytes in contents.records {
            if bytes[0] == 3 {
                stones.push(bytes);
            }
        }
    }
    assert_eq!(stones.len(), 1);
    let mut expected = vec![3u8];
    expected.extend_from_slice(&1u64.to_be_bytes());
    expected.extend_from_slice(&[0xa0, 0x1f, 0xc0, 0x3e]); // zig-zag 2000 and 4000
    assert_eq!(stones[0], expected);
    let reopened = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    assert_eq!(reopened.replay_report().tombstones, 1);
    let data = select_all(&reopened);
    let kept: Vec<i64> = data[&labels].keys().copied().collect();
    assert_eq!(kept, vec![0, 1000, 5000, 6000, 7000, 8000, 9000]);
}

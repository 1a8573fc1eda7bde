//! The querier over blocks and the head against a brute-force oracle: random series, random
//! split of their samples into (overlapping) blocks and the head, random matchers of all four
//! kinds. The oracle filters label sets directly and merges samples with dedup by timestamp.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tocsin::tsdb::block::{BlockSeries, NewBlock, chunks_from_samples, write_block};
use tocsin::tsdb::{Labels, MatchKind, Matcher, Tsdb, TsdbOptions};

fn labels_for(job: u8, instance: u8, extra: bool) -> Labels {
    let mut pairs = vec![
        ("__name__".to_string(), "m".to_string()),
        ("job".to_string(), format!("j{job}")),
        ("instance".to_string(), format!("i{instance}")),
    ];
    if extra {
        pairs.push(("zone".to_string(), "z1".to_string()));
    }
    Labels::new(pairs)
}

/// The value at a timestamp is a function of both, so duplicates agree and dedup is exact.
fn value(labels: &Labels, t: i64) -> f64 {
    (labels.to_string().len() as i64 * 1000 + t) as f64
}

fn matcher_strategy() -> impl Strategy<Value = Matcher> {
    let names = prop_oneof![Just("job"), Just("instance"), Just("zone"), Just("absent")];
    let values = prop_oneof![
        Just("j0"),
        Just("j1"),
        Just("i2"),
        Just("z1"),
        Just(""),
        Just("j.*"),
        Just("i[0-2]|z1"),
        Just(".*")
    ];
    let kinds = prop_oneof![
        Just(MatchKind::Equal),
        Just(MatchKind::NotEqual),
        Just(MatchKind::RegexMatch),
        Just(MatchKind::RegexNoMatch)
    ];
    (kinds, names, values).prop_map(|(kind, name, value)| Matcher::new(kind, name, value).unwrap())
}

#[derive(Debug, Clone)]
struct Case {
    series: Vec<(u8, u8, bool)>,
    /// Per series: sample timestamps (in seconds steps) and where each goes: 0 = head, 1 or 2 =
    /// block 1 or 2, 3 = both blocks (overlap).
    samples: Vec<Vec<(u16, u8)>>,
    matchers: Vec<Matcher>,
    range: (i64, i64),
}

fn case_strategy() -> impl Strategy<Value = Case> {
    proptest::collection::btree_set((0u8..3, 0u8..4, any::<bool>()), 1..8)
        .prop_flat_map(|series| {
            let series: Vec<_> = series.into_iter().collect();
            let count = series.len();
            (
                Just(series),
                proptest::collection::vec(
                    proptest::collection::vec((0u16..400, 0u8..4), 0..60),
                    count,
                ),
                proptest::collection::vec(matcher_strategy(), 1..4),
                (0i64..200_000, 0i64..400_000),
            )
        })
        .prop_map(|(series, samples, matchers, (a, b))| Case {
            series,
            samples,
            matchers,
            range: (a.min(b), a.max(b)),
        })
}

fn run(case: Case) -> Result<(), TestCaseError> {
    let folder = tempfile::tempdir().unwrap();
    let mut oracle: BTreeMap<Labels, BTreeSet<i64>> = BTreeMap::new();
    let mut blocks: [Vec<BlockSeries>; 2] = [Vec::new(), Vec::new()];
    let mut head_samples: Vec<(Labels, Vec<i64>)> = Vec::new();
    for (&(job, instance, extra), samples) in case.series.iter().zip(&case.samples) {
        let labels = labels_for(job, instance, extra);
        let mut per_target: [BTreeSet<i64>; 3] = Default::default();
        for &(step, target) in samples {
            let t = i64::from(step) * 1000;
            // Blocks hold [0, 200 s); the head only what comes after them.
            let target = if t >= 200_000 {
                0
            } else if target == 0 {
                1
            } else {
                target
            };
            match target {
                1 => {
                    per_target[1].insert(t);
                }
                2 => {
                    per_target[2].insert(t);
                }
                3 => {
                    per_target[1].insert(t);
                    per_target[2].insert(t);
                }
                _ => {
                    per_target[0].insert(t);
                }
            }
            oracle.entry(labels.clone()).or_default().insert(t);
        }
        for block in 0..2 {
            let samples: Vec<(i64, f64)> = per_target[block + 1]
                .iter()
                .map(|&t| (t, value(&labels, t)))
                .collect();
            blocks[block].push(BlockSeries {
                labels: labels.clone(),
                chunks: chunks_from_samples(&samples),
            });
        }
        head_samples.push((labels, per_target[0].iter().copied().collect()));
    }
    for (number, series) in blocks.into_iter().enumerate() {
        if series.iter().all(|s| s.chunks.is_empty()) {
            continue;
        }
        write_block(
            folder.path(),
            NewBlock {
                series,
                min_time: 0,
                max_time: 200_000,
                created_unix_millis: 1 + number as u64,
            },
        )
        .unwrap();
    }
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let mut appender = tsdb.appender();
    for (labels, timestamps) in &head_samples {
        for &t in timestamps {
            appender.append(labels, t, value(labels, t)).unwrap();
        }
    }
    appender.commit().unwrap();

    let (min_time, max_time) = case.range;
    let got: Vec<(Labels, Vec<(i64, f64)>)> = tsdb
        .querier(min_time, max_time)
        .select(&case.matchers)
        .unwrap()
        .map(|series| {
            let samples: Vec<(i64, f64)> = series.samples().collect();
            (series.labels, samples)
        })
        .filter(|(_, samples)| !samples.is_empty())
        .collect();
    let want: Vec<(Labels, Vec<(i64, f64)>)> = oracle
        .iter()
        .filter(|(labels, _)| case.matchers.iter().all(|m| m.matches_labels(labels)))
        .map(|(labels, timestamps)| {
            let samples = timestamps
                .iter()
                .filter(|&&t| t >= min_time && t <= max_time)
                .map(|&t| (t, value(labels, t)))
                .collect::<Vec<_>>();
            (labels.clone(), samples)
        })
        .filter(|(_, samples)| !samples.is_empty())
        .collect();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn querier_matches_brute_force_oracle(case in case_strategy()) {
        run(case)?;
    }
}

#[test]
fn label_names_and_values_span_blocks_and_head() {
    let folder = tempfile::tempdir().unwrap();
    let block_labels = labels_for(0, 0, true);
    write_block(
        folder.path(),
        NewBlock {
            series: vec![BlockSeries {
                labels: block_labels,
                chunks: chunks_from_samples(&[(1, 1.0)]),
            }],
            min_time: 0,
            max_time: 100,
            created_unix_millis: 5,
        },
    )
    .unwrap();
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    assert_eq!(tsdb.num_blocks(), 1);
    let mut appender = tsdb.appender();
    appender.append(&labels_for(1, 3, false), 500, 2.0).unwrap();
    // Older than the newest block's end: out of bounds.
    assert!(appender.append(&labels_for(1, 3, false), 50, 2.0).is_err());
    appender.commit().unwrap();
    let querier = tsdb.querier(0, 1000);
    assert_eq!(
        querier.label_names(),
        vec!["__name__", "instance", "job", "zone"]
    );
    assert_eq!(querier.label_values("job").unwrap(), vec!["j0", "j1"]);
    assert_eq!(querier.label_values("zone").unwrap(), vec!["z1"]);
}

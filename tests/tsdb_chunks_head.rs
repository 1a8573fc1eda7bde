//! Completed head chunks live in `<dir>/chunks_head/` in Prometheus's head chunk format: they
//! read back through queries, a torn or damaged file at start costs nothing (the WAL rewrites
//! them), and head truncation deletes the files it no longer needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use tocsin::tsdb::chunks_head::{CHUNKS_HEAD_FOLDER, MAGIC_HEAD_CHUNKS, scan_folder};
use tocsin::tsdb::{Labels, Matcher, Tsdb, TsdbOptions};

const STEP: i64 = 15_000;
const RANGE: i64 = 2 * 3600 * 1000;
const SERIES: usize = 3;

fn options() -> TsdbOptions {
    TsdbOptions {
        retention_ms: None,
        ..TsdbOptions::default()
    }
}

fn labels(index: usize) -> Labels {
    Labels::new([("__name__", "heady".to_string()), ("i", index.to_string())])
}

fn value(index: usize, t: i64) -> f64 {
    (t / STEP) as f64 * 0.5 + index as f64
}

/// Appends every series' samples at `from..to` (step [`STEP`]), committing every 100 steps.
fn append(tsdb: &Tsdb, from: i64, to: i64) {
    let mut appender = tsdb.appender();
    let mut t = from;
    while t < to {
        for index in 0..SERIES {
            appender.append(&labels(index), t, value(index, t)).unwrap();
        }
        if appender.len() >= 100 * SERIES {
            appender.commit().unwrap();
            appender = tsdb.appender();
        }
        t += STEP;
    }
    appender.commit().unwrap();
}

fn stored(tsdb: &Tsdb) -> Vec<Vec<(i64, f64)>> {
    let mut series: Vec<(usize, Vec<(i64, f64)>)> = tsdb
        .querier(i64::MIN, i64::MAX)
        .select(&[Matcher::equal("__name__", "heady")])
        .unwrap()
        .map(|s| {
            let index = s.labels.get("i").unwrap().parse().unwrap();
            (index, s.samples().collect())
        })
        .collect();
    series.sort_by_key(|(index, _)| *index);
    series.into_iter().map(|(_, samples)| samples).collect()
}

fn expected(from: i64, to: i64) -> Vec<Vec<(i64, f64)>> {
    (0..SERIES)
        .map(|index| {
            (from / STEP..to / STEP)
                .map(|step| (step * STEP, value(index, step * STEP)))
                .collect()
        })
        .collect()
}

fn files(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder.join(CHUNKS_HEAD_FOLDER))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn completed_chunks_are_on_disk_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(dir.path(), options()).unwrap();
    // 80 minutes: each series cuts chunks of ~120 samples (30 minutes) and keeps one open.
    append(&tsdb, 0, 80 * 60_000);
    assert_eq!(stored(&tsdb), expected(0, 80 * 60_000));
    assert!(tsdb.stats().chunks_head_bytes > 0);
    drop(tsdb);
    let bytes = std::fs::read(dir.path().join(CHUNKS_HEAD_FOLDER).join("000001")).unwrap();
    assert_eq!(&bytes[..4], &MAGIC_HEAD_CHUNKS.to_be_bytes());
    assert_eq!(bytes[4], 1, "format version");
    let scanned = scan_folder(&dir.path().join(CHUNKS_HEAD_FOLDER)).unwrap();
    assert!(scanned.torn.is_none());
    // Two completed chunks per series, in time order per series, holding the samples.
    assert_eq!(scanned.chunks.len(), 2 * SERIES);
    for chunk in &scanned.chunks {
        let samples = tocsin::tsdb::chunkenc::decode_xor(&chunk.data).unwrap();
        assert_eq!(samples.first().unwrap().0, chunk.min_time);
        assert_eq!(samples.last().unwrap().0, chunk.max_time);
        assert_eq!(samples.len(), 120);
    }
}

#[test]
fn a_torn_chunks_head_file_at_start_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(dir.path(), options()).unwrap();
    append(&tsdb, 0, 100 * 60_000);
    drop(tsdb);
    // A crash mid-write: the file ends inside a chunk, followed by garbage.
    let path = dir.path().join(CHUNKS_HEAD_FOLDER).join("000001");
    let length = std::fs::metadata(&path).unwrap().len();
    assert!(length > 200);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(length as usize - 50);
    bytes.extend_from_slice(&[0xAB; 13]);
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        scan_folder(&dir.path().join(CHUNKS_HEAD_FOLDER))
            .unwrap()
            .torn
            .is_some()
    );

    let tsdb = Tsdb::open(dir.path(), options()).unwrap();
    assert_eq!(stored(&tsdb), expected(0, 100 * 60_000));
    // And the head keeps working on them.
    append(&tsdb, 100 * 60_000, 130 * 60_000);
    assert_eq!(stored(&tsdb), expected(0, 130 * 60_000));
    drop(tsdb);
    // The files were written again from the WAL, then on: whole, checksums right, four
    // completed chunks of 120 samples per series.
    let scanned = scan_folder(&dir.path().join(CHUNKS_HEAD_FOLDER)).unwrap();
    assert!(scanned.torn.is_none());
    assert_eq!(scanned.chunks.len(), 4 * SERIES);
}

#[test]
fn head_truncation_deletes_the_files_it_no_longer_needs() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(dir.path(), options()).unwrap();
    append(&tsdb, 0, RANGE + RANGE / 2 + 60_000);
    assert_eq!(files(dir.path()), vec!["000001"]);
    // The first range goes to a block; the head's chunk file is closed, a new one started.
    let report = tsdb.compact().unwrap();
    assert_eq!(report.head_blocks, 1);
    assert_eq!(files(dir.path()), vec!["000001", "000002"]);
    // Once the next range is persisted, no chunk of file 1 is in the head any more.
    append(&tsdb, RANGE + RANGE / 2 + 60_000, 3 * RANGE + 60_000);
    let report = tsdb.compact().unwrap();
    assert_eq!(report.head_blocks, 1);
    let left = files(dir.path());
    assert!(!left.contains(&"000001".to_string()), "{left:?}");
    // Nothing was lost on the way: blocks and head together hold every sample.
    assert_eq!(stored(&tsdb), expected(0, 3 * RANGE + 60_000));
}

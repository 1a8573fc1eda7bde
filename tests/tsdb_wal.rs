//! Durability of the head through its write-ahead log: everything committed comes back after a
//! "crash" (the database dropped without any shutdown step), and damaged tails are cut back,
//! reported, and do not prevent opening.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use tocsin::tsdb::wal::segment::{list_segments, segment_path};
use tocsin::tsdb::{Labels, Matcher, Tsdb, TsdbOptions};

fn series_labels(index: usize) -> Labels {
    Labels::new([
        ("__name__", "node_cpu_seconds_total".to_string()),
        ("cpu", (index % 4).to_string()),
        (
            "mode",
            if index.is_multiple_of(2) {
                "idle"
            } else {
                "user"
            }
            .to_string(),
        ),
        ("instance", format!("host-{}", index / 4)),
    ])
}

fn read_all(tsdb: &Tsdb) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let matcher = Matcher::equal("__name__", "node_cpu_seconds_total");
    tsdb.querier(i64::MIN, i64::MAX)
        .select(&[matcher])
        .unwrap()
        .map(|series| {
            let samples = series.samples().map(|(t, v)| (t, v.to_bits())).collect();
            (series.labels, samples)
        })
        .collect()
}

#[test]
fn committed_samples_survive_a_crash() {
    let folder = tempfile::tempdir().unwrap();
    let mut expected: std::collections::BTreeMap<Labels, Vec<(i64, u64)>> = Default::default();
    {
        let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
        for round in 0..50i64 {
            let mut appender = tsdb.appender();
            for index in 0..40 {
                let labels = series_labels(index);
                let t = 1_700_000_000_000 + round * 15_000;
                let v = if round == 7 {
                    f64::from_bits(0x7ff0_0000_0000_0002)
                } else {
                    (round * index as i64) as f64
                };
                appender.append(&labels, t, v).unwrap();
                expected.entry(labels).or_default().push((t, v.to_bits()));
            }
            let stats = appender.commit().unwrap();
            assert_eq!(stats.appended, 40);
        }
        // An uncommitted batch is not acknowledged and must not be required afterwards.
        let mut appender = tsdb.appender();
        appender
            .append(&series_labels(0), 1_800_000_000_000, 1.0)
            .unwrap();
        std::mem::forget(appender);
        // The crash: no close, no flush beyond what commit did.
        std::mem::forget(tsdb);
    }
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let report = tsdb.replay_report().clone();
    assert!(report.corruptions.is_empty(), "{report:?}");
    assert_eq!(report.samples, 2000);
    let read: Vec<_> = read_all(&tsdb);
    let expected: Vec<_> = expected.into_iter().collect();
    assert_eq!(read, expected);
    // Appending continues after the replayed data, and order checks hold across the restart.
    let mut appender = tsdb.appender();
    assert!(
        appender
            .append(&series_labels(0), 1_700_000_000_000, 5.0)
            .is_err()
    );
    appender
        .append(&series_labels(0), 1_700_001_000_000, 5.0)
        .unwrap();
    appender.commit().unwrap();
    assert_eq!(
        tsdb.append_counters()
            .out_of_order
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

fn write_rounds(folder: &std::path::Path, rounds: i64) {
    let tsdb = Tsdb::open(folder, TsdbOptions::default()).unwrap();
    for round in 0..rounds {
        let mut appender = tsdb.appender();
        for index in 0..8 {
            appender
                .append(&series_labels(index), round * 1000, round as f64)
                .unwrap();
        }
        appender.commit().unwrap();
    }
}

fn last_segment(folder: &std::path::Path) -> std::path::PathBuf {
    let wal = folder.join("wal");
    let segments = list_segments(&wal).unwrap();
    // The newest segment is the empty one the writer opened; data is in the ones before.
    segments
        .iter()
        .rev()
        .map(|n| segment_path(&wal, *n))
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap()
}

#[test]
fn torn_tail_is_cut_back_and_reported() {
    let folder = tempfile::tempdir().unwrap();
    write_rounds(folder.path(), 100);
    let segment = last_segment(folder.path());
    let length = std::fs::metadata(&segment).unwrap().len();
    // A write torn in the middle of the last record.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(length - 50).unwrap();
    drop(file);

    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let report = tsdb.replay_report().clone();
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    assert!(
        report.corruptions[0].reason.contains("runs past"),
        "{report:?}"
    );
    // Only the torn batch is lost: 99 rounds of 8 samples.
    assert_eq!(report.samples, 99 * 8);
    let read = read_all(&tsdb);
    assert_eq!(read.len(), 8);
    assert!(read.iter().all(|(_, samples)| samples.len() == 99));
    drop(tsdb);
    // The damaged segment was cut back: the next open is clean.
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    assert!(tsdb.replay_report().corruptions.is_empty());
    assert_eq!(tsdb.replay_report().samples, 99 * 8);
}

#[test]
fn corrupt_bytes_are_detected_by_checksum() {
    let folder = tempfile::tempdir().unwrap();
    write_rounds(folder.path(), 100);
    let segment = last_segment(folder.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&segment, &bytes).unwrap();

    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let report = tsdb.replay_report().clone();
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    let corruption = &report.corruptions[0];
    assert!(corruption.reason.contains("checksum"), "{corruption:?}");
    assert!(corruption.offset < middle as u64);
    assert!(report.samples > 0 && report.samples < 800, "{report:?}");
    // Every series that replayed has a gap-free prefix of the rounds.
    for (_, samples) in read_all(&tsdb) {
        for (round, (t, _)) in samples.iter().enumerate() {
            assert_eq!(*t, round as i64 * 1000);
        }
    }
}

//! WAL checkpoints in Prometheus's layout (`tsdb/wlog/checkpoint.go`): `wal/checkpoint.NNNNNNNN/`
//! is itself a log (segments `00000000…` of 32 KiB pages) holding what segments `..=NNNNNNNN`
//! (and the previous checkpoint) still matter for: the Series records of series the head
//! still has, and the samples at or after the head's lower bound. Replay reads the newest
//! checkpoint, then the segments numbered after it.
//!
//! Crash safety: the checkpoint is written to `checkpoint.NNNNNNNN.tmp`, fsynced, renamed and
//! the folder fsynced before any segment or older checkpoint is deleted; a crash at any point
//! leaves either the old state or the new one (plus leftovers that the next checkpoint or open
//! removes).

use super::record::{self, Record, RefSample};
use super::segment::{self, DEFAULT_SEGMENT_BYTES, WalWriter};
use crate::tsdb::chunks::sync_folder;
use crate::tsdb::error::TsdbError;
use crate::tsdb::labels::Labels;
use std::path::{Path, PathBuf};

const PREFIX: &str = "checkpoint.";
const TMP_SUFFIX: &str = ".tmp";
/// Entries per record written to a checkpoint.
const PER_RECORD: usize = 10_000;

/// The folder of checkpoint `number` in `wal_folder`.
pub fn checkpoint_path(wal_folder: &Path, number: u64) -> PathBuf {
    wal_folder.join(format!("{PREFIX}{number:08}"))
}

/// Finished checkpoints in `wal_folder` (number, folder), oldest first.
pub fn list_checkpoints(wal_folder: &Path) -> Result<Vec<(u64, PathBuf)>, TsdbError> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(wal_folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(error) => return Err(TsdbError::io(wal_folder)(error)),
    };
    for entry in entries {
        let entry = entry.map_err(TsdbError::io(wal_folder))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if digits.len() == 8
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(number) = digits.parse()
            && entry.path().is_dir()
        {
            found.push((number, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest finished checkpoint.
pub fn last_checkpoint(wal_folder: &Path) -> Result<Option<(u64, PathBuf)>, TsdbError> {
    Ok(list_checkpoints(wal_folder)?.pop())
}

/// Removes checkpoint folders a crash left half-written.
pub fn remove_temporary(wal_folder: &Path) -> Result<(), TsdbError> {
    let Ok(entries) = std::fs::read_dir(wal_folder) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(TsdbError::io(wal_folder))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(PREFIX) && name.ends_with(TMP_SUFFIX) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(TsdbError::io(&path))?;
        }
    }
    Ok(())
}

/// What a checkpoint kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint's number (the last segment it covers).
    pub number: u64,
    /// Segments folded in (and deleted).
    pub segments: u64,
    /// Series entries kept / dropped.
    pub series_kept: u64,
    /// Series entries dropped (no longer in the head).
    pub series_dropped: u64,
    /// Samples kept.
    pub samples_kept: u64,
    /// Samples dropped (older than the cut, or of dropped series).
    pub samples_dropped: u64,
    /// Damaged segment tails met while reading (their records up to the damage are used).
    pub damaged_segments: u64,
}

/// Folds the previous checkpoint and segments `..=last` into `checkpoint.<last>`, keeping the
/// Series records for which `keep` holds and the samples of those series at or after
/// `min_time`; then deletes the folded segments and older checkpoints. The caller must have
/// closed segment `last` (no writer appends to it any more).
pub fn create(
    wal_folder: &Path,
    last: u64,
    keep: &dyn Fn(u64) -> bool,
    min_time: i64,
) -> Result<CheckpointStats, TsdbError> {
    remove_temporary(wal_folder)?;
    let mut stats = CheckpointStats {
        number: last,
        ..CheckpointStats::default()
    };
    let previous = list_checkpoints(wal_folder)?;
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut first_segment = 0;
    if let Some((number, folder)) = previous.last() {
        if *number >= last {
            // Already folded (a second call for the same segment).
            return Ok(stats);
        }
        for segment_number in segment::list_segments(folder)? {
            sources.push(segment::segment_path(folder, segment_number));
        }
        first_segment = number + 1;
    }
    let segments: Vec<u64> = segment::list_segments(wal_folder)?
        .into_iter()
        .filter(|&n| n <= last)
        .collect();
    for &number in segments.iter().filter(|&&n| n >= first_segment) {
        sources.push(segment::segment_path(wal_folder, number));
        stats.segments += 1;
    }

    let final_folder = checkpoint_path(wal_folder, last);
    let temporary = wal_folder.join(format!("{PREFIX}{last:08}{TMP_SUFFIX}"));
    let mut writer = WalWriter::create(&temporary, 0, DEFAULT_SEGMENT_BYTES)?;
    for path in &sources {
        let contents = segment::read_segment(path)?;
        if let Some(corruption) = &contents.corruption {
            tracing::warn!(
                file = %corruption.path.display(),
                offset = corruption.offset,
                reason = %corruption.reason,
                "damaged WAL segment: checkpoint keeps the records before the damage"
            );
            stats.damaged_segments += 1;
        }
        for bytes in &contents.records {
            match record::decode(bytes) {
                Ok(Record::Series(series)) => {
                    let total = series.len() as u64;
                    let kept: Vec<(u64, Labels)> = series
                        .into_iter()
                        .filter(|(series_ref, _)| keep(*series_ref))
                        .collect();
                    stats.series_kept += kept.len() as u64;
                    stats.series_dropped += total - kept.len() as u64;
                    for batch in kept.chunks(PER_RECORD) {
                        writer.log(&record::encode_series(batch.iter().map(|(r, l)| (*r, l))))?;
                    }
                }
                Ok(Record::Samples(samples)) => {
                    let total = samples.len() as u64;
                    let kept: Vec<RefSample> = samples
                        .into_iter()
                        .filter(|s| s.timestamp >= min_time && keep(s.series_ref))
                        .collect();
                    stats.samples_kept += kept.len() as u64;
                    stats.samples_dropped += total - kept.len() as u64;
                    for batch in kept.chunks(PER_RECORD) {
                        writer.log(&record::encode_samples(batch))?;
                    }
                }
                Ok(Record::Tombstones(stones)) => {
                    // Deletions of live series that still reach the kept samples.
                    let kept: Vec<_> = stones
                        .into_iter()
                        .filter(|(series_ref, interval)| {
                            interval.maxt >= min_time && keep(*series_ref)
                        })
                        .collect();
                    for batch in kept.chunks(PER_RECORD) {
                        writer.log(&record::encode_tombstones(batch))?;
                    }
                }
                // Exemplars, metadata, histograms: not kept (not replayed either).
                Ok(Record::Other(_)) | Err(_) => {}
            }
        }
    }
    writer.sync()?;
    drop(writer);
    sync_folder(&temporary)?;
    std::fs::rename(&temporary, &final_folder).map_err(TsdbError::io(&final_folder))?;
    sync_folder(wal_folder)?;

    // The checkpoint is durable: what it replaces can go.
    for number in segments {
        let path = segment::segment_path(wal_folder, number);
        std::fs::remove_file(&path).map_err(TsdbError::io(&path))?;
    }
    for (_, folder) in previous {
        std::fs::remove_dir_all(&folder).map_err(TsdbError::io(&folder))?;
    }
    sync_folder(wal_folder)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(series_ref: u64, timestamp: i64) -> RefSample {
        RefSample {
            series_ref,
            timestamp,
            value: timestamp as f64,
        }
    }

    fn read_log(folder: &Path) -> Vec<Record> {
        let mut out = Vec::new();
        for number in segment::list_segments(folder).unwrap() {
            let contents = segment::read_segment(&segment::segment_path(folder, number)).unwrap();
            for bytes in contents.records {
                out.push(record::decode(&bytes).unwrap());
            }
        }
        out
    }

    #[test]
    fn keeps_live_series_and_recent_samples_and_chains() {
        let folder = tempfile::tempdir().unwrap();
        let wal = folder.path();
        let a = Labels::new([("s", "a")]);
        let b = Labels::new([("s", "b")]);
        let mut writer = WalWriter::create(wal, 0, DEFAULT_SEGMENT_BYTES).unwrap();
        writer
            .log(&record::encode_series([(1, &a), (2, &b)]))
            .unwrap();
        writer
            .log(&record::encode_samples(&[
                sample(1, 10),
                sample(2, 10),
                sample(1, 20),
            ]))
            .unwrap();
        assert_eq!(writer.next_segment().unwrap(), 0);
        writer
            .log(&record::encode_samples(&[sample(1, 30)]))
            .unwrap();
        assert_eq!(writer.next_segment().unwrap(), 1);
        drop(writer);

        let stats = create(wal, 1, &|r| r == 1, 20).unwrap();
        assert_eq!(stats.segments, 2);
        assert_eq!((stats.series_kept, stats.series_dropped), (1, 1));
        assert_eq!((stats.samples_kept, stats.samples_dropped), (2, 2));
        assert_eq!(segment::list_segments(wal).unwrap(), vec![2]);
        let records = read_log(&checkpoint_path(wal, 1));
        assert_eq!(
            records,
            vec![
                Record::Series(vec![(1, a.clone())]),
                Record::Samples(vec![sample(1, 20)]),
                Record::Samples(vec![sample(1, 30)]),
            ]
        );

        // A second checkpoint folds the first one in and removes it.
        let stats = create(wal, 2, &|_| true, 25).unwrap();
        assert_eq!(stats.segments, 1);
        assert_eq!(list_checkpoints(wal).unwrap().len(), 1);
        assert_eq!(
            read_log(&checkpoint_path(wal, 2)),
            vec![
                Record::Series(vec![(1, a)]),
                Record::Samples(vec![sample(1, 30)]),
            ]
        );
        assert!(segment::list_segments(wal).unwrap().is_empty());
    }
}

use super::*;
use proptest::prelude::*;
use std::io::BufRead;
use std::process::{Command, Stdio};

fn open(directory: &Path) -> (StateLog, Vec<Vec<u8>>, Recovery) {
    let mut records = Vec::new();
    let (log, recovery) = StateLog::open(directory, &StateLogOptions::default(), |record| {
        records.push(record.to_vec())
    })
    .unwrap();
    (log, records, recovery)
}

fn payloads(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|index| format!("record {index} {}", "x".repeat(index % 7)).into_bytes())
        .collect()
}

fn slices(records: &[Vec<u8>]) -> impl Iterator<Item = &[u8]> {
    records.iter().map(Vec::as_slice)
}

fn log_file(directory: &Path, log: &StateLog) -> PathBuf {
    directory.join(file_name(LOG_PREFIX, log.generation()))
}

#[test]
fn round_trip_and_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let (mut log, records, recovery) = open(directory.path());
    assert!(records.is_empty());
    assert_eq!(recovery, Recovery::default());
    let written = payloads(10);
    log.append(slices(&written[..4])).unwrap();
    log.append(slices(&written[4..])).unwrap();
    log.append(std::iter::empty()).unwrap();
    drop(log);
    let (_, records, recovery) = open(directory.path());
    assert_eq!(records, written);
    assert_eq!(recovery.log_records, 10);
    assert_eq!(recovery.discarded_log_bytes, 0);
}

#[test]
fn refuses_empty_and_oversized_records() {
    let directory = tempfile::tempdir().unwrap();
    let options = StateLogOptions {
        max_record_bytes: 16,
    };
    let (mut log, _) = StateLog::open(directory.path(), &options, |_| {}).unwrap();
    assert!(matches!(
        log.append([&[][..]]),
        Err(StateLogError::EmptyRecord)
    ));
    assert!(matches!(
        log.append([&[1u8; 17][..]]),
        Err(StateLogError::RecordTooLarge {
            size: 17,
            limit: 16
        })
    ));
    // A refused batch writes nothing, not even its valid records.
    assert!(log.append([&b"ok"[..], &[1u8; 17][..]]).is_err());
    log.append([&[1u8; 16][..]]).unwrap();
    drop(log);
    let (_, records, _) = open(directory.path());
    assert_eq!(records, vec![vec![1u8; 16]]);
}

#[test]
fn a_foreign_file_is_refused_not_truncated() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join(file_name(LOG_PREFIX, 0));
    fs::write(&path, b"important data, not ours").unwrap();
    let error = StateLog::open(directory.path(), &StateLogOptions::default(), |_| {}).unwrap_err();
    assert!(matches!(error, StateLogError::NotALog { .. }), "{error}");
    assert_eq!(fs::read(&path).unwrap(), b"important data, not ours");
}

#[test]
fn a_torn_header_is_recreated() {
    for torn in [&b"TOC"[..], &[0u8; 8][..], &[][..]] {
        let directory = tempfile::tempdir().unwrap();
        fs::write(directory.path().join(file_name(LOG_PREFIX, 0)), torn).unwrap();
        let (mut log, records, _) = open(directory.path());
        assert!(records.is_empty());
        log.append([&b"after"[..]]).unwrap();
        drop(log);
        assert_eq!(open(directory.path()).1, vec![b"after".to_vec()]);
    }
}

#[test]
fn truncation_at_every_offset_loses_only_the_torn_record() {
    let directory = tempfile::tempdir().unwrap();
    let written = payloads(6);
    let (mut log, _, _) = open(directory.path());
    log.append(slices(&written)).unwrap();
    let path = log_file(directory.path(), &log);
    drop(log);
    let full = fs::read(&path).unwrap();
    // End offset of each record's frame.
    let mut ends = Vec::new();
    let mut offset = LOG_MAGIC.len();
    for record in &written {
        offset += FRAME_HEADER_BYTES as usize + record.len();
        ends.push(offset);
    }
    for cut in LOG_MAGIC.len()..full.len() {
        fs::write(&path, &full[..cut]).unwrap();
        let (mut log, records, recovery) = open(directory.path());
        let complete = ends.iter().filter(|end| **end <= cut).count();
        assert_eq!(records, written[..complete], "cut at {cut}");
        let kept = if complete == 0 {
            LOG_MAGIC.len()
        } else {
            ends[complete - 1]
        };
        assert_eq!(recovery.discarded_log_bytes, (cut - kept) as u64);
        // The log is usable after the repair.
        log.append([&b"next"[..]]).unwrap();
        drop(log);
        let (_, records, _) = open(directory.path());
        assert_eq!(records.last().map(Vec::as_slice), Some(&b"next"[..]));
        assert_eq!(records.len(), complete + 1);
    }
}

#[test]
fn compaction_keeps_everything_and_survives_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let (mut log, _, _) = open(directory.path());
    let written = payloads(20);
    log.append(slices(&written)).unwrap();
    log.compact(slices(&written[10..])).unwrap();
    assert_eq!(log.generation(), 1);
    log.append([&b"after compaction"[..]]).unwrap();
    drop(log);

    let (mut log, records, recovery) = open(directory.path());
    let mut expected = written[10..].to_vec();
    expected.push(b"after compaction".to_vec());
    assert_eq!(records, expected);
    assert_eq!((recovery.snapshot_records, recovery.log_records), (10, 1));
    let mut names: Vec<String> = fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![file_name(LOG_PREFIX, 1), file_name(SNAPSHOT_PREFIX, 1)]
    );

    // Compacting again, to nothing, and reopening.
    log.compact(std::iter::empty()).unwrap();
    drop(log);
    let (_, records, _) = open(directory.path());
    assert!(records.is_empty());
}

#[test]
fn an_interrupted_compaction_leaves_the_old_generation() {
    let directory = tempfile::tempdir().unwrap();
    let (mut log, _, _) = open(directory.path());
    log.append([&b"kept"[..]]).unwrap();
    drop(log);
    // A crash before the rename leaves only a temporary snapshot behind.
    let temporary = directory.path().join(format!(
        "{}{TEMPORARY_SUFFIX}",
        file_name(SNAPSHOT_PREFIX, 1)
    ));
    fs::write(&temporary, b"TOCSSNP1 half written").unwrap();
    let (_, records, _) = open(directory.path());
    assert_eq!(records, vec![b"kept".to_vec()]);
    assert!(!temporary.exists());

    // A crash after the rename but before the new log: the snapshot is the whole state.
    let (mut log, _, _) = open(directory.path());
    log.compact([&b"snapshotted"[..]]).unwrap();
    let new_log = log_file(directory.path(), &log);
    drop(log);
    fs::remove_file(new_log).unwrap();
    let (_, records, _) = open(directory.path());
    assert_eq!(records, vec![b"snapshotted".to_vec()]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_damaged_last_record_loses_only_itself(
        count in 1usize..8,
        flip in any::<usize>(),
        bit in 0u8..8,
    ) {
        let directory = tempfile::tempdir().unwrap();
        let written = payloads(count);
        let (mut log, _, _) = open(directory.path());
        log.append(slices(&written)).unwrap();
        let path = log_file(directory.path(), &log);
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        let last_frame = FRAME_HEADER_BYTES as usize + written[count - 1].len();
        let offset = bytes.len() - last_frame + flip % last_frame;
        bytes[offset] ^= 1 << bit;
        fs::write(&path, &bytes).unwrap();
        let (_, records, recovery) = open(directory.path());
        prop_assert_eq!(&records[..], &written[..count - 1]);
        prop_assert_eq!(recovery.discarded_log_bytes, last_frame as u64);
    }

    #[test]
    fn any_damage_keeps_a_prefix_and_never_panics(
        count in 1usize..8,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let directory = tempfile::tempdir().unwrap();
        let written = payloads(count);
        let (mut log, _, _) = open(directory.path());
        log.append(slices(&written)).unwrap();
        let path = log_file(directory.path(), &log);
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        let body = bytes.len() - LOG_MAGIC.len();
        let first_damage = flips
            .iter()
            .filter(|(_, mask)| *mask != 0)
            .map(|(offset, _)| LOG_MAGIC.len() + offset % body)
            .min()
            .unwrap_or(bytes.len());
        for (offset, mask) in &flips {
            bytes[LOG_MAGIC.len() + offset % body] ^= mask;
        }
        let cut = LOG_MAGIC.len() + cut % (body + 1);
        bytes.truncate(cut);
        fs::write(&path, &bytes).unwrap();
        let (_, records, _) = open(directory.path());
        prop_assert!(records.len() <= count);
        prop_assert_eq!(&records[..], &written[..records.len()]);
        // Every record wholly before the first damage survives.
        let intact = written
            .iter()
            .scan(LOG_MAGIC.len(), |end, record| {
                *end += FRAME_HEADER_BYTES as usize + record.len();
                Some(*end)
            })
            .filter(|end| *end <= first_damage.min(cut))
            .count();
        prop_assert!(records.len() >= intact);
    }

    #[test]
    fn arbitrary_bytes_never_panic(garbage in prop::collection::vec(any::<u8>(), 0..256)) {
        let directory = tempfile::tempdir().unwrap();
        let mut bytes = LOG_MAGIC.to_vec();
        bytes.extend_from_slice(&garbage);
        fs::write(directory.path().join(file_name(LOG_PREFIX, 0)), &bytes).unwrap();
        let mut snapshot = SNAPSHOT_MAGIC.to_vec();
        snapshot.extend_from_slice(&garbage);
        fs::write(directory.path().join(file_name(SNAPSHOT_PREFIX, 0)), &snapshot).unwrap();
        let (mut log, _, _) = open(directory.path());
        log.append([&b"still works"[..]]).unwrap();
    }
}

const CRASH_DIRECTORY_VARIABLE: &str = "TOCSIN_STATE_LOG_CRASH_DIRECTORY";
const ACKNOWLEDGED: &str = "acknowledged ";

/// Not a test on its own: the child process of `survives_kill_9`. Appends numbered records in
/// batches forever and prints the highest number after each fsync.
#[test]
fn crash_helper_child() {
    let Ok(directory) = std::env::var(CRASH_DIRECTORY_VARIABLE) else {
        return;
    };
    let (mut log, _, _) = open(Path::new(&directory));
    let mut next = 0u64;
    loop {
        let batch: Vec<Vec<u8>> = (next..next + 3)
            .map(|number| format!("{number:08}").into_bytes())
            .collect();
        log.append(slices(&batch)).unwrap();
        next += 3;
        println!("{ACKNOWLEDGED}{}", next - 1);
    }
}

#[test]
fn survives_kill_9() {
    let directory = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "state_log::tests::crash_helper_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIRECTORY_VARIABLE, directory.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(number) = line.strip_prefix(ACKNOWLEDGED) {
            let number: u64 = number.trim().parse().unwrap();
            acknowledged = Some(number);
            if number >= 600 {
                break;
            }
        }
    }
    let status = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
    let acknowledged = acknowledged.expect("the child acknowledged records");

    let (_, records, _) = open(directory.path());
    let numbers: Vec<u64> = records
        .iter()
        .map(|record| std::str::from_utf8(record).unwrap().parse().unwrap())
        .collect();
    assert!(
        numbers.len() as u64 > acknowledged,
        "lost acknowledged records"
    );
    assert!(
        numbers
            .iter()
            .enumerate()
            .all(|(index, number)| *number == index as u64),
        "records are replayed in order without gaps"
    );
}

//! A sample acknowledged to a writer survives `kill -9` of the writing process. The test
//! re-executes its own binary (`std::env::current_exe()`) in "writer" mode, selected by an
//! environment variable: the child opens the data folder, appends and commits in a loop
//! (compacting now and then, with a 10-minute chunk range so blocks and checkpoints happen
//! quickly) and prints each acknowledged batch's timestamp. The parent kills it at random
//! moments, five times, then checks that every acknowledged sample is there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tocsin::tsdb::{Labels, Matcher, Tsdb, TsdbOptions};

const WRITER_ENV: &str = "TOCSIN_TSDB_KILL9_WRITER";
const TEST_NAME: &str = "acknowledged_samples_survive_kill_9";
const SERIES: usize = 20;
const STEP: i64 = 15_000;
const T0: i64 = 1_700_000_000_000;

fn options() -> TsdbOptions {
    TsdbOptions {
        chunk_range_ms: 10 * 60 * 1000,
        retention_ms: None,
        ..TsdbOptions::default()
    }
}

fn labels(index: usize) -> Labels {
    Labels::new([
        ("__name__", "kill9".to_string()),
        ("series", index.to_string()),
    ])
}

fn value(index: usize, t: i64) -> f64 {
    (t - T0) as f64 / 1000.0 + index as f64
}

fn stored(tsdb: &Tsdb) -> Vec<(Labels, Vec<(i64, f64)>)> {
    tsdb.querier(i64::MIN, i64::MAX)
        .select(&[Matcher::equal("__name__", "kill9")])
        .unwrap()
        .map(|s| {
            let samples = s.samples().collect();
            (s.labels, samples)
        })
        .collect()
}

/// The child: append, commit, acknowledge, forever (until killed).
fn writer(folder: &Path) -> ! {
    let tsdb = Tsdb::open(folder, options()).unwrap();
    let newest = stored(&tsdb)
        .iter()
        .filter_map(|(_, samples)| samples.last().map(|s| s.0))
        .max();
    let mut t = newest.map_or(T0, |t| t + STEP);
    let stdout = std::io::stdout();
    for batch in 0u64.. {
        let mut appender = tsdb.appender();
        for index in 0..SERIES {
            appender.append(&labels(index), t, value(index, t)).unwrap();
        }
        appender.commit().unwrap();
        {
            let mut out = stdout.lock();
            writeln!(out, "ACK {t}").unwrap();
            out.flush().unwrap();
        }
        t += STEP;
        if batch % 10 == 9 {
            tsdb.compact().unwrap();
        }
    }
    unreachable!()
}

fn random_below(bound: u64) -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish() % bound
}

#[test]
fn acknowledged_samples_survive_kill_9() {
    if let Ok(folder) = std::env::var(WRITER_ENV) {
        writer(Path::new(&folder));
    }
    let folder = tempfile::tempdir().unwrap();
    let mut acknowledged: BTreeSet<i64> = BTreeSet::new();
    let mut runs_leaving_chunk_files = 0;
    for run in 0..5 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, folder.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(t) = line.strip_prefix("ACK ") {
                    acks.push(t.parse::<i64>().unwrap());
                }
            }
            acks
        });
        let delay = 300 + random_below(1200);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let acks = reader.join().unwrap();
        println!(
            "run {run}: killed after {delay} ms ({status}), {} batches acknowledged",
            acks.len()
        );
        acknowledged.extend(acks);

        // What the killed writer left in chunks_head/ reads back whole up to at most a torn
        // tail (the next open rewrites it from the WAL anyway).
        let chunks_head = folder
            .path()
            .join(tocsin::tsdb::chunks_head::CHUNKS_HEAD_FOLDER);
        if chunks_head.is_dir() {
            let scanned = tocsin::tsdb::chunks_head::scan_folder(&chunks_head).unwrap();
            println!(
                "run {run}: chunks_head: {} chunks, torn tail: {:?}",
                scanned.chunks.len(),
                scanned.torn
            );
            if std::fs::read_dir(&chunks_head).unwrap().count() > 0 {
                runs_leaving_chunk_files += 1;
            }
        }
    }
    assert!(
        acknowledged.len() > 20,
        "the writer acknowledged too little to test anything: {}",
        acknowledged.len()
    );

    // Some killed writer cut chunks into chunks_head/ (how many depends on how far each run got
    // before its kill: a short last run may leave none, since every open rebuilds the folder).
    assert!(
        runs_leaving_chunk_files > 0,
        "no writer left a head chunk file"
    );

    let tsdb = Tsdb::open(folder.path(), options()).unwrap();
    println!("replay: {:?}", tsdb.replay_report());
    println!("blocks: {}", tsdb.num_blocks());
    let series = stored(&tsdb);
    assert_eq!(series.len(), SERIES);
    for (labels, samples) in &series {
        let index: usize = labels.get("series").unwrap().parse().unwrap();
        let present: std::collections::BTreeMap<i64, f64> = samples.iter().copied().collect();
        for &t in &acknowledged {
            assert_eq!(
                present.get(&t).map(|v| v.to_bits()),
                Some(value(index, t).to_bits()),
                "{labels} lost the acknowledged sample at {t}"
            );
        }
    }
}

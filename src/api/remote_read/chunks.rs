//! The XOR chunks a streamed answer sends for one series over a query's range.
//!
//! A stored chunk goes out byte for byte when the client can use it as is: it lies inside the
//! range, overlaps no other chunk of the series (a block and the head, or an out-of-order
//! chunk) and holds no deleted samples. Every other run of overlapping chunks is merged (equal
//! timestamps once, as the querier merges them), trimmed to the range, deleted samples left
//! out, and re-encoded into chunks of at most [`SAMPLES_PER_REENCODED_CHUNK`] samples, as
//! Prometheus's chunk querier re-encodes what it trims or merges.

use crate::remote::read::proto::{Chunk, ChunkEncoding};
use crate::tsdb::Series;
use crate::tsdb::chunkenc::XorChunk;
use crate::tsdb::querier::ChunkData;

/// Prometheus's target size for a chunk it writes.
pub const SAMPLES_PER_REENCODED_CHUNK: usize = 120;

/// The chunks to send for `series` over `[start, end]`, in time order.
pub fn series_chunks(series: &Series, start: i64, end: i64) -> Result<Vec<Chunk>, String> {
    let mut stored: Vec<&ChunkData> = series.chunks().iter().collect();
    stored.sort_by_key(|chunk| (chunk.min_time, chunk.max_time));
    let mut out = Vec::new();
    let mut first = 0;
    while first < stored.len() {
        // The run of chunks overlapping each other, starting at `first`.
        let mut past_last = first + 1;
        let mut run_max = stored[first].max_time;
        while past_last < stored.len() && stored[past_last].min_time <= run_max {
            run_max = run_max.max(stored[past_last].max_time);
            past_last += 1;
        }
        let run = &stored[first..past_last];
        let run_min = run[0].min_time;
        match run {
            [only]
                if only.min_time >= start
                    && only.max_time <= end
                    && !only.deleted.overlaps(only.min_time, only.max_time) =>
            {
                out.push(Chunk {
                    min_time_ms: only.min_time,
                    max_time_ms: only.max_time,
                    r#type: ChunkEncoding::Xor as i32,
                    data: only.bytes.clone(),
                });
            }
            _ => {
                let from = start.max(run_min);
                let to = end.min(run_max);
                if from <= to {
                    let merged = Series::new(
                        series.labels.clone(),
                        run.iter().map(|chunk| (*chunk).clone()).collect(),
                        from,
                        to,
                    );
                    reencode(&merged, &mut out)?;
                }
            }
        }
        first = past_last;
    }
    Ok(out)
}

/// Appends `series`' samples to `out` as fresh XOR chunks.
fn reencode(series: &Series, out: &mut Vec<Chunk>) -> Result<(), String> {
    let mut samples = series.samples();
    let mut current: Option<(XorChunk, i64, i64)> = None;
    for (timestamp, value) in samples.by_ref() {
        let (chunk, _, max_time) =
            current.get_or_insert_with(|| (XorChunk::new(), timestamp, timestamp));
        chunk.append(timestamp, value);
        *max_time = timestamp;
        if chunk.num_samples() >= SAMPLES_PER_REENCODED_CHUNK
            && let Some(full) = current.take()
        {
            out.push(finish(full));
        }
    }
    if let Some(error) = samples.error() {
        return Err(error.to_string());
    }
    if let Some(last) = current {
        out.push(finish(last));
    }
    Ok(())
}

fn finish((chunk, min_time, max_time): (XorChunk, i64, i64)) -> Chunk {
    Chunk {
        min_time_ms: min_time,
        max_time_ms: max_time,
        r#type: ChunkEncoding::Xor as i32,
        data: chunk.bytes().to_vec(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tsdb::chunkenc::decode_xor;
    use crate::tsdb::tombstones::{Interval, Intervals};
    use crate::tsdb::{Labels, querier::ChunkData};

    fn stored(samples: &[(i64, f64)], deleted: Intervals) -> ChunkData {
        let mut chunk = XorChunk::new();
        for &(t, v) in samples {
            chunk.append(t, v);
        }
        ChunkData {
            min_time: samples[0].0,
            max_time: samples[samples.len() - 1].0,
            bytes: chunk.bytes().to_vec(),
            deleted,
        }
    }

    fn decoded(chunks: &[Chunk]) -> Vec<(i64, f64)> {
        chunks
            .iter()
            .flat_map(|chunk| decode_xor(&chunk.data).unwrap())
            .collect()
    }

    #[test]
    fn clean_chunks_inside_the_range_go_out_as_stored() {
        let a = stored(&[(0, 1.0), (10, 2.0)], Intervals::default());
        let b = stored(&[(20, 3.0), (30, 4.0)], Intervals::default());
        let series = Series::new(Labels::new([("a", "b")]), vec![b.clone(), a.clone()], 0, 30);
        let chunks = series_chunks(&series, 0, 30).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].data, a.bytes);
        assert_eq!(chunks[1].data, b.bytes);
        assert_eq!((chunks[1].min_time_ms, chunks[1].max_time_ms), (20, 30));
    }

    #[test]
    fn trimmed_overlapping_and_deleted_chunks_are_reencoded() {
        // Trimmed: only the samples inside the range remain.
        let a = stored(&[(0, 1.0), (10, 2.0), (20, 3.0)], Intervals::default());
        let series = Series::new(Labels::new([("a", "b")]), vec![a.clone()], 5, 20);
        let chunks = series_chunks(&series, 5, 20).unwrap();
        assert_eq!(decoded(&chunks), [(10, 2.0), (20, 3.0)]);
        assert_eq!((chunks[0].min_time_ms, chunks[0].max_time_ms), (10, 20));

        // Overlapping: merged, each timestamp once.
        let b = stored(&[(10, 2.0), (15, 2.5)], Intervals::default());
        let series = Series::new(Labels::new([("a", "b")]), vec![a.clone(), b], 0, 100);
        assert_eq!(
            decoded(&series_chunks(&series, 0, 100).unwrap()),
            [(0, 1.0), (10, 2.0), (15, 2.5), (20, 3.0)]
        );

        // Deleted samples are left out.
        let mut deleted = Intervals::default();
        deleted.add(Interval { mint: 5, maxt: 12 });
        let c = stored(&[(0, 1.0), (10, 2.0), (20, 3.0)], deleted);
        let series = Series::new(Labels::new([("a", "b")]), vec![c], 0, 100);
        assert_eq!(
            decoded(&series_chunks(&series, 0, 100).unwrap()),
            [(0, 1.0), (20, 3.0)]
        );
    }

    #[test]
    fn long_merges_are_cut_into_bounded_chunks() {
        let many: Vec<(i64, f64)> = (0..300).map(|i| (i * 10, i as f64)).collect();
        let a = stored(&many, Intervals::default());
        let series = Series::new(Labels::new([("a", "b")]), vec![a], 5, 10_000);
        let chunks = series_chunks(&series, 5, 10_000).unwrap();
        let counts: Vec<usize> = chunks
            .iter()
            .map(|chunk| decode_xor(&chunk.data).unwrap().len())
            .collect();
        assert_eq!(counts, [120, 120, 59]);
        assert_eq!(decoded(&chunks), many[1..]);
    }
}

//! `input_series`: series in the usual notation with values in promqltest's expanding notation
//! (`1+2x3 _ stale`), the k-th value at k × interval. Samples are handed to the storage only up
//! to each evaluation time, as promtool's lazy loader does, so a rule never sees a later input
//! sample (through `@` or a negative offset) before its time.

use super::file::InputSeries;
use crate::config::Spanned;
use crate::promql::Labels;
use crate::promql::memory::MemoryStorage;
use crate::promql::promqltest::parse::{PointSpec, parse_labels, parse_points};
use crate::promql::value::stale_nan;

/// Most points one test group's input series may expand to, so that `0+1x100000000000` is an
/// error instead of exhausting memory.
pub const MAX_INPUT_POINTS: u64 = 10_000_000;

/// A test group's input samples in time order, fed to the storage as time advances.
#[derive(Debug, Default)]
pub struct InputSamples {
    series: Vec<Labels>,
    /// (timestamp, index into `series`, value), sorted by timestamp.
    samples: Vec<(i64, usize, f64)>,
    /// Samples before this index are already in the storage.
    loaded: usize,
}

impl InputSamples {
    /// Expands every input series; the error names the series and what is wrong with it.
    pub fn parse(input: &[Spanned<InputSeries>], interval_ms: i64) -> Result<InputSamples, String> {
        let mut expanded = InputSamples::default();
        let mut budget = MAX_INPUT_POINTS;
        for entry in input {
            let series = &entry.value;
            let at = entry.referenced;
            let describe = |what: String| {
                format!(
                    "input series {:?} (line {}): {what}",
                    series.series,
                    at.line()
                )
            };
            let labels = parse_labels(series.series.trim()).map_err(describe)?;
            if labels.is_empty() {
                return Err(describe("a series needs a name or labels".to_string()));
            }
            let count = expanded_count(&series.values).map_err(describe)?;
            budget = budget.checked_sub(count).ok_or_else(|| {
                describe(format!(
                    "the input series expand to more than {MAX_INPUT_POINTS} points"
                ))
            })?;
            let points = parse_points(&series.values).map_err(describe)?;
            let index = expanded.series.len();
            expanded.series.push(labels);
            for (step, point) in points.iter().enumerate() {
                let t = i64::try_from(step)
                    .ok()
                    .and_then(|step| step.checked_mul(interval_ms))
                    .ok_or_else(|| describe("timestamps out of range".to_string()))?;
                match point {
                    PointSpec::Float(v) => expanded.samples.push((t, index, *v)),
                    PointSpec::Stale => expanded.samples.push((t, index, stale_nan())),
                    PointSpec::Gap => {}
                    PointSpec::Histogram => {
                        return Err(describe(
                            "native histogram values are not supported by Tocsin".to_string(),
                        ));
                    }
                }
            }
        }
        // Stable: a series listed twice keeps its later value at a shared timestamp.
        expanded.samples.sort_by_key(|&(t, _, _)| t);
        Ok(expanded)
    }

    /// Appends every input sample at or before `t_ms` not appended yet.
    pub fn load_until(&mut self, storage: &mut MemoryStorage, t_ms: i64) {
        while let Some(&(t, index, v)) = self.samples.get(self.loaded) {
            if t > t_ms {
                break;
            }
            storage.append(&self.series[index], t, v);
            self.loaded += 1;
        }
    }
}

/// How many points `values` expands to, counted without expanding it.
fn expanded_count(values: &str) -> Result<u64, String> {
    let mut total: u64 = 0;
    for token in values.split_whitespace() {
        let points = match token.rfind('x') {
            Some(at) if !token.starts_with("{{") => {
                let repeat: u64 = token[at + 1..]
                    .parse()
                    .map_err(|_| format!("bad repeat count in {token:?}"))?;
                // `_xN` is N gaps; `a+bxN` is N + 1 values.
                if token.starts_with('_') {
                    repeat
                } else {
                    repeat.saturating_add(1)
                }
            }
            _ => 1,
        };
        total = total.saturating_add(points);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::Queryable;
    use crate::promql::value::is_stale_nan;

    fn series(name: &str, values: &str) -> Spanned<InputSeries> {
        Spanned::new(
            InputSeries {
                series: name.to_string(),
                values: values.to_string(),
            },
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        )
    }

    #[test]
    fn expands_and_loads_in_time_order() {
        let mut input = InputSamples::parse(
            &[series("up{job=\"a\"}", "1+1x2 _ stale"), series("x", "5")],
            60_000,
        )
        .unwrap();
        let mut storage = MemoryStorage::new();
        input.load_until(&mut storage, 60_000);
        let got = storage.select(&[], 0, i64::MAX).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].samples, vec![(0, 1.0), (60_000, 2.0)]);
        assert_eq!(got[1].samples, vec![(0, 5.0)]);
        input.load_until(&mut storage, 1_000_000);
        let got = storage.select(&[], 0, i64::MAX).unwrap();
        let up = &got[0].samples;
        assert_eq!(up.len(), 4);
        assert_eq!(up[2], (120_000, 3.0));
        assert_eq!(up[3].0, 240_000);
        assert!(is_stale_nan(up[3].1));
    }

    #[test]
    fn refuses_bad_and_huge_input() {
        assert!(InputSamples::parse(&[series("up{job=\"a\"", "1")], 1000).is_err());
        assert!(InputSamples::parse(&[series("up", "1 x")], 1000).is_err());
        let error = InputSamples::parse(&[series("up", "0+1x100000000000")], 1000).unwrap_err();
        assert!(error.contains("more than"), "{error}");
        assert_eq!(expanded_count("1+1x3 _x2 5").unwrap(), 7);
    }
}

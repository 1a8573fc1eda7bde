//! [`Queryable`] over the node's [`Tsdb`]: the engine's matchers become the TSDB's, each selector
//! reads `[mint, maxt]` from the blocks and the head (merged by timestamp), and samples come back
//! as they are stored, staleness markers included (the engine interprets them).
//!
//! Besides the trait, [`TsdbSource`] answers the metadata questions of `/api/v1/series`,
//! `/api/v1/labels` and `/api/v1/label/{name}/values` over a time range.

use std::collections::BTreeSet;

use super::storage::{MatchKind, Matcher, Queryable, SeriesData, StorageError};
use super::value::Labels;
use crate::tsdb::{self, Tsdb, TsdbError};

/// Reads a [`Tsdb`] for the engine and the metadata endpoints.
#[derive(Debug, Clone, Copy)]
pub struct TsdbSource<'a> {
    tsdb: &'a Tsdb,
}

fn internal(error: TsdbError) -> StorageError {
    StorageError::Internal(error.to_string())
}

/// The TSDB's matcher for one of the engine's. The engine's regexes let `.` match newlines
/// (Prometheus 3); the TSDB anchors the pattern as written, so the flag is spelled out.
fn convert(matcher: &Matcher) -> Result<tsdb::Matcher, StorageError> {
    let (kind, value) = match matcher.kind {
        MatchKind::Equal => (tsdb::MatchKind::Equal, matcher.value.clone()),
        MatchKind::NotEqual => (tsdb::MatchKind::NotEqual, matcher.value.clone()),
        MatchKind::Regex => (
            tsdb::MatchKind::RegexMatch,
            format!("(?s:{})", matcher.value),
        ),
        MatchKind::NotRegex => (
            tsdb::MatchKind::RegexNoMatch,
            format!("(?s:{})", matcher.value),
        ),
    };
    tsdb::Matcher::new(kind, matcher.name.clone(), value)
        .map_err(|error| StorageError::InvalidMatcher(error.to_string()))
}

/// The TSDB's matchers for the engine's (see [`convert`]).
pub(crate) fn convert_all(matchers: &[Matcher]) -> Result<Vec<tsdb::Matcher>, StorageError> {
    matchers.iter().map(convert).collect()
}

impl<'a> TsdbSource<'a> {
    pub fn new(tsdb: &'a Tsdb) -> Self {
        TsdbSource { tsdb }
    }

    /// Label sets of the series matching every matcher that have data in `[mint, maxt]`,
    /// sorted, without decoding their samples.
    pub fn series(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        let converted = convert_all(matchers)?;
        let querier = self.tsdb.querier(mint_ms, maxt_ms);
        let mut out: Vec<Labels> = querier
            .select(&converted)
            .map_err(internal)?
            .map(|series| Labels::from_tsdb(series.labels))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Label names in `[mint, maxt]`: of every series when `matchers` is empty, else of the
    /// matching series. Sorted.
    pub fn label_names_in(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        if matchers.is_empty() {
            return Ok(self.tsdb.querier(mint_ms, maxt_ms).label_names());
        }
        let mut names = BTreeSet::new();
        for labels in self.series(matchers, mint_ms, maxt_ms)? {
            names.extend(labels.names().map(str::to_string));
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` in `[mint, maxt]`, over every series or the matching ones. Sorted.
    pub fn label_values_in(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        if matchers.is_empty() {
            let mut values = self
                .tsdb
                .querier(mint_ms, maxt_ms)
                .label_values(name)
                .map_err(internal)?;
            values.retain(|value| !value.is_empty());
            return Ok(values);
        }
        let mut values = BTreeSet::new();
        for labels in self.series(matchers, mint_ms, maxt_ms)? {
            if labels.has(name) {
                values.insert(labels.get(name).to_string());
            }
        }
        Ok(values.into_iter().collect())
    }
}

impl Queryable for TsdbSource<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        let converted = convert_all(matchers)?;
        let querier = self.tsdb.querier(mint_ms, maxt_ms);
        let mut out: Vec<SeriesData> = querier
            .select_samples(&converted)
            .map_err(internal)?
            .into_iter()
            .map(|series| SeriesData {
                labels: Labels::from_tsdb(series.labels),
                samples: series.samples,
            })
            .collect();
        // The querier returns series sorted in the same pair-by-pair order: this only checks
        // (one comparison per series) unless a source broke the order.
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.label_names_in(matchers, i64::MIN, i64::MAX)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.label_values_in(name, matchers, i64::MIN, i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::Engine;
    use crate::promql::value::{Value, is_stale_nan, stale_nan};
    use crate::tsdb::TsdbOptions;

    fn labels(pairs: &[(&str, &str)]) -> tsdb::Labels {
        tsdb::Labels::new(pairs.iter().copied())
    }

    fn fixture() -> (tempfile::TempDir, Tsdb) {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(&dir.path().join("tsdb"), TsdbOptions::default()).unwrap();
        let mut appender = db.appender();
        let a = labels(&[("__name__", "up"), ("job", "a"), ("note", "x\ny")]);
        let b = labels(&[("__name__", "up"), ("job", "b")]);
        let other = labels(&[("__name__", "other"), ("job", "a")]);
        for i in 0..10i64 {
            appender.append(&a, i * 15_000, i as f64).unwrap();
            appender.append(&other, i * 15_000, 100.0).unwrap();
        }
        appender.append(&b, 0, 7.0).unwrap();
        appender.append(&b, 15_000, stale_nan()).unwrap();
        appender.commit().unwrap();
        (dir, db)
    }

    #[test]
    fn select_converts_matchers_and_returns_stale_markers() {
        let (_dir, db) = fixture();
        let source = TsdbSource::new(&db);
        let up = Matcher::new(MatchKind::Equal, "__name__", "up").unwrap();
        let series = source.select(std::slice::from_ref(&up), 0, 30_000).unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels.get("job"), "a");
        assert_eq!(
            series[0].samples,
            vec![(0, 0.0), (15_000, 1.0), (30_000, 2.0)]
        );
        assert_eq!(series[1].samples.len(), 2);
        assert!(is_stale_nan(series[1].samples[1].1));

        let not_b = Matcher::new(MatchKind::NotRegex, "job", "b|c").unwrap();
        let series = source.select(&[up.clone(), not_b], 0, i64::MAX).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].samples.len(), 10);

        // `.` matches a newline, as in Prometheus 3.
        let dotall = Matcher::new(MatchKind::Regex, "note", "x.y").unwrap();
        assert_eq!(source.select(&[dotall], 0, i64::MAX).unwrap().len(), 1);

        // A series without samples in the range is left out.
        let b = Matcher::new(MatchKind::Equal, "job", "b").unwrap();
        assert!(source.select(&[b], 60_000, 90_000).unwrap().is_empty());
    }

    #[test]
    fn metadata_over_ranges() {
        let (_dir, db) = fixture();
        let source = TsdbSource::new(&db);
        assert_eq!(
            source.label_names(&[]).unwrap(),
            vec!["__name__", "job", "note"]
        );
        let other = Matcher::new(MatchKind::Equal, "__name__", "other").unwrap();
        assert_eq!(
            source.label_names(std::slice::from_ref(&other)).unwrap(),
            vec!["__name__", "job"]
        );
        assert_eq!(source.label_values("job", &[]).unwrap(), vec!["a", "b"]);
        assert_eq!(
            source
                .label_values("job", std::slice::from_ref(&other))
                .unwrap(),
            vec!["a"]
        );
        let all = Matcher::new(MatchKind::Regex, "__name__", ".+").unwrap();
        assert_eq!(
            source
                .series(std::slice::from_ref(&all), 0, i64::MAX)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(source.series(&[all], 60_000, 90_000).unwrap().len(), 2);
    }

    #[test]
    fn the_engine_reads_through_the_adapter() {
        let (_dir, db) = fixture();
        let source = TsdbSource::new(&db);
        let engine = Engine::default();
        let result = engine.instant_query(&source, "sum(up)", 135_000).unwrap();
        match result.value {
            Value::Vector(vector) => {
                assert_eq!(vector.len(), 1);
                // Series b went stale at 15s; a is 9 at 135s.
                assert_eq!(vector[0].v, 9.0);
            }
            other => panic!("unexpected {other:?}"),
        }
        let result = engine
            .range_query(&source, "up{job=\"b\"}", 0, 30_000, 15_000)
            .unwrap();
        match result.value {
            Value::Matrix(matrix) => {
                assert_eq!(matrix.len(), 1);
                assert_eq!(matrix[0].points, vec![(0, 7.0)]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

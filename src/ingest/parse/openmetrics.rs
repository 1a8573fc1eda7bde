//! OpenMetrics 1.0 text format, as Prometheus's `openmetricslex.l` and `openmetricsparse.go`
//! read it.
//!
//! Stricter than the text format: exactly one space between tokens and none elsewhere (no
//! tabs, no leading or trailing blanks, no blank lines, no blanks inside braces); a label must
//! be followed by `,` or `}` (a trailing comma is taken, as Prometheus does); label values
//! cannot hold raw newlines; the only `#` lines are `# HELP`, `# TYPE`, `# UNIT` and the
//! final `# EOF`, which must be followed by nothing (one line break at most). Every line,
//! including the last sample, ends in `\n`. Help text uses label-value escaping (`\"` too).
//! Timestamps are seconds as floats (`1520879607.789`), stored as truncated milliseconds;
//! samples may carry an exemplar `# {labels} value [timestamp]`. `# UNIT` must be a suffix
//! (after `_`) of its family name.
//!
//! As in Prometheus, `_total`, family grouping and exemplar placement are not enforced: the
//! scraper sees [`Sample::metric_type`](super::Sample::metric_type) and
//! [`Sample::is_created`](super::Sample::is_created) and decides. Departure: a quoted name
//! cannot hold a raw newline (Prometheus's lexer takes one in quoted label names; the spec
//! does not).

use super::lexer::{Cursor, Dialect, METRIC_CHAR, METRIC_START, OM_VALUE_CHAR, excerpt};
use super::lexer::{parse_float, value_message};
use super::{
    Entry, ErrorKind, Escaped, Exemplar, Family, Labels, Limits, MetricType, ParseError, Sample,
};

const SAMPLE_LABELS: Dialect = Dialect {
    blanks: false,
    comma_required: true,
    newline_in_quotes: false,
    name_allowed: true,
    what: "label",
};

const EXEMPLAR_LABELS: Dialect = Dialect {
    name_allowed: false,
    what: "exemplar label",
    ..SAMPLE_LABELS
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// `# EOF` was returned; the next call ends the iteration.
    Done,
}

/// A parser of OpenMetrics 1.0: an iterator of entries borrowing from the input, ending with
/// [`Entry::Eof`], which stops after the first error.
///
/// ```
/// use tocsin::ingest::parse::{Entry, OpenMetricsParser};
/// let body = b"# TYPE foo counter\nfoo_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n# EOF\n";
/// let entries: Vec<_> = OpenMetricsParser::new(body).collect::<Result<_, _>>().unwrap();
/// let Entry::Sample(sample) = entries[1] else { panic!() };
/// assert_eq!(sample.timestamp_ms, Some(1_520_879_607_789));
/// assert_eq!(sample.exemplar.unwrap().value, 0.67);
/// assert_eq!(entries[2], Entry::Eof);
/// ```
pub struct OpenMetricsParser<'a> {
    cur: Cursor<'a>,
    limits: Limits,
    family: Option<Family<'a>>,
    state: State,
}

impl<'a> OpenMetricsParser<'a> {
    /// A parser of `input` with the default [`Limits`].
    pub fn new(input: &'a [u8]) -> Self {
        Self::with_limits(input, Limits::default())
    }

    /// A parser of `input` with the given limits.
    pub fn with_limits(input: &'a [u8], limits: Limits) -> Self {
        OpenMetricsParser {
            cur: Cursor::new(input, limits.max_line_length),
            limits,
            family: None,
            state: State::Running,
        }
    }

    /// The byte offset parsing has reached.
    pub fn offset(&self) -> usize {
        self.cur.pos
    }

    fn entry(&mut self) -> Result<Entry<'a>, ParseError> {
        self.cur.begin_line();
        match self.cur.peek() {
            None if self.cur.cut_by_limit(self.cur.pos) => Err(self.cur.too_long(self.cur.pos)),
            None => Err(self.missing_eof(self.cur.pos)),
            Some(b'#') => self.hash_line(),
            Some(c) if c == b'{' || METRIC_START[usize::from(c)] => {
                self.sample().map(Entry::Sample)
            }
            Some(b'\n') => Err(self.cur.error(
                self.cur.pos,
                ErrorKind::Syntax,
                "blank lines are not allowed in OpenMetrics".to_owned(),
            )),
            Some(_) => Err(self.cur.error(
                self.cur.pos,
                ErrorKind::Syntax,
                format!(
                    "expected a metric name, \"{{\" or \"#\" at the start of a line, found {}",
                    self.cur.found(self.cur.pos)
                ),
            )),
        }
    }

    #[cold]
    fn missing_eof(&self, at: usize) -> ParseError {
        self.cur.error(
            at,
            ErrorKind::MissingEof,
            "the exposition does not end with \"# EOF\"".to_owned(),
        )
    }

    /// `# HELP`, `# TYPE`, `# UNIT` or `# EOF`.
    fn hash_line(&mut self) -> Result<Entry<'a>, ParseError> {
        let hash = self.cur.pos;
        if self.cur.at(hash + 1) != Some(b' ') {
            return Err(self.cur.syntax_or_limit(
                hash + 1,
                "expected a space after \"#\" (OpenMetrics only has # HELP, # TYPE, # UNIT \
                 and # EOF lines)"
                    .to_owned(),
            ));
        }
        let word_at = hash + 2;
        let buf = self.cur.buf;
        let word = buf.get(word_at..word_at + 4);
        let space_after = self.cur.at(word_at + 4) == Some(b' ');
        match word {
            Some(b"HELP") if space_after => return self.metadata(word_at, Meta::Help),
            Some(b"TYPE") if space_after => return self.metadata(word_at, Meta::Type),
            Some(b"UNIT") if space_after => return self.metadata(word_at, Meta::Unit),
            _ => {}
        }
        if buf.get(word_at..word_at + 3) == Some(b"EOF") {
            let after = word_at + 3;
            let rest = buf.get(after..).unwrap_or(&[]);
            if rest.is_empty() || rest == b"\n" {
                self.cur.pos = buf.len();
                return Ok(Entry::Eof);
            }
            let at = if rest.first() == Some(&b'\n') {
                after + 1
            } else {
                after
            };
            return Err(self.cur.error(
                at,
                ErrorKind::DataAfterEof,
                "unexpected data after \"# EOF\"".to_owned(),
            ));
        }
        Err(self.cur.syntax_or_limit(
            word_at,
            "expected HELP, TYPE, UNIT or EOF after \"# \" (OpenMetrics has no other comments)"
                .to_owned(),
        ))
    }

    /// The rest of a metadata line from the keyword at `word_at`.
    fn metadata(&mut self, word_at: usize, meta: Meta) -> Result<Entry<'a>, ParseError> {
        let keyword = meta.keyword();
        self.cur.pos = word_at + 5;
        let name_at = self.cur.pos;
        let (name_from, name_to) = match self.cur.peek() {
            Some(c) if METRIC_START[usize::from(c)] => (name_at, self.cur.scan(&METRIC_CHAR)),
            Some(b'"') => self
                .cur
                .quoted(false)
                .map_err(|e| self.cur.quoted_error(e, "quoted metric name"))?,
            _ => {
                return Err(self
                    .cur
                    .syntax_or_limit(name_at, format!("expected a metric name after {keyword}")));
            }
        };
        let name = self.utf8(name_from, name_to, "metric name")?;
        if self.cur.peek() != Some(b' ') {
            return Err(self.cur.syntax_or_limit(
                self.cur.pos,
                format!(
                    "expected a space and the {} after the metric name",
                    meta.what()
                ),
            ));
        }
        let text_from = self.cur.pos + 1;
        let text_to = self.line_end(text_from)?;
        self.cur.pos = text_to + 1;
        match meta {
            Meta::Help => {
                let text = self.utf8(text_from, text_to, "help text")?;
                Ok(Entry::Help {
                    name: Escaped::new(name),
                    text: Escaped::new(text),
                })
            }
            Meta::Type => {
                let kind = match self.cur.buf.get(text_from..text_to).unwrap_or(&[]) {
                    b"counter" => MetricType::Counter,
                    b"gauge" => MetricType::Gauge,
                    b"histogram" => MetricType::Histogram,
                    b"gaugehistogram" => MetricType::GaugeHistogram,
                    b"summary" => MetricType::Summary,
                    b"info" => MetricType::Info,
                    b"stateset" => MetricType::StateSet,
                    b"unknown" => MetricType::Unknown,
                    other => {
                        return Err(self.cur.error(
                            text_from,
                            ErrorKind::InvalidMetadata,
                            format!(
                                "invalid metric type {} (expected counter, gauge, histogram, \
                                 gaugehistogram, summary, info, stateset or unknown)",
                                excerpt(other)
                            ),
                        ));
                    }
                };
                self.family = Some(Family { name, kind });
                Ok(Entry::Type {
                    name: Escaped::new(name),
                    kind,
                })
            }
            Meta::Unit => {
                let unit = self.utf8(text_from, text_to, "unit")?;
                let suffix_ok = unit.is_empty()
                    || name
                        .strip_suffix(unit)
                        .is_some_and(|base| base.ends_with('_'));
                if !suffix_ok {
                    return Err(self.cur.error(
                        text_from,
                        ErrorKind::InvalidMetadata,
                        format!(
                            "unit {} is not a suffix of metric {} (expected the name to end in \
                             \"_{}\")",
                            excerpt(unit.as_bytes()),
                            excerpt(name.as_bytes()),
                            unit.escape_debug()
                        ),
                    ));
                }
                Ok(Entry::Unit {
                    name: Escaped::new(name),
                    unit,
                })
            }
        }
    }

    /// The offset of the `\n` ending the line that `from` is on.
    fn line_end(&self, from: usize) -> Result<usize, ParseError> {
        let window = self.cur.buf.get(..self.cur.end).unwrap_or(&[]);
        match window
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .position(|&c| c == b'\n')
        {
            Some(i) => Ok(from + i),
            None if self.cur.cut_by_limit(self.cur.end) => Err(self.cur.too_long(self.cur.end)),
            None => Err(self.missing_eof(window.len())),
        }
    }

    fn utf8(&self, from: usize, to: usize, what: &str) -> Result<&'a str, ParseError> {
        let bytes = self.cur.buf.get(from..to).unwrap_or(&[]);
        std::str::from_utf8(bytes).map_err(|e| {
            self.cur.error(
                from + e.valid_up_to(),
                ErrorKind::InvalidUtf8,
                format!("invalid UTF-8 in {what}"),
            )
        })
    }

    /// A value or timestamp token after the space at the current position.
    fn token(&mut self, what: &str) -> Result<(usize, &'a [u8]), ParseError> {
        self.cur.pos += 1;
        let at = self.cur.pos;
        let to = self.cur.scan(&OM_VALUE_CHAR);
        if to == at {
            return Err(self.cur.syntax_or_limit(at, format!("expected {what}")));
        }
        Ok((at, self.cur.buf.get(at..to).unwrap_or(&[])))
    }

    fn value(&mut self, what: &str) -> Result<f64, ParseError> {
        let (at, token) = self.token(&format!("a {what}"))?;
        parse_float(token).map_err(|problem| {
            self.cur.error(
                at,
                ErrorKind::InvalidValue,
                value_message(what, token, problem),
            )
        })
    }

    /// Float seconds to integer milliseconds, truncated as Go's `int64(ts * 1000)` does.
    fn timestamp(&mut self, what: &str) -> Result<i64, ParseError> {
        let (at, token) = self.token(&format!("a {what}"))?;
        let invalid = |message: String| self.cur.error(at, ErrorKind::InvalidTimestamp, message);
        let seconds =
            parse_float(token).map_err(|problem| invalid(value_message(what, token, problem)))?;
        let ms = seconds * 1000.0;
        // ±2^63 bounds the range; NaN fails both comparisons.
        if !(ms > -9.223_372_036_854_775e18 && ms < 9.223_372_036_854_775e18) {
            return Err(invalid(format!(
                "{what} {} is not a finite time in range",
                excerpt(token)
            )));
        }
        #[allow(clippy::cast_possible_truncation)]
        Ok(ms as i64)
    }

    /// Whether the bytes at the current position are ` # {`, the start of an exemplar.
    fn at_exemplar(&self) -> bool {
        let p = self.cur.pos;
        self.cur.at(p) == Some(b' ')
            && self.cur.at(p + 1) == Some(b'#')
            && self.cur.at(p + 2) == Some(b' ')
            && self.cur.at(p + 3) == Some(b'{')
    }

    fn sample(&mut self) -> Result<Sample<'a>, ParseError> {
        let start = self.cur.pos;
        let mut name = None;
        let mut labels = Labels::default();
        if self.cur.peek() != Some(b'{') {
            let to = self.cur.scan(&METRIC_CHAR);
            name = std::str::from_utf8(self.cur.buf.get(start..to).unwrap_or(&[])).ok();
        }
        if self.cur.peek() == Some(b'{') {
            let set = self
                .cur
                .label_set(SAMPLE_LABELS, name.is_some(), self.limits.max_labels)?;
            labels = set.labels;
            if name.is_none() {
                name = set.name;
            }
        }
        let series = self.cur.buf.get(start..self.cur.pos).unwrap_or(&[]);
        let Some(name) = name else {
            return Err(self.cur.error(
                start,
                ErrorKind::Syntax,
                "metric name not set: a label set without a name needs it quoted inside, as \
                 in {\"name\",label=\"value\"}"
                    .to_owned(),
            ));
        };
        if self.cur.peek() != Some(b' ') {
            return Err(self.end_of_line_error(
                "expected a space and a value after the metric (OpenMetrics takes exactly one \
                 space)",
            ));
        }
        let value = self.value("sample value")?;
        let mut timestamp_ms = None;
        if self.cur.peek() == Some(b' ') && !self.at_exemplar() {
            timestamp_ms = Some(self.timestamp("timestamp")?);
        }
        let mut exemplar = None;
        if self.at_exemplar() {
            exemplar = Some(self.exemplar()?);
        }
        self.end_line(if exemplar.is_some() {
            "expected the end of the line after the exemplar"
        } else if timestamp_ms.is_some() {
            "expected an exemplar or the end of the line after the timestamp"
        } else {
            "expected a timestamp, an exemplar or the end of the line after the value"
        })?;
        Ok(Sample {
            name: Escaped::new(name),
            labels,
            series,
            value,
            timestamp_ms,
            exemplar,
            family: self.family,
            openmetrics: true,
        })
    }

    /// ` # {labels} value [timestamp]`, from the leading space.
    fn exemplar(&mut self) -> Result<Exemplar<'a>, ParseError> {
        self.cur.pos += 3;
        let set = self
            .cur
            .label_set(EXEMPLAR_LABELS, true, self.limits.max_labels)?;
        if self.cur.peek() != Some(b' ') {
            return Err(
                self.end_of_line_error("expected a space and a value after the exemplar labels")
            );
        }
        let value = self.value("exemplar value")?;
        let mut timestamp_ms = None;
        if self.cur.peek() == Some(b' ') {
            timestamp_ms = Some(self.timestamp("exemplar timestamp")?);
        }
        Ok(Exemplar {
            labels: set.labels,
            value,
            timestamp_ms,
        })
    }

    /// Consumes the `\n` ending a sample line.
    fn end_line(&mut self, expected: &str) -> Result<(), ParseError> {
        if self.cur.peek() == Some(b'\n') {
            self.cur.pos += 1;
            return Ok(());
        }
        Err(self.end_of_line_error(expected))
    }

    #[cold]
    fn end_of_line_error(&self, expected: &str) -> ParseError {
        let at = self.cur.pos;
        if at >= self.cur.buf.len() {
            return self.missing_eof(at);
        }
        self.cur.syntax_or_limit(at, expected.to_owned())
    }
}

#[derive(Debug, Clone, Copy)]
enum Meta {
    Help,
    Type,
    Unit,
}

impl Meta {
    fn keyword(self) -> &'static str {
        match self {
            Meta::Help => "HELP",
            Meta::Type => "TYPE",
            Meta::Unit => "UNIT",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Meta::Help => "help text",
            Meta::Type => "type",
            Meta::Unit => "unit",
        }
    }
}

impl<'a> Iterator for OpenMetricsParser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state == State::Done {
            return None;
        }
        let entry = self.entry();
        if matches!(entry, Ok(Entry::Eof) | Err(_)) {
            self.state = State::Done;
        }
        Some(entry)
    }
}

impl std::iter::FusedIterator for OpenMetricsParser<'_> {}

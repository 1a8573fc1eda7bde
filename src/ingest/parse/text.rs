//! The Prometheus text exposition format 0.0.4, as Prometheus's `promlex.l` and `promparse.go`
//! read it.
//!
//! What that means in detail, all of it accepted here too:
//! - blanks (spaces and tabs) around every token, at the start of lines and before the line
//!   break; blank lines anywhere; no line break needed after the last line;
//! - `# HELP` and `# TYPE` need a blank after the keyword (`#HELP` is a comment); the text is
//!   the rest of the line minus its first byte (the separating blank), empty if it is all
//!   blanks; other `#` lines are comments;
//! - label sets take a trailing comma and even labels separated by blanks alone
//!   (`{a="1" b="2"}`); label values may hold raw newlines and NUL bytes; a backslash escapes
//!   any character, and only `\\`, `\"` and `\n` decode (others stay as written);
//! - Prometheus 3's quoted names: `{"my.metric", "label.name"="v"}` and `# TYPE "my.metric"`;
//! - values as Go's `ParseFloat` takes them minus hex floats and `_`; timestamps as integer
//!   milliseconds, digits only;
//! - a NUL byte where a line would start ends the exposition (Prometheus's lexer returns EOF
//!   there, which tolerates exporters that pad their output with NULs);
//! - `\r` is not a line break: before a line break it makes the value or timestamp invalid.
//!
//! Deliberate departures: Prometheus ends silently at a NUL inside some comments; here a
//! comment simply runs to its line break. A quoted name in `# HELP`/`# TYPE` cannot span lines.

use super::lexer::{Cursor, Dialect, METRIC_CHAR, METRIC_START, TEXT_VALUE_CHAR, excerpt};
use super::lexer::{parse_float, value_message};
use super::{Entry, ErrorKind, Escaped, Family, Labels, Limits, MetricType, ParseError, Sample};

const DIALECT: Dialect = Dialect {
    blanks: true,
    comma_required: false,
    newline_in_quotes: true,
    name_allowed: true,
    what: "label",
};

/// A parser of the Prometheus text format 0.0.4: an iterator of entries borrowing from the
/// input, which stops after the first error.
///
/// ```
/// use tocsin::ingest::parse::{Entry, TextParser};
/// let body = b"# TYPE up gauge\nup{job=\"node\"} 1 1700000000000\n";
/// let samples: Vec<_> = TextParser::new(body)
///     .filter_map(|entry| match entry {
///         Ok(Entry::Sample(sample)) => Some(sample),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(samples[0].labels.get("job").map(|v| v.raw()), Some("node"));
/// assert_eq!(samples[0].timestamp_ms, Some(1_700_000_000_000));
/// ```
pub struct TextParser<'a> {
    cur: Cursor<'a>,
    limits: Limits,
    family: Option<Family<'a>>,
    done: bool,
}

impl<'a> TextParser<'a> {
    /// A parser of `input` with the default [`Limits`].
    pub fn new(input: &'a [u8]) -> Self {
        Self::with_limits(input, Limits::default())
    }

    /// A parser of `input` with the given limits.
    pub fn with_limits(input: &'a [u8], limits: Limits) -> Self {
        TextParser {
            cur: Cursor::new(input, limits.max_line_length),
            limits,
            family: None,
            done: false,
        }
    }

    /// The byte offset parsing has reached.
    pub fn offset(&self) -> usize {
        self.cur.pos
    }

    fn entry(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        loop {
            self.cur.begin_line();
            self.cur.skip_blanks();
            match self.cur.peek() {
                None if self.cur.cut_by_limit(self.cur.pos) => {
                    return Err(self.cur.too_long(self.cur.pos));
                }
                None | Some(0) => return Ok(None),
                Some(b'\n') => self.cur.pos += 1,
                Some(b'#') => return self.hash_line().map(Some),
                Some(c) if c == b'{' || METRIC_START[usize::from(c)] => {
                    return self.sample().map(|s| Some(Entry::Sample(s)));
                }
                Some(_) => {
                    return Err(self.cur.error(
                        self.cur.pos,
                        ErrorKind::Syntax,
                        format!(
                            "expected a metric name, \"{{\", \"#\" or a blank line, found {}",
                            self.cur.found(self.cur.pos)
                        ),
                    ));
                }
            }
        }
    }

    /// The end of the current line (the offset of its `\n`, or of the end of input), or the
    /// line-length error.
    fn line_end(&self, from: usize) -> Result<usize, ParseError> {
        let window = self.cur.buf.get(..self.cur.end).unwrap_or(&[]);
        let rest = window.get(from..).unwrap_or(&[]);
        match rest.iter().position(|&c| c == b'\n') {
            Some(i) => Ok(from + i),
            None if self.cur.cut_by_limit(self.cur.end) => Err(self.cur.too_long(self.cur.end)),
            None => Ok(window.len()),
        }
    }

    /// A line starting with `#`: `# HELP`, `# TYPE` or a comment.
    fn hash_line(&mut self) -> Result<Entry<'a>, ParseError> {
        let hash = self.cur.pos;
        self.cur.pos += 1;
        if matches!(self.cur.peek(), Some(b' ' | b'\t')) {
            self.cur.skip_blanks();
            let at = self.cur.pos;
            let word = self.cur.buf.get(at..at + 4);
            let blank_after = matches!(self.cur.at(at + 4), Some(b' ' | b'\t'));
            match word {
                Some(b"HELP") if blank_after => return self.metadata(true),
                Some(b"TYPE") if blank_after => return self.metadata(false),
                _ => {}
            }
        }
        let end = self.line_end(self.cur.pos)?;
        self.cur.pos = end + 1;
        Ok(Entry::Comment(self.cur.buf.get(hash..end).unwrap_or(&[])))
    }

    /// `# HELP name text` or `# TYPE name type`, from the keyword on.
    fn metadata(&mut self, help: bool) -> Result<Entry<'a>, ParseError> {
        let keyword = if help { "HELP" } else { "TYPE" };
        self.cur.pos += 4;
        self.cur.skip_blanks();
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
        let end = self.line_end(self.cur.pos)?;
        let rest = self.cur.buf.get(self.cur.pos..end).unwrap_or(&[]);
        // promlex: the rest of the line is the text token, and the parser drops its first
        // byte (the blank after the name); an all-blank rest lexes as blanks and gives "".
        let text_from = if rest.iter().all(|&c| c == b' ' || c == b'\t') {
            end
        } else {
            self.cur.pos + 1
        };
        self.cur.pos = end + 1;
        if help {
            let text = self.utf8(text_from, end, "help text")?;
            return Ok(Entry::Help {
                name: Escaped::new(name),
                text: Escaped::help(text),
            });
        }
        let kind = match self.cur.buf.get(text_from..end).unwrap_or(&[]) {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"summary" => MetricType::Summary,
            b"untyped" => MetricType::Unknown,
            other => {
                return Err(self.cur.error(
                    text_from.min(end),
                    ErrorKind::InvalidMetadata,
                    format!(
                        "invalid metric type {} (expected counter, gauge, histogram, summary \
                         or untyped)",
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

    /// `buf[from..to]` as UTF-8, or an error at the first invalid byte.
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

    /// A sample line, from its first non-blank byte.
    fn sample(&mut self) -> Result<Sample<'a>, ParseError> {
        let start = self.cur.pos;
        let mut name = None;
        let mut labels = Labels::default();
        let mut series_end = start;
        if self.cur.peek() != Some(b'{') {
            let to = self.cur.scan(&METRIC_CHAR);
            // Metric-name bytes are ASCII.
            name = std::str::from_utf8(self.cur.buf.get(start..to).unwrap_or(&[])).ok();
            series_end = to;
            self.cur.skip_blanks();
        }
        if self.cur.peek() == Some(b'{') {
            let set = self
                .cur
                .label_set(DIALECT, name.is_some(), self.limits.max_labels)?;
            labels = set.labels;
            if name.is_none() {
                name = set.name;
            }
            series_end = self.cur.pos;
            self.cur.skip_blanks();
        }
        let Some(name) = name else {
            return Err(self.cur.error(
                start,
                ErrorKind::Syntax,
                "metric name not set: a label set without a name needs it quoted inside, as \
                 in {\"name\", label=\"value\"}"
                    .to_owned(),
            ));
        };
        let value_at = self.cur.pos;
        let value_to = self.cur.scan(&TEXT_VALUE_CHAR);
        if value_to == value_at {
            return Err(self
                .cur
                .syntax_or_limit(value_at, "expected a value after the metric".to_owned()));
        }
        let token = self.cur.buf.get(value_at..value_to).unwrap_or(&[]);
        let value = parse_float(token).map_err(|problem| {
            self.cur.error(
                value_at,
                ErrorKind::InvalidValue,
                value_message("sample value", token, problem),
            )
        })?;
        self.cur.skip_blanks();
        let mut timestamp_ms = None;
        if self.cur.peek().is_some_and(|c| c.is_ascii_digit()) {
            let ts_at = self.cur.pos;
            let ts_to = self.cur.scan(&super::lexer::DIGIT);
            timestamp_ms = Some(self.timestamp(ts_at, ts_to)?);
            self.cur.skip_blanks();
        }
        match self.cur.peek() {
            Some(b'\n') => self.cur.pos += 1,
            None if !self.cur.cut_by_limit(self.cur.pos) => {}
            _ => {
                let expected = if timestamp_ms.is_some() {
                    "expected the end of the line after the timestamp"
                } else {
                    "expected a timestamp or the end of the line after the value"
                };
                return Err(self.cur.syntax_or_limit(self.cur.pos, expected.to_owned()));
            }
        }
        Ok(Sample {
            name: Escaped::new(name),
            labels,
            series: self.cur.buf.get(start..series_end).unwrap_or(&[]),
            value,
            timestamp_ms,
            exemplar: None,
            family: self.family,
            openmetrics: false,
        })
    }

    /// Integer milliseconds (`strconv.ParseInt(s, 10, 64)`; the lexer allows digits only).
    fn timestamp(&self, from: usize, to: usize) -> Result<i64, ParseError> {
        let digits = self.cur.buf.get(from..to).unwrap_or(&[]);
        let mut ms: i64 = 0;
        for &c in digits {
            ms = ms
                .checked_mul(10)
                .and_then(|ms| ms.checked_add(i64::from(c - b'0')))
                .ok_or_else(|| {
                    self.cur.error(
                        from,
                        ErrorKind::InvalidTimestamp,
                        format!("timestamp {} out of range", excerpt(digits)),
                    )
                })?;
        }
        Ok(ms)
    }
}

impl<'a> Iterator for TextParser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

impl std::iter::FusedIterator for TextParser<'_> {}

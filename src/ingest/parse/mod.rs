//! Exposition parsers: Prometheus text format 0.0.4 ([`TextParser`]) and OpenMetrics 1.0
//! ([`OpenMetricsParser`]).
//!
//! Both are iterators over a scraped body (`&[u8]`) yielding [`Entry`] values that borrow from
//! it: names, label names and values are slices of the input, still escaped, with
//! [`Escaped::unescape`] and [`Escaped::chunks`] to read them decoded on demand. Label sets are
//! a [`Labels`] view over the text between the braces, iterated lazily, so a scraper can hash
//! or compare a series without allocating per sample. Nothing is allocated while parsing, except
//! the message of the error that ends it.
//!
//! The grammar follows Prometheus's `model/textparse` (promlex.l, openmetricslex.l and their
//! parsers), Prometheus 3's quoted UTF-8 names included, so what Prometheus accepts is accepted
//! here with the same values. The deliberate departures are listed on each parser. Every error
//! names its line and column ([`ParseError`]); a line longer than [`Limits::max_line_length`]
//! or a label set larger than [`Limits::max_labels`] is an error, not a long scan.

mod lexer;
mod openmetrics;
mod text;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

pub use lexer::NORMAL_NAN_BITS;
pub use openmetrics::OpenMetricsParser;
pub use text::TextParser;

/// One line (or, for a text-format label value holding raw newlines, one logical line) of an
/// exposition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text`.
    Help {
        /// The metric family name (quotes removed, escapes kept).
        name: Escaped<'a>,
        /// The help text, escapes kept (`\\` and `\n`; OpenMetrics also `\"`).
        text: Escaped<'a>,
    },
    /// `# TYPE name kind`.
    Type {
        /// The metric family name.
        name: Escaped<'a>,
        /// The declared type (`untyped` in the text format is [`MetricType::Unknown`]).
        kind: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics only). The unit is checked to be a suffix of the name.
    Unit {
        /// The metric family name.
        name: Escaped<'a>,
        /// The unit, possibly empty.
        unit: &'a str,
    },
    /// Any other comment line, from its `#` to the end of the line (text format only; the
    /// text format does not require comments to be UTF-8, so these are bytes).
    Comment(&'a [u8]),
    /// A sample line.
    Sample(Sample<'a>),
    /// `# EOF`, the last line of an OpenMetrics exposition.
    Eof,
}

/// A metric family's type, as declared by `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics only).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics only).
    Info,
    /// `stateset` (OpenMetrics only).
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in the text format, and no `# TYPE` at all.
    #[default]
    Unknown,
}

impl MetricType {
    /// The name Prometheus's metadata APIs use (`counter`, `gaugehistogram`, `unknown`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// Whether OpenMetrics gives this type a `_created` series.
    fn has_created(self) -> bool {
        matches!(
            self,
            MetricType::Counter
                | MetricType::Summary
                | MetricType::Histogram
                | MetricType::GaugeHistogram
        )
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sample line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// The metric name, from before the braces or quoted inside them.
    pub name: Escaped<'a>,
    /// The label set (without the metric name).
    pub labels: Labels<'a>,
    /// The series as written: from the metric name (or the opening brace) to the end of the
    /// label set, blanks inside included. The scrape cache's key (Prometheus keys its cache by
    /// the same bytes): one slice, so identifying a series costs one hash and no copy.
    pub series: &'a [u8],
    /// The value. A parsed NaN has the bits [`NORMAL_NAN_BITS`].
    pub value: f64,
    /// The timestamp in milliseconds: as written in the text format; seconds × 1000, truncated,
    /// in OpenMetrics.
    pub timestamp_ms: Option<i64>,
    /// The exemplar (OpenMetrics only).
    pub exemplar: Option<Exemplar<'a>>,
    /// The family of the last `# TYPE` line before this sample, if any.
    pub family: Option<Family<'a>>,
    openmetrics: bool,
}

/// The metric family a `# TYPE` line declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family<'a> {
    /// The family name as written (quotes removed, escapes kept).
    pub name: &'a str,
    /// Its type.
    pub kind: MetricType,
}

impl<'a> Sample<'a> {
    /// The type of the sample's family if the sample belongs to the last declared family
    /// (its name is the family name plus one of the type's suffixes, as Prometheus's
    /// `isSeriesPartOfFamily` decides), otherwise [`MetricType::Unknown`].
    pub fn metric_type(&self) -> MetricType {
        match self.family {
            Some(family) if self.belongs_to(family) => family.kind,
            _ => MetricType::Unknown,
        }
    }

    /// Whether this is the `_created` series of an OpenMetrics counter, summary or histogram
    /// family: its value is the family's creation time in seconds, not a sample of its own.
    /// Always false in the text format, where `_created` has no meaning.
    pub fn is_created(&self) -> bool {
        match self.family {
            Some(family) if self.openmetrics && family.kind.has_created() => self
                .name
                .raw()
                .strip_suffix("_created")
                .is_some_and(|base| base == family.name),
            _ => false,
        }
    }

    fn belongs_to(&self, family: Family<'a>) -> bool {
        // Counters may be declared with or without `_total`, info families with or without
        // `_info`: compare the names without them.
        let strip = |name: &'a str, suffix: &str| name.strip_suffix(suffix).unwrap_or(name);
        let (family_name, name) = match family.kind {
            MetricType::Counter => (
                strip(family.name, "_total"),
                strip(self.name.raw(), "_total"),
            ),
            MetricType::Info => (strip(family.name, "_info"), strip(self.name.raw(), "_info")),
            _ => (family.name, self.name.raw()),
        };
        let Some(rest) = name.strip_prefix(family_name) else {
            return false;
        };
        let suffixes: &[&str] = match family.kind {
            MetricType::Counter => &["_created"],
            MetricType::Histogram => &["_bucket", "_sum", "_count", "_created"],
            MetricType::GaugeHistogram => &["_bucket", "_gsum", "_gcount", "_created"],
            MetricType::Summary => &["_sum", "_count", "_created"],
            _ => &[],
        };
        rest.is_empty() || suffixes.contains(&rest)
    }
}

/// An exemplar: `# {labels} value [timestamp]` after an OpenMetrics sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar<'a> {
    /// Its labels (often `trace_id`).
    pub labels: Labels<'a>,
    /// Its value (NaN as [`NORMAL_NAN_BITS`]).
    pub value: f64,
    /// Its timestamp in milliseconds (seconds × 1000, truncated).
    pub timestamp_ms: Option<i64>,
}

/// A string as written in the exposition, escape sequences included. The parsers check the
/// syntax, so decoding cannot fail. Equality and hashing compare the raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Escaped<'a> {
    raw: &'a str,
    /// Whether `\"` is an escape here (label values, quoted names, OpenMetrics help) or not
    /// (text-format help, where only `\\` and `\n` are).
    quote_escapes: bool,
}

impl<'a> Escaped<'a> {
    /// A string with label-value escaping (`\\`, `\"`, `\n`).
    pub fn new(raw: &'a str) -> Self {
        Escaped {
            raw,
            quote_escapes: true,
        }
    }

    fn help(raw: &'a str) -> Self {
        Escaped {
            raw,
            quote_escapes: false,
        }
    }

    /// The text as written, escapes included.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether `\"` decodes to `"` here (label values, quoted names, OpenMetrics help) or
    /// stays as written (text-format help).
    pub fn unescape_quotes(&self) -> bool {
        self.quote_escapes
    }

    /// Whether decoding would change anything.
    pub fn has_escapes(&self) -> bool {
        self.raw.as_bytes().contains(&b'\\')
    }

    /// The decoded text: borrowed when there is nothing to decode.
    pub fn unescape(&self) -> Cow<'a, str> {
        if self.has_escapes() {
            let mut out = String::with_capacity(self.raw.len());
            self.unescape_into(&mut out);
            Cow::Owned(out)
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// Appends the decoded text to `out` (to reuse one buffer across samples).
    pub fn unescape_into(&self, out: &mut String) {
        for chunk in self.chunks() {
            out.push_str(chunk);
        }
    }

    /// The decoded text as consecutive pieces, without allocating: hash or compare these.
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks {
            rest: self.raw,
            quote_escapes: self.quote_escapes,
        }
    }

    /// Whether the decoded text equals `other`, without allocating.
    pub fn unescaped_eq(&self, other: &str) -> bool {
        let mut other = other;
        for chunk in self.chunks() {
            match other.strip_prefix(chunk) {
                Some(rest) => other = rest,
                None => return false,
            }
        }
        other.is_empty()
    }
}

impl fmt::Display for Escaped<'_> {
    /// Shows the decoded text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.chunks() {
            f.write_str(chunk)?;
        }
        Ok(())
    }
}

/// The decoded pieces of an [`Escaped`] string. Escapes decode as Prometheus's replacer does:
/// left to right, `\\` → `\`, `\n` → newline, `\"` → `"` where quotes are escaped, and any
/// other backslash stays as it is.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a str,
    quote_escapes: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest.as_bytes();
        if bytes.first() == Some(&b'\\') {
            let decoded = match bytes.get(1) {
                Some(b'\\') => Some("\\"),
                Some(b'n') => Some("\n"),
                Some(b'"') if self.quote_escapes => Some("\""),
                _ => None,
            };
            return Some(match decoded {
                Some(decoded) => {
                    self.rest = self.rest.get(2..).unwrap_or("");
                    decoded
                }
                None => {
                    // Not an escape: the backslash is literal text.
                    let (backslash, rest) = self.rest.split_at(1);
                    self.rest = rest;
                    backslash
                }
            });
        }
        let plain = bytes
            .iter()
            .position(|&c| c == b'\\')
            .unwrap_or(bytes.len());
        // `\` is ASCII, so `plain` is a character boundary.
        let (chunk, rest) = self.rest.split_at(plain);
        self.rest = rest;
        Some(chunk)
    }
}

/// A label set as written between the braces of a sample or exemplar, checked by the parser.
/// Iterating it re-reads that text, which costs about as much as copying offsets would have,
/// and lets a sample borrow only from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Labels<'a> {
    /// The text between the braces.
    text: &'a str,
    count: usize,
}

/// One label of a [`Labels`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label<'a> {
    /// The name (quotes removed if it was quoted, escapes kept).
    pub name: Escaped<'a>,
    /// The value (quotes removed, escapes kept).
    pub value: Escaped<'a>,
}

impl<'a> Labels<'a> {
    /// The number of labels (a metric name quoted inside the braces is not one).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The text between the braces, as written.
    pub fn raw(&self) -> &'a str {
        self.text
    }

    /// The labels in the order written.
    pub fn iter(&self) -> LabelsIter<'a> {
        LabelsIter {
            text: self.text,
            pos: 0,
        }
    }

    /// The value of the label called `name` (decoded names compared), if any.
    pub fn get(&self, name: &str) -> Option<Escaped<'a>> {
        self.iter()
            .find(|label| label.name.unescaped_eq(name))
            .map(|label| label.value)
    }
}

impl<'a> IntoIterator for Labels<'a> {
    type Item = Label<'a>;
    type IntoIter = LabelsIter<'a>;

    fn into_iter(self) -> LabelsIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Labels<'a> {
    type Item = Label<'a>;
    type IntoIter = LabelsIter<'a>;

    fn into_iter(self) -> LabelsIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Labels`] set. The text was checked by the parser; should it ever not be
/// well formed, iteration stops rather than panicking.
#[derive(Debug, Clone)]
pub struct LabelsIter<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> LabelsIter<'a> {
    fn skip(&mut self, bytes: &[u8], separators: bool) {
        while let Some(&c) = bytes.get(self.pos) {
            if c == b' ' || c == b'\t' || (separators && c == b',') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// A quoted string starting at `pos`: its contents, and `pos` moved past it.
    fn quoted(&mut self, bytes: &[u8]) -> Option<&'a str> {
        let start = self.pos + 1;
        let mut i = start;
        loop {
            match bytes.get(i)? {
                b'"' => break,
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        self.text.get(start..i)
    }
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = Label<'a>;

    fn next(&mut self) -> Option<Label<'a>> {
        let bytes = self.text.as_bytes();
        loop {
            self.skip(bytes, true);
            let name = match bytes.get(self.pos)? {
                b'"' => self.quoted(bytes)?,
                _ => {
                    let start = self.pos;
                    while bytes
                        .get(self.pos)
                        .is_some_and(|&c| lexer::LABEL_CHAR[usize::from(c)])
                    {
                        self.pos += 1;
                    }
                    if self.pos == start {
                        return None;
                    }
                    self.text.get(start..self.pos)?
                }
            };
            self.skip(bytes, false);
            if bytes.get(self.pos) != Some(&b'=') {
                // A quoted metric name inside the braces, not a label.
                continue;
            }
            self.pos += 1;
            self.skip(bytes, false);
            if bytes.get(self.pos) != Some(&b'"') {
                return None;
            }
            let value = self.quoted(bytes)?;
            return Some(Label {
                name: Escaped::new(name),
                value: Escaped::new(value),
            });
        }
    }
}

/// Bounds on what one entry may use, so hostile input costs an error, not memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest line (entry) in bytes, newline excluded.
    pub max_line_length: usize,
    /// The most labels one sample or exemplar may have.
    pub max_labels: usize,
}

impl Default for Limits {
    /// 1 MiB lines and 1,024 labels: far beyond real expositions, small enough to bound work.
    fn default() -> Self {
        Limits {
            max_line_length: 1 << 20,
            max_labels: 1024,
        }
    }
}

/// What kind of problem ended a parse (the message says exactly what and where).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The line does not follow the grammar.
    Syntax,
    /// A sample or exemplar value is not a number.
    InvalidValue,
    /// A timestamp is not a valid number or is out of range.
    InvalidTimestamp,
    /// A label value, quoted name or help text is not UTF-8.
    InvalidUtf8,
    /// A `# TYPE` names an unknown type, or a `# UNIT` is not a suffix of its metric.
    InvalidMetadata,
    /// A line is longer than [`Limits::max_line_length`].
    LineTooLong,
    /// A label set is larger than [`Limits::max_labels`].
    TooManyLabels,
    /// An OpenMetrics exposition does not end with `# EOF`.
    MissingEof,
    /// Something follows `# EOF`.
    DataAfterEof,
}

/// A parse error: where (1-based line and column in characters, and the byte offset) and what.
/// Displays as `line 12, column 7: expected "=" after label name "job", found ":"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Byte offset into the input.
    pub offset: usize,
    /// The category.
    pub kind: ErrorKind,
    /// What is wrong.
    pub message: String,
}

/// Parses `input` in the given format to the end, calling `visit` for each entry. The helper
/// the fuzz targets and property tests use to drive every accessor.
#[doc(hidden)]
pub fn exercise(input: &[u8], openmetrics: bool) -> Result<usize, ParseError> {
    fn touch(entry: &Entry<'_>, sink: &mut usize) {
        match entry {
            Entry::Help { name, text } => *sink += name.unescape().len() + text.unescape().len(),
            Entry::Type { name, kind } => *sink += name.unescape().len() + kind.as_str().len(),
            Entry::Unit { name, unit } => *sink += name.unescape().len() + unit.len(),
            Entry::Comment(text) => *sink += text.len(),
            Entry::Sample(sample) => {
                *sink += sample.name.unescape().len() + usize::from(sample.is_created());
                *sink += sample.metric_type().as_str().len();
                let exemplar = sample.exemplar.map(|e| e.labels);
                for labels in std::iter::once(sample.labels).chain(exemplar) {
                    for label in labels {
                        *sink += label.name.unescape().len() + label.value.chunks().count();
                    }
                }
            }
            Entry::Eof => *sink += 1,
        }
    }
    let mut sink = 0;
    if openmetrics {
        for entry in OpenMetricsParser::new(input) {
            touch(&entry?, &mut sink);
        }
    } else {
        for entry in TextParser::new(input) {
            touch(&entry?, &mut sink);
        }
    }
    Ok(sink)
}

//! What both parsers share: a bounded cursor over the input, the character classes of the two
//! grammars, quoted-string scanning, Go-compatible number parsing and error construction.
//!
//! Everything here works on bytes and never allocates, except when an error is built (once per
//! parse: both parsers stop at their first error).

use super::{ErrorKind, ParseError};

/// A byte-class table: `table[b]` says whether byte `b` belongs to the class. Lookups in a
/// 256-entry table are what keeps the hot loops free of chained comparisons.
pub(super) type ByteClass = [bool; 256];

const fn build(kind: u8) -> ByteClass {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let letter = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        table[i] = match kind {
            // {M}: first byte of a metric name.
            0 => letter || c == b':',
            // {M}|{D}: later bytes of a metric name.
            1 => letter || digit || c == b':',
            // {L}: first byte of a label name.
            2 => letter,
            // {L}|{D}: later bytes of a label name.
            3 => letter || digit,
            // The text format's sample value: [^{ \t\n], minus NUL, which no rule accepts.
            4 => c != 0 && c != b'{' && c != b' ' && c != b'\t' && c != b'\n',
            // OpenMetrics values and timestamps: [^ \n], minus NUL.
            5 => c != 0 && c != b' ' && c != b'\n',
            // {D}: the text format's timestamps.
            _ => digit,
        };
        i += 1;
    }
    table
}

pub(super) static METRIC_START: ByteClass = build(0);
pub(super) static METRIC_CHAR: ByteClass = build(1);
pub(super) static LABEL_START: ByteClass = build(2);
pub(super) static LABEL_CHAR: ByteClass = build(3);
pub(super) static TEXT_VALUE_CHAR: ByteClass = build(4);
pub(super) static OM_VALUE_CHAR: ByteClass = build(5);
pub(super) static DIGIT: ByteClass = build(6);

/// A position in the input plus the end of the window the current entry must fit in (the line
/// length limit). Reading past the window is what turns a hostile endless line into an error
/// instead of a long scan.
pub(super) struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    /// Where the current entry started (for "while parsing" context and the limit message).
    pub line_start: usize,
    /// One past the last byte the current entry may use.
    pub end: usize,
    pub max_line_length: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], max_line_length: usize) -> Self {
        Cursor {
            buf,
            pos: 0,
            line_start: 0,
            end: buf.len().min(max_line_length),
            max_line_length,
        }
    }

    /// Starts a new entry at the current position, with a fresh line-length window.
    #[inline]
    pub fn begin_line(&mut self) {
        self.line_start = self.pos;
        self.end = self
            .buf
            .len()
            .min(self.pos.saturating_add(self.max_line_length));
    }

    /// The byte at `i` if it is inside the window.
    #[inline]
    pub fn at(&self, i: usize) -> Option<u8> {
        if i < self.end {
            self.buf.get(i).copied()
        } else {
            None
        }
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.at(self.pos)
    }

    /// Whether position `i` is past the window but not past the input: the line is too long.
    #[inline]
    pub fn cut_by_limit(&self, i: usize) -> bool {
        i >= self.end && self.end < self.buf.len()
    }

    /// Advances over bytes of `class` and returns where the run ended.
    #[inline]
    pub fn scan(&mut self, class: &ByteClass) -> usize {
        let window = self.buf.get(..self.end).unwrap_or(&[]);
        let mut i = self.pos;
        while let Some(&c) = window.get(i) {
            if !class[usize::from(c)] {
                break;
            }
            i += 1;
        }
        self.pos = i;
        i
    }

    /// Skips spaces and tabs (the text format's `[ \t]+`).
    #[inline]
    pub fn skip_blanks(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Scans a quoted string whose opening quote is at the current position, and returns the
    /// range of its contents (without the quotes). A backslash escapes any byte but a newline
    /// (`\\.` in the lexers). `newline_ok` allows raw newlines inside, as the text format does.
    pub fn quoted(&mut self, newline_ok: bool) -> Result<(usize, usize), QuotedError> {
        let open = self.pos;
        let start = open + 1;
        let window = self.buf.get(..self.end).unwrap_or(&[]);
        let mut i = start;
        loop {
            match window.get(i) {
                None => {
                    return Err(if self.cut_by_limit(i) {
                        QuotedError::LineTooLong(i)
                    } else {
                        QuotedError::Unterminated(open)
                    });
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok((start, i));
                }
                Some(b'\\') => match window.get(i + 1) {
                    Some(b'\n') | None if !self.cut_by_limit(i + 1) => {
                        return Err(QuotedError::BadEscape(i));
                    }
                    None => return Err(QuotedError::LineTooLong(i + 1)),
                    Some(_) => i += 2,
                },
                Some(b'\n') if !newline_ok => return Err(QuotedError::Newline(i)),
                Some(_) => i += 1,
            }
        }
    }

    /// Builds an error at byte `offset`, with its line and column worked out from the input.
    #[cold]
    pub fn error(&self, offset: usize, kind: ErrorKind, message: String) -> ParseError {
        let (line, column) = line_and_column(self.buf, offset);
        ParseError {
            line,
            column,
            offset,
            kind,
            message,
        }
    }

    /// The error for running past the line-length window at `offset`.
    #[cold]
    pub fn too_long(&self, offset: usize) -> ParseError {
        self.error(
            offset,
            ErrorKind::LineTooLong,
            format!(
                "line is longer than the limit of {} bytes",
                self.max_line_length
            ),
        )
    }

    /// Describes what sits at `offset`, for "found ..." in messages.
    #[cold]
    pub fn found(&self, offset: usize) -> String {
        describe(self.buf, offset)
    }
}

/// Why a quoted string could not be scanned (each with the byte offset to report).
#[derive(Debug)]
pub(super) enum QuotedError {
    Unterminated(usize),
    Newline(usize),
    BadEscape(usize),
    LineTooLong(usize),
}

/// 1-based line and column (in characters) of byte `offset`. Only called on errors, so a scan
/// from the start is fine.
pub(super) fn line_and_column(buf: &[u8], offset: usize) -> (usize, usize) {
    let before = buf.get(..offset).unwrap_or(buf);
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    // Counting the bytes that do not continue a UTF-8 sequence counts characters in valid
    // UTF-8 and something sensible in invalid input.
    let column = before
        .get(line_start..)
        .unwrap_or(&[])
        .iter()
        .filter(|&&c| (c & 0xC0) != 0x80)
        .count()
        + 1;
    (line, column)
}

/// A human description of the byte (or character) at `offset`.
pub(super) fn describe(buf: &[u8], offset: usize) -> String {
    match buf.get(offset) {
        None => "end of input".to_owned(),
        Some(b'\n') => "end of line".to_owned(),
        Some(b'\r') => "a carriage return (\\r): lines must end with \\n alone".to_owned(),
        Some(0) => "a NUL byte".to_owned(),
        Some(&c) if c.is_ascii() => format!("{:?}", char::from(c).to_string()),
        Some(_) => {
            let tail = buf.get(offset..).unwrap_or(&[]);
            let tail = tail.get(..tail.len().min(4)).unwrap_or(&[]);
            match std::str::from_utf8(tail)
                .or_else(|e| std::str::from_utf8(tail.get(..e.valid_up_to()).unwrap_or(&[])))
            {
                Ok(s) if !s.is_empty() => match s.chars().next() {
                    Some(ch) => format!("{:?}", ch.to_string()),
                    None => "an invalid UTF-8 byte".to_owned(),
                },
                _ => format!("the invalid UTF-8 byte 0x{:02x}", buf[offset]),
            }
        }
    }
}

/// Shortens `s` for quoting it in a message (names and values can be long).
pub(super) fn excerpt(s: &[u8]) -> String {
    const MAX: usize = 64;
    let text = String::from_utf8_lossy(s.get(..s.len().min(MAX)).unwrap_or(s));
    if s.len() > MAX {
        format!("{:?}…", text)
    } else {
        format!("{:?}", text)
    }
}

/// The NaN Prometheus stores for a parsed `NaN` (`value.NormalNaN`), distinct from the stale
/// marker, so a scraped NaN is never taken for staleness.
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Parses a sample value exactly as Prometheus does: Go's `strconv.ParseFloat` minus the
/// formats newer than Go 1.13 (hex floats with `p` exponents and `_` separators), which
/// Prometheus rejects. So: decimal numbers with optional sign, fraction and exponent;
/// `Inf`/`Infinity` with optional sign and `NaN` without, case-insensitively; overflow to
/// infinity is an error, underflow to zero is not. NaN comes back as [`NORMAL_NAN_BITS`].
pub(super) fn parse_float(s: &[u8]) -> Result<f64, &'static str> {
    // Fast path: short unsigned integers, the most common values, convert exactly.
    if !s.is_empty() && s.len() <= 15 && s.iter().all(u8::is_ascii_digit) {
        let mut n: u64 = 0;
        for &c in s {
            n = n * 10 + u64::from(c - b'0');
        }
        // Exact: n < 10^15 < 2^53.
        #[allow(clippy::cast_precision_loss)]
        return Ok(n as f64);
    }
    if s.iter().any(|&c| matches!(c, b'p' | b'P' | b'_')) {
        return Err("unsupported character in number");
    }
    if let Some(special) = parse_special(s) {
        return Ok(special);
    }
    if !is_decimal(s) {
        return Err("invalid number");
    }
    let text = std::str::from_utf8(s).map_err(|_| "invalid number")?;
    let value: f64 = text.parse().map_err(|_| "invalid number")?;
    if value.is_infinite() {
        // Go's ParseFloat reports overflow (ErrRange), and Prometheus rejects the sample.
        return Err("number out of range");
    }
    Ok(value)
}

/// Go's `special`: `[+-]?(inf|infinity)` and `nan`, case-insensitively, as the whole string.
fn parse_special(s: &[u8]) -> Option<f64> {
    let (negative, body) = match s.first() {
        Some(b'+') => (false, s.get(1..)?),
        Some(b'-') => (true, s.get(1..)?),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Go accepts no sign on NaN.
    if body.len() == s.len() && body.eq_ignore_ascii_case(b"nan") {
        return Some(f64::from_bits(NORMAL_NAN_BITS));
    }
    None
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`, the decimal floats Go and
/// Rust both accept and agree on.
fn is_decimal(s: &[u8]) -> bool {
    let mut i = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while s.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if s.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

/// The message for a value that does not parse, with a hint when the culprit is a `\r`.
#[cold]
pub(super) fn value_message(what: &str, token: &[u8], problem: &str) -> String {
    if token.last() == Some(&b'\r') {
        format!(
            "{what} {} ends in a carriage return (\\r): lines must end with \\n alone",
            excerpt(token)
        )
    } else {
        format!("{problem}: {what} {}", excerpt(token))
    }
}

/// How a label set is written: the text format is lenient, OpenMetrics is not.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dialect {
    /// Spaces and tabs may surround every token (text format).
    pub blanks: bool,
    /// A label must be followed by `,` or `}` (OpenMetrics; the text format also takes
    /// labels separated by blanks only, as Prometheus does).
    pub comma_required: bool,
    /// Quoted strings may hold raw newlines (text format).
    pub newline_in_quotes: bool,
    /// A quoted string followed by `,` or `}` is the metric name (not in exemplars).
    pub name_allowed: bool,
    /// "label" or "exemplar label", for messages.
    pub what: &'static str,
}

/// A parsed `{...}`: the metric name if it was quoted inside, and the labels.
pub(super) struct LabelSet<'a> {
    pub name: Option<&'a str>,
    pub labels: super::Labels<'a>,
}

impl<'a> Cursor<'a> {
    /// Parses a label set whose `{` is at the current position. `has_name` says whether the
    /// metric name was already written before the braces.
    pub fn label_set(
        &mut self,
        dialect: Dialect,
        has_name: bool,
        max_labels: usize,
    ) -> Result<LabelSet<'a>, ParseError> {
        let inner_start = self.pos + 1;
        self.pos = inner_start;
        let mut count = 0usize;
        let mut quoted_name: Option<(usize, usize)> = None;
        let inner_end;
        loop {
            if dialect.blanks {
                self.skip_blanks();
            }
            let name_start = self.pos;
            let (name_from, name_to) = match self.peek() {
                // Also right after a comma: Prometheus takes a trailing comma in both formats.
                Some(b'}') => {
                    inner_end = self.pos;
                    self.pos += 1;
                    break;
                }
                Some(b'"') => {
                    let range = self.quoted(dialect.newline_in_quotes).map_err(|e| {
                        self.quoted_error(e, &format!("quoted {} name", dialect.what))
                    })?;
                    if dialect.blanks {
                        self.skip_blanks();
                    }
                    if let Some(sep @ (b',' | b'}')) = self.peek() {
                        if !dialect.name_allowed {
                            return Err(self.error(
                                name_start,
                                ErrorKind::Syntax,
                                format!(
                                    "expected \"=\" after {} name {}, found {}",
                                    dialect.what,
                                    excerpt(self.buf.get(range.0..range.1).unwrap_or(&[])),
                                    self.found(self.pos)
                                ),
                            ));
                        }
                        if has_name || quoted_name.is_some() {
                            return Err(self.error(
                                name_start,
                                ErrorKind::Syntax,
                                format!(
                                    "metric name already set, found a second one: {}",
                                    excerpt(self.buf.get(range.0..range.1).unwrap_or(&[]))
                                ),
                            ));
                        }
                        quoted_name = Some(range);
                        self.pos += 1;
                        if sep == b'}' {
                            inner_end = self.pos - 1;
                            break;
                        }
                        continue;
                    }
                    range
                }
                Some(c) if LABEL_START[usize::from(c)] => {
                    let start = self.pos;
                    (start, self.scan(&LABEL_CHAR))
                }
                None if self.cut_by_limit(self.pos) => return Err(self.too_long(self.pos)),
                _ => {
                    return Err(self.error(
                        self.pos,
                        ErrorKind::Syntax,
                        format!(
                            "expected a {} name or \"}}\", found {}",
                            dialect.what,
                            self.found(self.pos)
                        ),
                    ));
                }
            };
            let name = self.buf.get(name_from..name_to).unwrap_or(&[]);
            if dialect.blanks {
                self.skip_blanks();
            }
            if self.peek() != Some(b'=') {
                return Err(self.syntax_or_limit(
                    self.pos,
                    format!(
                        "expected \"=\" after {} name {}",
                        dialect.what,
                        excerpt(name)
                    ),
                ));
            }
            self.pos += 1;
            if dialect.blanks {
                self.skip_blanks();
            }
            if self.peek() != Some(b'"') {
                return Err(self.syntax_or_limit(
                    self.pos,
                    format!(
                        "expected a quoted value for {} {}",
                        dialect.what,
                        excerpt(name)
                    ),
                ));
            }
            self.quoted(dialect.newline_in_quotes).map_err(|e| {
                self.quoted_error(e, &format!("value of {} {}", dialect.what, excerpt(name)))
            })?;
            count += 1;
            if count > max_labels {
                return Err(self.error(
                    name_start,
                    ErrorKind::TooManyLabels,
                    format!("more than {max_labels} labels"),
                ));
            }
            if dialect.blanks {
                self.skip_blanks();
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ if !dialect.comma_required => {}
                _ => {
                    return Err(self.syntax_or_limit(
                        self.pos,
                        format!(
                            "expected \",\" or \"}}\" after the value of {} {}",
                            dialect.what,
                            excerpt(name)
                        ),
                    ));
                }
            }
        }
        let inner = self.buf.get(inner_start..inner_end).unwrap_or(&[]);
        let text = std::str::from_utf8(inner).map_err(|e| {
            self.error(
                inner_start + e.valid_up_to(),
                ErrorKind::InvalidUtf8,
                format!("invalid UTF-8 in a {} name or value", dialect.what),
            )
        })?;
        let name = match quoted_name {
            Some((from, to)) => text.get(from - inner_start..to - inner_start),
            None => None,
        };
        Ok(LabelSet {
            name,
            labels: super::Labels { text, count },
        })
    }

    /// A syntax error at `offset` saying what was expected and what was found there, or the
    /// line-length error if the window ended there.
    #[cold]
    pub fn syntax_or_limit(&self, offset: usize, expected: String) -> ParseError {
        if self.cut_by_limit(offset) {
            return self.too_long(offset);
        }
        self.error(
            offset,
            ErrorKind::Syntax,
            format!("{expected}, found {}", self.found(offset)),
        )
    }

    /// The error for a quoted string that did not scan.
    #[cold]
    pub fn quoted_error(&self, error: QuotedError, what: &str) -> ParseError {
        match error {
            QuotedError::Unterminated(at) => self.error(
                at,
                ErrorKind::Syntax,
                format!("unterminated {what}: no closing quote"),
            ),
            QuotedError::Newline(at) => self.error(
                at,
                ErrorKind::Syntax,
                format!("unterminated {what}: no closing quote before the end of the line"),
            ),
            QuotedError::BadEscape(at) => self.error(
                at,
                ErrorKind::Syntax,
                format!("backslash before the end of the line in {what} (write a newline as \\n)"),
            ),
            QuotedError::LineTooLong(at) => self.too_long(at),
        }
    }
}

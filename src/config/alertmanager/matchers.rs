//! Label matchers as Alertmanager writes them: `severity="critical"`, `{job=~"api|web", env!=dev}`.
//!
//! Two syntaxes exist. Alertmanager 0.27 introduced a UTF-8 syntax (quoted or unquoted names and
//! values, Go string escapes in quotes); before it, a "classic" syntax (Prometheus label names,
//! values quoted or not, OpenMetrics escapes). Alertmanager's default mode parses with the UTF-8
//! parser first and falls back to the classic one, and where both accept an input but disagree
//! the classic result wins, so existing configurations keep their meaning. [`parse_matchers`]
//! does the same.

use crate::config::AnchoredRegex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`, the regex anchored at both ends.
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::NotRegex)
    }

    pub fn is_negative(self) -> bool {
        matches!(self, MatchOp::NotEqual | MatchOp::NotRegex)
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One label matcher. Built only through [`Matcher::new`] or the parsers, so a regex matcher
/// always carries its compiled regex.
#[derive(Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<AnchoredRegex>,
}

impl Matcher {
    /// A matcher; for `=~` and `!~`, `value` must be a valid regex (it is anchored).
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Matcher, String> {
        let name = name.into();
        let value = value.into();
        if name.is_empty() {
            return Err("label name must not be empty".to_string());
        }
        let regex = if op.is_regex() {
            Some(AnchoredRegex::new(&value)?)
        } else {
            None
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// A regex matcher from a regex compiled already (`match_re` in the config).
    pub fn from_regex(name: impl Into<String>, negative: bool, regex: AnchoredRegex) -> Matcher {
        Matcher {
            name: name.into(),
            op: if negative {
                MatchOp::NotRegex
            } else {
                MatchOp::Regex
            },
            value: regex.as_str().to_string(),
            regex: Some(regex),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value satisfies the matcher. A missing label is the empty string, as in
    /// Alertmanager: `foo=""` matches alerts without `foo`, and `foo!=""` requires it.
    pub fn matches(&self, value: &str) -> bool {
        match (&self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(value),
            // `new` and the parsers always compile the regex of a regex matcher.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether a set of labels, given as a lookup, satisfies the matcher.
    pub fn matches_labels<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matches(label(&self.name).unwrap_or(""))
    }

    /// Parses exactly one matcher, as Alertmanager's API does for a silence's or a filter's single
    /// matcher: UTF-8 syntax first, classic syntax as the fallback. Braces are not allowed.
    pub fn parse_one(text: &str) -> Result<Matcher, String> {
        if text.starts_with('{') || text.ends_with('}') {
            return Err(format!(
                "invalid matcher {text:?}: unexpected open or close brace"
            ));
        }
        let utf8 = utf8::parse(text).and_then(|matchers| {
            let count = matchers.len();
            let mut matchers = matchers.into_iter();
            match (matchers.next(), count) {
                (Some(matcher), 1) => Ok(matcher),
                (_, 0) => Err("no matchers".to_string()),
                (_, count) => Err(format!("expected 1 matcher, found {count}")),
            }
        });
        let classic = classic::parse_one(text);
        match (utf8, classic) {
            (Ok(utf8), Ok(classic)) if utf8 != classic => Ok(classic),
            (Ok(utf8), _) => Ok(utf8),
            (Err(_), Ok(classic)) => Ok(classic),
            (Err(error), Err(_)) => Err(format!("invalid matcher {text:?}: {error}")),
        }
    }
}

/// Parses a list of matchers, `{a="1", b=~"2|3"}` or `a=1, b=~"2|3"`: UTF-8 syntax first,
/// classic syntax as the fallback, the classic result when both accept but disagree.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    match (utf8::parse(text), classic::parse(text)) {
        (Ok(utf8), Ok(classic)) if utf8 != classic => Ok(classic),
        (Ok(utf8), _) => Ok(utf8),
        (Err(_), Ok(classic)) => Ok(classic),
        (Err(error), Err(_)) => Err(format!("invalid matchers {text:?}: {error}")),
    }
}

/// Whether every matcher accepts the labels.
pub fn all_match<'a>(matchers: &[Matcher], label: impl Fn(&str) -> Option<&'a str>) -> bool {
    matchers
        .iter()
        .all(|matcher| matcher.matches_labels(&label))
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl PartialOrd for Matcher {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Alertmanager's order (`Matchers.Less`): by name, then value, then operator. Routes print
/// (and key their groups by) their matchers in this order.
impl Ord for Matcher {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.name, &self.value, self.op).cmp(&(&other.name, &other.value, other.op))
    }
}

impl std::hash::Hash for Matcher {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.name, self.op, &self.value).hash(state);
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

/// The canonical form, `name="value"`, which both parsers read back to the same matcher: the
/// name is quoted only when it is not a classic label name, and the value escapes only `\`, `"`
/// and line feeds, the escapes both syntaxes share.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_classic_matcher_name(&self.name) {
            f.write_str(&self.name)?;
        } else {
            write_quoted(f, &self.name)?;
        }
        f.write_str(self.op.as_str())?;
        write_quoted(f, &self.value)
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            other => write!(f, "{other}")?,
        }
    }
    f.write_str("\"")
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the names the classic matcher syntax accepts.
fn is_classic_matcher_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, a Prometheus label name (`match` and `match_re` keys).
pub fn is_classic_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Matcher::parse_one(&text).map_err(serde::de::Error::custom)
    }
}

/// A config list of matchers (`matchers:`, `source_matchers:`, `target_matchers:`). Each entry
/// may hold several comma-separated matchers; all of them must match. Kept sorted, as
/// Alertmanager keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Matcher> {
        self.0.iter()
    }
}

/// One entry of a matcher list, parsed as it is read so an error points at that entry.
struct MatcherEntry(Vec<Matcher>);

impl<'de> Deserialize<'de> for MatcherEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_matchers(&text)
            .map(MatcherEntry)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<MatcherEntry>::deserialize(deserializer)?;
        let mut matchers: Vec<Matcher> = entries.into_iter().flat_map(|entry| entry.0).collect();
        matchers.sort();
        Ok(Matchers(matchers))
    }
}

impl Serialize for Matchers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

/// A key of the deprecated `match` / `match_re` maps: a Prometheus label name, checked as it is
/// read so the error points at the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelName(pub String);

impl LabelName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for LabelName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LabelName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if is_classic_label_name(&name) {
            Ok(LabelName(name))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid label name {name:?}"
            )))
        }
    }
}

/// The matchers of a deprecated `match` (equality) and `match_re` (regex) pair.
pub fn matchers_from_maps(
    equal: &std::collections::BTreeMap<LabelName, String>,
    regex: &std::collections::BTreeMap<LabelName, AnchoredRegex>,
) -> Vec<Matcher> {
    let equal = equal.iter().map(|(name, value)| Matcher {
        name: name.0.clone(),
        op: MatchOp::Equal,
        value: value.clone(),
        regex: None,
    });
    let regex = regex
        .iter()
        .map(|(name, regex)| Matcher::from_regex(name.0.clone(), false, regex.clone()));
    equal.chain(regex).collect()
}

/// The UTF-8 syntax of Alertmanager 0.27+ (`matcher/parse`).
mod utf8 {
    use super::{MatchOp, Matcher};

    #[derive(Debug, Clone, PartialEq)]
    enum Kind {
        OpenBrace,
        CloseBrace,
        Comma,
        Op(MatchOp),
        Quoted,
        Unquoted,
    }

    #[derive(Debug, Clone)]
    struct Token {
        kind: Kind,
        text: String,
        /// Column of the first character, counting characters from 1.
        column: usize,
    }

    impl Token {
        fn describe(&self) -> String {
            format!("unexpected {:?} at column {}", self.text, self.column)
        }

        fn unquote(&self) -> Result<String, String> {
            match self.kind {
                Kind::Quoted => unquote_go(&self.text).map_err(|why| {
                    format!(
                        "invalid string {} at column {}: {why}",
                        self.text, self.column
                    )
                }),
                _ => Ok(self.text.clone()),
            }
        }
    }

    /// Characters that end an unquoted literal.
    fn is_reserved(c: char) -> bool {
        c.is_whitespace() || "{}!=~,\\\"'`".contains(c)
    }

    fn lex(input: &str) -> Result<Vec<Token>, String> {
        let chars: Vec<char> = input.chars().collect();
        let mut tokens = Vec::new();
        let mut index = 0;
        while let Some(&c) = chars.get(index) {
            let column = index + 1;
            let single = |kind| Token {
                kind,
                text: c.to_string(),
                column,
            };
            match c {
                '{' => {
                    tokens.push(single(Kind::OpenBrace));
                    index += 1;
                }
                '}' => {
                    tokens.push(single(Kind::CloseBrace));
                    index += 1;
                }
                ',' => {
                    tokens.push(single(Kind::Comma));
                    index += 1;
                }
                '=' | '!' => {
                    let next = chars.get(index + 1).copied();
                    let (op, width) = match (c, next) {
                        ('=', Some('~')) => (MatchOp::Regex, 2),
                        ('=', _) => (MatchOp::Equal, 1),
                        ('!', Some('=')) => (MatchOp::NotEqual, 2),
                        ('!', Some('~')) => (MatchOp::NotRegex, 2),
                        _ => {
                            return Err(format!(
                                "expected '=' or '~' after '!' at column {column}"
                            ));
                        }
                    };
                    tokens.push(Token {
                        kind: Kind::Op(op),
                        text: chars[index..index + width].iter().collect(),
                        column,
                    });
                    index += width;
                }
                '"' => {
                    let mut end = index + 1;
                    let mut escaped = false;
                    loop {
                        match chars.get(end) {
                            None => {
                                return Err(format!(
                                    "missing closing '\"' for the string at column {column}"
                                ));
                            }
                            Some('\\') if !escaped => escaped = true,
                            Some('"') if !escaped => break,
                            Some(_) => escaped = false,
                        }
                        end += 1;
                    }
                    tokens.push(Token {
                        kind: Kind::Quoted,
                        text: chars[index..=end].iter().collect(),
                        column,
                    });
                    index = end + 1;
                }
                c if c.is_whitespace() => index += 1,
                c if !is_reserved(c) => {
                    let start = index;
                    while chars.get(index).is_some_and(|&c| !is_reserved(c)) {
                        index += 1;
                    }
                    tokens.push(Token {
                        kind: Kind::Unquoted,
                        text: chars[start..index].iter().collect(),
                        column,
                    });
                }
                other => {
                    return Err(format!("unexpected {other:?} at column {column}"));
                }
            }
        }
        Ok(tokens)
    }

    const EXPECTED_OPERATOR: &str = "expected an operator such as '=', '!=', '=~' or '!~'";

    /// `{`? (matcher (`,` matcher)* `,`?)? `}`?, the braces both present or both absent.
    pub(super) fn parse(input: &str) -> Result<Vec<Matcher>, String> {
        let tokens = lex(input)?;
        let mut tokens = tokens.into_iter().peekable();
        let mut matchers = Vec::new();
        let open_brace = tokens
            .next_if(|token| token.kind == Kind::OpenBrace)
            .is_some();
        loop {
            match tokens.peek() {
                None => break,
                Some(token) if token.kind == Kind::CloseBrace => break,
                Some(_) => {}
            }
            matchers.push(parse_matcher(&mut tokens)?);
            match tokens.peek() {
                None => break,
                Some(token) if token.kind == Kind::CloseBrace => break,
                Some(token) if token.kind == Kind::Comma => {
                    tokens.next();
                }
                Some(token) => {
                    return Err(format!(
                        "{}: expected a comma or close brace",
                        token.describe()
                    ));
                }
            }
        }
        match (open_brace, tokens.next()) {
            (true, None) => return Err("expected close brace at end of input".to_string()),
            (false, Some(token)) if token.kind == Kind::CloseBrace => {
                return Err(format!(
                    "unexpected '}}' at column {}: expected opening brace",
                    token.column
                ));
            }
            _ => {}
        }
        if let Some(token) = tokens.next() {
            return Err(format!("{}: expected end of input", token.describe()));
        }
        Ok(matchers)
    }

    fn parse_matcher(
        tokens: &mut std::iter::Peekable<std::vec::IntoIter<Token>>,
    ) -> Result<Matcher, String> {
        let name = match tokens.next() {
            Some(token) if matches!(token.kind, Kind::Quoted | Kind::Unquoted) => {
                token.unquote()?
            }
            Some(token) => return Err(format!("{}: expected label name", token.describe())),
            None => return Err("expected label name at end of input".to_string()),
        };
        let op = match tokens.next() {
            Some(Token {
                kind: Kind::Op(op), ..
            }) => op,
            Some(token) => return Err(format!("{}: {EXPECTED_OPERATOR}", token.describe())),
            None => return Err(format!("{EXPECTED_OPERATOR} at end of input")),
        };
        let value = match tokens.next() {
            Some(token) if matches!(token.kind, Kind::Quoted | Kind::Unquoted) => {
                token.unquote()?
            }
            Some(token) => return Err(format!("{}: expected label value", token.describe())),
            None => return Err("expected label value at end of input".to_string()),
        };
        Matcher::new(name, op, value)
    }

    /// Go's `strconv.Unquote` for a double-quoted string, then a UTF-8 check (byte escapes can
    /// produce invalid UTF-8).
    fn unquote_go(quoted: &str) -> Result<String, String> {
        let inner = quoted
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .ok_or("not a double-quoted string")?;
        let mut bytes = Vec::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\n' => return Err("line feed inside quotes".to_string()),
                '\\' => {
                    let escape = chars.next().ok_or("trailing backslash")?;
                    let simple = match escape {
                        'a' => Some(0x07u8),
                        'b' => Some(0x08),
                        'f' => Some(0x0c),
                        'n' => Some(b'\n'),
                        'r' => Some(b'\r'),
                        't' => Some(b'\t'),
                        'v' => Some(0x0b),
                        '\\' => Some(b'\\'),
                        '"' => Some(b'"'),
                        _ => None,
                    };
                    if let Some(byte) = simple {
                        bytes.push(byte);
                        continue;
                    }
                    match escape {
                        'x' => bytes.push(hex_digits(&mut chars, 2)? as u8),
                        '0'..='7' => {
                            let mut value = escape.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                let digit = chars
                                    .next()
                                    .and_then(|c| c.to_digit(8))
                                    .ok_or("invalid octal escape")?;
                                value = value * 8 + digit;
                            }
                            let byte =
                                u8::try_from(value).map_err(|_| "octal escape above \\377")?;
                            bytes.push(byte);
                        }
                        'u' | 'U' => {
                            let width = if escape == 'u' { 4 } else { 8 };
                            let code = hex_digits(&mut chars, width)?;
                            let c =
                                char::from_u32(code).ok_or("escape is not a valid code point")?;
                            let mut buffer = [0; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                        }
                        other => return Err(format!("unknown escape sequence \\{other}")),
                    }
                }
                other => {
                    let mut buffer = [0; 4];
                    bytes.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
                }
            }
        }
        String::from_utf8(bytes).map_err(|_| "not valid UTF-8 after unescaping".to_string())
    }

    fn hex_digits(chars: &mut std::str::Chars<'_>, count: usize) -> Result<u32, String> {
        let mut value = 0u32;
        for _ in 0..count {
            let digit = chars
                .next()
                .and_then(|c| c.to_digit(16))
                .ok_or("invalid hexadecimal escape")?;
            value = value * 16 + digit;
        }
        Ok(value)
    }
}

/// The classic syntax of Alertmanager up to 0.26 (`pkg/labels.ParseMatchers`).
mod classic {
    use super::{MatchOp, Matcher};

    /// Go's `\s` in RE2: ASCII whitespace only.
    fn is_space(c: char) -> bool {
        matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
    }

    /// An optional leading `{` and trailing `}` (each on its own), then matchers separated by
    /// commas outside double quotes; one trailing comma is allowed.
    pub(super) fn parse(input: &str) -> Result<Vec<Matcher>, String> {
        let input = input.strip_prefix('{').unwrap_or(input);
        let input = input.strip_suffix('}').unwrap_or(input);
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut inside_quotes = false;
        let mut escaped = false;
        for c in input.chars() {
            match c {
                ',' if !inside_quotes => {
                    parts.push(std::mem::take(&mut current));
                    continue;
                }
                ',' => escaped = false,
                '"' => {
                    if escaped {
                        escaped = false;
                    } else {
                        inside_quotes = !inside_quotes;
                    }
                }
                '\\' => escaped = !escaped,
                _ => escaped = false,
            }
            current.push(c);
        }
        let last = current.trim_matches(is_space);
        if !last.is_empty() {
            parts.push(last.to_string());
        }
        parts.iter().map(|part| parse_one(part)).collect()
    }

    /// `name op value`: a classic label name (colons allowed), one of the four operators, and a
    /// value that may be double-quoted, with `\"`, `\\` and `\n` escapes; whitespace around
    /// each part is ignored.
    pub(super) fn parse_one(input: &str) -> Result<Matcher, String> {
        let bad_format = || format!("bad matcher format: {input}");
        let rest = input.trim_start_matches(is_space);
        let name_length = rest
            .char_indices()
            .find(|&(index, c)| {
                let allowed = c.is_ascii_alphabetic()
                    || c == '_'
                    || c == ':'
                    || (index > 0 && c.is_ascii_digit());
                !allowed
            })
            .map_or(rest.len(), |(index, _)| index);
        if name_length == 0 {
            return Err(bad_format());
        }
        let (name, rest) = rest.split_at(name_length);
        let rest = rest.trim_start_matches(is_space);
        let (op, rest) = if let Some(rest) = rest.strip_prefix("=~") {
            (MatchOp::Regex, rest)
        } else if let Some(rest) = rest.strip_prefix('=') {
            (MatchOp::Equal, rest)
        } else if let Some(rest) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, rest)
        } else if let Some(rest) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, rest)
        } else {
            return Err(bad_format());
        };
        let raw = rest.trim_matches(is_space);
        let value = unescape(raw)
            .ok_or_else(|| format!("matcher value contains unescaped double quote: {raw}"))?;
        Matcher::new(name, op, value)
    }

    /// OpenMetrics-style unescaping; a lone `\` before any other character (or at the end)
    /// stays a backslash. `None` when a double quote is not the opening or closing one.
    fn unescape(raw: &str) -> Option<String> {
        let (body, quoted) = match raw.strip_prefix('"') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        let mut value = String::with_capacity(body.len());
        let mut expect_closing_quote = quoted;
        let mut chars = body.char_indices().peekable();
        while let Some((index, c)) = chars.next() {
            let is_last = index + c.len_utf8() == body.len();
            match c {
                '\\' if !is_last => {
                    let (_, next) = chars.next()?;
                    match next {
                        'n' => value.push('\n'),
                        '"' | '\\' => value.push(next),
                        other => {
                            value.push('\\');
                            value.push(other);
                        }
                    }
                }
                '"' => {
                    if !expect_closing_quote || !is_last {
                        return None;
                    }
                    expect_closing_quote = false;
                }
                other => value.push(other),
            }
        }
        if expect_closing_quote {
            return None;
        }
        Some(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parsed(text: &str) -> Vec<String> {
        parse_matchers(text)
            .unwrap_or_else(|error| panic!("{text:?}: {error}"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn utf8_syntax() {
        assert_eq!(
            parsed(r#"{foo="bar", baz!~"a|b"}"#),
            ["foo=\"bar\"", "baz!~\"a|b\""]
        );
        assert_eq!(parsed("foo=bar"), ["foo=\"bar\""]);
        assert_eq!(
            parsed(" foo = bar , dings != bums , "),
            ["foo=\"bar\"", "dings!=\"bums\""]
        );
        assert_eq!(parsed("{foo=bar,}"), ["foo=\"bar\""]);
        assert_eq!(
            parsed(r#""service name"="api""#),
            ["\"service name\"=\"api\""]
        );
        assert_eq!(parsed("Προμηθεύς=ναι"), ["\"Προμηθεύς\"=\"ναι\""]);
        assert_eq!(parsed(r#"foo="🙂""#), ["foo=\"🙂\""]);
        assert_eq!(parsed(r#"foo=~[a-z]+"#), ["foo=~\"[a-z]+\""]);
        assert_eq!(parsed(""), Vec::<String>::new());
        assert_eq!(parsed("{}"), Vec::<String>::new());
    }

    #[test]
    fn classic_fallback() {
        // Not UTF-8 syntax (an unquoted value with a reserved character, an empty value), but
        // valid classic matchers.
        assert_eq!(parsed("foo=bar!baz"), ["foo=\"bar!baz\""]);
        assert_eq!(parsed("foo="), ["foo=\"\""]);
        assert_eq!(parsed(r"foo=~\d+"), ["foo=~\"\\\\d+\""]);
        assert_eq!(parsed("{foo=bar baz}"), ["foo=\"bar baz\""]);
        assert_eq!(parsed(r#"foo="a\qb""#), ["foo=\"a\\\\qb\""]);
        // Where both accept but disagree, the classic reading wins: `\t` and `\x..` are no
        // escapes there, as Alertmanager's fallback mode documents.
        assert_eq!(parsed(r#"foo="a\tb""#), ["foo=\"a\\\\tb\""]);
        assert_eq!(
            parsed(r#"foo="\xf0\x9f\x99\x82""#),
            ["foo=\"\\\\xf0\\\\x9f\\\\x99\\\\x82\""]
        );
    }

    #[test]
    fn utf8_parser_decodes_go_escapes() {
        let one = |text: &str| utf8::parse(text).unwrap()[0].value().to_string();
        assert_eq!(one(r#"foo="\xf0\x9f\x99\x82""#), "🙂");
        assert_eq!(one(r#"foo="a\tb\u00e9\101""#), "a\tbéA");
        assert!(utf8::parse(r#"foo="\xff""#).is_err());
        assert!(utf8::parse(r#"foo="\'""#).is_err());
    }

    #[test]
    fn errors_name_the_input() {
        let error = parse_matchers("foo!bar").unwrap_err();
        assert_eq!(
            error,
            "invalid matchers \"foo!bar\": expected '=' or '~' after '!' at column 4"
        );
        // Braces must pair in the UTF-8 syntax; the classic one strips either on its own.
        assert_eq!(
            utf8::parse("{foo=bar").unwrap_err(),
            "expected close brace at end of input"
        );
        assert_eq!(parsed("{foo=bar"), ["foo=\"bar\""]);
        assert_eq!(
            parse_matchers("{{foo=bar}}").unwrap_err(),
            "invalid matchers \"{{foo=bar}}\": unexpected \"{\" at column 2: expected label name"
        );
        assert_eq!(
            parse_matchers("foo=~\"(bar\"").unwrap_err(),
            "invalid matchers \"foo=~\\\"(bar\\\"\": invalid regular expression \"(bar\": unclosed group"
        );
        assert_eq!(
            parse_matchers("foo").unwrap_err(),
            "invalid matchers \"foo\": expected an operator such as '=', '!=', '=~' or '!~' at end of input"
        );
        assert!(parse_matchers("{{foo=bar}}").is_err());
        assert!(parse_matchers("a=b,,c=d").is_err());
        assert!(parse_matchers("\"=x").is_err());
    }

    #[test]
    fn parse_one_rules() {
        assert_eq!(
            Matcher::parse_one("foo=bar").unwrap().to_string(),
            "foo=\"bar\""
        );
        // The classic single-matcher syntax keeps commas in unquoted values.
        assert_eq!(
            Matcher::parse_one("foo=bar,baz").unwrap().value(),
            "bar,baz"
        );
        assert!(Matcher::parse_one("{foo=bar}").is_err());
        assert!(Matcher::parse_one("").is_err());
    }

    #[test]
    fn missing_labels_match_as_empty() {
        let labels = |name: &str| (name == "a").then_some("1");
        assert!(Matcher::parse_one("b=\"\"").unwrap().matches_labels(labels));
        assert!(
            !Matcher::parse_one("b!=\"\"")
                .unwrap()
                .matches_labels(labels)
        );
        assert!(
            Matcher::parse_one("b=~\".*\"")
                .unwrap()
                .matches_labels(labels)
        );
        assert!(
            Matcher::parse_one("a=~\"1|2\"")
                .unwrap()
                .matches_labels(labels)
        );
        assert!(!Matcher::parse_one("a=~\"1|2x\"").unwrap().matches("1x"));
    }

    fn op() -> impl Strategy<Value = MatchOp> {
        prop_oneof![
            Just(MatchOp::Equal),
            Just(MatchOp::NotEqual),
            Just(MatchOp::Regex),
            Just(MatchOp::NotRegex),
        ]
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(
            name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,8}|\\PC{1,8}",
            op in op(),
            value in "\\PC{0,12}|[\"\\\\\n, {}=!~]{0,8}",
        ) {
            // Regex values must compile; escaping keeps arbitrary text a valid regex.
            let value = if op.is_regex() { regex::escape(&value) } else { value };
            let matcher = Matcher::new(name, op, value).unwrap();
            let text = matcher.to_string();
            prop_assert_eq!(Matcher::parse_one(&text).unwrap(), matcher.clone());
            prop_assert_eq!(parse_matchers(&text).unwrap(), vec![matcher.clone()]);
            let pair = format!("{{{matcher}, {matcher}}}");
            prop_assert_eq!(parse_matchers(&pair).unwrap(), vec![matcher.clone(), matcher]);
        }

        #[test]
        fn matching_agrees_with_an_oracle(
            op in op(),
            wanted in "[ab]{0,3}",
            actual in "[ab]{0,3}",
        ) {
            // For a regex matcher the oracle is an alternation of the literal and `b+`.
            let pattern = format!("{}|b+", regex::escape(&wanted));
            let value = if op.is_regex() { pattern } else { wanted.clone() };
            let matcher = Matcher::new("x", op, value).unwrap();
            let positive = match op {
                MatchOp::Equal | MatchOp::NotEqual => actual == wanted,
                MatchOp::Regex | MatchOp::NotRegex => {
                    actual == wanted || (!actual.is_empty() && actual.chars().all(|c| c == 'b'))
                }
            };
            prop_assert_eq!(matcher.matches(&actual), positive != op.is_negative());
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,32}") {
            let _ = parse_matchers(&text);
            let _ = Matcher::parse_one(&text);
        }
    }
}

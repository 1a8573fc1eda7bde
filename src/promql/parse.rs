//! Parsing queries with `promql-parser`, plus one workaround.
//!
//! `promql-parser` decodes a `\xNN` escape in a string literal as the code point U+00NN, while
//! Go (and so Prometheus) takes it as the byte NN: `"\xc3\xa9"` is "é" in Prometheus but "Ã©"
//! for the parser, and `"\xff"` is invalid UTF-8 in Prometheus (so an invalid label name) but
//! "ÿ" for the parser. Before parsing, runs of `\xNN` escapes inside quoted strings are decoded
//! as bytes: valid UTF-8 is re-escaped as `\u`/`\U` code points, and each invalid byte becomes
//! a private-use character (U+F700 + byte) that [`is_invalid_byte_char`] recognises and
//! [`go_quote`] prints as `\xNN` again.

use promql_parser::parser::{self, Expr};

use super::engine::QueryError;

const INVALID_BYTE_BASE: u32 = 0xF700;

/// Whether `c` stands for a byte of invalid UTF-8 from a `\xNN` escape.
pub fn is_invalid_byte_char(c: char) -> bool {
    (INVALID_BYTE_BASE + 0x80..=INVALID_BYTE_BASE + 0xFF).contains(&u32::from(c))
}

/// Parses a query.
pub fn parse_query(query: &str) -> Result<Expr, QueryError> {
    let rewritten = rewrite_byte_escapes(query);
    parser::parse(&rewritten).map_err(QueryError::BadData)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn rewrite_byte_escapes(query: &str) -> String {
    if !query.contains("\\x") {
        return query.to_string();
    }
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            None => {
                if c == b'"' || c == b'\'' {
                    quote = Some(c);
                }
                i += 1;
            }
            Some(q) => {
                if c == q {
                    quote = None;
                    i += 1;
                } else if c == b'\\' && i + 1 < b.len() && b[i + 1] == b'x' {
                    // Collect a run of \xNN escapes.
                    let start = i;
                    let mut bytes = Vec::new();
                    while i + 3 < b.len() && b[i] == b'\\' && b[i + 1] == b'x' {
                        match (hex(b[i + 2]), hex(b[i + 3])) {
                            (Some(h), Some(l)) => {
                                bytes.push(h * 16 + l);
                                i += 4;
                            }
                            _ => break,
                        }
                    }
                    if bytes.is_empty() {
                        i += 2;
                        continue;
                    }
                    out.push_str(&query[last..start]);
                    for chunk in bytes.utf8_chunks() {
                        for ch in chunk.valid().chars() {
                            out.push_str(&format!("\\U{:08x}", u32::from(ch)));
                        }
                        for &bad in chunk.invalid() {
                            out.push_str(&format!("\\u{:04x}", INVALID_BYTE_BASE + u32::from(bad)));
                        }
                    }
                    last = i;
                } else if c == b'\\' {
                    i += 2;
                } else {
                    i += 1;
                }
            }
        }
    }
    out.push_str(&query[last.min(query.len())..]);
    out
}

/// Quotes `s` as Go's `%q` does for the characters that matter here.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_invalid_byte_char(c) => {
                out.push_str(&format!("\\x{:02x}", u32::from(c) - INVALID_BYTE_BASE));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_escapes_follow_go() {
        assert_eq!(
            rewrite_byte_escapes(r#"f("\xc3\xa9")"#),
            r#"f("\U000000e9")"#
        );
        let q = rewrite_byte_escapes(r#"f("a\xc5z")"#);
        assert_eq!(q, r#"f("a\uf7c5z")"#);
        assert_eq!(go_quote("a\u{f7c5}z"), r#""a\xc5z""#);
    }
}

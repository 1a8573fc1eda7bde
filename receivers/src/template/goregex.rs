//! Go's `regexp` (RE2) on Rust's `regex`: the syntax Go accepts, the meaning Go gives it, and
//! Go's error messages, for the `match` and `reReplaceAll` functions of both dialects.
//!
//! The two engines share RE2's syntax; where they differ this module bridges:
//! - `\d`, `\w`, `\s`, `\b` are ASCII in Go and Unicode in Rust: they are rewritten to ASCII.
//! - Go treats a `{` that does not start a valid repeat as a literal; Rust rejects it.
//! - Go rejects nested repetition (`a**`), repeat counts above 1000, the flags `u`, `x`, `R`
//!   and the word-boundary forms `\<`, `\b{start}`, … that Rust accepts.
//! - Errors are worded as Go's: ``error parsing regexp: missing closing ): `(` ``.

#![deny(clippy::disallowed_methods)]

use regex::{Regex, RegexBuilder};
use regex_syntax::ast::{
    self, AssertionKind, Ast, ClassPerlKind, ClassSet, ClassSetItem, ErrorKind, Flag,
    FlagsItemKind, RepetitionKind, RepetitionRange,
};

/// Go's limit on `{n,m}` counts.
const MAX_REPEAT: u32 = 1000;

/// A pattern Go would refuse, with Go's code and the part of the pattern it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoRegexError {
    code: &'static str,
    expr: String,
}

impl std::fmt::Display for GoRegexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error parsing regexp: {}: `{}`", self.code, self.expr)
    }
}

/// Go's `regexp.MustCompile` panic text, which `reReplaceAll` reports:
/// ``regexp: Compile(`(`): error parsing regexp: …``.
pub(crate) fn must_compile_message(pattern: &str, error: &GoRegexError) -> String {
    format!("regexp: Compile({}): {error}", go_quote(pattern))
}

/// Go's `regexp.Compile` of `pattern`, as a Rust regex that matches what Go's would.
pub(crate) fn compile(pattern: &str, size_limit: usize) -> Result<Regex, GoRegexError> {
    let translated = translate(pattern)?;
    RegexBuilder::new(&translated)
        .size_limit(size_limit)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(_) => GoRegexError {
                code: "expression too large",
                expr: pattern.to_string(),
            },
            _ => translation_error(&translated).unwrap_or_else(|| GoRegexError {
                code: "invalid or unsupported Perl syntax",
                expr: pattern.to_string(),
            }),
        })
}

/// Go's wording for what the syntax tree allows but its meaning does not, such as an unknown
/// Unicode class (`\p{Foo}`).
fn translation_error(translated: &str) -> Option<GoRegexError> {
    let regex_syntax::Error::Translate(error) =
        regex_syntax::Parser::new().parse(translated).err()?
    else {
        return None;
    };
    let span = error.span();
    let shown = translated
        .get(span.start.offset..span.end.offset)
        .unwrap_or("")
        .to_string();
    use regex_syntax::hir::ErrorKind as Hir;
    let code = match error.kind() {
        Hir::UnicodePropertyNotFound
        | Hir::UnicodePropertyValueNotFound
        | Hir::UnicodePerlClassNotFound
        | Hir::UnicodeCaseUnavailable => "invalid character class range",
        _ => "invalid or unsupported Perl syntax",
    };
    Some(GoRegexError { code, expr: shown })
}

/// Go's `\Q…\E` (literal text, to `\E` or the end), which Rust's syntax lacks, as escaped
/// literals. Outside character classes only, as in Go.
fn expand_quoted_literals(pattern: &str) -> String {
    if !pattern.contains("\\Q") {
        return pattern.to_string();
    }
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut rest = pattern;
    let mut in_class = false;
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            let Some(next) = rest[1..].chars().next() else {
                out.push(c);
                break;
            };
            if next == 'Q' && !in_class {
                let body = &rest[2..];
                let (literal, after) = match body.find("\\E") {
                    Some(end) => (&body[..end], &body[end + 2..]),
                    None => (body, ""),
                };
                out.push_str(&regex_syntax::escape(literal));
                rest = after;
                continue;
            }
            out.push(c);
            out.push(next);
            rest = &rest[1 + next.len_utf8()..];
            continue;
        }
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The Rust pattern for a Go pattern, or Go's error for it.
fn translate(pattern: &str) -> Result<String, GoRegexError> {
    let mut text = expand_quoted_literals(pattern);
    // Each retry escapes one more literal `{`, so this ends.
    let mut retries = pattern.matches('{').count() + 1;
    let parsed = loop {
        match ast::parse::Parser::new().parse(&text) {
            Ok(parsed) => break parsed,
            Err(error) => {
                if retries > 0
                    && let Some(brace) = literal_brace(&text, &error)
                {
                    retries -= 1;
                    text.insert(brace, '\\');
                    continue;
                }
                return Err(go_error(&text, &error));
            }
        }
    };
    let mut edits: Vec<(usize, usize, &'static str)> = Vec::new();
    check(&text, &parsed, &mut edits)?;
    edits.sort_by_key(|edit| edit.0);
    let mut translated = String::with_capacity(text.len() + edits.len() * 8);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at {
            continue;
        }
        translated.push_str(&text[at..start]);
        translated.push_str(replacement);
        at = end;
    }
    translated.push_str(&text[at..]);
    Ok(translated)
}

/// Where Go would read a `{` as a literal because it does not start a valid repeat, that
/// brace's offset: the one Rust's error points at or into.
fn literal_brace(text: &str, error: &ast::Error) -> Option<usize> {
    let start = error.span().start.offset;
    match error.kind() {
        // A `{` with nothing to repeat.
        ErrorKind::RepetitionMissing => text[start..].starts_with('{').then_some(start),
        // A `{` without a valid count or closing `}`: the nearest brace at or before the spot.
        ErrorKind::RepetitionCountUnclosed
        | ErrorKind::RepetitionCountDecimalEmpty
        | ErrorKind::DecimalEmpty
        | ErrorKind::DecimalInvalid => {
            let end = (start + 1).min(text.len());
            text.get(..end)?.rfind('{')
        }
        _ => None,
    }
}

fn span_text(text: &str, span: &ast::Span) -> String {
    text.get(span.start.offset..span.end.offset)
        .unwrap_or("")
        .to_string()
}

/// Walks the syntax tree: refuses what Go refuses, and collects the ASCII rewrites.
fn check(
    text: &str,
    node: &Ast,
    edits: &mut Vec<(usize, usize, &'static str)>,
) -> Result<(), GoRegexError> {
    match node {
        Ast::Flags(set) => check_flags(text, &set.flags),
        Ast::ClassPerl(class) => {
            edits.push((
                class.span.start.offset,
                class.span.end.offset,
                perl_class(class.kind.clone(), class.negated, false),
            ));
            Ok(())
        }
        Ast::Assertion(assertion) => {
            let replacement = match assertion.kind {
                AssertionKind::WordBoundary => "(?-u:\\b)",
                AssertionKind::NotWordBoundary => "(?-u:\\B)",
                // Go reads `\<` and `\>` as escaped punctuation: the literal characters.
                AssertionKind::WordBoundaryStartAngle => "<",
                AssertionKind::WordBoundaryEndAngle => ">",
                AssertionKind::StartLine
                | AssertionKind::EndLine
                | AssertionKind::StartText
                | AssertionKind::EndText => return Ok(()),
                _ => {
                    return Err(GoRegexError {
                        code: "invalid escape sequence",
                        expr: span_text(text, &assertion.span).chars().take(2).collect(),
                    });
                }
            };
            edits.push((
                assertion.span.start.offset,
                assertion.span.end.offset,
                replacement,
            ));
            Ok(())
        }
        Ast::ClassBracketed(class) => check_class_set(text, &class.kind, edits),
        Ast::Repetition(repetition) => {
            if let RepetitionKind::Range(range) = &repetition.op.kind {
                let (low, high) = match range {
                    RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => (*n, *n),
                    RepetitionRange::Bounded(low, high) => (*low, *high),
                };
                if low > MAX_REPEAT || high > MAX_REPEAT {
                    return Err(GoRegexError {
                        code: "invalid repeat count",
                        expr: span_text(text, &repetition.op.span),
                    });
                }
            }
            if let Ast::Repetition(inner) = repetition.ast.as_ref() {
                return Err(GoRegexError {
                    code: "invalid nested repetition operator",
                    expr: text
                        .get(inner.op.span.start.offset..repetition.op.span.end.offset)
                        .unwrap_or("")
                        .to_string(),
                });
            }
            check(text, &repetition.ast, edits)
        }
        Ast::Group(group) => {
            if let ast::GroupKind::NonCapturing(flags) = &group.kind {
                check_flags(text, flags)?;
            }
            check(text, &group.ast, edits)
        }
        Ast::Alternation(alternation) => alternation
            .asts
            .iter()
            .try_for_each(|ast| check(text, ast, edits)),
        Ast::Concat(concat) => concat
            .asts
            .iter()
            .try_for_each(|ast| check(text, ast, edits)),
        Ast::Empty(_) | Ast::Literal(_) | Ast::Dot(_) | Ast::ClassUnicode(_) => Ok(()),
    }
}

/// Go's flags are `i`, `m`, `s` and `U`.
fn check_flags(text: &str, flags: &ast::Flags) -> Result<(), GoRegexError> {
    for item in &flags.items {
        if let FlagsItemKind::Flag(Flag::Unicode | Flag::IgnoreWhitespace | Flag::CRLF) = item.kind
        {
            let group_start = text[..flags.span.start.offset]
                .rfind("(?")
                .unwrap_or(flags.span.start.offset);
            return Err(GoRegexError {
                code: "invalid or unsupported Perl syntax",
                expr: text
                    .get(group_start..item.span.end.offset)
                    .unwrap_or("")
                    .to_string(),
            });
        }
    }
    Ok(())
}

fn check_class_set(
    text: &str,
    set: &ClassSet,
    edits: &mut Vec<(usize, usize, &'static str)>,
) -> Result<(), GoRegexError> {
    match set {
        ClassSet::Item(item) => check_class_item(text, item, edits),
        ClassSet::BinaryOp(op) => {
            check_class_set(text, &op.lhs, edits)?;
            check_class_set(text, &op.rhs, edits)
        }
    }
}

fn check_class_item(
    text: &str,
    item: &ClassSetItem,
    edits: &mut Vec<(usize, usize, &'static str)>,
) -> Result<(), GoRegexError> {
    match item {
        ClassSetItem::Perl(class) => {
            edits.push((
                class.span.start.offset,
                class.span.end.offset,
                perl_class(class.kind.clone(), class.negated, true),
            ));
            Ok(())
        }
        ClassSetItem::Bracketed(class) => check_class_set(text, &class.kind, edits),
        ClassSetItem::Union(union) => union
            .items
            .iter()
            .try_for_each(|item| check_class_item(text, item, edits)),
        _ => Ok(()),
    }
}

/// Go's Perl classes, ASCII only. Inside brackets a positive class is a range list and a
/// negated one a nested class, which Rust's syntax allows.
fn perl_class(kind: ClassPerlKind, negated: bool, in_brackets: bool) -> &'static str {
    match (kind, negated, in_brackets) {
        (ClassPerlKind::Digit, false, false) => "[0-9]",
        (ClassPerlKind::Digit, false, true) => "0-9",
        (ClassPerlKind::Digit, true, _) => "[^0-9]",
        (ClassPerlKind::Word, false, false) => "[0-9A-Za-z_]",
        (ClassPerlKind::Word, false, true) => "0-9A-Za-z_",
        (ClassPerlKind::Word, true, _) => "[^0-9A-Za-z_]",
        (ClassPerlKind::Space, false, false) => "[\\t\\n\\f\\r ]",
        (ClassPerlKind::Space, false, true) => "\\t\\n\\f\\r ",
        (ClassPerlKind::Space, true, _) => "[^\\t\\n\\f\\r ]",
    }
}

/// Go's error code and shown text for a syntax error Rust's parser reports.
fn go_error(text: &str, error: &ast::Error) -> GoRegexError {
    let span = error.span();
    let shown = span_text(text, span);
    let from_group = || {
        let start = text[..span.start.offset.min(text.len())]
            .rfind("(?")
            .unwrap_or(span.start.offset);
        text.get(start..span.end.offset).unwrap_or("").to_string()
    };
    let (code, expr) = match error.kind() {
        ErrorKind::GroupUnclosed => ("missing closing )", text.to_string()),
        ErrorKind::GroupUnopened => ("unexpected )", text.to_string()),
        ErrorKind::ClassUnclosed => (
            "missing closing ]",
            text.get(span.start.offset..).unwrap_or("").to_string(),
        ),
        // `[a-\d]`: Go refuses the escape as a range end.
        ErrorKind::ClassRangeLiteral if shown.starts_with('\\') => {
            ("invalid escape sequence", shown)
        }
        ErrorKind::ClassRangeInvalid | ErrorKind::ClassRangeLiteral => {
            ("invalid character class range", shown)
        }
        ErrorKind::UnicodeClassInvalid => ("invalid character class range", shown),
        ErrorKind::RepetitionMissing => {
            // Rust marks the spot before the operator; Go shows the operator.
            let operator = text
                .get(span.start.offset..)
                .and_then(|rest| rest.chars().next())
                .map(String::from)
                .unwrap_or_default();
            let shown = if shown.is_empty() { operator } else { shown };
            ("missing argument to repetition operator", shown)
        }
        ErrorKind::RepetitionCountInvalid
        | ErrorKind::RepetitionCountDecimalEmpty
        | ErrorKind::RepetitionCountUnclosed
        | ErrorKind::DecimalEmpty
        | ErrorKind::DecimalInvalid => ("invalid repeat count", shown),
        ErrorKind::EscapeUnexpectedEof => {
            ("trailing backslash at end of expression", String::new())
        }
        ErrorKind::EscapeUnrecognized
        | ErrorKind::EscapeHexEmpty
        | ErrorKind::EscapeHexInvalid
        | ErrorKind::EscapeHexInvalidDigit
        | ErrorKind::ClassEscapeInvalid
        | ErrorKind::UnsupportedBackreference
        | ErrorKind::SpecialWordBoundaryUnclosed
        | ErrorKind::SpecialWordBoundaryUnrecognized
        | ErrorKind::SpecialWordOrRepetitionUnexpectedEof => ("invalid escape sequence", shown),
        ErrorKind::GroupNameEmpty
        | ErrorKind::GroupNameInvalid
        | ErrorKind::GroupNameUnexpectedEof
        | ErrorKind::GroupNameDuplicate { .. } => ("invalid named capture", from_group()),
        ErrorKind::NestLimitExceeded(_) => ("expression nests too deeply", text.to_string()),
        ErrorKind::CaptureLimitExceeded => ("expression too large", text.to_string()),
        _ => ("invalid or unsupported Perl syntax", from_group()),
    };
    GoRegexError { code, expr }
}

/// Go's `` `text` `` when `strconv.CanBackquote` allows it, else its `%q`.
fn go_quote(text: &str) -> String {
    let can_backquote = !text.contains('`')
        && !text.contains('\u{FEFF}')
        && text.chars().all(|c| c == '\t' || !c.is_control());
    if can_backquote {
        format!("`{text}`")
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn go_match(pattern: &str, text: &str) -> Result<bool, String> {
        compile(pattern, 1 << 20)
            .map(|regex| regex.is_match(text))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn goregex_classes_are_ascii_as_in_go() {
        assert_eq!(go_match(r"\d", "٣"), Ok(false));
        assert_eq!(go_match(r"[\d]", "٣"), Ok(false));
        assert_eq!(go_match(r"[^\d]", "٣"), Ok(true));
        assert_eq!(go_match(r"\w", "é"), Ok(false));
        assert_eq!(go_match(r"\s", "\u{a0}"), Ok(false));
        assert_eq!(go_match(r"\s", "\t"), Ok(true));
        assert_eq!(go_match(r"\bfoo", "éfoo"), Ok(true));
        assert_eq!(go_match(r"\pL", "é"), Ok(true));
        assert_eq!(go_match(r"(?i)É", "é"), Ok(true));
    }

    #[test]
    fn goregex_reads_what_go_reads_as_literal() {
        assert_eq!(go_match("a{", "a{"), Ok(true));
        assert_eq!(go_match("{", "{"), Ok(true));
        assert_eq!(go_match("a{,5}", "a{,5}"), Ok(true));
        assert_eq!(go_match(r"\Qa.b\E", "axb"), Ok(false));
        assert_eq!(go_match(r"\Qa.b", "a.b"), Ok(true));
        assert_eq!(go_match(r"\<", "<"), Ok(true));
    }

    #[test]
    fn goregex_refuses_what_go_refuses() {
        assert_eq!(
            go_match("a**", ""),
            Err("error parsing regexp: invalid nested repetition operator: `**`".into())
        );
        assert_eq!(
            go_match("(?x)a", ""),
            Err("error parsing regexp: invalid or unsupported Perl syntax: `(?x`".into())
        );
        assert_eq!(
            go_match("a{1001}", ""),
            Err("error parsing regexp: invalid repeat count: `{1001}`".into())
        );
        assert_eq!(
            go_match("(a", ""),
            Err("error parsing regexp: missing closing ): `(a`".into())
        );
        let error = compile("(`", 1 << 20).err();
        assert_eq!(
            error.map(|e| must_compile_message("(`", &e)),
            Some("regexp: Compile(\"(`\"): error parsing regexp: missing closing ): `(``".into())
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Arbitrary patterns, biased towards regex syntax, compile or fail without panicking.
        #[test]
        fn goregex_never_panics(parts in proptest::collection::vec(prop_oneof![
            Just("{"), Just("}"), Just(","), Just("("), Just(")"), Just("["), Just("]"), Just("\\"),
            Just("?"), Just("*"), Just("+"), Just("|"), Just("^"), Just("$"), Just("-"), Just(":"),
            Just("\\Q"), Just("\\E"), Just("\\d"), Just("\\b"), Just("\\<"), Just("(?"), Just("P<"),
            Just("1"), Just("1001"), Just("a"), Just("é"), Just("\\p{"), Just("[[:"), Just("x"),
        ], 0..24)) {
            let pattern: String = parts.concat();
            let _ = compile(&pattern, 1 << 16);
        }
    }
}

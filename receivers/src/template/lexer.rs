//! Splits template source into text and the tokens of `{{ … }}` actions, applying Go's
//! `{{-` / `-}}` whitespace trimming as it goes so that the parser never sees trimmed text.

/// What a token is. Text carries its already-trimmed content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Ident(String),
    /// `.Name`, without the dot.
    Field(String),
    /// `$name` with the dollar, or `$` alone.
    Variable(String),
    Dot,
    Str(String),
    Char(char),
    Number(String),
    Bool(bool),
    Nil,
    Keyword(Keyword),
    Pipe,
    LeftParen,
    RightParen,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    If,
    Else,
    End,
    Range,
    With,
    Define,
    Template,
    Block,
    Break,
    Continue,
}

/// A token with its byte span in the source, for error positions and for telling `$x.A`
/// (a chain: no gap) from `$x .A` (two arguments).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// A lexing failure at a byte offset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LexError {
    pub offset: usize,
    pub message: String,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    // Set by a `-}}`: the next text loses its leading whitespace.
    let mut trim_next_text = false;
    loop {
        let next_action = src[pos..].find(LEFT).map(|i| pos + i);
        let text_end = next_action.unwrap_or(src.len());
        let mut text = &src[pos..text_end];
        if trim_next_text {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let Some(action_start) = next_action else {
            if !text.is_empty() {
                tokens.push(Token {
                    tok: Tok::Text(text.to_string()),
                    start: pos,
                    end: text_end,
                });
            }
            tokens.push(Token {
                tok: Tok::Eof,
                start: src.len(),
                end: src.len(),
            });
            return Ok(tokens);
        };
        let mut inner = action_start + LEFT.len();
        // A left trim marker is "-" followed by whitespace; "{{-3}}" is the number -3.
        if bytes.get(inner) == Some(&b'-') && bytes.get(inner + 1).is_some_and(|c| is_space(*c)) {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            inner += 2;
        }
        if !text.is_empty() {
            tokens.push(Token {
                tok: Tok::Text(text.to_string()),
                start: pos,
                end: text_end,
            });
        }
        if src[inner..].starts_with("/*") {
            let Some(close) = src[inner + 2..].find("*/") else {
                return Err(LexError {
                    offset: action_start,
                    message: "unclosed comment".into(),
                });
            };
            let mut after = inner + 2 + close + 2;
            trim_next_text = false;
            if bytes.get(after).is_some_and(|c| is_space(*c)) && src[after + 1..].starts_with("-}}")
            {
                trim_next_text = true;
                after += 1 + 1;
            }
            if !src[after..].starts_with(RIGHT) {
                return Err(LexError {
                    offset: action_start,
                    message: "comment ends before closing delimiter".into(),
                });
            }
            pos = after + RIGHT.len();
            continue;
        }
        tokens.push(Token {
            tok: Tok::LeftDelim,
            start: action_start,
            end: inner,
        });
        let (end, trim) = lex_action(src, inner, action_start, &mut tokens)?;
        trim_next_text = trim;
        pos = end;
    }
}

/// Lexes the inside of one action from `pos`; returns the offset after its `}}` and whether it
/// ended with a right trim marker.
fn lex_action(
    src: &str,
    mut pos: usize,
    action_start: usize,
    tokens: &mut Vec<Token>,
) -> Result<(usize, bool), LexError> {
    let bytes = src.as_bytes();
    let mut paren_depth = 0usize;
    loop {
        let space_start = pos;
        while pos < bytes.len() && is_space(bytes[pos]) {
            pos += 1;
        }
        if pos > space_start && src[pos..].starts_with("-}}") {
            tokens.push(Token {
                tok: Tok::RightDelim,
                start: pos,
                end: pos + 3,
            });
            return Ok((pos + 3, true));
        }
        if src[pos..].starts_with(RIGHT) {
            if paren_depth > 0 {
                return Err(LexError {
                    offset: pos,
                    message: "unclosed left paren".into(),
                });
            }
            tokens.push(Token {
                tok: Tok::RightDelim,
                start: pos,
                end: pos + 2,
            });
            return Ok((pos + 2, false));
        }
        let Some(c) = src[pos..].chars().next() else {
            return Err(LexError {
                offset: action_start,
                message: "unclosed action".into(),
            });
        };
        let start = pos;
        let simple = match c {
            '|' => Some((Tok::Pipe, 1)),
            '(' => {
                paren_depth += 1;
                Some((Tok::LeftParen, 1))
            }
            ')' => {
                if paren_depth == 0 {
                    return Err(LexError {
                        offset: pos,
                        message: "unexpected right paren".into(),
                    });
                }
                paren_depth -= 1;
                Some((Tok::RightParen, 1))
            }
            ',' => Some((Tok::Comma, 1)),
            '=' => Some((Tok::Assign, 1)),
            ':' if src[pos..].starts_with(":=") => Some((Tok::Declare, 2)),
            _ => None,
        };
        if let Some((tok, len)) = simple {
            pos += len;
            tokens.push(Token {
                tok,
                start,
                end: pos,
            });
            continue;
        }
        let tok = match c {
            '"' => {
                let (value, end) = lex_quoted(src, pos)?;
                pos = end;
                Tok::Str(value)
            }
            '`' => {
                let Some(close) = src[pos + 1..].find('`') else {
                    return Err(LexError {
                        offset: pos,
                        message: "unterminated raw quoted string".into(),
                    });
                };
                let value = src[pos + 1..pos + 1 + close].to_string();
                pos += close + 2;
                Tok::Str(value)
            }
            '\'' => {
                let (value, end) = lex_char(src, pos)?;
                pos = end;
                Tok::Char(value)
            }
            '$' => {
                pos += 1;
                pos = scan_word(src, pos);
                Tok::Variable(src[start..pos].to_string())
            }
            '.' => {
                if bytes.get(pos + 1).is_some_and(u8::is_ascii_digit) {
                    pos = scan_number(src, pos);
                    Tok::Number(src[start..pos].to_string())
                } else {
                    pos += 1;
                    let word_end = scan_word(src, pos);
                    if word_end == pos {
                        Tok::Dot
                    } else {
                        let name = src[pos..word_end].to_string();
                        pos = word_end;
                        Tok::Field(name)
                    }
                }
            }
            '+' | '-' | '0'..='9' => {
                let signed = c == '+' || c == '-';
                let next = bytes.get(pos + 1).copied();
                if signed && !next.is_some_and(|n| n.is_ascii_digit() || n == b'.') {
                    return Err(LexError {
                        offset: pos,
                        message: format!("unexpected {c:?} in command"),
                    });
                }
                pos = scan_number(src, pos);
                Tok::Number(src[start..pos].to_string())
            }
            c if c == '_' || c.is_alphabetic() => {
                pos = scan_word(src, pos);
                keyword_or_ident(&src[start..pos])
            }
            other => {
                return Err(LexError {
                    offset: pos,
                    message: format!("unexpected {other:?} in command"),
                });
            }
        };
        tokens.push(Token {
            tok,
            start,
            end: pos,
        });
    }
}

fn scan_word(src: &str, mut pos: usize) -> usize {
    for c in src[pos..].chars() {
        if !is_alnum(c) {
            break;
        }
        pos += c.len_utf8();
    }
    pos
}

fn scan_number(src: &str, mut pos: usize) -> usize {
    let bytes = src.as_bytes();
    if matches!(bytes.get(pos), Some(b'+' | b'-')) {
        pos += 1;
    }
    let mut previous = 0u8;
    while let Some(&c) = bytes.get(pos) {
        let exponent_sign =
            matches!(c, b'+' | b'-') && matches!(previous, b'e' | b'E' | b'p' | b'P');
        if !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exponent_sign) {
            break;
        }
        previous = c;
        pos += 1;
    }
    pos
}

fn keyword_or_ident(word: &str) -> Tok {
    match word {
        "if" => Tok::Keyword(Keyword::If),
        "else" => Tok::Keyword(Keyword::Else),
        "end" => Tok::Keyword(Keyword::End),
        "range" => Tok::Keyword(Keyword::Range),
        "with" => Tok::Keyword(Keyword::With),
        "define" => Tok::Keyword(Keyword::Define),
        "template" => Tok::Keyword(Keyword::Template),
        "block" => Tok::Keyword(Keyword::Block),
        "break" => Tok::Keyword(Keyword::Break),
        "continue" => Tok::Keyword(Keyword::Continue),
        "true" => Tok::Bool(true),
        "false" => Tok::Bool(false),
        "nil" => Tok::Nil,
        _ => Tok::Ident(word.to_string()),
    }
}

/// Reads a Go interpreted string literal starting at the opening quote.
fn lex_quoted(src: &str, start: usize) -> Result<(String, usize), LexError> {
    let mut value = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, start + 1 + i + 1)),
            '\n' => break,
            '\\' => {
                let escape_at = start + 1 + i;
                value.push(lex_escape(&mut chars, '"', escape_at)?);
            }
            c => value.push(c),
        }
    }
    Err(LexError {
        offset: start,
        message: "unterminated quoted string".into(),
    })
}

fn lex_char(src: &str, start: usize) -> Result<(char, usize), LexError> {
    let mut chars = src[start + 1..].char_indices();
    let value = match chars.next() {
        Some((i, '\\')) => lex_escape(&mut chars, '\'', start + 1 + i)?,
        Some((_, c)) if c != '\'' && c != '\n' => c,
        _ => {
            return Err(LexError {
                offset: start,
                message: "unterminated character constant".into(),
            });
        }
    };
    match chars.next() {
        Some((i, '\'')) => Ok((value, start + 1 + i + 1)),
        _ => Err(LexError {
            offset: start,
            message: "unterminated character constant".into(),
        }),
    }
}

/// Decodes the escape after a backslash (Go's `strconv.Unquote` rules).
fn lex_escape(
    chars: &mut std::str::CharIndices<'_>,
    quote: char,
    at: usize,
) -> Result<char, LexError> {
    let bad = |message: &str| LexError {
        offset: at,
        message: message.to_string(),
    };
    let Some((_, c)) = chars.next() else {
        return Err(bad("unterminated escape"));
    };
    let mut hex = |digits: usize| -> Result<u32, LexError> {
        let mut code = 0u32;
        for _ in 0..digits {
            let digit = chars
                .next()
                .and_then(|(_, d)| d.to_digit(16))
                .ok_or_else(|| bad("invalid syntax in escape"))?;
            code = code * 16 + digit;
        }
        Ok(code)
    };
    let decoded = match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        '\\' => '\\',
        c if c == quote => c,
        'x' => char::from_u32(hex(2)?).ok_or_else(|| bad("invalid escape"))?,
        'u' => char::from_u32(hex(4)?).ok_or_else(|| bad("invalid escape"))?,
        'U' => char::from_u32(hex(8)?).ok_or_else(|| bad("invalid escape"))?,
        '0'..='7' => {
            let mut code = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                let digit = chars
                    .next()
                    .and_then(|(_, d)| d.to_digit(8))
                    .ok_or_else(|| bad("invalid octal escape"))?;
                code = code * 8 + digit;
            }
            char::from_u32(code)
                .filter(|_| code <= 255)
                .ok_or_else(|| bad("invalid octal escape"))?
        }
        _ => return Err(bad("unknown escape sequence")),
    };
    Ok(decoded)
}

//! The parser: tokens to a tree of nodes, with Go's parse-time checks (undefined variables and
//! functions, `break` outside `range`, misplaced `define`) so that `tocsin check config` reports
//! them with a position instead of the first notification failing.

use super::funcs::{self, Dialect};
use super::lexer::{Keyword, LexError, Tok, Token, lex};

/// Deep nesting is legal but useless; bounding it keeps the recursive parser and evaluator
/// off the end of the stack whatever the input.
const MAX_NESTING: usize = 100;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pipeline),
    If {
        pos: usize,
        pipe: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pos: usize,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pos: usize,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipeline>,
    },
    Break(usize),
    Continue(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub pos: usize,
    /// Variables declared (`:=`) or assigned (`=`) with the pipeline's value.
    pub vars: Vec<String>,
    pub assign: bool,
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub pos: usize,
    pub operands: Vec<Operand>,
}

#[derive(Debug, Clone)]
pub(crate) struct Operand {
    pub pos: usize,
    pub term: Term,
    /// Fields or methods applied to the term: `.A.B`, `$x.A`, `(…).A`.
    pub chain: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Term {
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Function(String),
    Variable(String),
    Pipeline(Box<Pipeline>),
}

/// One `define`d (or `block`) template, or a file's top-level body.
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    pub name: String,
    pub pos: usize,
    pub body: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl From<LexError> for ParseError {
    fn from(error: LexError) -> ParseError {
        ParseError {
            offset: error.offset,
            message: error.message,
        }
    }
}

/// A parsed file: its own top-level body and every template it defines, in order.
pub(crate) struct ParsedFile {
    pub body: Vec<Node>,
    pub definitions: Vec<Definition>,
}

pub(crate) fn parse(src: &str, dialect: Dialect) -> Result<ParsedFile, ParseError> {
    let tokens = lex(src)?;
    let mut parser = Parser {
        dialect,
        tokens,
        index: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        nesting: 0,
        definitions: Vec::new(),
    };
    let (body, end) = parser.list(true)?;
    if let Some((keyword, pos)) = end {
        return Err(ParseError {
            offset: pos,
            message: format!("unexpected {{{{{}}}}}", keyword_name(keyword)),
        });
    }
    Ok(ParsedFile {
        body,
        definitions: parser.definitions,
    })
}

/// Whether a body holds nothing but whitespace: Go lets such a definition not replace an
/// earlier one, so that a file can declare `{{define "x"}}{{end}}` as a placeholder.
pub(crate) fn is_empty_body(body: &[Node]) -> bool {
    body.iter()
        .all(|node| matches!(node, Node::Text(text) if text.trim().is_empty()))
}

fn keyword_name(keyword: Keyword) -> &'static str {
    match keyword {
        Keyword::If => "if",
        Keyword::Else => "else",
        Keyword::End => "end",
        Keyword::Range => "range",
        Keyword::With => "with",
        Keyword::Define => "define",
        Keyword::Template => "template",
        Keyword::Block => "block",
        Keyword::Break => "break",
        Keyword::Continue => "continue",
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Text(_) => "text".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::Ident(name) => format!("identifier {name:?}"),
        Tok::Field(name) => format!("field \".{name}\""),
        Tok::Variable(name) => format!("variable {name:?}"),
        Tok::Dot => "\".\"".into(),
        Tok::Str(value) => format!("string {value:?}"),
        Tok::Char(c) => format!("character {c:?}"),
        Tok::Number(text) => format!("number {text}"),
        Tok::Bool(value) => format!("{value}"),
        Tok::Nil => "nil".into(),
        Tok::Keyword(keyword) => format!("<{}>", keyword_name(*keyword)),
        Tok::Pipe => "\"|\"".into(),
        Tok::LeftParen => "\"(\"".into(),
        Tok::RightParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Eof => "end of input".into(),
    }
}

struct Parser {
    dialect: Dialect,
    tokens: Vec<Token>,
    index: usize,
    vars: Vec<String>,
    range_depth: usize,
    nesting: usize,
    definitions: Vec<Definition>,
}

type Terminator = Option<(Keyword, usize)>;

impl Parser {
    fn peek(&self) -> &Token {
        // The lexer always ends with Eof and the parser never advances past it.
        &self.tokens[self.index.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.index + ahead).min(self.tokens.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::Eof {
            self.index += 1;
        }
        token
    }

    fn fail<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset,
            message: message.into(),
        })
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<(), ParseError> {
        let token = self.next();
        if token.tok != Tok::RightDelim {
            return self.fail(
                token.start,
                format!("unexpected {} in {context}", describe(&token.tok)),
            );
        }
        Ok(())
    }

    /// Parses nodes until `{{end}}`, `{{else}}` or the end of input. Returns the terminating
    /// keyword (its `}}` not yet consumed for `else`, consumed for `end`).
    fn list(&mut self, top_level: bool) -> Result<(Vec<Node>, Terminator), ParseError> {
        let mut nodes = Vec::new();
        loop {
            let token = self.next();
            match token.tok {
                Tok::Eof => {
                    if top_level {
                        return Ok((nodes, None));
                    }
                    return self.fail(token.start, "unexpected EOF");
                }
                Tok::Text(text) => nodes.push(Node::Text(text)),
                Tok::LeftDelim => {
                    let keyword_token = self.peek().clone();
                    match keyword_token.tok {
                        Tok::Keyword(Keyword::End) => {
                            self.next();
                            self.expect_right_delim("end")?;
                            return Ok((nodes, Some((Keyword::End, keyword_token.start))));
                        }
                        Tok::Keyword(Keyword::Else) => {
                            self.next();
                            return Ok((nodes, Some((Keyword::Else, keyword_token.start))));
                        }
                        Tok::Keyword(Keyword::Define) => {
                            if !top_level || self.nesting > 0 {
                                return self
                                    .fail(keyword_token.start, "unexpected <define> in command");
                            }
                            self.next();
                            self.define(keyword_token.start)?;
                        }
                        Tok::Keyword(keyword) => {
                            self.next();
                            nodes.push(self.control(keyword, keyword_token.start)?);
                        }
                        _ => {
                            let pipe = self.pipeline("command", false)?;
                            self.expect_right_delim("command")?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                other => return self.fail(token.start, format!("unexpected {}", describe(&other))),
            }
        }
    }

    fn enter(&mut self, offset: usize) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return self.fail(offset, format!("nesting deeper than {MAX_NESTING} levels"));
        }
        Ok(())
    }

    fn string_name(&mut self, context: &str) -> Result<(String, usize), ParseError> {
        let token = self.next();
        match token.tok {
            Tok::Str(name) => Ok((name, token.start)),
            other => self.fail(
                token.start,
                format!("unexpected {} in {context}", describe(&other)),
            ),
        }
    }

    fn define(&mut self, pos: usize) -> Result<(), ParseError> {
        let (name, _) = self.string_name("define clause")?;
        self.expect_right_delim("define clause")?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (body, end) = self.list(false)?;
        self.vars = saved_vars;
        match end {
            Some((Keyword::End, _)) => {}
            Some((_, at)) => return self.fail(at, "unexpected {{else}} in define clause"),
            None => return self.fail(pos, "unexpected EOF in define clause"),
        }
        self.definitions.push(Definition { name, pos, body });
        Ok(())
    }

    fn control(&mut self, keyword: Keyword, pos: usize) -> Result<Node, ParseError> {
        match keyword {
            Keyword::If | Keyword::With | Keyword::Range => self.branch(keyword, pos),
            Keyword::Template => {
                // Go locates a template call at its name.
                let (name, pos) = self.string_name("template clause")?;
                let pipe = if self.peek().tok == Tok::RightDelim {
                    None
                } else {
                    Some(self.pipeline("template clause", false)?)
                };
                self.expect_right_delim("template clause")?;
                Ok(Node::Template { pos, name, pipe })
            }
            Keyword::Block => {
                let (name, _) = self.string_name("block clause")?;
                let pipe = self.pipeline("block clause", false)?;
                self.expect_right_delim("block clause")?;
                let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
                let saved_range_depth = std::mem::replace(&mut self.range_depth, 0);
                self.enter(pos)?;
                let (body, end) = self.list(false)?;
                self.nesting -= 1;
                self.vars = saved_vars;
                self.range_depth = saved_range_depth;
                if !matches!(end, Some((Keyword::End, _))) {
                    return self.fail(pos, "expected end; found else in block clause");
                }
                self.definitions.push(Definition {
                    name: name.clone(),
                    pos,
                    body,
                });
                Ok(Node::Template {
                    pos,
                    name,
                    pipe: Some(pipe),
                })
            }
            Keyword::Break | Keyword::Continue => {
                let word = keyword_name(keyword);
                if self.range_depth == 0 {
                    return self.fail(pos, format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                self.expect_right_delim(word)?;
                Ok(if keyword == Keyword::Break {
                    Node::Break(pos)
                } else {
                    Node::Continue(pos)
                })
            }
            Keyword::Define => self.fail(pos, "unexpected <define> in command"),
            Keyword::End | Keyword::Else => {
                self.fail(pos, format!("unexpected {{{{{}}}}}", keyword_name(keyword)))
            }
        }
    }

    /// `if`, `with` and `range`, with their `else` (and `else if` / `else with`) branches.
    fn branch(&mut self, keyword: Keyword, pos: usize) -> Result<Node, ParseError> {
        let word = keyword_name(keyword);
        self.enter(pos)?;
        let scope = self.vars.len();
        let pipe = self.pipeline(word, keyword == Keyword::Range)?;
        self.expect_right_delim(word)?;
        if keyword == Keyword::Range {
            self.range_depth += 1;
        }
        let listed = self.list(false);
        if keyword == Keyword::Range {
            self.range_depth -= 1;
        }
        let (body, end) = listed?;
        let otherwise = match end {
            Some((Keyword::End, _)) => Vec::new(),
            Some((Keyword::Else, else_pos)) => {
                let chained = match self.peek().tok {
                    Tok::Keyword(Keyword::If) if keyword == Keyword::If => Some(Keyword::If),
                    Tok::Keyword(Keyword::With) if keyword == Keyword::With => Some(Keyword::With),
                    _ => None,
                };
                if let Some(chained) = chained {
                    // `{{else if p}}` is `{{else}}{{if p}}…{{end}}` sharing the outer `end`.
                    let chained_pos = self.next().start;
                    vec![self.branch(chained, chained_pos)?]
                } else {
                    self.expect_right_delim("else")?;
                    let (otherwise, end) = self.list(false)?;
                    match end {
                        Some((Keyword::End, _)) => otherwise,
                        _ => {
                            return self
                                .fail(else_pos, format!("expected end; found else in {word}"));
                        }
                    }
                }
            }
            _ => return self.fail(pos, format!("unexpected EOF in {word}")),
        };
        self.vars.truncate(scope);
        self.nesting -= 1;
        Ok(match keyword {
            Keyword::If => Node::If {
                pos,
                pipe,
                then: body,
                otherwise,
            },
            Keyword::With => Node::With {
                pos,
                pipe,
                body,
                otherwise,
            },
            _ => Node::Range {
                pos,
                pipe,
                body,
                otherwise,
            },
        })
    }

    fn pipeline(&mut self, context: &str, allow_two_vars: bool) -> Result<Pipeline, ParseError> {
        let pos = self.peek().start;
        let mut vars = Vec::new();
        let mut assign = false;
        if let Tok::Variable(first) = self.peek().tok.clone() {
            let declaration = match (self.peek_at(1), self.peek_at(2), self.peek_at(3)) {
                (Tok::Declare, _, _) => Some((vec![first], false, 2)),
                (Tok::Assign, _, _) => Some((vec![first], true, 2)),
                (Tok::Comma, Tok::Variable(second), Tok::Declare | Tok::Assign)
                    if allow_two_vars =>
                {
                    let assigning = *self.peek_at(3) == Tok::Assign;
                    Some((vec![first, second.clone()], assigning, 4))
                }
                (Tok::Comma, _, _) => {
                    return self.fail(pos, format!("too many declarations in {context}"));
                }
                _ => None,
            };
            if let Some((names, assigning, consumed)) = declaration {
                for _ in 0..consumed {
                    self.next();
                }
                if assigning {
                    for name in &names {
                        if !self.vars.contains(name) {
                            return self.fail(pos, format!("undefined variable \"{name}\""));
                        }
                    }
                }
                vars = names;
                assign = assigning;
            }
        }
        let mut commands = Vec::new();
        loop {
            let command = self.command()?;
            // Go: only a pipeline's first command may start with a literal or a bare dot.
            let not_executable = command.operands.first().is_some_and(|first| {
                first.chain.is_empty()
                    && matches!(
                        first.term,
                        Term::Dot
                            | Term::Nil
                            | Term::Bool(_)
                            | Term::Int(_)
                            | Term::Float(_)
                            | Term::Str(_)
                    )
            });
            if !commands.is_empty() && not_executable {
                return self.fail(
                    command.pos,
                    format!(
                        "non executable command in pipeline stage {}",
                        commands.len() + 1
                    ),
                );
            }
            commands.push(command);
            if self.peek().tok == Tok::Pipe {
                self.next();
                continue;
            }
            break;
        }
        if !assign {
            self.vars.extend(vars.iter().cloned());
        }
        Ok(Pipeline {
            pos,
            vars,
            assign,
            commands,
        })
    }

    fn command(&mut self) -> Result<Command, ParseError> {
        let pos = self.peek().start;
        let mut operands = Vec::new();
        loop {
            match self.peek().tok {
                Tok::RightDelim | Tok::RightParen | Tok::Pipe | Tok::Eof => break,
                _ => operands.push(self.operand()?),
            }
        }
        if operands.is_empty() {
            return self.fail(self.peek().start, "missing value for command");
        }
        Ok(Command { pos, operands })
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let token = self.next();
        let pos = token.start;
        let mut chain = Vec::new();
        let term = match token.tok {
            Tok::Dot => Term::Dot,
            Tok::Nil => Term::Nil,
            Tok::Bool(value) => Term::Bool(value),
            Tok::Str(value) => Term::Str(value),
            Tok::Char(c) => Term::Int(i64::from(u32::from(c))),
            Tok::Number(text) => parse_number(&text).ok_or_else(|| ParseError {
                offset: pos,
                message: format!("bad number syntax: {text:?}"),
            })?,
            Tok::Field(name) => {
                chain.push(name);
                Term::Dot
            }
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return self.fail(pos, format!("undefined variable \"{name}\""));
                }
                Term::Variable(name)
            }
            Tok::Ident(name) => {
                if !funcs::is_function(&name, self.dialect) {
                    return self.fail(pos, format!("function \"{name}\" not defined"));
                }
                Term::Function(name)
            }
            Tok::LeftParen => {
                self.enter(pos)?;
                let inner = self.pipeline("parenthesized pipeline", false)?;
                self.nesting -= 1;
                let close = self.next();
                if close.tok != Tok::RightParen {
                    return self.fail(
                        close.start,
                        format!(
                            "unexpected {} in parenthesized pipeline",
                            describe(&close.tok)
                        ),
                    );
                }
                Term::Pipeline(Box::new(inner))
            }
            other => return self.fail(pos, format!("unexpected {} in operand", describe(&other))),
        };
        let mut end = self.tokens[self.index.saturating_sub(1)].end;
        // Fields written right after a term, without a gap, apply to it: `$x.A`, `(…).B`.
        while let Tok::Field(name) = &self.peek().tok {
            if self.peek().start != end {
                break;
            }
            if matches!(
                term,
                Term::Nil
                    | Term::Bool(_)
                    | Term::Int(_)
                    | Term::Float(_)
                    | Term::Str(_)
                    | Term::Function(_)
            ) {
                return self.fail(
                    self.peek().start,
                    format!("unexpected . after term {:?}", describe(&token_text(&term))),
                );
            }
            chain.push(name.clone());
            end = self.peek().end;
            self.next();
        }
        Ok(Operand { pos, term, chain })
    }
}

fn token_text(term: &Term) -> Tok {
    match term {
        Term::Nil => Tok::Nil,
        Term::Bool(value) => Tok::Bool(*value),
        Term::Str(value) => Tok::Str(value.clone()),
        Term::Function(name) => Tok::Ident(name.clone()),
        Term::Int(value) => Tok::Number(value.to_string()),
        Term::Float(value) => Tok::Number(value.to_string()),
        _ => Tok::Dot,
    }
}

/// Go number literals: decimal, `0x`, `0o`, `0b`, legacy octal, underscores, floats with
/// exponents. Integers become Int, anything with a fraction or exponent Float.
pub(crate) fn parse_number(text: &str) -> Option<Term> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let cleaned: String = unsigned.chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() {
        return None;
    }
    let lower = cleaned.to_ascii_lowercase();
    let integer = if let Some(hex) = lower.strip_prefix("0x") {
        if hex.contains(['.', 'p']) {
            return None;
        }
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(octal) = lower.strip_prefix("0o") {
        i64::from_str_radix(octal, 8).ok()
    } else if let Some(binary) = lower.strip_prefix("0b") {
        i64::from_str_radix(binary, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|b| b.is_ascii_digit()) {
        lower.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(value) = integer {
        return Some(Term::Int(if negative { -value } else { value }));
    }
    let is_float_syntax = lower
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
        && lower.bytes().any(|b| b.is_ascii_digit());
    if !is_float_syntax {
        return None;
    }
    let value: f64 = lower.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    Some(Term::Float(if negative { -value } else { value }))
}

//! Prometheus's template dialect, for alerting rules' labels and annotations: the same engine
//! as Alertmanager's templates, with Prometheus's data (`.Labels`, `.ExternalLabels`,
//! `.ExternalURL`, `.Value`, bound to `$labels`, `$externalLabels`, `$externalURL`, `$value` by
//! a preamble) and Prometheus's functions (`query`, `humanize`, `graphLink`, …).
//!
//! Expansion follows Prometheus's `template.Expander.Expand` in text mode with
//! `missingkey=zero`: the preamble is prepended to the text itself, as Prometheus does, so error
//! positions on the first line count it too, and errors are worded as Prometheus words them.

#![deny(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use jiff::Timestamp;

use super::exec::Exec;
use super::funcs::{Dialect, FuncContext, PrometheusEnv};
use super::value::{RuleDataView, StrPairs, Value};
use super::{Defined, parse_source};

pub use super::{Limits, TemplateError};

/// What Prometheus's alerting rules put before every label and annotation template (the
/// variables a user may refer to). Kept byte for byte, since it shifts first-line columns.
pub const PREAMBLE: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
                            {{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// What a rule's templates see: Prometheus's `.Labels`, `.ExternalLabels`, `.ExternalURL`,
/// `.Value`, bound as `$labels`, `$externalLabels`, `$externalURL`, `$value` by a preamble, as
/// Prometheus does.
#[derive(Debug, Clone, Copy)]
pub struct RuleTemplateData<'a> {
    /// Sorted by name.
    pub labels: &'a [(String, String)],
    /// Sorted by name.
    pub external_labels: &'a [(String, String)],
    pub external_url: &'a str,
    pub value: f64,
}

/// One sample of a `query` result: `.Labels` (a map) and `.Value` (float64).
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Runs `query "expr"` against the node's own PromQL engine at the evaluation time.
pub trait TemplateQuery {
    /// The instant vector `expr` evaluates to, or the error to report (as Prometheus reports a
    /// query error: `error calling query: <this text>`).
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String>;
}

/// A [`TemplateQuery`] for templates that must not query (tests, `check rules`): every query
/// fails with the given message.
#[derive(Debug, Clone)]
pub struct NoQuery(pub String);

impl TemplateQuery for NoQuery {
    fn query(&self, _expr: &str) -> Result<Vec<QuerySample>, String> {
        Err(self.0.clone())
    }
}

/// Expands `text` as Prometheus's `template.Expander.Expand` does (template named `name`,
/// e.g. "__alert_HighLatency"); `now_ms` is the evaluation time in Unix ms (for functions that
/// need it). Errors look like Prometheus's (`error parsing template …` / `error executing
/// template …`, wrapping Go's messages); Prometheus's rules then show them as
/// `<error expanding template: …>`.
pub fn expand(
    name: &str,
    text: &str,
    data: &RuleTemplateData<'_>,
    query: &dyn TemplateQuery,
    now_ms: i64,
    limits: &Limits,
) -> Result<String, TemplateError> {
    let (source, mut definitions) = parse_with_preamble(name, text, limits)?;
    if definitions.is_empty() {
        return Ok(String::new());
    }
    let top_level = definitions.remove(0);
    let overlay: HashMap<String, Arc<Defined>> = definitions
        .into_iter()
        .map(|defined| (defined.name.clone(), Arc::new(defined)))
        .collect();
    let shared = HashMap::new();
    let now = Timestamp::from_millisecond(now_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let env = PrometheusEnv {
        query,
        external_url: data.external_url,
    };
    let mut exec = Exec::new(
        &overlay,
        &shared,
        false,
        limits,
        FuncContext::prometheus(now, env),
    );
    match exec.run(&top_level, rule_data_value(data)) {
        Ok(()) => Ok(exec.out),
        Err(error) => Err(prometheus_exec_error(name, &source, error)),
    }
}

/// Parses only, for `check rules` / config loading: same errors as [`expand`]'s parse stage.
pub fn check(name: &str, text: &str) -> Result<(), TemplateError> {
    parse_with_preamble(name, text, &Limits::default()).map(|_| ())
}

/// Parses the preamble and `text` as one source, as Prometheus does. Returns that source (for
/// error positions) and its templates, the top level first.
fn parse_with_preamble(
    name: &str,
    text: &str,
    limits: &Limits,
) -> Result<(String, Vec<Defined>), TemplateError> {
    if text.len() > limits.max_source_bytes {
        return Err(TemplateError::TooLarge {
            file: name.to_string(),
            size: text.len(),
            limit: limits.max_source_bytes,
        });
    }
    let source = format!("{PREAMBLE}{text}");
    match parse_source(name, &source, Dialect::Prometheus, source.len()) {
        Ok(definitions) => Ok((source, definitions)),
        Err(TemplateError::Parse { line, message, .. }) => Err(TemplateError::PrometheusParse {
            name: name.to_string(),
            line,
            message,
        }),
        Err(other) => Err(other),
    }
}

fn sorted_pairs(pairs: &[(String, String)]) -> Rc<StrPairs> {
    let mut sorted = pairs.to_vec();
    // Callers pass sorted labels; sorting again is cheap and keeps lookups right if not.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.dedup_by(|later, earlier| later.0 == earlier.0);
    Rc::new(sorted)
}

fn rule_data_value(data: &RuleTemplateData<'_>) -> Value {
    Value::RuleData(Rc::new(RuleDataView {
        labels: sorted_pairs(data.labels),
        external_labels: sorted_pairs(data.external_labels),
        external_url: data.external_url.into(),
        value: data.value,
    }))
}

/// Rewords an evaluation error the way Go's `text/template` locates it: 0-based byte column,
/// and the text of the failing node.
fn prometheus_exec_error(name: &str, source: &str, error: TemplateError) -> TemplateError {
    let TemplateError::Exec {
        template,
        line,
        column,
        message,
        ..
    } = error
    else {
        return error;
    };
    let line_start: usize = source
        .split('\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    let line_text = source
        .get(line_start..)
        .unwrap_or("")
        .split('\n')
        .next()
        .unwrap_or("");
    let byte_column: usize = line_text
        .chars()
        .take(column.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    let offset = line_start + byte_column;
    let (context, shift) = if message.starts_with("template ") && message.ends_with(" not defined")
    {
        (template_call_context(source, offset), 0)
    } else if message.starts_with("wrong number of args for ") {
        // Go checks the count before evaluating the command, at the function's name.
        (scan_node(source.get(offset..).unwrap_or(""), true).0, 0)
    } else {
        node_context(source, offset)
    };
    TemplateError::PrometheusExec {
        name: name.to_string(),
        template,
        line,
        column: byte_column + shift,
        context,
        message,
    }
}

/// A context is for reading, not a copy of the template.
const MAX_CONTEXT_BYTES: usize = 200;

/// Scans `text` from its start to the end of what Go would show for the node there, stopping
/// before `}}`, and at depth 0 before `|`, an unopened `)`, or (when `operand_only`) a space
/// or the end of a quoted or parenthesized operand. Returns the text shown, whitespace runs
/// collapsed to one space as Go prints nodes, and the byte offset where the scan stopped.
fn scan_node(text: &str, operand_only: bool) -> (String, usize) {
    let mut shown = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut pending_space = false;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        if shown.len() >= MAX_CONTEXT_BYTES {
            break;
        }
        let after = index + c.len_utf8();
        if let Some(open) = quote {
            shown.push(c);
            end = after;
            if escaped {
                escaped = false;
            } else if c == '\\' && open != '`' {
                escaped = true;
            } else if c == open {
                quote = None;
                if depth == 0 && operand_only {
                    break;
                }
            }
            continue;
        }
        let at_top = depth == 0;
        match c {
            '}' if text[index..].starts_with("}}") => break,
            '|' | ')' if at_top => break,
            c if c.is_whitespace() => {
                if at_top && operand_only {
                    break;
                }
                pending_space = true;
                continue;
            }
            _ => {}
        }
        if pending_space && !shown.is_empty() {
            shown.push(' ');
        }
        pending_space = false;
        match c {
            '"' | '`' | '\'' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        shown.push(c);
        end = after;
        if c == ')' && depth == 0 && operand_only {
            break;
        }
    }
    // A right trim marker belongs to the delimiter.
    if shown.ends_with(" -") {
        shown.truncate(shown.len() - 2);
    }
    (shown, end)
}

/// What Go shows for the node at `offset` (`at <…>`), and how far into it Go places the
/// error. A function call shows its whole command (`humanize "abc"`); a field chain shows the
/// chain (`$labels.job.x`) but is located at its first chained field, as Go's parser does.
fn node_context(source: &str, offset: usize) -> (String, usize) {
    let Some(rest) = source.get(offset..) else {
        return (String::new(), 0);
    };
    let Some(first) = rest.chars().next() else {
        return (String::new(), 0);
    };
    if first == '_' || first.is_alphabetic() {
        return (scan_node(rest, false).0, 0);
    }
    let (operand, end) = scan_node(rest, true);
    if first == '(' && rest.get(end..).is_some_and(|after| after.starts_with('.')) {
        // Go reports a field error on `(pipeline).Field` at the last node it evaluated in
        // the pipeline: the last word of its last command.
        let inner = rest.get(1..end.saturating_sub(1).max(1)).unwrap_or("");
        let (word, word_start) = last_word(inner);
        return (word, 1 + word_start);
    }
    let chained_field = match first {
        '$' => operand.find('.'),
        '.' => operand[1..].find('.').map(|i| i + 1),
        _ => None,
    };
    (operand, chained_field.unwrap_or(0))
}

/// The last word of a pipeline's text (`"m"` in `query "m"`), and its offset.
fn last_word(pipeline: &str) -> (String, usize) {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut word_start = 0;
    let mut word_end = 0;
    let mut in_word = false;
    for (index, c) in pipeline.char_indices() {
        if let Some(open) = quote {
            if c == open {
                quote = None;
            }
            word_end = index + c.len_utf8();
            continue;
        }
        match c {
            '"' | '`' | '\'' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && (c.is_whitespace() || c == '|') {
            in_word = false;
            continue;
        }
        if !in_word {
            in_word = true;
            word_start = index;
        }
        word_end = index + c.len_utf8();
    }
    let word = pipeline.get(word_start..word_end).unwrap_or("");
    (word.chars().take(MAX_CONTEXT_BYTES).collect(), word_start)
}

/// Go's text of a `{{template "name" pipeline}}` node, from the name at `offset`.
fn template_call_context(source: &str, offset: usize) -> String {
    let rest = source.get(offset..).unwrap_or("");
    let (call, _) = scan_node(rest, false);
    format!("{{{{template {call}}}}}")
}

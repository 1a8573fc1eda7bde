//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`.

use super::params::{Form, MAX_TIME_MS, MIN_TIME_MS, limit_param, time_param};
use super::{ApiError, ApiResult, ApiSuccess, ErrorKind, blocking, json, tsdb};
use crate::node::Node;
use crate::promql::parse::{go_quote, parse_query};
use crate::promql::tsdb_source::TsdbSource;
use crate::promql::value::METRIC_NAME;
use crate::promql::{Labels, MatchKind, Matcher, StorageError};
use axum::extract::{Path, State};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use std::collections::BTreeSet;
use std::sync::Arc;

const TRUNCATED: &str = "results truncated due to limit";

fn storage_error(error: StorageError) -> ApiError {
    match error {
        StorageError::InvalidMatcher(message) => ApiError::bad_data(message),
        StorageError::Internal(message) => ApiError::new(ErrorKind::Internal, message),
    }
}

/// One `match[]` value: a series selector (`up{job="a"}`, `{__name__=~"x.*"}`) as matchers.
pub(crate) fn parse_selector(text: &str) -> Result<Vec<Matcher>, String> {
    let expr = parse_query(text).map_err(|e| e.to_string())?;
    let Expr::VectorSelector(selector) = expr else {
        return Err(format!(
            "1:1: parse error: unexpected expression, expected a series selector in {}",
            go_quote(text)
        ));
    };
    if selector.offset.is_some() || selector.at.is_some() {
        return Err("1:1: parse error: a series selector takes no offset or @ modifier".into());
    }
    if !selector.matchers.or_matchers.is_empty() {
        return Err("\"or\" in label matchers is not supported".into());
    }
    let mut out = Vec::new();
    let mut has_name = false;
    for m in &selector.matchers.matchers {
        has_name |= m.name == METRIC_NAME;
        let kind = match m.op {
            MatchOp::Equal => MatchKind::Equal,
            MatchOp::NotEqual => MatchKind::NotEqual,
            MatchOp::Re(_) => MatchKind::Regex,
            MatchOp::NotRe(_) => MatchKind::NotRegex,
        };
        out.push(Matcher::new(kind, &m.name, &m.value).map_err(|e| e.to_string())?);
    }
    if let (Some(name), false) = (&selector.name, has_name) {
        out.push(Matcher::new(MatchKind::Equal, METRIC_NAME, name).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Prometheus's `parseMatchersParam`: every set must have a matcher that does not match "".
fn matcher_sets(form: &Form) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for text in form.values("match[]") {
        let set = parse_selector(text).map_err(|e| ApiError::invalid_param("match[]", e))?;
        if set.iter().all(|m| m.matches("")) {
            return Err(ApiError::invalid_param(
                "match[]",
                "match[] must contain at least one non-empty matcher",
            ));
        }
        sets.push(set);
    }
    Ok(sets)
}

fn range(form: &Form) -> Result<(i64, i64), ApiError> {
    Ok((
        time_param(form, "start", MIN_TIME_MS)?,
        time_param(form, "end", MAX_TIME_MS)?,
    ))
}

fn answer_strings(mut items: Vec<String>, limit: usize) -> ApiSuccess {
    let mut warnings = Vec::new();
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        warnings.push(TRUNCATED.to_string());
    }
    let mut data = String::new();
    json::strings(&mut data, &items);
    ApiSuccess {
        data,
        warnings,
        infos: Vec::new(),
    }
}

/// `GET`/`POST /api/v1/series`.
pub async fn series(State(node): State<Arc<Node>>, form: Form) -> ApiResult {
    if form.values("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let limit = limit_param(&form)?;
    let (start, end) = range(&form)?;
    let sets = matcher_sets(&form)?;
    let tsdb = tsdb(&node)?;
    let found = blocking(move || {
        let source = TsdbSource::new(&tsdb);
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        for set in &sets {
            all.extend(source.series(set, start, end).map_err(storage_error)?);
        }
        Ok(all)
    })
    .await?;
    let mut warnings = Vec::new();
    let mut data = String::from("[");
    for (index, labels) in found.iter().enumerate() {
        if limit > 0 && index >= limit {
            warnings.push(TRUNCATED.to_string());
            break;
        }
        if index > 0 {
            data.push(',');
        }
        json::labels(&mut data, labels);
    }
    data.push(']');
    Ok(ApiSuccess {
        data,
        warnings,
        infos: Vec::new(),
    })
}

/// `GET`/`POST /api/v1/labels`.
pub async fn labels(State(node): State<Arc<Node>>, form: Form) -> ApiResult {
    let limit = limit_param(&form)?;
    let (start, end) = range(&form)?;
    let sets = matcher_sets(&form)?;
    let tsdb = tsdb(&node)?;
    let names = blocking(move || {
        let source = TsdbSource::new(&tsdb);
        if sets.is_empty() {
            return source
                .label_names_in(&[], start, end)
                .map_err(storage_error);
        }
        let mut names = BTreeSet::new();
        for set in &sets {
            names.extend(
                source
                    .label_names_in(set, start, end)
                    .map_err(storage_error)?,
            );
        }
        Ok(names.into_iter().collect())
    })
    .await?;
    Ok(answer_strings(names, limit))
}

/// Prometheus 3's `U__` escaping of names in URLs: `U__` then `_` for `__`... `_XX_` for a
/// code point in hex. A name that does not decode is used as written.
fn unescape_name(name: &str) -> String {
    let Some(escaped) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::new();
    let mut chars = escaped.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() && hex.len() < 8 => hex.push(h),
                _ => return name.to_string(),
            }
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(decoded) => out.push(decoded),
            None => return name.to_string(),
        }
    }
    out
}

/// `GET /api/v1/label/{name}/values`.
pub async fn label_values(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    form: Form,
) -> ApiResult {
    let name = unescape_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!(
            "invalid label name: {}",
            go_quote(&name)
        )));
    }
    let limit = limit_param(&form)?;
    let (start, end) = range(&form)?;
    let sets = matcher_sets(&form)?;
    let tsdb = tsdb(&node)?;
    let values = blocking(move || {
        let source = TsdbSource::new(&tsdb);
        if sets.is_empty() {
            return source
                .label_values_in(&name, &[], start, end)
                .map_err(storage_error);
        }
        let mut values = BTreeSet::new();
        for set in &sets {
            values.extend(
                source
                    .label_values_in(&name, set, start, end)
                    .map_err(storage_error)?,
            );
        }
        Ok(values.into_iter().collect())
    })
    .await?;
    Ok(answer_strings(values, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let set = parse_selector("up{job=~\"a|b\"}").unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set[1].name, "__name__");
        assert!(parse_selector("sum(up)").is_err());
        assert!(parse_selector("up offset 5m").is_err());
        assert!(parse_selector("{").is_err());
    }

    #[test]
    fn empty_matching_sets_are_refused() {
        let form = Form::from_pairs([("match[]", "{job=~\".*\"}")]);
        let error = matcher_sets(&form).unwrap_err();
        // The parser refuses it first, with Prometheus's parser's words.
        assert_eq!(
            error.message,
            "invalid parameter \"match[]\": vector selector must contain at least one non-empty matcher"
        );
    }

    #[test]
    fn names_unescape() {
        assert_eq!(unescape_name("job"), "job");
        assert_eq!(unescape_name("U__my_2e_name"), "my.name");
        assert_eq!(unescape_name("U__a__b"), "a_b");
        assert_eq!(unescape_name("U__bad_zz_"), "U__bad_zz_");
    }
}

//! `GET /api/v1/rules` and `GET /api/v1/alerts`, in Prometheus's JSON shapes: groups sorted by
//! file then name, rules in file order, alerts sorted by labels.

use super::json;
use super::{ApiError, ApiResult, ApiSuccess, Form};
use crate::node::Node;
use crate::promql::parse::parse_query;
use crate::promql::storage::{MatchKind, Matcher};
use crate::promql::value::METRIC_NAME;
use crate::rules::alerting::{Alert, AlertingRule, Annotations};
use crate::rules::group::{Group, Rule, RuleStatus};
use axum::extract::State;
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use std::collections::HashSet;
use std::sync::Arc;

/// Go's `time.Time` JSON (RFC 3339 with nanoseconds, trailing zeros cut); `None` is Go's zero
/// time.
fn time(out: &mut String, ns: Option<i64>) {
    let text = ns
        .and_then(|ns| jiff::Timestamp::from_nanosecond(i128::from(ns)).ok())
        .map(|at| at.to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    json::string(out, &text);
}

/// A float as Go's `encoding/json` writes it.
fn float(out: &mut String, v: f64) {
    if !v.is_finite() {
        // Go refuses to encode these; durations never are.
        out.push('0');
        return;
    }
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let text = go_exponent(v);
        // Go's JSON writes e-07 as e-7.
        out.push_str(&text.replace("e-0", "e-").replace("e+0", "e+"));
    } else {
        out.push_str(&format!("{v}"));
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: shortest mantissa, two-digit signed exponent.
pub fn go_exponent(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Annotations as a JSON object; unlike labels, an empty value is written (`"summary":""`).
fn annotations_json(out: &mut String, annotations: &Annotations) {
    out.push('{');
    for (index, (name, value)) in annotations.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        json::string(out, name);
        out.push(':');
        json::string(out, value);
    }
    out.push('}');
}

fn alert_json(out: &mut String, alert: &Alert) {
    out.push_str("{\"labels\":");
    json::labels(out, &alert.labels);
    out.push_str(",\"annotations\":");
    annotations_json(out, &alert.annotations);
    out.push_str(",\"state\":");
    json::string(out, alert.state.as_str());
    out.push_str(",\"activeAt\":");
    time(out, Some(alert.active_at_ms.saturating_mul(1_000_000)));
    if let Some(since) = alert.keep_firing_since_ms {
        out.push_str(",\"keepFiringSince\":");
        time(out, Some(since.saturating_mul(1_000_000)));
    }
    out.push_str(",\"value\":");
    json::string(out, &go_exponent(alert.value));
    out.push('}');
}

fn alerts_json<'a>(out: &mut String, alerts: impl Iterator<Item = &'a Alert>) {
    out.push('[');
    for (index, alert) in alerts.enumerate() {
        if index > 0 {
            out.push(',');
        }
        alert_json(out, alert);
    }
    out.push(']');
}

fn status_json(out: &mut String, status: &RuleStatus) {
    out.push_str(",\"health\":");
    json::string(out, status.health.as_str());
    if let Some(error) = &status.last_error {
        out.push_str(",\"lastError\":");
        json::string(out, error);
    }
    out.push_str(",\"evaluationTime\":");
    float(out, status.evaluation_seconds);
    out.push_str(",\"lastEvaluation\":");
    time(out, status.last_evaluation_ns);
}

fn alerting_rule_json(out: &mut String, rule: &AlertingRule, exclude_alerts: bool) {
    out.push_str("{\"state\":");
    json::string(out, rule.state().as_str());
    out.push_str(",\"name\":");
    json::string(out, rule.name());
    out.push_str(",\"query\":");
    json::string(out, rule.query());
    out.push_str(",\"duration\":");
    float(out, rule.hold_ms() as f64 / 1000.0);
    out.push_str(",\"keepFiringFor\":");
    float(out, rule.keep_firing_for_ms() as f64 / 1000.0);
    out.push_str(",\"labels\":");
    json::labels(out, rule.labels());
    out.push_str(",\"annotations\":");
    annotations_json(out, rule.annotations());
    out.push_str(",\"alerts\":");
    if exclude_alerts {
        out.push_str("null");
    } else {
        alerts_json(out, rule.active_alerts());
    }
    status_json(out, rule.status());
    out.push_str(",\"type\":\"alerting\"}");
}

fn recording_rule_json(out: &mut String, rule: &crate::rules::recording::RecordingRule) {
    out.push_str("{\"name\":");
    json::string(out, rule.name());
    out.push_str(",\"query\":");
    json::string(out, rule.query());
    out.push_str(",\"labels\":");
    json::labels(out, rule.labels());
    status_json(out, rule.status());
    out.push_str(",\"type\":\"recording\"}");
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            crate::promql::parse::go_quote(text)
        )),
    }
}

/// One `match[]` selector as matchers (Prometheus's `parseMatchersParam`).
fn selector(text: &str) -> Result<Vec<Matcher>, String> {
    let Expr::VectorSelector(selector) = parse_query(text).map_err(|e| e.to_string())? else {
        return Err("1:1: parse error: unexpected expression, expected a series selector".into());
    };
    let mut out = Vec::new();
    for m in &selector.matchers.matchers {
        let kind = match m.op {
            MatchOp::Equal => MatchKind::Equal,
            MatchOp::NotEqual => MatchKind::NotEqual,
            MatchOp::Re(_) => MatchKind::Regex,
            MatchOp::NotRe(_) => MatchKind::NotRegex,
        };
        out.push(Matcher::new(kind, &m.name, &m.value).map_err(|e| e.to_string())?);
    }
    if let Some(name) = &selector.name {
        out.push(Matcher::new(MatchKind::Equal, METRIC_NAME, name).map_err(|e| e.to_string())?);
    }
    if out.iter().all(|m| m.matches("")) {
        return Err("match[] must contain at least one non-empty matcher".into());
    }
    Ok(out)
}

struct Filters<'a> {
    rule_names: HashSet<&'a str>,
    groups: HashSet<&'a str>,
    files: HashSet<&'a str>,
    matcher_sets: Vec<Vec<Matcher>>,
    alerts: bool,
    recording: bool,
    exclude_alerts: bool,
}

fn filters(form: &Form) -> Result<Filters<'_>, ApiError> {
    let kind = form.value("type").to_lowercase();
    if !matches!(kind.as_str(), "" | "alert" | "record") {
        return Err(ApiError::invalid_param(
            "type",
            format!(
                "not supported value {}",
                crate::promql::parse::go_quote(&kind)
            ),
        ));
    }
    let exclude_alerts = match form.value("exclude_alerts") {
        "" => false,
        text => parse_bool(text).map_err(|e| ApiError::invalid_param("exclude_alerts", e))?,
    };
    let matcher_sets = form
        .values("match[]")
        .into_iter()
        .map(|text| selector(text).map_err(|e| ApiError::invalid_param("match[]", e)))
        .collect::<Result<_, _>>()?;
    Ok(Filters {
        rule_names: form.values("rule_name[]").into_iter().collect(),
        groups: form.values("rule_group[]").into_iter().collect(),
        files: form.values("file[]").into_iter().collect(),
        matcher_sets,
        alerts: kind != "record",
        recording: kind != "alert",
        exclude_alerts,
    })
}

fn group_json(out: &mut String, group: &Group, filters: &Filters<'_>) -> bool {
    let mut rules = String::new();
    let mut count = 0;
    for rule in group.rules() {
        if !filters.matcher_sets.is_empty()
            && !filters
                .matcher_sets
                .iter()
                .any(|set| set.iter().all(|m| m.matches_labels(rule.labels())))
        {
            continue;
        }
        if !filters.rule_names.is_empty() && !filters.rule_names.contains(rule.name()) {
            continue;
        }
        let before = rules.len();
        if count > 0 {
            rules.push(',');
        }
        match rule {
            Rule::Alerting(rule) if filters.alerts => {
                alerting_rule_json(&mut rules, rule, filters.exclude_alerts)
            }
            Rule::Recording(rule) if filters.recording => recording_rule_json(&mut rules, rule),
            _ => {
                rules.truncate(before);
                continue;
            }
        }
        count += 1;
    }
    if count == 0 {
        return false;
    }
    out.push_str("{\"name\":");
    json::string(out, group.name());
    out.push_str(",\"file\":");
    json::string(out, group.file());
    out.push_str(",\"rules\":[");
    out.push_str(&rules);
    out.push_str("],\"interval\":");
    float(out, group.interval_ms() as f64 / 1000.0);
    out.push_str(",\"limit\":");
    out.push_str(&group.limit().to_string());
    out.push_str(",\"evaluationTime\":");
    float(out, group.evaluation_seconds());
    out.push_str(",\"lastEvaluation\":");
    time(out, group.last_evaluation_ns());
    out.push('}');
    true
}

/// Prometheus 3's `group_limit` and `group_next_token`: at most `limit` groups a page, the
/// page starting at the group whose token was given.
struct Pagination<'a> {
    limit: usize,
    next_token: Option<&'a str>,
}

/// Go's `strconv.ParseInt(text, 10, 32)`: an optional sign and decimal digits.
fn parse_int32(text: &str) -> Result<i64, String> {
    let quoted = crate::promql::parse::go_quote(text);
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {quoted}: invalid syntax"
        ));
    }
    text.parse::<i32>()
        .map(i64::from)
        .map_err(|_| format!("strconv.ParseInt: parsing {quoted}: value out of range"))
}

/// Prometheus's `parseListRulesPaginationRequest`: a token needs a limit, a limit must be a
/// positive 32-bit number; without a limit nothing is paginated (and a token is refused).
fn pagination(form: &Form) -> Result<Option<Pagination<'_>>, ApiError> {
    let limit = form.value("group_limit");
    let next_token = form.value("group_next_token");
    if !next_token.is_empty() && limit.is_empty() {
        return Err(ApiError::invalid_param(
            "group_next_token",
            "group_limit needs to be present in order to paginate over the groups",
        ));
    }
    if limit.is_empty() {
        return Ok(None);
    }
    let limit = parse_int32(limit).map_err(|error| {
        ApiError::invalid_param(
            "group_limit",
            format!("group_limit needs to be a valid number: {error}"),
        )
    })?;
    if limit <= 0 {
        return Err(ApiError::invalid_param(
            "group_limit",
            "group_limit needs to be greater than 0",
        ));
    }
    Ok(Some(Pagination {
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        next_token: (!next_token.is_empty()).then_some(next_token),
    }))
}

/// A group's page token, as Prometheus makes it: the hex SHA-1 of `<file>;<group name>`.
pub fn group_token(file: &str, name: &str) -> String {
    let digest = sha1(format!("{file};{name}").as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// SHA-1, as Prometheus hashes page tokens (nothing relies on it resisting collisions).
fn sha1(message: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    Sha1::digest(message).into()
}

/// `GET /api/v1/rules`.
pub async fn rules(State(node): State<Arc<Node>>, form: Form) -> ApiResult {
    let filters = filters(&form)?;
    let pagination = pagination(&form)?;
    let mut data = String::from("{\"groups\":[");
    let mut shown = 0usize;
    let mut next_token = None;
    // Without a token the first page starts at the first group.
    let mut found_token = pagination
        .as_ref()
        .is_none_or(|page| page.next_token.is_none());
    if let Some(runtime) = node.rules() {
        let groups = runtime.groups();
        for group in groups.iter() {
            // As in Prometheus, the token is looked for before any filter applies.
            if !found_token {
                let wanted = pagination.as_ref().and_then(|page| page.next_token);
                if wanted != Some(group_token(group.file(), group.name()).as_str()) {
                    continue;
                }
                found_token = true;
            }
            if !filters.groups.is_empty() && !filters.groups.contains(group.name()) {
                continue;
            }
            if !filters.files.is_empty() && !filters.files.contains(group.file()) {
                continue;
            }
            let mark = data.len();
            if shown > 0 {
                data.push(',');
            }
            if !group_json(&mut data, group, &filters) {
                data.truncate(mark);
                continue;
            }
            if pagination.as_ref().is_some_and(|page| shown == page.limit) {
                // A group with rules beyond a full page: the next page starts there.
                data.truncate(mark);
                next_token = Some(group_token(group.file(), group.name()));
                break;
            }
            shown += 1;
        }
    }
    if !found_token {
        let token = pagination
            .as_ref()
            .and_then(|page| page.next_token)
            .unwrap_or_default();
        return Err(ApiError::invalid_param(
            "group_next_token",
            format!("invalid group_next_token '{token}'. were rule groups changed?"),
        ));
    }
    data.push(']');
    if let Some(token) = next_token {
        data.push_str(",\"groupNextToken\":");
        json::string(&mut data, &token);
    }
    data.push('}');
    Ok(ApiSuccess::new(data))
}

/// `GET /api/v1/alerts`: every pending or firing alert; rules ordered firing first, then by
/// name, within each group, as Prometheus orders them.
pub async fn alerts(State(node): State<Arc<Node>>) -> ApiResult {
    let mut data = String::from("{\"alerts\":");
    match node.rules() {
        Some(runtime) => {
            let groups = runtime.groups();
            let mut rules: Vec<&AlertingRule> = Vec::new();
            for group in groups.iter() {
                let mut in_group: Vec<&AlertingRule> = group.alerting_rules().collect();
                in_group.sort_by(|a, b| {
                    b.state()
                        .cmp(&a.state())
                        .then_with(|| a.name().cmp(b.name()))
                });
                rules.extend(in_group);
            }
            alerts_json(
                &mut data,
                rules.iter().flat_map(|rule| rule.active_alerts()),
            );
        }
        None => data.push_str("[]"),
    }
    data.push('}');
    Ok(ApiSuccess::new(data))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn floats_and_times_as_go_writes_them() {
        assert_eq!(go_exponent(1.0), "1e+00");
        assert_eq!(go_exponent(0.5), "5e-01");
        assert_eq!(go_exponent(123.456), "1.23456e+02");
        assert_eq!(go_exponent(1e300), "1e+300");
        assert_eq!(go_exponent(f64::NAN), "NaN");
        let mut out = String::new();
        float(&mut out, 60.0);
        out.push(' ');
        float(&mut out, 0.000123);
        out.push(' ');
        float(&mut out, 1.2e-7);
        assert_eq!(out, "60 0.000123 1.2e-7");
        let mut out = String::new();
        time(&mut out, Some(1_700_000_000_120_000_000));
        time(&mut out, None);
        assert_eq!(out, "\"2023-11-14T22:13:20.12Z\"\"0001-01-01T00:00:00Z\"");
    }

    #[test]
    fn sha1_and_group_tokens() {
        let hex =
            |bytes: [u8; 20]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // Two blocks, and a length that needs its own padding block.
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(group_token("rules.yml", "g"), hex(sha1(b"rules.yml;g")));
    }

    #[test]
    fn group_limit_parses_as_prometheus() {
        let form = |pairs: &[(&str, &str)]| Form::from_pairs(pairs.iter().copied());
        let message = |pairs: &[(&str, &str)]| match pagination(&form(pairs)) {
            Err(error) => error.message,
            Ok(_) => "ok".to_string(),
        };
        assert!(pagination(&form(&[])).unwrap().is_none());
        let paged = form(&[("group_limit", "+2"), ("group_next_token", "ab")]);
        let page = pagination(&paged).unwrap().unwrap();
        assert_eq!((page.limit, page.next_token), (2, Some("ab")));
        assert_eq!(
            message(&[("group_next_token", "ab")]),
            "invalid parameter \"group_next_token\": group_limit needs to be present in order to paginate over the groups"
        );
        assert_eq!(
            message(&[("group_limit", "0")]),
            "invalid parameter \"group_limit\": group_limit needs to be greater than 0"
        );
        assert_eq!(
            message(&[("group_limit", "x")]),
            "invalid parameter \"group_limit\": group_limit needs to be a valid number: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            message(&[("group_limit", "2147483648")]),
            "invalid parameter \"group_limit\": group_limit needs to be a valid number: strconv.ParseInt: parsing \"2147483648\": value out of range"
        );
    }

    #[test]
    fn exclude_alerts_parses_as_go_parse_bool() {
        assert_eq!(parse_bool("True"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(
            parse_bool("yes"),
            Err("strconv.ParseBool: parsing \"yes\": invalid syntax".to_string())
        );
    }
}

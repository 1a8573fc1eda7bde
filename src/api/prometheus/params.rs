//! Request parameters, parsed as Prometheus's API parses them.

use super::ApiError;
use crate::promql::parse::go_quote;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};

/// Prometheus's `MinTime` (`time.Unix(math.MinInt64/1000+62135596801, 0)`) in milliseconds.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;
/// Prometheus's `MaxTime` (`time.Unix(math.MaxInt64/1000-62135596801, 999999999)`) in ms.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// The parameters of a request as Go's `r.Form` holds them: the values of an urlencoded
/// `POST`/`PUT`/`PATCH` body first, then those of the URL query.
#[derive(Debug, Default, Clone)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Form {
        Form {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn extend(&mut self, encoded: &[u8]) {
        self.pairs.extend(
            url::form_urlencoded::parse(encoded).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }

    /// The first value of `name`, or `""` (Go's `FormValue`).
    pub fn value(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = request.uri().query().map(str::to_owned);
        let has_body = matches!(
            *request.method(),
            Method::POST | Method::PUT | Method::PATCH
        );
        let urlencoded = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .split(';')
                    .next()
                    .is_some_and(|mime| mime.trim() == "application/x-www-form-urlencoded")
            });
        let mut form = Form::default();
        if has_body && urlencoded {
            // Bounded by the router's body limit (413 beyond it).
            let body = Bytes::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            form.extend(&body);
        }
        if let Some(query) = query {
            form.extend(query.as_bytes());
        }
        Ok(form)
    }
}

/// Prometheus's `parseTime`: Unix seconds (a float, rounded to milliseconds) or RFC 3339, in
/// milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {} to a valid timestamp", go_quote(text));
    if let Some(seconds) = parse_go_float(text) {
        if !seconds.is_finite() {
            return Err(cannot());
        }
        let whole = seconds.trunc();
        let fraction = ((seconds - whole) * 1000.0).round();
        let ms = whole * 1000.0 + fraction;
        if ms < MIN_TIME_MS as f64 || ms > MAX_TIME_MS as f64 {
            return Err(cannot());
        }
        return Ok(ms as i64);
    }
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>()
        && (text.contains('T') || text.contains('t'))
    {
        return Ok(timestamp.as_millisecond());
    }
    match text {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(cannot()),
    }
}

/// A time parameter, or `default` when absent or empty (Prometheus's `parseTimeParam`).
pub fn time_param(form: &Form, name: &str, default: i64) -> Result<i64, ApiError> {
    match form.value(name) {
        "" => Ok(default),
        text => parse_time(text).map_err(|reason| ApiError::invalid_param(name, reason)),
    }
}

/// Go's `strconv.ParseFloat` for the forms a client sends: decimal with optional exponent,
/// `Inf`/`NaN` in any case. Rust's parser accepts the same decimal syntax.
fn parse_go_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.is_empty() {
        return None;
    }
    let lower = unsigned.to_ascii_lowercase();
    if !matches!(lower.as_str(), "inf" | "infinity" | "nan")
        && !unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse::<f64>().ok()
}

/// Prometheus's `parseDuration`: float seconds or a Prometheus duration (`1h30m`), in
/// nanoseconds.
pub fn parse_duration(text: &str) -> Result<i128, String> {
    if let Some(seconds) = parse_go_float(text) {
        let nanos = seconds * 1e9;
        if nanos.is_nan() || nanos > i64::MAX as f64 || nanos < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                go_quote(text)
            ));
        }
        return Ok(nanos as i128);
    }
    match parse_prometheus_duration(text) {
        Some(ms) => Ok(ms * 1_000_000),
        None => Err(format!(
            "cannot parse {} to a valid duration",
            go_quote(text)
        )),
    }
}

/// `model.ParseDuration`: `[0-9]+` with units `y w d h m s ms`, each at most once, largest
/// first; in milliseconds.
fn parse_prometheus_duration(text: &str) -> Option<i128> {
    if text == "0" {
        return Some(0);
    }
    const UNITS: [(&str, i128); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = text;
    let mut total: i128 = 0;
    let mut next_unit = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 20 {
            return None;
        }
        let number: i128 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = if rest.starts_with("ms") {
            2
        } else {
            rest.chars().next().map_or(0, char::len_utf8)
        };
        let unit = &rest[..unit_len];
        let position = UNITS.iter().position(|(name, _)| *name == unit)?;
        if position < next_unit {
            return None;
        }
        next_unit = position + 1;
        total = total.checked_add(number.checked_mul(UNITS[position].1)?)?;
        rest = &rest[unit_len..];
    }
    // Durations are int64 nanoseconds in Go.
    (total <= i128::from(i64::MAX) / 1_000_000).then_some(total)
}

/// Prometheus's `parseLimitParam`: empty is 0 (no limit), negative is refused.
pub fn limit_param(form: &Form) -> Result<usize, ApiError> {
    let text = form.value("limit");
    if text.is_empty() {
        return Ok(0);
    }
    let limit: i64 = text.parse().map_err(|_| {
        ApiError::invalid_param(
            "limit",
            format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(text)),
        )
    })?;
    if limit < 0 {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be non-negative",
        ));
    }
    Ok(usize::try_from(limit).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.1234"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("1e3"), Ok(1_000_000));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51.781+02:00"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(parse_time(MIN_TIME_FORMATTED), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(MAX_TIME_MS));
        assert_eq!(
            parse_time("yesterday"),
            Err("cannot parse \"yesterday\" to a valid timestamp".to_string())
        );
        assert!(parse_time("NaN").is_err());
        assert!(parse_time("1e300").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(15_000_000_000));
        assert_eq!(parse_duration("1m"), Ok(60_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1m500ms"), Ok(60_500_000_000));
        assert_eq!(parse_duration("0.5"), Ok(500_000_000));
        assert_eq!(parse_duration("15"), Ok(15_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("-1"), Ok(-1_000_000_000));
        assert_eq!(
            parse_duration("1x"),
            Err("cannot parse \"1x\" to a valid duration".to_string())
        );
        assert!(parse_duration("30s1m").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e30").unwrap_err().contains("overflows"));
        assert!(parse_duration("999999999999y").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(limit_param(&Form::default()), Ok(0));
        assert_eq!(limit_param(&Form::from_pairs([("limit", "3")])), Ok(3));
        assert_eq!(
            limit_param(&Form::from_pairs([("limit", "-1")]))
                .unwrap_err()
                .message,
            "invalid parameter \"limit\": limit must be non-negative"
        );
        assert!(limit_param(&Form::from_pairs([("limit", "x")])).is_err());
    }

    #[test]
    fn body_values_come_first() {
        let mut form = Form::default();
        form.extend(b"query=up&match%5B%5D=a");
        form.extend(b"query=down&match[]=b");
        assert_eq!(form.value("query"), "up");
        assert_eq!(form.values("match[]"), vec!["a", "b"]);
        assert_eq!(form.value("missing"), "");
    }
}

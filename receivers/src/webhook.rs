//! The webhook integration (`webhook_configs`): POSTs Alertmanager's version "4" JSON message.

use crate::data::{AlertData, KeyValues, NotificationData};
use crate::http_client::{HttpClient, HttpSettings, SettingsError, error_chain};
use crate::notifier::{Notifier, NotifyError, NotifyFuture, alerts_to_send, reason};
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// How much of an error response's body goes into the error message.
const ERROR_BODY_LIMIT: usize = 4 * 1024;

/// Go's zero `time.Time` as Alertmanager marshals it: the `endsAt` of a firing alert.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `webhook_configs` entry, with `url_file` already read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: String,
    pub http: HttpSettings,
    /// Alerts sent at most per message; 0 sends all.
    pub max_alerts: usize,
    pub send_resolved: bool,
    /// Bound on one request; `None` leaves only the notification's deadline (and
    /// `http.timeout`, if set).
    pub timeout: Option<Duration>,
}

/// Alertmanager's webhook message, version "4".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    pub version: &'static str,
    pub group_key: String,
    pub truncated_alerts: u64,
    pub status: &'static str,
    pub receiver: String,
    pub group_labels: KeyValues,
    pub common_labels: KeyValues,
    pub common_annotations: KeyValues,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: &'static str,
    pub labels: KeyValues,
    pub annotations: KeyValues,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

impl WebhookMessage {
    /// The message for `data`, keeping the first `max_alerts` alerts (all when 0).
    pub fn new(data: &NotificationData, max_alerts: usize) -> WebhookMessage {
        let kept = if max_alerts == 0 {
            data.alerts.len()
        } else {
            max_alerts.min(data.alerts.len())
        };
        WebhookMessage {
            version: "4",
            group_key: data.group_key.clone(),
            truncated_alerts: (data.alerts.len() - kept) as u64,
            status: data.status.as_str(),
            receiver: data.receiver.clone(),
            group_labels: data.group_labels.clone(),
            common_labels: data.common_labels.clone(),
            common_annotations: data.common_annotations.clone(),
            external_url: data.external_url.clone(),
            alerts: data.alerts[..kept].iter().map(WebhookAlert::new).collect(),
        }
    }
}

impl WebhookAlert {
    fn new(alert: &AlertData) -> WebhookAlert {
        WebhookAlert {
            status: alert.status.as_str(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: rfc3339(alert.starts_at),
            ends_at: alert
                .ends_at
                .map_or_else(|| GO_ZERO_TIME.to_string(), rfc3339),
            generator_url: alert.generator_url.clone(),
            fingerprint: alert.fingerprint.clone(),
        }
    }
}

/// Go's `time.RFC3339Nano` in UTC: fractional seconds only when present, trailing zeros trimmed
/// (jiff's default formatting does the same).
fn rfc3339(timestamp: Timestamp) -> String {
    timestamp.to_string()
}

/// A webhook receiver.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: reqwest::Url,
    client: HttpClient,
    max_alerts: usize,
    send_resolved: bool,
    timeout: Option<Duration>,
}

impl Webhook {
    pub fn new(settings: &WebhookSettings) -> Result<Webhook, SettingsError> {
        let url = reqwest::Url::parse(&settings.url).map_err(|error| SettingsError::Url {
            url: settings.url.clone(),
            message: error.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SettingsError::Url {
                url: settings.url.clone(),
                message: "the scheme must be http or https".into(),
            });
        }
        Ok(Webhook {
            url,
            client: HttpClient::new(&settings.http)?,
            max_alerts: settings.max_alerts,
            send_resolved: settings.send_resolved,
            timeout: settings.timeout,
        })
    }

    async fn post(&self, data: &NotificationData) -> Result<(), NotifyError> {
        let Some(data) = alerts_to_send(data, self.send_resolved) else {
            return Ok(());
        };
        let body =
            serde_json::to_vec(&WebhookMessage::new(&data, self.max_alerts)).map_err(|error| {
                NotifyError::permanent(reason::OTHER, format!("encoding the message: {error}"))
            })?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        let response = request
            .send()
            .await
            .map_err(|error| classify_transport_error(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = parse_retry_after(response.headers(), SystemTime::now());
        let body = read_limited(response, ERROR_BODY_LIMIT).await;
        Err(classify_status(status, &body).with_retry_after(retry_after))
    }
}

impl Notifier for Webhook {
    fn integration(&self) -> &'static str {
        "webhook"
    }

    fn notify<'a>(&'a self, data: &'a NotificationData) -> NotifyFuture<'a> {
        Box::pin(self.post(data))
    }
}

/// 429 and 5xx may pass; other 4xx will not; anything else non-2xx is not worth repeating.
pub fn classify_status(status: StatusCode, body: &str) -> NotifyError {
    let message = if body.is_empty() {
        format!("unexpected status {status}")
    } else {
        format!("unexpected status {status}: {body}")
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        NotifyError::retryable(reason::HTTP_429, message)
    } else if status.is_server_error() {
        NotifyError::retryable(reason::HTTP_5XX, message)
    } else if status.is_client_error() {
        NotifyError::permanent(reason::HTTP_4XX, message)
    } else {
        NotifyError::permanent(reason::HTTP_OTHER, message)
    }
}

/// Everything short of a response may pass on a later try.
pub(crate) fn classify_transport_error(error: &reqwest::Error) -> NotifyError {
    let message = error_chain(error);
    let label = if error.is_timeout() {
        reason::TIMEOUT
    } else if is_tls_error(error) {
        reason::TLS
    } else if error.is_connect() || error.is_request() || error.is_body() {
        reason::CONNECTION
    } else if error.is_redirect() {
        return NotifyError::permanent(reason::HTTP_OTHER, message);
    } else {
        reason::OTHER
    };
    NotifyError::retryable(label, message)
}

fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if cause.is::<rustls::Error>() {
            return true;
        }
        // io::Error::source skips the error it wraps, and connectors nest io::Errors: look
        // inside each one.
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            current = Some(inner);
            continue;
        }
        current = cause.source();
    }
    false
}

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// At most `limit` bytes of the body, lossily as text, for an error message.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::UNIX_EPOCH;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            parse_retry_after(&headers, now),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&later).unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(
            parse_retry_after(&headers, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&earlier).unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(parse_retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers, now), None);
    }

    #[test]
    fn status_classes() {
        let class = |code: u16| {
            let error = classify_status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), "");
            (error.retryable, error.reason)
        };
        assert_eq!(class(500), (true, reason::HTTP_5XX));
        assert_eq!(class(503), (true, reason::HTTP_5XX));
        assert_eq!(class(429), (true, reason::HTTP_429));
        assert_eq!(class(400), (false, reason::HTTP_4XX));
        assert_eq!(class(404), (false, reason::HTTP_4XX));
        assert_eq!(class(302), (false, reason::HTTP_OTHER));
    }

    #[test]
    fn timestamps_format_like_go() {
        let whole: Timestamp = "2024-05-01T10:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(rfc3339(whole), "2024-05-01T10:00:00Z");
        let fractional: Timestamp = "2024-05-01T10:00:00.250Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(rfc3339(fractional), "2024-05-01T10:00:00.25Z");
    }
}

//! Handlers of Alertmanager's API v2: alerts, alert groups, silences and receivers.

use super::wire::{
    WireAlertGroup, WireAlertState, WireAlertStatus, WireGettableAlert, WireGettableSilence,
    WireMatcher, WirePostableAlert, WirePostableSilence, WireReceiver, WireSilenceCreated,
    WireSilenceState, WireSilenceStatus, format_time, parse_time,
};
use crate::alerting::pipeline::Pipeline;
use crate::alerting::silences::{
    self, Silence, SilenceError, SilenceQuery, SilenceSpec, SilenceState,
};
use crate::alerting::{Alert, LabelSet};
use crate::config::AnchoredRegex;
use crate::config::alertmanager::Matcher;
use crate::node::Node;
use crate::node::alerting::{AlertingRuntime, SilenceWriteError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use std::sync::Arc;

/// An error answer as Alertmanager gives it: a status and a JSON string.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.message)).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

type Answer = Result<Response, ApiError>;

fn runtime(node: &Node) -> Result<&Arc<AlertingRuntime>, ApiError> {
    node.alerting().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Tocsin is starting: storage is not open yet",
        )
    })
}

/// The query parameters alert and silence listings take.
struct ListParams {
    active: bool,
    silenced: bool,
    inhibited: bool,
    unprocessed: bool,
    filter: Vec<Matcher>,
    receiver: Option<AnchoredRegex>,
}

fn parse_list_params(query: Option<&str>) -> Result<ListParams, ApiError> {
    let mut params = ListParams {
        active: true,
        silenced: true,
        inhibited: true,
        unprocessed: true,
        filter: Vec::new(),
        receiver: None,
    };
    let bad = |message: String| error(StatusCode::BAD_REQUEST, message);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let flag = || match value.as_ref() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(bad(format!(
                "{key}: expected true or false, found {other:?}"
            ))),
        };
        match key.as_ref() {
            "active" => params.active = flag()?,
            "silenced" => params.silenced = flag()?,
            "inhibited" => params.inhibited = flag()?,
            "unprocessed" => params.unprocessed = flag()?,
            "filter" => {
                let matcher = Matcher::parse_one(&value)
                    .map_err(|message| bad(format!("bad matcher format: {message}")))?;
                params.filter.push(matcher);
            }
            "receiver" => {
                let regex = AnchoredRegex::new(&value)
                    .map_err(|message| bad(format!("failed to parse receiver param: {message}")))?;
                params.receiver = Some(regex);
            }
            _ => {}
        }
    }
    Ok(params)
}

fn wire_alert(
    alert: &Alert,
    pipeline: &mut Pipeline,
    now: Timestamp,
) -> (WireGettableAlert, Vec<String>) {
    let status = pipeline.status(alert, now);
    let state = if status.is_suppressed() {
        WireAlertState::Suppressed
    } else {
        WireAlertState::Active
    };
    let wire = WireGettableAlert {
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        receivers: status
            .receivers
            .iter()
            .map(|name| WireReceiver { name: name.clone() })
            .collect(),
        fingerprint: alert.fingerprint().to_string(),
        starts_at: format_time(alert.starts_at),
        updated_at: format_time(alert.updated_at),
        ends_at: format_time(alert.ends_at),
        status: WireAlertStatus {
            state,
            silenced_by: status.silenced_by.clone(),
            inhibited_by: status
                .inhibited_by
                .iter()
                .map(ToString::to_string)
                .collect(),
        },
        generator_url: alert.generator_url.clone(),
    };
    (wire, status.receivers)
}

/// Alertmanager's listing filters, applied to one alert and its status.
fn keep(
    params: &ListParams,
    alert: &WireGettableAlert,
    receivers: &[String],
    labels: &LabelSet,
) -> bool {
    if let Some(regex) = &params.receiver
        && !receivers.iter().any(|receiver| regex.is_match(receiver))
    {
        return false;
    }
    if !params
        .filter
        .iter()
        .all(|matcher| matcher.matches(labels.value(matcher.name())))
    {
        return false;
    }
    let silenced = !alert.status.silenced_by.is_empty();
    let inhibited = !alert.status.inhibited_by.is_empty();
    match alert.status.state {
        WireAlertState::Active if !params.active => return false,
        WireAlertState::Unprocessed if !params.unprocessed => return false,
        _ => {}
    }
    (params.silenced || !silenced) && (params.inhibited || !inhibited)
}

pub async fn get_alerts(State(node): State<Arc<Node>>, RawQuery(query): RawQuery) -> Answer {
    let params = parse_list_params(query.as_deref())?;
    let runtime = runtime(&node)?;
    let now = Timestamp::now();
    let alerts = runtime.read(|pipeline| {
        let current: Vec<Alert> = pipeline
            .store()
            .iter()
            .filter(|alert| !alert.is_resolved_at(now))
            .cloned()
            .collect();
        let mut listed = Vec::new();
        for alert in &current {
            let (wire, receivers) = wire_alert(alert, pipeline, now);
            if keep(&params, &wire, &receivers, &alert.labels) {
                listed.push(wire);
            }
        }
        listed
    });
    let mut alerts = alerts;
    alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    Ok(Json(alerts).into_response())
}

pub async fn post_alerts(State(node): State<Arc<Node>>, body: Bytes) -> Answer {
    let posted: Vec<WirePostableAlert> = serde_json::from_slice(&body).map_err(|problem| {
        error(
            StatusCode::BAD_REQUEST,
            format!("invalid alerts JSON: {problem}"),
        )
    })?;
    let runtime = runtime(&node)?;
    let mut converted = Vec::with_capacity(posted.len());
    let mut errors = Vec::new();
    for (index, alert) in posted.into_iter().enumerate() {
        match alert.into_posted() {
            Ok(alert) => converted.push(alert),
            Err(message) => errors.push(format!("alert {index}: {message}")),
        }
    }
    let mut limit_reached = false;
    if let Err(rejected) = runtime.post_alerts(converted) {
        errors.extend(rejected.errors);
        limit_reached = rejected.limit_reached;
    }
    if errors.is_empty() {
        Ok(StatusCode::OK.into_response())
    } else if limit_reached {
        Err(error(StatusCode::TOO_MANY_REQUESTS, errors.join("; ")))
    } else {
        Err(error(StatusCode::BAD_REQUEST, errors.join("; ")))
    }
}

pub async fn get_alert_groups(State(node): State<Arc<Node>>, RawQuery(query): RawQuery) -> Answer {
    let params = parse_list_params(query.as_deref())?;
    let runtime = runtime(&node)?;
    let now = Timestamp::now();
    let mut groups = runtime.read(|pipeline| {
        let snapshot: Vec<(LabelSet, String, Vec<Alert>)> = pipeline
            .groups()
            .iter()
            .map(|(_, group)| {
                (
                    group.labels().clone(),
                    group.receiver().to_string(),
                    group.alerts().cloned().collect(),
                )
            })
            .collect();
        let mut listed = Vec::new();
        for (labels, receiver, alerts) in snapshot {
            if let Some(regex) = &params.receiver
                && !regex.is_match(&receiver)
            {
                continue;
            }
            let mut wire_alerts = Vec::new();
            for alert in alerts.iter().filter(|alert| !alert.is_resolved_at(now)) {
                let (wire, _) = wire_alert(alert, pipeline, now);
                if keep(
                    &params,
                    &wire,
                    std::slice::from_ref(&receiver),
                    &alert.labels,
                ) {
                    wire_alerts.push(wire);
                }
            }
            if !wire_alerts.is_empty() {
                listed.push(WireAlertGroup {
                    labels,
                    receiver: WireReceiver { name: receiver },
                    alerts: wire_alerts,
                });
            }
        }
        listed
    });
    groups.sort_by(|a, b| {
        a.labels
            .cmp(&b.labels)
            .then_with(|| a.receiver.name.cmp(&b.receiver.name))
    });
    Ok(Json(groups).into_response())
}

fn wire_silence(silence: &Silence, now: Timestamp) -> WireGettableSilence {
    WireGettableSilence {
        id: silence.id.clone(),
        status: WireSilenceStatus {
            state: match silence.state_at(now) {
                SilenceState::Active => WireSilenceState::Active,
                SilenceState::Pending => WireSilenceState::Pending,
                SilenceState::Expired => WireSilenceState::Expired,
            },
        },
        updated_at: format_time(silence.updated_at),
        matchers: silence
            .matchers
            .iter()
            .map(WireMatcher::from_matcher)
            .collect(),
        starts_at: format_time(silence.starts_at),
        ends_at: format_time(silence.ends_at),
        created_by: silence.created_by.clone(),
        comment: silence.comment.clone(),
    }
}

pub async fn get_silences(State(node): State<Arc<Node>>, RawQuery(query): RawQuery) -> Answer {
    let params = parse_list_params(query.as_deref())?;
    let runtime = runtime(&node)?;
    let now = Timestamp::now();
    let listed = runtime.read(|pipeline| {
        let query = SilenceQuery {
            filter: params.filter,
            ..SilenceQuery::default()
        };
        let mut found = pipeline.silences.query(&query, now);
        silences::sort_for_api(&mut found, now);
        found
            .into_iter()
            .map(|silence| wire_silence(silence, now))
            .collect::<Vec<_>>()
    });
    Ok(Json(listed).into_response())
}

fn silence_spec(posted: &WirePostableSilence) -> Result<SilenceSpec, String> {
    let matchers = posted
        .matchers
        .iter()
        .enumerate()
        .map(|(index, matcher)| {
            matcher
                .to_matcher()
                .map_err(|message| format!("matcher {index}: {message}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let starts_at = parse_time("startsAt", &posted.starts_at)?.ok_or("startsAt: required")?;
    let ends_at = parse_time("endsAt", &posted.ends_at)?.ok_or("endsAt: required")?;
    Ok(SilenceSpec {
        matchers,
        starts_at,
        ends_at,
        created_by: posted.created_by.clone(),
        comment: posted.comment.clone(),
    })
}

fn silence_error(problem: SilenceWriteError) -> ApiError {
    match problem {
        SilenceWriteError::Invalid(SilenceError::NotFound) => {
            error(StatusCode::NOT_FOUND, "silence not found")
        }
        SilenceWriteError::Invalid(SilenceError::Limit(message)) => {
            error(StatusCode::TOO_MANY_REQUESTS, message)
        }
        SilenceWriteError::Invalid(invalid) => error(StatusCode::BAD_REQUEST, invalid.to_string()),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

pub async fn post_silences(State(node): State<Arc<Node>>, body: Bytes) -> Answer {
    let posted: WirePostableSilence = serde_json::from_slice(&body).map_err(|problem| {
        error(
            StatusCode::BAD_REQUEST,
            format!("invalid silence JSON: {problem}"),
        )
    })?;
    let spec = silence_spec(&posted).map_err(|message| error(StatusCode::BAD_REQUEST, message))?;
    let runtime = Arc::clone(runtime(&node)?);
    // The write fsyncs before answering: keep it off the async workers.
    let id = posted.id.filter(|id| !id.is_empty());
    let written =
        tokio::task::spawn_blocking(move || runtime.upsert_silence(spec, id.as_deref())).await;
    match written {
        Ok(Ok(silence_id)) => Ok(Json(WireSilenceCreated { silence_id }).into_response()),
        Ok(Err(problem)) => Err(silence_error(problem)),
        Err(join_error) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            join_error.to_string(),
        )),
    }
}

pub async fn get_silence(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Answer {
    let runtime = runtime(&node)?;
    let now = Timestamp::now();
    match runtime.read(|pipeline| {
        pipeline
            .silences
            .get(&id)
            .map(|silence| wire_silence(silence, now))
    }) {
        Some(silence) => Ok(Json(silence).into_response()),
        None => Err(error(StatusCode::NOT_FOUND, "silence not found")),
    }
}

pub async fn delete_silence(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Answer {
    let runtime = Arc::clone(runtime(&node)?);
    match tokio::task::spawn_blocking(move || runtime.expire_silence(&id)).await {
        Ok(Ok(())) => Ok(StatusCode::OK.into_response()),
        Ok(Err(problem)) => Err(silence_error(problem)),
        Err(join_error) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            join_error.to_string(),
        )),
    }
}

pub async fn get_receivers(State(node): State<Arc<Node>>) -> Answer {
    let config = node.config();
    let receivers: Vec<WireReceiver> = config
        .alertmanager
        .receivers
        .iter()
        .map(|receiver| WireReceiver {
            name: receiver.value.name.value.clone(),
        })
        .collect();
    Ok(Json(receivers).into_response())
}

//! One node's alerting pipeline under a random but reproducible world: alerts flap, senders
//! refresh them, operators add and expire silences, deliveries sometimes fail. Virtual time,
//! one seed per run. After the run, the properties of DESIGN §5 that apply to a single node are
//! checked against everything that was delivered.

use crate::rng::SimRng;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use tocsin::alerting::groups::GroupLimits;
use tocsin::alerting::nflog::{Nflog, NflogLimits};
use tocsin::alerting::pipeline::{Effect, Pipeline};
use tocsin::alerting::silences::{SilenceLimits, SilenceSpec, Silences};
use tocsin::alerting::store::StoreLimits;
use tocsin::alerting::{Alert, LabelSet, PostedAlert};
use tocsin::config::alertmanager::{Matcher, parse_alertmanager_file};

const CONFIG: &str = "
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 2m
  repeat_interval: 10m
receivers:
  - name: team
    webhook_configs:
      - url: 'http://127.0.0.1:1/all'
      - url: 'http://127.0.0.1:1/firing-only'
        send_resolved: false
";
const GROUP_WAIT: SignedDuration = SignedDuration::from_secs(30);
const GROUP_INTERVAL: SignedDuration = SignedDuration::from_mins(2);
const REPEAT_INTERVAL: SignedDuration = SignedDuration::from_mins(10);
const ALERT_NAMES: [&str; 5] = ["DiskFull", "HighLoad", "Down", "SlowQueries", "CertExpiry"];
const INSTANCES: usize = 4;
/// How often a sender re-posts a firing alert, and how far ahead its end lies, as Prometheus does.
const RESEND_EVERY_STEPS: u64 = 6;
const RESEND_END: SignedDuration = SignedDuration::from_mins(3);

#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: SignedDuration,
    pub step: SignedDuration,
    /// Percentage of deliveries that fail (the pipeline is told and retries at the next flush).
    pub failure_percent: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            duration: SignedDuration::from_hours(3),
            step: SignedDuration::from_secs(5),
            failure_percent: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub at: Timestamp,
    pub property: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub delivered: usize,
    pub failed: usize,
    pub silences_created: usize,
    pub violations: Vec<Violation>,
}

/// A delivered notification, as the simulated receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    at: Timestamp,
    group_key: String,
    integration: String,
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct WorldSilence {
    alertname: String,
    starts_at: Timestamp,
    ends_at: Timestamp,
    id: String,
}

impl WorldSilence {
    fn active_at(&self, at: Timestamp) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

fn alert_id(index: usize) -> (String, String) {
    (
        ALERT_NAMES[index / INSTANCES].to_string(),
        format!("host-{}", index % INSTANCES),
    )
}

fn labels_of(index: usize) -> LabelSet {
    let (name, instance) = alert_id(index);
    LabelSet::from([
        ("alertname", name.as_str()),
        ("instance", instance.as_str()),
    ])
}

fn describe(labels: &LabelSet) -> String {
    format!("{}/{}", labels.value("alertname"), labels.value("instance"))
}

/// Runs one seeded simulation and checks its properties.
pub fn run(seed: u64, settings: &Settings) -> Report {
    let mut rng = SimRng::new(seed);
    let config = match parse_alertmanager_file(CONFIG, "simulation.yml") {
        Ok(config) => config,
        Err(error) => {
            return Report {
                violations: vec![Violation {
                    at: Timestamp::UNIX_EPOCH,
                    property: "setup",
                    detail: error.to_string(),
                }],
                ..Report::default()
            };
        }
    };
    let mut pipeline = Pipeline::new(
        &config,
        StoreLimits::default(),
        GroupLimits::default(),
        Silences::new(SilenceLimits::default(), SignedDuration::from_hours(120)),
        Nflog::new(NflogLimits::default()),
    );
    let start = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
    let total = ALERT_NAMES.len() * INSTANCES;
    let mut firing = vec![false; total];
    // When each alert's current firing spell was first posted.
    let mut firing_since: Vec<Option<Timestamp>> = vec![None; total];
    let mut spells: Vec<(usize, Timestamp, Timestamp)> = Vec::new();
    let mut silences: Vec<WorldSilence> = Vec::new();
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut report = Report::default();

    let steps =
        u64::try_from(settings.duration.as_secs() / settings.step.as_secs().max(1)).unwrap_or(0);
    for step in 0..steps {
        let now = start
            .saturating_add(settings.step * i32::try_from(step).unwrap_or(i32::MAX))
            .unwrap_or(start);

        // The world changes: alerts flap, senders post, operators silence.
        for index in 0..total {
            let flips = rng.chance(1, 150);
            if flips && firing[index] {
                firing[index] = false;
                if let Some(since) = firing_since[index].take() {
                    spells.push((index, since, now));
                }
                post(&mut pipeline, index, Some(now), now);
            } else if flips {
                firing[index] = true;
            }
            let resend_slot = (step + index as u64).is_multiple_of(RESEND_EVERY_STEPS);
            if firing[index] && resend_slot {
                firing_since[index].get_or_insert(now);
                post(&mut pipeline, index, now.checked_add(RESEND_END).ok(), now);
            }
        }
        if rng.chance(1, 300) {
            let alertname = ALERT_NAMES[rng.below(ALERT_NAMES.len() as u64) as usize].to_string();
            let minutes = 5 + rng.below(25) as i64;
            let ends_at = now
                .checked_add(SignedDuration::from_mins(minutes))
                .unwrap_or(now);
            if let Ok(matcher) = Matcher::parse_one(&format!("alertname=\"{alertname}\"")) {
                let spec = SilenceSpec {
                    matchers: vec![matcher],
                    starts_at: now,
                    ends_at,
                    created_by: "simulation".into(),
                    comment: format!("seed {seed}"),
                };
                if let Ok(change) = pipeline.silences.create(spec, now, rng.bytes16()) {
                    silences.push(WorldSilence {
                        alertname,
                        starts_at: now,
                        ends_at,
                        id: change.id,
                    });
                    report.silences_created += 1;
                }
            }
        }
        if rng.chance(1, 600) && !silences.is_empty() {
            let chosen = rng.below(silences.len() as u64) as usize;
            if silences[chosen].active_at(now)
                && pipeline.silences.expire(&silences[chosen].id, now).is_ok()
            {
                silences[chosen].ends_at = now;
            }
        }

        // The node works: due flushes run, notifications are delivered or fail.
        for effect in pipeline.poll(now) {
            let Effect::Notify(notification) = effect else {
                continue;
            };
            if rng.chance(settings.failure_percent, 100) {
                pipeline.failed(&notification);
                report.failed += 1;
                continue;
            }
            if pipeline.delivered(&notification, now).is_err() {
                report.violations.push(Violation {
                    at: now,
                    property: "bounded state",
                    detail: "the notification log refused an entry".into(),
                });
            }
            report.delivered += 1;
            deliveries.push(Delivery {
                at: now,
                group_key: notification.group.group_key.clone(),
                integration: notification.integration.to_string(),
                firing: notification
                    .firing
                    .iter()
                    .map(|alert| describe(&alert.labels))
                    .collect(),
                resolved: notification
                    .resolved
                    .iter()
                    .map(|alert| describe(&alert.labels))
                    .collect(),
            });
        }
        if step % 60 == 0 {
            pipeline.gc(now);
        }
    }
    let end = start
        .saturating_add(settings.step * i32::try_from(steps).unwrap_or(i32::MAX))
        .unwrap_or(start);
    for (index, since) in firing_since.iter().enumerate() {
        if let Some(since) = since {
            spells.push((index, *since, end));
        }
    }

    if std::env::var("SIMULATION_TRACE_SILENCES").is_ok() {
        for silence in &silences {
            eprintln!(
                "silence {} {}..{}",
                silence.alertname, silence.starts_at, silence.ends_at
            );
        }
    }
    if let Ok(group) = std::env::var("SIMULATION_TRACE_GROUP") {
        for delivery in deliveries.iter().filter(|d| d.group_key.contains(&group)) {
            eprintln!(
                "{} {} firing={:?} resolved={:?}",
                delivery.at, delivery.integration, delivery.firing, delivery.resolved
            );
        }
    }
    check_silences_hold(&deliveries, &silences, &mut report);
    if settings.failure_percent == 0 {
        check_at_least_once(&deliveries, &spells, &silences, settings, &mut report);
        check_no_duplicates(&deliveries, &mut report);
    }
    report
}

fn post(pipeline: &mut Pipeline, index: usize, ends_at: Option<Timestamp>, now: Timestamp) {
    let posted = PostedAlert {
        labels: labels_of(index),
        ends_at,
        ..PostedAlert::default()
    };
    if let Ok(alert) = Alert::from_posted(posted, now, pipeline.resolve_timeout()) {
        // Limits are far above what the simulation holds; a refusal would show as a missed
        // notification in the checks.
        let _ = pipeline.receive(alert, now);
    }
}

/// No delivered notification shows as firing an alert that a silence covered at that moment.
fn check_silences_hold(deliveries: &[Delivery], silences: &[WorldSilence], report: &mut Report) {
    for delivery in deliveries {
        for alert in &delivery.firing {
            let alertname = alert.split('/').next().unwrap_or("");
            if let Some(silence) = silences
                .iter()
                .find(|s| s.alertname == alertname && s.active_at(delivery.at))
            {
                report.violations.push(Violation {
                    at: delivery.at,
                    property: "silences hold",
                    detail: format!(
                        "{alert} notified to {} while silence {} was active",
                        delivery.integration, silence.id
                    ),
                });
            }
        }
    }
}

/// An alert that starts firing, unsilenced, and keeps firing for longer than group_wait +
/// group_interval appears as firing in a delivery to every integration within that time, unless
/// that receiver still believes it fires from an earlier notification.
fn check_at_least_once(
    deliveries: &[Delivery],
    spells: &[(usize, Timestamp, Timestamp)],
    silences: &[WorldSilence],
    settings: &Settings,
    report: &mut Report,
) {
    let bound = GROUP_WAIT + GROUP_INTERVAL + settings.step * 2;
    for &(index, since, until) in spells {
        let Ok(deadline) = since.checked_add(bound) else {
            continue;
        };
        if deadline >= until {
            continue;
        }
        let labels = labels_of(index);
        let silenced = silences.iter().any(|s| {
            s.alertname == labels.value("alertname") && s.starts_at < deadline && s.ends_at > since
        });
        if silenced {
            continue;
        }
        let name = describe(&labels);
        let group = format!("{{}}:{{alertname=\"{}\"}}", labels.value("alertname"));
        for integration in ["team/webhook/0", "team/webhook/1"] {
            // A receiver whose last notification still shows the alert firing never learned it
            // resolved (it fired again before the next flush, or resolutions are not sent to it):
            // for that receiver nothing changed, and Alertmanager's dedup rightly stays silent.
            let still_known_firing = deliveries
                .iter()
                .rfind(|d| d.integration == integration && d.group_key == group && d.at < since)
                .is_some_and(|d| d.firing.contains(&name));
            if still_known_firing {
                continue;
            }
            let notified = deliveries.iter().any(|d| {
                d.integration == integration
                    && d.at >= since
                    && d.at <= deadline
                    && d.firing.contains(&name)
            });
            if !notified {
                report.violations.push(Violation {
                    at: deadline,
                    property: "at least once",
                    detail: format!(
                        "{name}, firing since {since}, not notified to {integration} by {deadline}"
                    ),
                });
            }
        }
    }
}

/// Two deliveries of the same content to the same integration are at least repeat_interval
/// apart: a healthy node notifies each change once.
fn check_no_duplicates(deliveries: &[Delivery], report: &mut Report) {
    let mut last: BTreeMap<(String, String), &Delivery> = BTreeMap::new();
    for delivery in deliveries {
        let key = (delivery.group_key.clone(), delivery.integration.clone());
        if let Some(previous) = last.get(&key) {
            let same = previous.firing == delivery.firing && previous.resolved == delivery.resolved;
            // A receiver without resolutions is not told that the whole group resolved, yet the
            // next firing is a new episode (Alertmanager logs the resolution silently so that it
            // notifies again). The receiver that gets resolutions shows whether that happened.
            let group_resolved_between = deliveries.iter().any(|d| {
                d.integration == "team/webhook/0"
                    && d.group_key == delivery.group_key
                    && d.firing.is_empty()
                    && d.at >= previous.at
                    && d.at <= delivery.at
            });
            if same
                && !group_resolved_between
                && delivery.at.duration_since(previous.at) < REPEAT_INTERVAL
            {
                report.violations.push(Violation {
                    at: delivery.at,
                    property: "exactly once when healthy",
                    detail: format!(
                        "{} got the same notification of {} at {} and {}",
                        delivery.integration, delivery.group_key, previous.at, delivery.at
                    ),
                });
            }
        }
        last.insert(key, delivery);
    }
}

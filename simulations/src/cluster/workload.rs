//! What the outside world does: the Alertmanager configuration (inline YAML, parsed by the real
//! parser), the alerts senders post (Prometheus HA pairs posting to every node, or a sender
//! posting to one), refreshed periodically and flapping, and operators' silences.

use super::Ms;
use jiff::SignedDuration;
use std::collections::BTreeSet;
use tocsin::alerting::LabelSet;

/// Several routes, `group_by`, and an inhibition rule. Every webhook sends resolved alerts.
pub const CONFIG: &str = r#"
global:
  resolve_timeout: 5m
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 2m
  repeat_interval: 20m
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      group_by: [alertname, instance]
      group_wait: 10s
    - matchers: ['team="db"']
      receiver: db
      group_by: [alertname, instance]
receivers:
  - name: team
    webhook_configs:
      - url: 'http://team.invalid/a'
      - url: 'http://team.invalid/b'
  - name: pager
    webhook_configs:
      - url: 'http://pager.invalid/'
  - name: db
    webhook_configs:
      - url: 'http://db.invalid/'
inhibit_rules:
  - source_matchers: ['severity="page"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
"#;

/// The configuration's timers, for the checks' bounds.
pub const GROUP_WAIT: SignedDuration = SignedDuration::from_secs(30);
pub const GROUP_INTERVAL: SignedDuration = SignedDuration::from_mins(2);
pub const REPEAT_INTERVAL: SignedDuration = SignedDuration::from_mins(20);

/// Every integration, as `ReceiverKey` displays it.
pub const INTEGRATIONS: [&str; 4] = [
    "team/webhook/0",
    "team/webhook/1",
    "pager/webhook/0",
    "db/webhook/0",
];

/// How often a sender re-posts a firing alert, and how far ahead its end lies.
pub const REFRESH: Ms = 30_000;
pub const REFRESH_END: SignedDuration = SignedDuration::from_mins(3);
/// The workload's step.
pub const STEP: Ms = 5_000;

/// One alert the senders may fire.
#[derive(Debug, Clone)]
pub struct AlertSpec {
    pub labels: LabelSet,
    pub name: String,
    /// The integrations its route notifies.
    pub integrations: &'static [&'static str],
    /// An inhibition target (severity=warning) whose source (severity=page, same alertname)
    /// exists.
    pub inhibited_by_page: bool,
    pub is_page: bool,
}

pub fn alerts() -> Vec<AlertSpec> {
    let mut specs = Vec::new();
    let team: &'static [&'static str] = &INTEGRATIONS[0..2];
    let pager: &'static [&'static str] = &INTEGRATIONS[2..3];
    let db: &'static [&'static str] = &INTEGRATIONS[3..4];
    for name in ["DiskFull", "HighLoad", "Down"] {
        for instance in 0..3 {
            let instance = format!("host-{instance}");
            specs.push(AlertSpec {
                labels: LabelSet::from([
                    ("alertname", name),
                    ("instance", instance.as_str()),
                    ("severity", "warning"),
                ]),
                name: format!("{name}/{instance}/warning"),
                integrations: team,
                inhibited_by_page: name == "Down",
                is_page: false,
            });
        }
    }
    for instance in 0..2 {
        let instance = format!("host-{instance}");
        specs.push(AlertSpec {
            labels: LabelSet::from([
                ("alertname", "Down"),
                ("instance", instance.as_str()),
                ("severity", "page"),
            ]),
            name: format!("Down/{instance}/page"),
            integrations: pager,
            inhibited_by_page: false,
            is_page: true,
        });
    }
    for instance in 0..3 {
        let instance = format!("host-{instance}");
        specs.push(AlertSpec {
            labels: LabelSet::from([
                ("alertname", "Latency"),
                ("instance", instance.as_str()),
                ("severity", "warning"),
                ("team", "db"),
            ]),
            name: format!("Latency/{instance}/warning"),
            integrations: db,
            inhibited_by_page: false,
            is_page: false,
        });
    }
    specs
}

/// A readable name of an alert's labels, as the receivers' records show it.
pub fn describe(labels: &LabelSet) -> String {
    format!(
        "{}/{}/{}",
        labels.value("alertname"),
        labels.value("instance"),
        labels.value("severity")
    )
}

/// How senders reach the cluster, per alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// A Prometheus HA pair: every node gets every post.
    AllNodes,
    /// One sender posting to one node (a different one each time).
    OneNode,
}

/// The world's truth about one alert.
#[derive(Debug, Clone)]
pub struct WorldAlert {
    pub spec: AlertSpec,
    pub sending: Sending,
    pub firing_since: Option<Ms>,
    /// Offset of its refreshes within [`REFRESH`].
    pub phase: Ms,
    /// Past firing spells (start, end).
    pub spells: Vec<(Ms, Ms)>,
}

/// A silence version an operator wrote, in global time, for the checks.
#[derive(Debug, Clone)]
pub struct WorldSilence {
    pub id: String,
    pub alertname: String,
    /// `None`: every instance.
    pub instance: Option<String>,
    pub starts_at: Ms,
    pub ends_at: Ms,
}

impl WorldSilence {
    pub fn matches(&self, spec: &AlertSpec) -> bool {
        spec.labels.value("alertname") == self.alertname
            && self
                .instance
                .as_ref()
                .is_none_or(|instance| spec.labels.value("instance") == instance)
    }
}

/// Alert names that silences target.
pub const SILENCE_TARGETS: [&str; 4] = ["DiskFull", "HighLoad", "Down", "Latency"];

pub fn names_of(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}

//! The keys of `alertmanager.yml`, as Alertmanager documents them (0.25, plus the UTF-8 matcher
//! syntax of 0.27 and the later optional keys of the integrations Tocsin implements).
//!
//! Serde reads the file; [`AlertmanagerConfig::finish`] then checks what spans keys (receivers
//! and time intervals named by routes, the root route's rules), fills what receivers inherit from
//! `global` and what routes inherit from their parents, as Alertmanager does when it loads.

mod global;
mod inhibit;
mod matchers;
mod receivers;
mod route;
mod time_intervals;

pub use global::{GlobalConfig, HostPort};
pub use inhibit::InhibitRule;
pub use matchers::{
    LabelName, MatchOp, Matcher, Matchers, all_match, is_classic_label_name, parse_matchers,
};
pub use receivers::{
    DEFAULT_EMAIL_HTML, DEFAULT_EMAIL_SUBJECT, EmailConfig, LogConfig, Receiver, WebhookConfig,
};
pub use route::{
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, EffectiveRoute,
    GROUP_BY_ALL, GroupBy, Route,
};
pub use time_intervals::{
    DayOfMonthRange, Location, MonthRange, TimeInterval, TimeIntervalSpec, TimeOfDay, TimeRange,
    WeekdayRange, YearRange,
};

use super::{ConfigError, Invalid, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default)]
    pub global: GlobalConfig,
    /// The root of the routing tree.
    pub route: Spanned<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<Spanned<Receiver>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inhibit_rules: Vec<Spanned<InhibitRule>>,
    /// Globs of template files, relative to this file; the loader expands them.
    #[serde(default)]
    pub templates: Vec<Spanned<String>>,
    /// Deprecated in favour of `time_intervals`; both may be used, names unique across both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_time_intervals: Vec<Spanned<TimeInterval>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_intervals: Vec<Spanned<TimeInterval>>,
}

impl AlertmanagerConfig {
    /// Fills inherited defaults and checks cross-key rules.
    pub fn finish(&mut self) -> Result<(), Invalid> {
        self.route.value.resolve(&Route::root_defaults())?;
        for rule in &self.inhibit_rules {
            rule.value.validate()?;
        }
        self.global.validate()?;

        let mut receiver_names = BTreeSet::new();
        for receiver in &mut self.receivers {
            let name = &receiver.value.name;
            if !receiver_names.insert(name.value.clone()) {
                return Err(Invalid::on(
                    name,
                    format!("notification config name {:?} is not unique", name.value),
                ));
            }
            receiver.value.finish(&self.global)?;
        }

        Route::validate_root(&self.route)?;
        for node in self.route.value.walk() {
            if let Some(receiver) = &node.receiver
                && !receiver.value.is_empty()
                && !receiver_names.contains(&receiver.value)
            {
                return Err(Invalid::on(
                    receiver,
                    format!("undefined receiver {:?} used in route", receiver.value),
                ));
            }
        }

        let mut interval_names = BTreeSet::new();
        for (interval, kind) in self
            .mute_time_intervals
            .iter()
            .map(|interval| (interval, "mute time interval"))
            .chain(
                self.time_intervals
                    .iter()
                    .map(|interval| (interval, "time interval")),
            )
        {
            interval.value.validate()?;
            let name = &interval.value.name;
            if !interval_names.insert(name.value.clone()) {
                return Err(Invalid::on(
                    name,
                    format!("{kind} {:?} is not unique", name.value),
                ));
            }
        }
        for node in self.route.value.walk() {
            for name in node
                .active_time_intervals
                .iter()
                .chain(&node.mute_time_intervals)
            {
                if !interval_names.contains(&name.value) {
                    return Err(Invalid::on(
                        name,
                        format!("undefined time interval {:?} used in route", name.value),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers
            .iter()
            .map(|receiver| &receiver.value)
            .find(|receiver| receiver.name.value == name)
    }

    /// A named time interval from either `time_intervals` or `mute_time_intervals`.
    pub fn time_interval(&self, name: &str) -> Option<&TimeInterval> {
        self.time_intervals
            .iter()
            .chain(&self.mute_time_intervals)
            .map(|interval| &interval.value)
            .find(|interval| interval.name.value == name)
    }
}

/// A label name in `group_by` and `equal`. Alertmanager's default (fallback) mode accepts any
/// non-empty UTF-8 name there, as its UTF-8 matchers do.
fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// Parses and finishes a standalone `alertmanager.yml`.
pub fn parse_alertmanager_file(text: &str, file: &str) -> Result<AlertmanagerConfig, ConfigError> {
    let mut config: AlertmanagerConfig = super::parse_document(text, file)?;
    config.finish().map_err(|invalid| invalid.in_file(file))?;
    Ok(config)
}

#[cfg(test)]
mod tests;

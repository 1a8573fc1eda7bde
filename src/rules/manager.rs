//! The groups of every rule file (Prometheus's `rules/manager.go`): built from the loaded
//! configuration, rebuilt on reload keeping the state of groups and rules that stayed, and
//! scheduled on their slots.
//!
//! Driving it (the node's shell, or a unit-test runner with a virtual clock):
//!
//! ```text
//! manager.update(&files, &options, now_ms)?;          // at start-up and on every reload
//! loop {
//!     sleep until manager.next_due_ms();
//!     let alerts = manager.run_due(&ctx, &mut storage, now_ms, &options);
//!     sink.send(alerts);
//! }
//! ```
//!
//! A runner that wants exact timestamps calls [`Group::eval`] on [`Manager::groups_mut`]
//! directly instead, and [`Group::restore_for_state`] when it wants restoring.

#![deny(clippy::disallowed_methods)]

use super::alert::OutgoingAlert;
use super::alerting::{AlertingRule, Annotations};
use super::group::{EvalContext, Group, Rule, RuleStorage, stale_markers};
use super::recording::RecordingRule;
use crate::config::prometheus::RuleFile;
use crate::promql::Labels;
use std::collections::HashMap;
use std::path::PathBuf;

/// Settings from the configuration and the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerOptions {
    /// `global.evaluation_interval`, for groups without an interval.
    pub evaluation_interval_ms: i64,
    /// `global.rule_query_offset`, for groups without a `query_offset`.
    pub query_offset_ms: i64,
    /// `--rules.alert.for-outage-tolerance`.
    pub outage_tolerance_ms: i64,
    /// `--rules.alert.for-grace-period`.
    pub grace_period_ms: i64,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            evaluation_interval_ms: 60_000,
            query_offset_ms: 0,
            outage_tolerance_ms: 3_600_000,
            grace_period_ms: 600_000,
        }
    }
}

/// Series of a removed group, marked stale once renamed rules had time to take them over.
#[derive(Debug, Clone)]
struct Retiring {
    due_ms: i64,
    t_ms: i64,
    series: Vec<Labels>,
}

#[derive(Debug, Default)]
pub struct Manager {
    /// Sorted by file, then name.
    groups: Vec<Group>,
    /// Set by the first `update`: only groups loaded at start-up restore `for` state.
    loaded_once: bool,
    retiring: Vec<Retiring>,
}

fn ms(duration: crate::config::PromDuration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Builds the groups of `files`. `restored` is false at start-up: alerting rules then write no
/// `ALERTS` series until their `for` state has been restored.
pub fn load_groups(
    files: &[(PathBuf, RuleFile)],
    options: &ManagerOptions,
    should_restore: bool,
) -> Result<Vec<Group>, String> {
    let mut groups = Vec::new();
    for (path, file) in files {
        let file_name = path.display().to_string();
        for group in &file.groups {
            let group = &group.value;
            let interval_ms = match group.interval {
                Some(interval) if !interval.is_zero() => ms(interval),
                _ => options.evaluation_interval_ms,
            };
            let mut rules = Vec::with_capacity(group.rules.len());
            for rule in &group.rules {
                let rule = &rule.value;
                let expr = crate::promql::parse::parse_query(rule.expr()).map_err(|error| {
                    format!(
                        "{file_name}: group {:?}, rule {:?}: {error}",
                        group.name.value,
                        rule.name()
                    )
                })?;
                let labels = Labels::from_pairs(group.labels.iter().chain(rule.labels.iter()));
                if rule.is_alerting() {
                    let annotations = Annotations::from_pairs(
                        rule.annotations
                            .entries()
                            .iter()
                            .map(|entry| (entry.name.value.as_str(), entry.value.as_str())),
                    );
                    rules.push(Rule::Alerting(AlertingRule::new(
                        rule.name(),
                        expr,
                        ms(rule.for_duration()),
                        ms(rule.keep_firing_for()),
                        labels,
                        annotations,
                        !should_restore,
                    )));
                } else {
                    rules.push(Rule::Recording(RecordingRule::new(
                        rule.name(),
                        expr,
                        labels,
                    )));
                }
            }
            groups.push(Group::new(
                &group.name.value,
                &file_name,
                interval_ms,
                group.query_offset.map(ms),
                options.query_offset_ms,
                group.limit,
                rules,
                should_restore,
            ));
        }
    }
    groups.sort_by(|a, b| (a.file(), a.name()).cmp(&(b.file(), b.name())));
    Ok(groups)
}

impl Manager {
    pub fn new() -> Manager {
        Manager::default()
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub fn groups_mut(&mut self) -> &mut [Group] {
        &mut self.groups
    }

    /// Installs the groups of `files`. A group whose definition did not change is kept as it
    /// is; a changed one takes over its predecessor's state ([`Group::copy_state`]); the series
    /// of a removed group are marked stale two of its intervals later (time for a renamed group
    /// to take them over). On error nothing changes.
    pub fn update(
        &mut self,
        files: &[(PathBuf, RuleFile)],
        options: &ManagerOptions,
        now_ms: i64,
    ) -> Result<(), String> {
        let fresh = load_groups(files, options, !self.loaded_once)?;
        self.loaded_once = true;
        let mut old: HashMap<String, Group> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|group| (group.key(), group))
            .collect();
        let mut groups = Vec::with_capacity(fresh.len());
        for mut group in fresh {
            match old.remove(&group.key()) {
                Some(mut previous) if previous.same_definition(&group) => {
                    previous.default_query_offset_ms = options.query_offset_ms;
                    groups.push(previous);
                }
                Some(previous) => {
                    group.copy_state(previous);
                    group.schedule(now_ms);
                    groups.push(group);
                }
                None => {
                    group.schedule(now_ms);
                    groups.push(group);
                }
            }
        }
        for (_, removed) in old {
            let series = removed.all_series();
            if series.is_empty() {
                continue;
            }
            self.retiring.push(Retiring {
                due_ms: now_ms.saturating_add(removed.interval_ms().saturating_mul(2)),
                t_ms: now_ms.saturating_sub(removed.query_offset_ms()),
                series,
            });
        }
        self.groups = groups;
        Ok(())
    }

    /// When the next group is due (or a removed group's stale markers).
    pub fn next_due_ms(&self) -> Option<i64> {
        self.groups
            .iter()
            .filter_map(Group::next_eval_ms)
            .chain(self.retiring.iter().map(|retiring| retiring.due_ms))
            .min()
    }

    /// Runs every iteration due at `now_ms` (restoring `for` state where due) and writes the
    /// stale markers of removed groups that are due; returns the alerts to send.
    pub fn run_due(
        &mut self,
        ctx: &EvalContext<'_>,
        storage: &mut dyn RuleStorage,
        now_ms: i64,
        options: &ManagerOptions,
    ) -> Vec<OutgoingAlert> {
        let mut alerts = Vec::new();
        for group in &mut self.groups {
            if let Some(ts) = group.take_due(now_ms) {
                alerts.extend(group.eval(ctx, storage, ts).alerts);
                if group.wants_restore() {
                    group.restore_for_state(
                        storage.queryable(),
                        ctx.clock,
                        options.outage_tolerance_ms,
                        options.grace_period_ms,
                    );
                }
            }
        }
        let (due, waiting): (Vec<Retiring>, Vec<Retiring>) = std::mem::take(&mut self.retiring)
            .into_iter()
            .partition(|retiring| retiring.due_ms <= now_ms);
        self.retiring = waiting;
        for retiring in due {
            if let Err(error) =
                storage.append_and_commit(&stale_markers(&retiring.series, retiring.t_ms))
            {
                tracing::warn!(%error, "Stale sample appending for removed rule groups failed");
            }
        }
        alerts
    }
}

//! Prometheus's rule manager: recording and alerting rules evaluated in groups, as sans-IO state
//! machines. The shell (`node/rules.rs`) owns the clock, evaluates groups when they are due,
//! appends what they produce to the TSDB and hands their alerts to the notifier.
//!
//! - `alert.rs`: what an alerting rule hands to the notifier (Prometheus's `notifier.Alert`);
//! - `template.rs`: expanding labels and annotations with Prometheus's template language;
//! - `alerting.rs`, `recording.rs`: one rule each, with its state;
//! - `group.rs`: a group's rules evaluated in order, at its interval and offset;
//! - `manager.rs`: the groups of every rule file, rebuilt on reload keeping unchanged rules' state;
//! - `notifier.rs`: alerts to the node's own alerting core and to `alerting.alertmanagers`;
//! - `unittest.rs`: `tocsin test rules`, promtool's rule unit tests.

pub mod alert;
pub mod check;
pub mod notifier;
pub mod unittest;

pub use alert::{AlertSink, OutgoingAlert};
pub mod alerting;
pub mod group;
pub mod manager;
pub mod recording;
pub mod template;

pub use group::{Clock, EvalContext, Group, GroupOutcome, Health, Rule, RuleStorage};
pub use manager::{Manager, ManagerOptions};

#[cfg(test)]
mod tests;

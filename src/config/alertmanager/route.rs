//! `route:`, the routing tree. Each node keeps what the file says; `finish` computes what it
//! means (inherited receiver, grouping and timers, all matchers together) into
//! [`Route::effective`].

use super::matchers::{LabelName, Matcher, Matchers, matchers_from_maps};
use crate::config::{AnchoredRegex, Invalid, PromDuration, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const DEFAULT_GROUP_WAIT: PromDuration = PromDuration::from_secs(30);
pub const DEFAULT_GROUP_INTERVAL: PromDuration = PromDuration::from_secs(5 * 60);
pub const DEFAULT_REPEAT_INTERVAL: PromDuration = PromDuration::from_secs(4 * 60 * 60);

/// `group_by: ['...']`: every label, which turns grouping off.
pub const GROUP_BY_ALL: &str = "...";

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<Spanned<String>>>,
    /// Whether an alert matching this route goes on to its later siblings.
    #[serde(default, rename = "continue", skip_serializing_if = "is_false")]
    pub continue_matching: bool,
    /// Deprecated in favour of `matchers`.
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub match_equal: BTreeMap<LabelName, String>,
    /// Deprecated in favour of `matchers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_re: BTreeMap<LabelName, AnchoredRegex>,
    #[serde(default, skip_serializing_if = "Matchers::is_empty")]
    pub matchers: Matchers,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_time_intervals: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_time_intervals: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<Spanned<PromDuration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<Spanned<PromDuration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<Spanned<PromDuration>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Spanned<Route>>,
    /// What this node means once inherited values are filled in; set by `finish`.
    #[serde(skip)]
    pub effective: EffectiveRoute,
}

/// A route node's settings after inheritance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectiveRoute {
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: PromDuration,
    pub group_interval: PromDuration,
    pub repeat_interval: PromDuration,
    /// `match`, `match_re` and `matchers` together, sorted; an alert must satisfy all.
    pub matchers: Vec<Matcher>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// Group by these labels (none: one group for everything the route takes).
    Labels(Vec<String>),
    /// `...`: group by every label.
    All,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy::Labels(Vec::new())
    }
}

impl Route {
    pub fn receiver_name(&self) -> Option<&str> {
        self.receiver
            .as_ref()
            .map(|receiver| receiver.value.as_str())
    }

    fn has_matchers(&self) -> bool {
        !self.match_equal.is_empty() || !self.match_re.is_empty() || !self.matchers.is_empty()
    }

    /// Checks this node on its own (not its children).
    fn validate_node(&self) -> Result<(), Invalid> {
        if let Some(group_by) = &self.group_by {
            let mut seen = BTreeSet::new();
            let has_all = group_by.iter().any(|name| name.value == GROUP_BY_ALL);
            for name in group_by {
                if name.value == GROUP_BY_ALL {
                    continue;
                }
                if has_all {
                    return Err(Invalid::on(
                        name,
                        "cannot have wildcard group_by (`...`) and other labels at the same time",
                    ));
                }
                if !super::is_valid_label_name(&name.value) {
                    return Err(Invalid::on(
                        name,
                        format!("invalid label name {:?} in group_by list", name.value),
                    ));
                }
                if !seen.insert(name.value.as_str()) {
                    return Err(Invalid::on(
                        name,
                        format!("duplicated label {:?} in group_by", name.value),
                    ));
                }
            }
        }
        if let Some(interval) = &self.group_interval
            && interval.value.is_zero()
        {
            return Err(Invalid::on(interval, "group_interval cannot be zero"));
        }
        if let Some(interval) = &self.repeat_interval
            && interval.value.is_zero()
        {
            return Err(Invalid::on(interval, "repeat_interval cannot be zero"));
        }
        Ok(())
    }

    /// The rules only the root route has to follow; `at` is where the route begins.
    pub(super) fn validate_root(route: &Spanned<Route>) -> Result<(), Invalid> {
        let root = &route.value;
        match &root.receiver {
            Some(receiver) if !receiver.value.is_empty() => {}
            Some(receiver) => {
                return Err(Invalid::on(
                    receiver,
                    "root route must specify a default receiver",
                ));
            }
            None => {
                return Err(Invalid::on(
                    route,
                    "root route must specify a default receiver",
                ));
            }
        }
        if root.has_matchers() {
            return Err(Invalid::on(route, "root route must not have any matchers"));
        }
        if root.continue_matching {
            return Err(Invalid::on(route, "cannot have continue in root route"));
        }
        if let Some(first) = root.mute_time_intervals.first() {
            return Err(Invalid::on(
                first,
                "root route must not have any mute time intervals",
            ));
        }
        if let Some(first) = root.active_time_intervals.first() {
            return Err(Invalid::on(
                first,
                "root route must not have any active time intervals",
            ));
        }
        Ok(())
    }

    /// Checks every node, then fills [`Route::effective`] down the tree from `parent`.
    pub(super) fn resolve(&mut self, parent: &EffectiveRoute) -> Result<(), Invalid> {
        self.validate_node()?;
        let group_by = match &self.group_by {
            None => parent.group_by.clone(),
            Some(names) if names.iter().any(|name| name.value == GROUP_BY_ALL) => GroupBy::All,
            Some(names) => GroupBy::Labels(names.iter().map(|name| name.value.clone()).collect()),
        };
        let mut matchers = matchers_from_maps(&self.match_equal, &self.match_re);
        matchers.extend(self.matchers.iter().cloned());
        matchers.sort();
        self.effective = EffectiveRoute {
            receiver: match self.receiver_name() {
                Some(name) if !name.is_empty() => name.to_string(),
                _ => parent.receiver.clone(),
            },
            group_by,
            group_wait: self
                .group_wait
                .as_ref()
                .map_or(parent.group_wait, |wait| wait.value),
            group_interval: self
                .group_interval
                .as_ref()
                .map_or(parent.group_interval, |interval| interval.value),
            repeat_interval: self
                .repeat_interval
                .as_ref()
                .map_or(parent.repeat_interval, |interval| interval.value),
            matchers,
        };
        for child in &mut self.routes {
            child.value.resolve(&self.effective)?;
        }
        Ok(())
    }

    /// Every node of the tree, this one first, depth first.
    pub fn walk(&self) -> Vec<&Route> {
        let mut nodes = vec![self];
        for child in &self.routes {
            nodes.extend(child.value.walk());
        }
        nodes
    }

    /// The defaults the root inherits from: Alertmanager's default timers, no grouping.
    pub fn root_defaults() -> EffectiveRoute {
        EffectiveRoute {
            receiver: String::new(),
            group_by: GroupBy::default(),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            matchers: Vec::new(),
        }
    }
}

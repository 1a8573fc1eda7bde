//! `inhibit_rules:`: an alert matching the source side mutes alerts matching the target side when
//! the labels in `equal` have the same values in both.

use super::matchers::{LabelName, Matcher, Matchers, matchers_from_maps};
use crate::config::{AnchoredRegex, Invalid, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Optional, for logs and metrics.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Deprecated in favour of `source_matchers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_match: BTreeMap<LabelName, String>,
    /// Deprecated in favour of `source_matchers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_match_re: BTreeMap<LabelName, AnchoredRegex>,
    #[serde(default, skip_serializing_if = "Matchers::is_empty")]
    pub source_matchers: Matchers,
    /// Deprecated in favour of `target_matchers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_match: BTreeMap<LabelName, String>,
    /// Deprecated in favour of `target_matchers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_match_re: BTreeMap<LabelName, AnchoredRegex>,
    #[serde(default, skip_serializing_if = "Matchers::is_empty")]
    pub target_matchers: Matchers,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equal: Vec<Spanned<String>>,
}

impl InhibitRule {
    /// Every source-side matcher: `source_match`, `source_match_re` and `source_matchers`.
    pub fn all_source_matchers(&self) -> Vec<Matcher> {
        let mut matchers = matchers_from_maps(&self.source_match, &self.source_match_re);
        matchers.extend(self.source_matchers.iter().cloned());
        matchers
    }

    /// Every target-side matcher: `target_match`, `target_match_re` and `target_matchers`.
    pub fn all_target_matchers(&self) -> Vec<Matcher> {
        let mut matchers = matchers_from_maps(&self.target_match, &self.target_match_re);
        matchers.extend(self.target_matchers.iter().cloned());
        matchers
    }

    pub fn equal_labels(&self) -> impl Iterator<Item = &str> {
        self.equal.iter().map(|name| name.value.as_str())
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        for name in &self.equal {
            if !super::is_valid_label_name(&name.value) {
                return Err(Invalid::on(
                    name,
                    format!("invalid label name {:?} in equal list", name.value),
                ));
            }
        }
        Ok(())
    }
}

//! Inhibition: a firing source alert mutes target alerts, with Alertmanager's semantics.
//!
//! A target is inhibited when some rule's target matchers match it and a source alert that
//! matches the rule's source matchers is firing with the same values for every `equal` label (a
//! missing label reads as the empty string). When the target also matches the rule's source
//! matchers, sources that match the rule's target matchers do not count: Alertmanager's
//! `excludeTwoSidedMatch`, which keeps an alert from inhibiting itself and two alerts of the
//! same kind from inhibiting each other.
//!
//! Each rule indexes its sources by the tuple of their `equal` values, so a lookup costs one
//! hash probe per rule whose target side matches, whatever the number of sources. The index
//! holds one entry per (rule, source alert): it is bounded by the alert store it mirrors.

use crate::alerting::{Alert, Fingerprint, LabelSet};
use crate::config::alertmanager::{AlertmanagerConfig, InhibitRule, Matcher, all_match};
use jiff::Timestamp;
use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

/// The inhibition rules and the source alerts each one holds, kept current by the caller with
/// [`Inhibitor::upsert`] and [`Inhibitor::remove`] as alerts arrive and leave the store.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<IndexedRule>,
}

#[derive(Debug, Clone)]
struct IndexedRule {
    source_matchers: Vec<Matcher>,
    target_matchers: Vec<Matcher>,
    /// The `equal` label names, sorted and without repeats: Alertmanager treats them as a set.
    equal: Vec<String>,
    /// Every source this rule holds, to find its class again on update and removal.
    sources: HashMap<Fingerprint, SourceEntry>,
    /// Sources by the hash of their `equal` values; colliding tuples share a bucket and are
    /// told apart by their values.
    classes: HashMap<u64, Vec<EqualClass>>,
}

#[derive(Debug, Clone, Copy)]
struct SourceEntry {
    class_hash: u64,
    ends_at: Timestamp,
    two_sided: bool,
}

/// The sources of one rule that share one tuple of `equal` values. Each set is ordered by end
/// time, so its last element says at once whether any source is still firing.
#[derive(Debug, Clone)]
struct EqualClass {
    values: Box<[String]>,
    /// Sources that do not match the rule's target matchers.
    one_sided: BTreeSet<(Timestamp, Fingerprint)>,
    /// Sources that match the target matchers too; they never inhibit a target that matches
    /// the source matchers.
    two_sided: BTreeSet<(Timestamp, Fingerprint)>,
}

impl EqualClass {
    fn set(&mut self, two_sided: bool) -> &mut BTreeSet<(Timestamp, Fingerprint)> {
        if two_sided {
            &mut self.two_sided
        } else {
            &mut self.one_sided
        }
    }

    fn is_empty(&self) -> bool {
        self.one_sided.is_empty() && self.two_sided.is_empty()
    }
}

/// Hashes a tuple of label values. The hasher has fixed keys so the index is laid out the same
/// on every run; `str`'s `Hash` ends each value with a marker byte, so `("ab", "")` and
/// `("a", "b")` hash apart.
fn hash_values<'a>(values: impl Iterator<Item = &'a str>) -> u64 {
    let mut hasher = DefaultHasher::new();
    for value in values {
        value.hash(&mut hasher);
    }
    hasher.finish()
}

impl IndexedRule {
    fn new(rule: &InhibitRule) -> IndexedRule {
        let mut equal: Vec<String> = rule.equal_labels().map(str::to_string).collect();
        equal.sort();
        equal.dedup();
        IndexedRule {
            source_matchers: rule.all_source_matchers(),
            target_matchers: rule.all_target_matchers(),
            equal,
            sources: HashMap::new(),
            classes: HashMap::new(),
        }
    }

    fn equal_values<'a>(&'a self, labels: &'a LabelSet) -> impl Iterator<Item = &'a str> {
        self.equal.iter().map(|name| labels.value(name))
    }

    fn upsert(&mut self, alert: &Alert, fingerprint: Fingerprint) {
        let labels = &alert.labels;
        if !all_match(&self.source_matchers, |name| labels.get(name)) {
            return;
        }
        self.remove(fingerprint);
        let two_sided = all_match(&self.target_matchers, |name| labels.get(name));
        let class_hash = hash_values(self.equal_values(labels));
        let bucket = self.classes.entry(class_hash).or_default();
        let position = bucket.iter().position(|class| {
            class
                .values
                .iter()
                .map(String::as_str)
                .eq(self.equal.iter().map(|name| labels.value(name)))
        });
        let class = match position {
            Some(index) => &mut bucket[index],
            None => {
                bucket.push(EqualClass {
                    values: self
                        .equal
                        .iter()
                        .map(|name| labels.value(name).to_string())
                        .collect(),
                    one_sided: BTreeSet::new(),
                    two_sided: BTreeSet::new(),
                });
                let last = bucket.len() - 1;
                &mut bucket[last]
            }
        };
        class.set(two_sided).insert((alert.ends_at, fingerprint));
        self.sources.insert(
            fingerprint,
            SourceEntry {
                class_hash,
                ends_at: alert.ends_at,
                two_sided,
            },
        );
    }

    fn remove(&mut self, fingerprint: Fingerprint) {
        let Some(entry) = self.sources.remove(&fingerprint) else {
            return;
        };
        let Some(bucket) = self.classes.get_mut(&entry.class_hash) else {
            return;
        };
        let key = (entry.ends_at, fingerprint);
        if let Some(index) = bucket
            .iter_mut()
            .position(|class| class.set(entry.two_sided).remove(&key))
            && bucket[index].is_empty()
        {
            bucket.swap_remove(index);
        }
        if bucket.is_empty() {
            self.classes.remove(&entry.class_hash);
        }
    }

    /// The latest-ending source of this rule that inhibits `target` at `now`, if any.
    fn inhibitor_of(&self, target: &LabelSet, now: Timestamp) -> Option<(Timestamp, Fingerprint)> {
        if !all_match(&self.target_matchers, |name| target.get(name)) {
            return None;
        }
        let exclude_two_sided = all_match(&self.source_matchers, |name| target.get(name));
        let bucket = self.classes.get(&hash_values(self.equal_values(target)))?;
        let class = bucket.iter().find(|class| {
            class
                .values
                .iter()
                .map(String::as_str)
                .eq(self.equal_values(target))
        })?;
        let one_sided = class.one_sided.last().copied();
        let two_sided = if exclude_two_sided {
            None
        } else {
            class.two_sided.last().copied()
        };
        one_sided
            .max(two_sided)
            .filter(|(ends_at, _)| *ends_at > now)
    }
}

impl Inhibitor {
    pub fn new<'a>(rules: impl IntoIterator<Item = &'a InhibitRule>) -> Inhibitor {
        Inhibitor {
            rules: rules.into_iter().map(IndexedRule::new).collect(),
        }
    }

    pub fn from_config(config: &AlertmanagerConfig) -> Inhibitor {
        Inhibitor::new(config.inhibit_rules.iter().map(|rule| &rule.value))
    }

    /// Records an alert's current state (new or updated). Only rules whose source side it
    /// matches keep it; it inhibits until its `ends_at`, so a resolved copy stops inhibiting
    /// without being removed.
    pub fn upsert(&mut self, alert: &Alert) {
        if self.rules.is_empty() {
            // Most configurations have no rules: skip hashing the labels for nothing.
            return;
        }
        let fingerprint = alert.fingerprint();
        for rule in &mut self.rules {
            rule.upsert(alert, fingerprint);
        }
    }

    /// Forgets an alert, as when the store drops it.
    pub fn remove(&mut self, fingerprint: Fingerprint) {
        for rule in &mut self.rules {
            rule.remove(fingerprint);
        }
    }

    /// Forgets every source, then records `alerts`: after a restart or a configuration reload.
    pub fn rebuild<'a>(&mut self, alerts: impl IntoIterator<Item = &'a Alert>) {
        for rule in &mut self.rules {
            rule.sources.clear();
            rule.classes.clear();
        }
        for alert in alerts {
            self.upsert(alert);
        }
    }

    /// Forgets the sources resolved at `now`: they inhibit nothing any more. Returns how many
    /// (rule, source) entries went.
    pub fn remove_resolved(&mut self, now: Timestamp) -> usize {
        let mut removed = 0;
        for rule in &mut self.rules {
            let resolved: Vec<Fingerprint> = rule
                .sources
                .iter()
                .filter(|(_, entry)| entry.ends_at <= now)
                .map(|(fingerprint, _)| *fingerprint)
                .collect();
            removed += resolved.len();
            for fingerprint in resolved {
                rule.remove(fingerprint);
            }
        }
        removed
    }

    /// The source alert that inhibits an alert with labels `target` at `now`: from the first rule
    /// (in configuration order) that inhibits it, the source that fires the longest.
    pub fn inhibited_by(&self, target: &LabelSet, now: Timestamp) -> Option<Fingerprint> {
        self.rules
            .iter()
            .find_map(|rule| rule.inhibitor_of(target, now))
            .map(|(_, fingerprint)| fingerprint)
    }

    /// How many (rule, source alert) entries the index holds.
    pub fn source_entries(&self) -> usize {
        self.rules.iter().map(|rule| rule.sources.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alertmanager::parse_alertmanager_file;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn inhibitor(rules_yaml: &str) -> Inhibitor {
        let text = format!(
            "route:\n  receiver: default\nreceivers:\n  - name: default\ninhibit_rules:\n{rules_yaml}"
        );
        Inhibitor::from_config(&parse_alertmanager_file(&text, "test.yml").unwrap())
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        let mut set = LabelSet::new();
        for (name, value) in pairs {
            set.insert(*name, *value);
        }
        set
    }

    fn alert(pairs: &[(&str, &str)], ends_at: i64) -> Alert {
        Alert {
            labels: labels(pairs),
            annotations: LabelSet::new(),
            starts_at: at(0),
            ends_at: at(ends_at),
            generator_url: String::new(),
            updated_at: at(0),
            timeout: false,
        }
    }

    const CRITICAL_MUTES_WARNING: &str = "
  - source_matchers: [severity=critical]
    target_matchers: [severity=warning]
    equal: [cluster, service]
";

    #[test]
    fn a_firing_source_with_equal_labels_inhibits() {
        let mut inhibitor = inhibitor(CRITICAL_MUTES_WARNING);
        let source = alert(
            &[
                ("alertname", "Down"),
                ("severity", "critical"),
                ("cluster", "a"),
            ],
            100,
        );
        inhibitor.upsert(&source);
        let fingerprint = source.fingerprint();

        // `service` is missing on both sides: empty equals empty.
        let warning_a = labels(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("cluster", "a"),
        ]);
        assert_eq!(
            inhibitor.inhibited_by(&warning_a, at(50)),
            Some(fingerprint)
        );

        let warning_b = labels(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("cluster", "b"),
        ]);
        assert_eq!(inhibitor.inhibited_by(&warning_b, at(50)), None);

        let warning_a_with_service = labels(&[
            ("severity", "warning"),
            ("cluster", "a"),
            ("service", "api"),
        ]);
        assert_eq!(
            inhibitor.inhibited_by(&warning_a_with_service, at(50)),
            None
        );

        let info_a = labels(&[("severity", "info"), ("cluster", "a")]);
        assert_eq!(inhibitor.inhibited_by(&info_a, at(50)), None);

        // Resolved at its end time.
        assert_eq!(inhibitor.inhibited_by(&warning_a, at(100)), None);

        // A later update extends it; removal ends it.
        inhibitor.upsert(&Alert {
            ends_at: at(200),
            ..source.clone()
        });
        assert_eq!(
            inhibitor.inhibited_by(&warning_a, at(150)),
            Some(fingerprint)
        );
        assert_eq!(inhibitor.source_entries(), 1);
        inhibitor.remove(fingerprint);
        assert_eq!(inhibitor.inhibited_by(&warning_a, at(150)), None);
        assert_eq!(inhibitor.source_entries(), 0);
    }

    #[test]
    fn alerts_not_matching_the_source_side_are_not_kept() {
        let mut inhibitor = inhibitor(CRITICAL_MUTES_WARNING);
        inhibitor.upsert(&alert(&[("severity", "warning"), ("cluster", "a")], 100));
        assert_eq!(inhibitor.source_entries(), 0);
        let warning = labels(&[("severity", "warning"), ("cluster", "a"), ("x", "1")]);
        assert_eq!(inhibitor.inhibited_by(&warning, at(50)), None);
    }

    #[test]
    fn two_sided_matches_do_not_inhibit_each_other() {
        // Every alert of the `db` service matches the target side; critical ones match the
        // source side too.
        let mut inhibitor = inhibitor(
            "
  - source_matchers: [severity=critical]
    target_matchers: [service=db]
    equal: [cluster]
",
        );
        let critical_db = alert(
            &[
                ("alertname", "A"),
                ("severity", "critical"),
                ("service", "db"),
                ("cluster", "c"),
            ],
            100,
        );
        let other_critical_db = alert(
            &[
                ("alertname", "B"),
                ("severity", "critical"),
                ("service", "db"),
                ("cluster", "c"),
            ],
            100,
        );
        inhibitor.upsert(&critical_db);
        inhibitor.upsert(&other_critical_db);

        // Neither inhibits itself nor the other: both match both sides.
        assert_eq!(inhibitor.inhibited_by(&critical_db.labels, at(50)), None);
        assert_eq!(
            inhibitor.inhibited_by(&other_critical_db.labels, at(50)),
            None
        );

        // A two-sided source still inhibits a target that matches only the target side.
        let warning_db = labels(&[
            ("alertname", "C"),
            ("severity", "warning"),
            ("service", "db"),
            ("cluster", "c"),
        ]);
        let inhibiting = inhibitor.inhibited_by(&warning_db, at(50));
        assert!(
            inhibiting == Some(critical_db.fingerprint())
                || inhibiting == Some(other_critical_db.fingerprint())
        );

        // A one-sided source inhibits a two-sided target.
        let critical_web = alert(
            &[
                ("alertname", "D"),
                ("severity", "critical"),
                ("service", "web"),
                ("cluster", "c"),
            ],
            90,
        );
        inhibitor.upsert(&critical_web);
        assert_eq!(
            inhibitor.inhibited_by(&critical_db.labels, at(50)),
            Some(critical_web.fingerprint())
        );
        assert_eq!(inhibitor.inhibited_by(&critical_db.labels, at(95)), None);
    }

    #[test]
    fn rules_are_tried_in_order_and_deprecated_matchers_count() {
        let mut inhibitor = inhibitor(
            "
  - source_match:
      alertname: NodeDown
    target_match_re:
      alertname: '.+'
    equal: [node, node]
  - source_matchers: [alertname=ClusterDown]
    target_matchers: ['alertname=~\".+\"']
",
        );
        let node_down = alert(&[("alertname", "NodeDown"), ("node", "n1")], 100);
        let cluster_down = alert(&[("alertname", "ClusterDown")], 100);
        inhibitor.upsert(&cluster_down);
        inhibitor.upsert(&node_down);
        let disk_full = labels(&[("alertname", "DiskFull"), ("node", "n1")]);
        assert_eq!(
            inhibitor.inhibited_by(&disk_full, at(10)),
            Some(node_down.fingerprint())
        );
        let disk_full_elsewhere = labels(&[("alertname", "DiskFull"), ("node", "n2")]);
        assert_eq!(
            inhibitor.inhibited_by(&disk_full_elsewhere, at(10)),
            Some(cluster_down.fingerprint())
        );
        // NodeDown for n1 matches both sides of the first rule, and is inhibited by the second.
        assert_eq!(
            inhibitor.inhibited_by(&node_down.labels, at(10)),
            Some(cluster_down.fingerprint())
        );
    }

    #[test]
    fn rebuild_and_remove_resolved() {
        let mut inhibitor = inhibitor(CRITICAL_MUTES_WARNING);
        let early = alert(&[("severity", "critical"), ("cluster", "a")], 100);
        let late = alert(
            &[("severity", "critical"), ("cluster", "a"), ("x", "1")],
            300,
        );
        inhibitor.rebuild([&early, &late]);
        assert_eq!(inhibitor.source_entries(), 2);
        let warning = labels(&[("severity", "warning"), ("cluster", "a")]);
        // The source that fires longest is named.
        assert_eq!(
            inhibitor.inhibited_by(&warning, at(50)),
            Some(late.fingerprint())
        );
        assert_eq!(inhibitor.remove_resolved(at(150)), 1);
        assert_eq!(
            inhibitor.inhibited_by(&warning, at(150)),
            Some(late.fingerprint())
        );
        inhibitor.rebuild([]);
        assert_eq!(inhibitor.inhibited_by(&warning, at(150)), None);
    }

    type TestMatcher = (&'static str, &'static str, &'static str);

    #[derive(Debug, Clone)]
    struct TestRule {
        source: Vec<TestMatcher>,
        target: Vec<TestMatcher>,
        equal: Vec<&'static str>,
    }

    fn matcher_yaml(matchers: &[TestMatcher]) -> String {
        let entries: Vec<String> = matchers
            .iter()
            .map(|(name, op, value)| format!("'{name}{op}\"{value}\"'"))
            .collect();
        format!("[{}]", entries.join(", "))
    }

    fn oracle_matches(matchers: &[TestMatcher], labels: &LabelSet) -> bool {
        matchers.iter().all(|&(name, op, value)| {
            let actual = labels.get(name).unwrap_or("");
            let regex = || regex::Regex::new(&format!("^(?:{value})$")).unwrap();
            match op {
                "=" => actual == value,
                "!=" => actual != value,
                "=~" => regex().is_match(actual),
                "!~" => !regex().is_match(actual),
                other => panic!("unknown operator {other}"),
            }
        })
    }

    /// Alertmanager's rule applied to every source, one by one: the sources of the first rule
    /// that inhibits the target.
    fn oracle(
        rules: &[TestRule],
        sources: &BTreeMap<Fingerprint, Alert>,
        target: &LabelSet,
        now: Timestamp,
    ) -> Vec<(Timestamp, Fingerprint)> {
        for rule in rules {
            if !oracle_matches(&rule.target, target) {
                continue;
            }
            let exclude_two_sided = oracle_matches(&rule.source, target);
            let inhibiting: Vec<(Timestamp, Fingerprint)> = sources
                .values()
                .filter(|source| oracle_matches(&rule.source, &source.labels))
                .filter(|source| !source.is_resolved_at(now))
                .filter(|source| {
                    rule.equal
                        .iter()
                        .all(|name| source.labels.value(name) == target.value(name))
                })
                .filter(|source| {
                    !(exclude_two_sided && oracle_matches(&rule.target, &source.labels))
                })
                .map(|source| (source.ends_at, source.fingerprint()))
                .collect();
            if !inhibiting.is_empty() {
                return inhibiting;
            }
        }
        Vec::new()
    }

    fn matcher_strategy() -> impl Strategy<Value = TestMatcher> {
        (
            prop::sample::select(vec!["a", "b", "c", "severity"]),
            prop::sample::select(vec!["=", "!=", "=~", "!~"]),
            prop::sample::select(vec!["x", "y", "", "x|y", ".+"]),
        )
    }

    fn rule_strategy() -> impl Strategy<Value = TestRule> {
        (
            prop::collection::vec(matcher_strategy(), 0..3),
            prop::collection::vec(matcher_strategy(), 0..3),
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3),
        )
            .prop_map(|(source, target, equal)| TestRule {
                source,
                target,
                equal,
            })
    }

    fn labels_strategy() -> impl Strategy<Value = LabelSet> {
        prop::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "c", "severity"]),
                prop::sample::select(vec!["x", "y", "z"]),
            ),
            0..5,
        )
        .prop_map(|pairs| {
            let mut set = LabelSet::new();
            for (name, value) in pairs {
                set.insert(name, value);
            }
            set
        })
    }

    proptest! {
        #[test]
        fn inhibited_by_agrees_with_brute_force(
            rules in prop::collection::vec(rule_strategy(), 1..4),
            alerts in prop::collection::vec((labels_strategy(), 0i64..20), 0..24),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            targets in prop::collection::vec(labels_strategy(), 0..8),
            now in 0i64..20,
        ) {
            let mut yaml = String::new();
            for rule in &rules {
                yaml.push_str(&format!(
                    "  - source_matchers: {}\n    target_matchers: {}\n    equal: [{}]\n",
                    matcher_yaml(&rule.source),
                    matcher_yaml(&rule.target),
                    rule.equal.join(", ")
                ));
            }
            let mut inhibitor = inhibitor(&yaml);
            let mut sources = BTreeMap::new();
            for (labels, ends_at) in &alerts {
                let alert = alert(&[], *ends_at);
                let alert = Alert { labels: labels.clone(), ..alert };
                inhibitor.upsert(&alert);
                sources.insert(alert.fingerprint(), alert);
            }
            if !alerts.is_empty() {
                for index in &removed {
                    let fingerprint = alerts[index.index(alerts.len())].0.fingerprint();
                    inhibitor.remove(fingerprint);
                    sources.remove(&fingerprint);
                }
            }
            let now = at(now);
            let candidates = targets.iter().chain(alerts.iter().map(|(labels, _)| labels));
            for target in candidates {
                let expected = oracle(&rules, &sources, target, now).into_iter().max();
                prop_assert_eq!(
                    inhibitor.inhibited_by(target, now),
                    expected.map(|(_, fingerprint)| fingerprint),
                    "target {:?}\n{}", target, yaml
                );
            }
        }
    }
}

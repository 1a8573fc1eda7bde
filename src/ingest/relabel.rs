//! Relabeling as Prometheus 3's `model/relabel` applies it: `relabel_configs` to targets,
//! `metric_relabel_configs` to scraped samples.
//!
//! Labels are edited in a [`LabelBuilder`] (sorted pairs; setting an empty value deletes, as
//! Go's `labels.Builder` does). Each action follows `relabel.relabel` line by line: the source
//! values joined by `separator`, the anchored regex (`.` matches newlines), `$1`/`${name}`
//! expansion with Go's rules (Rust's `regex` expands `$name` the same way: the longest name, so
//! `$1x` is the group `1x`), MD5 for `hashmod`.

use crate::config::Spanned;
use crate::config::prometheus::{DEFAULT_REGEX, NameValidation, RelabelAction, RelabelConfig};
use md5::{Digest, Md5};

/// A mutable label set: pairs sorted by name, names unique, no empty values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelBuilder {
    labels: Vec<(String, String)>,
}

impl LabelBuilder {
    /// An empty set.
    pub fn new() -> LabelBuilder {
        LabelBuilder::default()
    }

    /// A set from pairs in any order; for a repeated name the last wins, empty values are
    /// dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> LabelBuilder {
        let mut builder = LabelBuilder::new();
        for (name, value) in pairs {
            builder.set(name.into(), value.into());
        }
        builder
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.labels
            .binary_search_by(|(existing, _)| existing.as_str().cmp(name))
    }

    /// The value of `name`, `""` when absent (Go's `Builder.Get`).
    pub fn get(&self, name: &str) -> &str {
        match self.position(name) {
            Ok(index) => self.labels[index].1.as_str(),
            Err(_) => "",
        }
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets `name` to `value`; an empty value deletes it.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        if value.is_empty() {
            self.del(&name);
            return;
        }
        match self.position(&name) {
            Ok(index) => self.labels[index].1 = value,
            Err(index) => self.labels.insert(index, (name, value)),
        }
    }

    /// Removes `name`.
    pub fn del(&mut self, name: &str) {
        if let Ok(index) = self.position(name) {
            self.labels.remove(index);
        }
    }

    /// Keeps only the labels for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.labels.retain(|(name, value)| keep(name, value));
    }

    /// The pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The set as the TSDB's labels.
    pub fn to_labels(&self) -> crate::tsdb::Labels {
        crate::tsdb::Labels::new(self.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    /// The pairs, consumed.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.labels
    }
}

/// Applies `configs` in order. Returns `false` as soon as one drops the set (`keep`, `drop`,
/// `keepequal`, `dropequal`); the builder is then in an unspecified state. `names` decides
/// which `target_label`s a `replace` may produce after expansion.
pub fn process(
    builder: &mut LabelBuilder,
    configs: &[Spanned<RelabelConfig>],
    names: NameValidation,
) -> bool {
    configs
        .iter()
        .all(|config| relabel(builder, &config.value, names))
}

/// Applies one relabel config; `false` drops the set.
pub fn relabel(builder: &mut LabelBuilder, config: &RelabelConfig, names: NameValidation) -> bool {
    let mut value = String::new();
    for (index, name) in config.source_labels().enumerate() {
        if index > 0 {
            value.push_str(&config.separator);
        }
        value.push_str(builder.get(name));
    }
    let regex = &config.regex;
    match config.action {
        RelabelAction::Drop => {
            if regex.is_match(&value) {
                return false;
            }
        }
        RelabelAction::Keep => {
            if !regex.is_match(&value) {
                return false;
            }
        }
        RelabelAction::DropEqual => {
            if builder.get(config.target_label()) == value {
                return false;
            }
        }
        RelabelAction::KeepEqual => {
            if builder.get(config.target_label()) != value {
                return false;
            }
        }
        RelabelAction::Replace => {
            let target = config.target_label();
            let replacement = config.replacement();
            // Prometheus's fast path: nothing to match against, nothing to expand.
            if value.is_empty()
                && regex.as_str() == DEFAULT_REGEX
                && !target.contains('$')
                && !replacement.contains('$')
            {
                builder.set(target, replacement);
                return true;
            }
            let Some(captures) = regex.compiled().captures(&value) else {
                return true;
            };
            let mut expanded_target = String::new();
            captures.expand(target, &mut expanded_target);
            if expanded_target.is_empty() || !names.is_valid_label_name(&expanded_target) {
                return true;
            }
            let mut result = String::new();
            captures.expand(replacement, &mut result);
            if result.is_empty() {
                builder.del(&expanded_target);
            } else {
                builder.set(expanded_target, result);
            }
        }
        RelabelAction::Lowercase => builder.set(config.target_label(), value.to_lowercase()),
        RelabelAction::Uppercase => builder.set(config.target_label(), value.to_uppercase()),
        RelabelAction::HashMod => {
            let hash = Md5::digest(value.as_bytes());
            // Only the last 8 bytes, big-endian, as Prometheus has always done.
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&hash[8..16]);
            let modulus = config.modulus.max(1);
            let shard = u64::from_be_bytes(tail) % modulus;
            builder.set(config.target_label(), shard.to_string());
        }
        RelabelAction::LabelMap => {
            // Go's `Builder.Range` iterates a snapshot: new names are not visited again.
            let snapshot: Vec<(String, String)> = builder
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            for (name, label_value) in snapshot {
                if regex.is_match(&name) {
                    let renamed = regex
                        .compiled()
                        .replace_all(&name, config.replacement())
                        .into_owned();
                    builder.set(renamed, label_value);
                }
            }
        }
        RelabelAction::LabelDrop => builder.retain(|name, _| !regex.is_match(name)),
        RelabelAction::LabelKeep => builder.retain(|name, _| regex.is_match(name)),
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;

    fn configs(yaml: &str) -> Vec<Spanned<RelabelConfig>> {
        let configs: Vec<Spanned<RelabelConfig>> = parse_document(yaml, "r.yml").unwrap();
        for config in &configs {
            config
                .value
                .validate(crate::config::Position::of(config), NameValidation::Utf8)
                .unwrap();
        }
        configs
    }

    /// Applies `yaml` (a list of relabel configs) to `input`; `None` when dropped.
    fn run(input: &[(&str, &str)], yaml: &str) -> Option<Vec<(String, String)>> {
        let mut builder = LabelBuilder::from_pairs(input.iter().copied());
        process(&mut builder, &configs(yaml), NameValidation::Utf8).then(|| builder.into_pairs())
    }

    fn pairs(expected: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        out.sort();
        Some(out)
    }

    const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];

    #[test]
    fn replace_cases() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case<'_>] = &[
            // A match rewrites the target with the expanded replacement.
            (
                ABC,
                "- source_labels: [a]\n  regex: f(.*)\n  target_label: d\n  replacement: ch${1}-ch${1}\n",
                &[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")],
            ),
            // Several sources joined by the separator; the regex is anchored.
            (
                ABC,
                "- source_labels: [a, b]\n  regex: f(.*);(.*)r\n  target_label: a\n  replacement: b${1}${2}m\n",
                &[("a", "boobam"), ("b", "bar"), ("c", "baz")],
            ),
            // No match: nothing changes (the regex must match the whole value).
            (
                ABC,
                "- source_labels: [a]\n  regex: o\n  target_label: x\n  replacement: y\n",
                ABC,
            ),
            // An empty result deletes the target.
            (
                ABC,
                "- source_labels: [a]\n  regex: (b)?.*\n  target_label: b\n  replacement: $1\n",
                &[("a", "foo"), ("c", "baz")],
            ),
            // `$1x` is the group `1x` (absent, so empty), as in Go.
            (
                ABC,
                "- source_labels: [a]\n  regex: (f).*\n  target_label: d\n  replacement: $1x\n",
                ABC,
            ),
            // The fast path: an absent source with the default regex sets a constant.
            (
                &[("a", "foo")],
                "- source_labels: [missing]\n  target_label: d\n  replacement: constant\n",
                &[("a", "foo"), ("d", "constant")],
            ),
            // The target label itself may be expanded.
            (
                &[("a", "some-name-value")],
                "- source_labels: [a]\n  regex: some-([^-]+)-([^,]+)\n  target_label: ${1}\n  replacement: ${2}\n",
                &[("a", "some-name-value"), ("name", "value")],
            ),
            // An expansion to an empty target name changes nothing.
            (
                &[("a", "some-name-value")],
                "- source_labels: [a]\n  regex: some-([^-]*)-([^,]+)x?\n  target_label: ${3}\n  replacement: ${2}\n",
                &[("a", "some-name-value")],
            ),
            // `.` matches a newline (Prometheus 3).
            (
                &[("a", "foo\nbar")],
                "- source_labels: [a]\n  regex: foo.bar\n  target_label: b\n  replacement: ok\n",
                &[("a", "foo\nbar"), ("b", "ok")],
            ),
        ];
        for (input, yaml, expected) in cases {
            assert_eq!(run(input, yaml), pairs(expected), "{yaml}");
        }
    }

    #[test]
    fn keep_drop_and_equal() {
        assert_eq!(
            run(ABC, "- source_labels: [a]\n  regex: f.*\n  action: drop\n"),
            None
        );
        assert_eq!(
            run(ABC, "- source_labels: [a]\n  regex: f\n  action: drop\n"),
            pairs(ABC)
        );
        assert_eq!(
            run(ABC, "- source_labels: [a]\n  regex: f\n  action: keep\n"),
            None
        );
        assert_eq!(
            run(ABC, "- source_labels: [a]\n  regex: f.*\n  action: keep\n"),
            pairs(ABC)
        );
        // An absent label is the empty string: `keep` with `.+` drops, `drop` with `` drops.
        assert_eq!(
            run(ABC, "- source_labels: [x]\n  regex: .+\n  action: keep\n"),
            None
        );
        assert_eq!(
            run(ABC, "- source_labels: [x]\n  regex: ''\n  action: drop\n"),
            None
        );
        let same = &[("a", "1"), ("b", "1"), ("c", "2")][..];
        assert_eq!(
            run(
                same,
                "- source_labels: [a]\n  target_label: b\n  action: keepequal\n"
            ),
            pairs(same)
        );
        assert_eq!(
            run(
                same,
                "- source_labels: [a]\n  target_label: c\n  action: keepequal\n"
            ),
            None
        );
        assert_eq!(
            run(
                same,
                "- source_labels: [a]\n  target_label: b\n  action: dropequal\n"
            ),
            None
        );
        assert_eq!(
            run(
                same,
                "- source_labels: [a]\n  target_label: c\n  action: dropequal\n"
            ),
            pairs(same)
        );
    }

    #[test]
    fn hashmod_is_prometheus_md5() {
        // The values Prometheus's own relabel tests expect.
        assert_eq!(
            run(
                ABC,
                "- source_labels: [c]\n  target_label: d\n  action: hashmod\n  modulus: 1000\n"
            ),
            pairs(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")])
        );
        assert_eq!(
            run(
                &[("a", "foo\nbar")],
                "- source_labels: [a]\n  target_label: b\n  action: hashmod\n  modulus: 1000\n"
            ),
            pairs(&[("a", "foo\nbar"), ("b", "734")])
        );
    }

    #[test]
    fn label_actions() {
        let meta = &[
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("a", "foo"),
        ][..];
        assert_eq!(
            run(
                meta,
                "- regex: __meta_my_(.+)\n  action: labelmap\n  replacement: ${1}\n"
            ),
            pairs(&[
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
                ("a", "foo"),
                ("bar", "aaa"),
                ("baz", "bbb"),
            ])
        );
        // labelmap onto an existing label overwrites it.
        assert_eq!(
            run(
                &[("__meta_a", "x"), ("a", "y")],
                "- regex: __meta_(.+)\n  action: labelmap\n"
            ),
            pairs(&[("__meta_a", "x"), ("a", "x")])
        );
        assert_eq!(
            run(meta, "- regex: __meta_.*\n  action: labeldrop\n"),
            pairs(&[("a", "foo")])
        );
        assert_eq!(
            run(meta, "- regex: __meta_my_.*\n  action: labelkeep\n"),
            pairs(&[("__meta_my_bar", "aaa"), ("__meta_my_baz", "bbb")])
        );
        // Anchored: `my` alone matches no full name.
        assert_eq!(run(meta, "- regex: my\n  action: labeldrop\n"), pairs(meta));
    }

    #[test]
    fn case_actions() {
        assert_eq!(
            run(
                &[("foo", "bAr123Foo")],
                "- source_labels: [foo]\n  target_label: foo_upper\n  action: uppercase\n- source_labels: [foo]\n  target_label: foo_lower\n  action: lowercase\n"
            ),
            pairs(&[
                ("foo", "bAr123Foo"),
                ("foo_lower", "bar123foo"),
                ("foo_upper", "BAR123FOO")
            ])
        );
        // An absent source sets the empty string, which deletes the target.
        assert_eq!(
            run(
                &[("a", "x"), ("b", "y")],
                "- source_labels: [none]\n  target_label: b\n  action: lowercase\n"
            ),
            pairs(&[("a", "x")])
        );
    }

    #[test]
    fn legacy_names_refuse_expanded_targets() {
        let yaml = "- source_labels: [a]\n  regex: (.*)\n  target_label: ${1}\n  replacement: v\n";
        let configs = configs(yaml);
        let mut builder = LabelBuilder::from_pairs([("a", "service.name")]);
        assert!(process(&mut builder, &configs, NameValidation::Legacy));
        assert_eq!(builder.len(), 1);
        let mut builder = LabelBuilder::from_pairs([("a", "service.name")]);
        assert!(process(&mut builder, &configs, NameValidation::Utf8));
        assert_eq!(builder.get("service.name"), "v");
    }

    #[test]
    fn builder_semantics() {
        let mut builder = LabelBuilder::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(
            builder.clone().into_pairs(),
            vec![("a".into(), "1".into()), ("b".into(), "3".into())]
        );
        builder.set("a", "");
        assert!(!builder.has("a"));
        assert_eq!(builder.get("zzz"), "");
        assert_eq!(builder.to_labels().to_string(), r#"{b="3"}"#);
    }
}

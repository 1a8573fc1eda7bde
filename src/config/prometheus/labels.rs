//! Label and metric names as Prometheus 3 validates them, and string maps (labels, headers)
//! that remember where each key was written.

use crate::config::Spanned;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// How metric and label names are checked: Prometheus 3 accepts any non-empty UTF-8 name by
/// default; `legacy` restores the `[a-zA-Z_][a-zA-Z0-9_]*` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameValidation {
    #[default]
    Utf8,
    Legacy,
}

impl NameValidation {
    pub fn as_str(self) -> &'static str {
        match self {
            NameValidation::Utf8 => "utf8",
            NameValidation::Legacy => "legacy",
        }
    }

    pub fn is_valid_label_name(self, name: &str) -> bool {
        match self {
            NameValidation::Utf8 => !name.is_empty(),
            NameValidation::Legacy => is_legacy_label_name(name),
        }
    }

    pub fn is_valid_metric_name(self, name: &str) -> bool {
        match self {
            NameValidation::Utf8 => !name.is_empty(),
            NameValidation::Legacy => is_legacy_metric_name(name),
        }
    }

    /// A relabel `target_label` (or `labelmap` replacement) that may hold `$1`/`${name}`
    /// references: the legacy scheme has its own pattern for these, UTF-8 only needs a name.
    pub fn is_valid_label_name_template(self, template: &str) -> bool {
        match self {
            NameValidation::Utf8 => !template.is_empty(),
            NameValidation::Legacy => is_legacy_label_name_template(template),
        }
    }
}

impl fmt::Display for NameValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NameValidation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NameValidation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            // Prometheus treats a blank scheme as "not set", which resolves to UTF-8.
            "utf8" | "" => Ok(NameValidation::Utf8),
            "legacy" => Ok(NameValidation::Legacy),
            other => Err(serde::de::Error::custom(format!(
                "invalid metric_name_validation_scheme {other:?}: must be \"utf8\" or \"legacy\""
            ))),
        }
    }
}

fn is_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_legacy_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty() && is_name_start(bytes[0]) && bytes[1..].iter().all(|&b| is_word(b))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_legacy_metric_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && (is_name_start(bytes[0]) || bytes[0] == b':')
        && bytes[1..].iter().all(|&b| is_word(b) || b == b':')
}

/// Prometheus's legacy relabel target pattern, `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`:
/// a name that may embed `$var` or `${var}` references, never starting with a digit.
pub fn is_legacy_label_name_template(template: &str) -> bool {
    let bytes = template.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut position = 0;
    while position < bytes.len() {
        // Each element starts with a letter, an underscore or a variable reference...
        if is_name_start(bytes[position]) {
            position += 1;
        } else if bytes[position] == b'$' {
            position += 1;
            if bytes.get(position) == Some(&b'{') {
                position += 1;
                let start = position;
                while position < bytes.len() && is_word(bytes[position]) {
                    position += 1;
                }
                if position == start || bytes.get(position) != Some(&b'}') {
                    return false;
                }
                position += 1;
            } else {
                let start = position;
                while position < bytes.len() && is_word(bytes[position]) {
                    position += 1;
                }
                if position == start {
                    return false;
                }
            }
        } else {
            return false;
        }
        // ...and continues with word characters.
        while position < bytes.len() && is_word(bytes[position]) {
            position += 1;
        }
    }
    true
}

/// One `key: value` of a [`SpannedMap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpannedEntry {
    pub name: Spanned<String>,
    pub value: String,
}

/// A YAML mapping of strings to strings (labels, headers), sorted by key, that keeps each key's
/// position so an error about a key can point at it. Duplicate keys are refused by the parser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpannedMap {
    entries: Vec<SpannedEntry>,
}

/// External labels, target labels, rule labels.
pub type LabelSet = SpannedMap;

impl SpannedMap {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|entry| (entry.name.value.as_str(), entry.value.as_str()))
    }

    pub fn entries(&self) -> &[SpannedEntry] {
        &self.entries
    }

    pub fn entries_mut(&mut self) -> &mut [SpannedEntry] {
        &mut self.entries
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .binary_search_by(|entry| entry.name.value.as_str().cmp(name))
            .ok()
            .map(|index| self.entries[index].value.as_str())
    }
}

impl Serialize for SpannedMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for SpannedMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = SpannedMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of strings to strings")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<SpannedMap, E> {
                Ok(SpannedMap::default())
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<SpannedMap, M::Error> {
                let mut entries = Vec::new();
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let value: String = map.next_value()?;
                    entries.push(SpannedEntry { name, value });
                }
                entries.sort_by(|a, b| a.name.value.cmp(&b.name.value));
                Ok(SpannedMap { entries })
            }
        }

        deserializer.deserialize_map(MapVisitor)
    }
}

/// Replaces `$name` and `${name}` with environment variables, as Prometheus 3 does for external
/// label values (Go's `os.Expand` rules): `$$` is a literal `$`, unset variables are empty, and
/// a `$` not followed by a name stays as written.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied_up_to = 0;
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' && index + 1 < bytes.len() {
            out.push_str(&text[copied_up_to..index]);
            let (name, width) = shell_name(&text[index + 1..]);
            match name {
                Some("$") => out.push('$'),
                Some(name) => out.push_str(&lookup(name).unwrap_or_default()),
                // Valid syntax but no name: keep the dollar sign.
                None if width == 0 => out.push('$'),
                // Bad syntax such as `${`: the characters are dropped, as Go does.
                None => {}
            }
            index += 1 + width;
            copied_up_to = index;
        } else {
            index += 1;
        }
    }
    out.push_str(&text[copied_up_to..]);
    out
}

fn is_shell_special(byte: u8) -> bool {
    matches!(byte, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || byte.is_ascii_digit()
}

/// The variable name after a `$` and how many bytes it spans.
fn shell_name(rest: &str) -> (Option<&str>, usize) {
    let bytes = rest.as_bytes();
    if bytes.first() == Some(&b'{') {
        if bytes.len() > 2 && is_shell_special(bytes[1]) && bytes[2] == b'}' {
            return (Some(&rest[1..2]), 3);
        }
        return match rest[1..].find('}') {
            Some(0) => (None, 2),
            Some(end) => (Some(&rest[1..end + 1]), end + 2),
            None => (None, 1),
        };
    }
    if bytes.first().is_some_and(|&b| is_shell_special(b)) {
        return (Some(&rest[..1]), 1);
    }
    let width = bytes.iter().take_while(|&&b| is_word(b)).count();
    if width == 0 {
        (None, 0)
    } else {
        (Some(&rest[..width]), width)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn legacy_names() {
        assert!(is_legacy_label_name("job"));
        assert!(is_legacy_label_name("_x9"));
        assert!(!is_legacy_label_name("9x"));
        assert!(!is_legacy_label_name("a-b"));
        assert!(!is_legacy_label_name("a:b"));
        assert!(!is_legacy_label_name(""));
        assert!(is_legacy_metric_name("job:up:rate5m"));
        assert!(is_legacy_metric_name(":x"));
        assert!(!is_legacy_metric_name("a.b"));
    }

    #[test]
    fn label_name_templates() {
        for good in ["a", "$1", "${1}", "foo_$1", "${name}_x", "$1$2", "_"] {
            assert!(is_legacy_label_name_template(good), "{good}");
        }
        for bad in ["", "1a", "$", "a$", "${}", "${a", "a-b", "${a-b}", "$-"] {
            assert!(!is_legacy_label_name_template(bad), "{bad}");
        }
        assert!(NameValidation::Utf8.is_valid_label_name_template("a.b/$1"));
    }

    #[test]
    fn expands_like_go() {
        let env = |name: &str| match name {
            "HOST" => Some("web-1".to_string()),
            "1" => Some("one".to_string()),
            _ => None,
        };
        assert_eq!(expand_env("$HOST", env), "web-1");
        assert_eq!(expand_env("${HOST}-x", env), "web-1-x");
        assert_eq!(expand_env("$$HOST", env), "$HOST");
        assert_eq!(expand_env("a$", env), "a$");
        assert_eq!(expand_env("$UNSET.", env), ".");
        assert_eq!(expand_env("cost: $ 5", env), "cost: $ 5");
        assert_eq!(expand_env("${1}$1", env), "oneone");
        assert_eq!(expand_env("x${HOST", env), "xHOST");
        assert_eq!(expand_env("é$HOST€", env), "éweb-1€");
    }

    #[test]
    fn map_keeps_key_positions_and_sorts() {
        let map: SpannedMap =
            crate::config::parse_document("zone: a\nreplica: 1\n", "t.yml").unwrap();
        let keys: Vec<_> = map.iter().collect();
        assert_eq!(keys, vec![("replica", "1"), ("zone", "a")]);
        assert_eq!(map.entries()[0].name.referenced.line(), 2);
        assert_eq!(map.get("zone"), Some("a"));
        assert_eq!(map.get("nope"), None);
    }

    proptest! {
        #[test]
        fn legacy_label_names_are_legacy_metric_names(name in "[a-zA-Z_][a-zA-Z0-9_]{0,20}") {
            prop_assert!(is_legacy_label_name(&name));
            prop_assert!(is_legacy_metric_name(&name));
            prop_assert!(is_legacy_label_name_template(&name));
        }

        #[test]
        fn template_check_agrees_with_the_prometheus_pattern(text in "[a-z0-9_${}:.-]{0,12}") {
            let pattern = regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").unwrap();
            prop_assert_eq!(is_legacy_label_name_template(&text), pattern.is_match(&text));
        }

        #[test]
        fn expansion_without_dollars_is_identity(text in "[^$]{0,40}") {
            prop_assert_eq!(expand_env(&text, |_| None), text);
        }
    }
}

//! `<relabel_config>`: rewriting target, metric, alert and remote-write label sets, with the
//! per-action rules Prometheus 3 enforces.

use super::labels::NameValidation;
use crate::config::{AnchoredRegex, Invalid, Position, Spanned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Compiled relabel regexes larger than this are refused, as for every configuration regex.
const COMPILED_SIZE_LIMIT: usize = 1 << 20;

pub const DEFAULT_SEPARATOR: &str = ";";
pub const DEFAULT_REPLACEMENT: &str = "$1";
pub const DEFAULT_REGEX: &str = "(.*)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelabelAction {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

const ACTIONS: [(&str, RelabelAction); 11] = [
    ("replace", RelabelAction::Replace),
    ("keep", RelabelAction::Keep),
    ("drop", RelabelAction::Drop),
    ("keepequal", RelabelAction::KeepEqual),
    ("dropequal", RelabelAction::DropEqual),
    ("hashmod", RelabelAction::HashMod),
    ("labelmap", RelabelAction::LabelMap),
    ("labeldrop", RelabelAction::LabelDrop),
    ("labelkeep", RelabelAction::LabelKeep),
    ("lowercase", RelabelAction::Lowercase),
    ("uppercase", RelabelAction::Uppercase),
];

impl RelabelAction {
    pub fn as_str(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(_, action)| *action == self)
            .map_or("replace", |(name, _)| name)
    }

    /// Actions that write `target_label` and so require it.
    fn needs_target_label(self) -> bool {
        matches!(
            self,
            RelabelAction::Replace
                | RelabelAction::HashMod
                | RelabelAction::Lowercase
                | RelabelAction::Uppercase
                | RelabelAction::KeepEqual
                | RelabelAction::DropEqual
        )
    }
}

impl fmt::Display for RelabelAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RelabelAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RelabelAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // Prometheus accepts actions in any case (`Replace`, `LABELDROP`).
        let lower = text.to_ascii_lowercase();
        ACTIONS
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, action)| *action)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown relabel action {text:?} (expected one of replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)"
                ))
            })
    }
}

/// A relabel regex: anchored at both ends and, as in Prometheus 3, with `.` matching newlines
/// too. Remembers whether the user wrote it, because `keepequal` and `dropequal` refuse any
/// `regex` key, even one equal to the default.
#[derive(Clone)]
pub struct RelabelRegex {
    source: String,
    compiled: regex::Regex,
    written: bool,
}

impl RelabelRegex {
    pub fn new(source: &str) -> Result<RelabelRegex, String> {
        // Checking the plain pattern first gives errors that quote what the user wrote.
        AnchoredRegex::new(source)?;
        let compiled = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .dot_matches_new_line(true)
            .size_limit(COMPILED_SIZE_LIMIT)
            .build()
            .map_err(|error| format!("invalid regular expression {source:?}: {error}"))?;
        Ok(RelabelRegex {
            source: source.to_string(),
            compiled,
            written: true,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn compiled(&self) -> &regex::Regex {
        &self.compiled
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.compiled.is_match(text)
    }

    /// Whether the config set `regex` (as opposed to the default `(.*)`).
    pub fn was_written(&self) -> bool {
        self.written
    }
}

impl Default for RelabelRegex {
    fn default() -> Self {
        let compiled = regex::RegexBuilder::new("^(?:(.*))$")
            .dot_matches_new_line(true)
            .build()
            .expect("the constant default relabel regex compiles");
        RelabelRegex {
            source: DEFAULT_REGEX.to_string(),
            compiled,
            written: false,
        }
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelabelRegex({:?})", self.source)
    }
}

impl fmt::Display for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for RelabelRegex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `regex:` with no value is the empty regex in Prometheus, not the default.
        let source = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        RelabelRegex::new(&source).map_err(serde::de::Error::custom)
    }
}

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_string()
}

fn default_replacement() -> Spanned<String> {
    Spanned::new(
        DEFAULT_REPLACEMENT.to_string(),
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<Vec<Spanned<String>>>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default)]
    pub regex: RelabelRegex,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub modulus: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<Spanned<String>>,
    #[serde(default = "default_replacement")]
    pub replacement: Spanned<String>,
    #[serde(default)]
    pub action: RelabelAction,
}

impl RelabelConfig {
    pub fn source_labels(&self) -> impl Iterator<Item = &str> {
        self.source_labels
            .iter()
            .flatten()
            .map(|label| label.value.as_str())
    }

    pub fn target_label(&self) -> &str {
        self.target_label
            .as_ref()
            .map_or("", |label| label.value.as_str())
    }

    pub fn replacement(&self) -> &str {
        &self.replacement.value
    }

    /// Prometheus's per-action rules. `at` is where this relabel config begins; errors about a
    /// key that was written point at that key instead.
    pub fn validate(&self, at: Position, names: NameValidation) -> Result<(), Invalid> {
        let action = self.action;
        let target_at = self.target_label.as_ref().map_or(at, Position::of);
        let replacement_at = if self.replacement.referenced.line() == 0 {
            at
        } else {
            Position::of(&self.replacement)
        };
        let target = self.target_label();

        for label in self.source_labels.iter().flatten() {
            if !names.is_valid_label_name(&label.value) {
                return Err(Invalid::on(
                    label,
                    format!("source_labels: {:?} is not a valid label name", label.value),
                ));
            }
        }
        if action == RelabelAction::HashMod && self.modulus == 0 {
            return Err(Invalid::at(
                at,
                "relabel configuration for hashmod action requires a non-zero 'modulus'",
            ));
        }
        if action.needs_target_label() && target.is_empty() {
            return Err(Invalid::at(
                target_at,
                format!("relabel configuration for {action} action requires 'target_label' value"),
            ));
        }
        let target_valid = match action {
            RelabelAction::Replace if target.contains('$') => {
                names.is_valid_label_name_template(target)
            }
            RelabelAction::Replace
            | RelabelAction::HashMod
            | RelabelAction::Lowercase
            | RelabelAction::Uppercase
            | RelabelAction::KeepEqual
            | RelabelAction::DropEqual => names.is_valid_label_name(target),
            _ => true,
        };
        if !target_valid {
            return Err(Invalid::at(
                target_at,
                format!("{target:?} is invalid 'target_label' for {action} action"),
            ));
        }
        let no_replacement = matches!(
            action,
            RelabelAction::Lowercase
                | RelabelAction::Uppercase
                | RelabelAction::KeepEqual
                | RelabelAction::DropEqual
        );
        if no_replacement && self.replacement() != DEFAULT_REPLACEMENT {
            return Err(Invalid::at(
                replacement_at,
                format!("'replacement' can not be set for {action} action"),
            ));
        }
        if action == RelabelAction::LabelMap
            && !names.is_valid_label_name_template(self.replacement())
        {
            return Err(Invalid::at(
                replacement_at,
                format!(
                    "{:?} is invalid 'replacement' for {action} action",
                    self.replacement()
                ),
            ));
        }
        if matches!(action, RelabelAction::KeepEqual | RelabelAction::DropEqual)
            && (self.regex.was_written()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR)
        {
            return Err(Invalid::at(
                at,
                format!(
                    "{action} action requires only 'source_labels' and 'target_label', and no other fields"
                ),
            ));
        }
        if matches!(action, RelabelAction::LabelDrop | RelabelAction::LabelKeep)
            && (self.source_labels.is_some()
                || self.target_label.is_some()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement() != DEFAULT_REPLACEMENT)
        {
            return Err(Invalid::at(
                at,
                format!("{action} action requires only 'regex', and no other fields"),
            ));
        }
        Ok(())
    }
}

/// Validates a list of relabel configs, each against Prometheus's per-action rules.
pub fn validate_all(
    configs: &[Spanned<RelabelConfig>],
    names: NameValidation,
) -> Result<(), Invalid> {
    for config in configs {
        config.value.validate(Position::of(config), names)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;
    use proptest::prelude::*;

    fn check_with(yaml: &str, names: NameValidation) -> Result<RelabelConfig, String> {
        let config: Spanned<RelabelConfig> =
            parse_document(yaml, "r.yml").map_err(|error| error.to_string())?;
        config
            .value
            .validate(Position::of(&config), names)
            .map_err(|invalid| invalid.in_file("r.yml").to_string())?;
        Ok(config.value)
    }

    fn check(yaml: &str) -> Result<RelabelConfig, String> {
        check_with(yaml, NameValidation::Utf8)
    }

    #[test]
    fn defaults_are_prometheus_defaults() {
        let config = check("target_label: x\n").unwrap();
        assert_eq!(config.action, RelabelAction::Replace);
        assert_eq!(config.separator, ";");
        assert_eq!(config.regex.as_str(), "(.*)");
        assert!(!config.regex.was_written());
        assert_eq!(config.replacement(), "$1");
        assert!(config.regex.is_match("a\nb"), "dot matches newline");
    }

    #[test]
    fn actions_are_case_insensitive() {
        let config = check("action: LabelDrop\nregex: tmp_.*\n").unwrap();
        assert_eq!(config.action, RelabelAction::LabelDrop);
        assert!(config.regex.is_match("tmp_x"));
        assert!(!config.regex.is_match("x_tmp_x"));
        assert_eq!(
            check("action: rename\n").unwrap_err(),
            "r.yml:1:9: unknown relabel action \"rename\" (expected one of replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)"
        );
    }

    #[test]
    fn per_action_rules() {
        assert_eq!(
            check("source_labels: [a]\n").unwrap_err(),
            "r.yml:1:1: relabel configuration for replace action requires 'target_label' value"
        );
        assert_eq!(
            check("action: hashmod\ntarget_label: shard\n").unwrap_err(),
            "r.yml:1:1: relabel configuration for hashmod action requires a non-zero 'modulus'"
        );
        check("action: hashmod\ntarget_label: shard\nmodulus: 4\nsource_labels: [a]\n").unwrap();
        assert_eq!(
            check("action: lowercase\nsource_labels: [a]\n").unwrap_err(),
            "r.yml:1:1: relabel configuration for lowercase action requires 'target_label' value"
        );
        assert_eq!(
            check("action: uppercase\ntarget_label: b\nreplacement: x\n").unwrap_err(),
            "r.yml:3:14: 'replacement' can not be set for uppercase action"
        );
        assert_eq!(
            check("action: keepequal\ntarget_label: b\nregex: (.*)\n").unwrap_err(),
            "r.yml:1:1: keepequal action requires only 'source_labels' and 'target_label', and no other fields"
        );
        check("action: dropequal\nsource_labels: [a]\ntarget_label: b\n").unwrap();
        assert_eq!(
            check("action: labeldrop\nregex: x\nsource_labels: [a]\n").unwrap_err(),
            "r.yml:1:1: labeldrop action requires only 'regex', and no other fields"
        );
        assert_eq!(
            check("action: labelkeep\nregex: x\ntarget_label: a\n").unwrap_err(),
            "r.yml:1:1: labelkeep action requires only 'regex', and no other fields"
        );
        check("action: labelmap\nregex: __meta_(.+)\n").unwrap();
        check("action: keep\nsource_labels: [__name__]\nregex: up\n").unwrap();
        assert_eq!(
            check("source_labels: ['']\ntarget_label: x\n").unwrap_err(),
            "r.yml:1:17: source_labels: \"\" is not a valid label name"
        );
    }

    #[test]
    fn target_label_validity_depends_on_the_scheme() {
        check("target_label: service.name\n").unwrap();
        assert_eq!(
            check_with("target_label: service.name\n", NameValidation::Legacy).unwrap_err(),
            "r.yml:1:15: \"service.name\" is invalid 'target_label' for replace action"
        );
        check_with("target_label: ${1}_x\n", NameValidation::Legacy).unwrap();
        assert_eq!(
            check_with("target_label: 1$x\n", NameValidation::Legacy).unwrap_err(),
            "r.yml:1:15: \"1$x\" is invalid 'target_label' for replace action"
        );
        assert_eq!(
            check_with(
                "action: labelmap\nregex: (.*)\nreplacement: a-$1\n",
                NameValidation::Legacy
            )
            .unwrap_err(),
            "r.yml:3:14: \"a-$1\" is invalid 'replacement' for labelmap action"
        );
    }

    #[test]
    fn bad_regex_points_at_the_value() {
        let error = check("regex: 'a(b'\ntarget_label: x\n").unwrap_err();
        assert!(
            error.starts_with("r.yml:1:8: invalid regular expression \"a(b\": "),
            "{error}"
        );
    }

    proptest! {
        #[test]
        fn relabel_regex_is_anchored(text in "[a-z]{1,8}", prefix in "[a-z]{1,3}") {
            let regex = RelabelRegex::new(&text).unwrap();
            prop_assert!(regex.is_match(&text));
            let prefixed = format!("{prefix}{text}");
            let suffixed = format!("{text}{prefix}");
            prop_assert!(!regex.is_match(&prefixed));
            prop_assert!(!regex.is_match(&suffixed));
        }

        #[test]
        fn any_legacy_target_label_is_accepted_for_replace(name in "[a-zA-Z_][a-zA-Z0-9_]{0,16}") {
            let yaml = format!("target_label: {name}\n");
            prop_assert!(check_with(&yaml, NameValidation::Legacy).is_ok());
        }

        #[test]
        fn arbitrary_patterns_never_panic(pattern in "\\PC{0,16}") {
            let _ = RelabelRegex::new(&pattern);
        }
    }
}

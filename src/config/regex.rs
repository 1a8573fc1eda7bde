//! Regular expressions as Prometheus and Alertmanager use them in configuration: fully anchored
//! (`^(?:…)$`), RE2 syntax, bounded in size.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Compiled programs larger than this are refused: a configuration regex is small, and an
/// unbounded one would let one line of YAML take the process's memory.
const COMPILED_SIZE_LIMIT: usize = 1 << 20;

/// A regex that must match the whole input. Keeps the text the user wrote, for printing.
#[derive(Clone)]
pub struct AnchoredRegex {
    source: String,
    compiled: regex::Regex,
}

impl AnchoredRegex {
    pub fn new(source: &str) -> Result<AnchoredRegex, String> {
        let compiled = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(COMPILED_SIZE_LIMIT)
            .build()
            .map_err(|error| {
                format!(
                    "invalid regular expression {source:?}: {}",
                    one_line(&error)
                )
            })?;
        Ok(AnchoredRegex {
            source: source.to_string(),
            compiled,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.compiled.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn compiled(&self) -> &regex::Regex {
        &self.compiled
    }
}

/// The regex crate prints multi-line errors with a caret diagram; a config error is one line.
fn one_line(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or("syntax error")
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled program exceeds the limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

impl PartialEq for AnchoredRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for AnchoredRegex {}

impl fmt::Debug for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnchoredRegex({:?})", self.source)
    }
}

impl fmt::Display for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for AnchoredRegex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for AnchoredRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        AnchoredRegex::new(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_anchored_at_both_ends() {
        let regex = AnchoredRegex::new("foo|bar").unwrap();
        assert!(regex.is_match("foo"));
        assert!(regex.is_match("bar"));
        assert!(!regex.is_match("foobar"));
        assert!(!regex.is_match("xfoo"));
    }

    #[test]
    fn errors_are_one_line_and_name_the_pattern() {
        let error = AnchoredRegex::new("a(b").unwrap_err();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains("\"a(b\""), "{error}");
    }

    #[test]
    fn huge_programs_are_refused() {
        let error = AnchoredRegex::new("(a{1000}){1000}").unwrap_err();
        assert!(error.contains("exceeds the limit"), "{error}");
    }
}

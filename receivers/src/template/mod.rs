//! Notification templates: Go's `text/template` language as Alertmanager users write it, with
//! Alertmanager's data model (`.Alerts.Firing`, `.CommonLabels.SortedPairs`, …) and functions
//! (`toUpper`, `join`, `safeHtml`, `date`, …), written for Tocsin.
//!
//! Several files share one namespace of `define`d templates; a later definition replaces an
//! earlier one, as `ParseGlob` does in Alertmanager, so users can override the defaults. A
//! render either runs a defined template or parses a text (which may call defined templates),
//! in text mode or in HTML mode, where interpolated values are HTML-escaped unless they come
//! from `safeHtml`.
//!
//! The same engine runs Prometheus's dialect for alerting rules' labels and annotations
//! ([`prometheus`]): Prometheus's data and functions instead of Alertmanager's. The parser
//! takes the dialect and rejects the other dialect's functions, as Go's does with a `FuncMap`
//! that lacks them. Both dialects use Go's regexp semantics (`goregex`).

mod exec;
mod funcs;
mod goregex;
mod lexer;
mod parse;
pub mod prometheus;
mod prometheus_funcs;
mod timefmt;
mod value;

#[cfg(test)]
mod prometheus_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use crate::data::NotificationData;

/// Tocsin's own default templates (`__subject`, `email.default.*`, …), loaded by
/// [`Templates::new`] before any user file.
pub const DEFAULT_TEMPLATES: &str = include_str!("default.tmpl");
/// The file name errors in [`DEFAULT_TEMPLATES`] would carry.
pub const DEFAULT_TEMPLATES_NAME: &str = "tocsin/default.tmpl";
/// The name errors in a text given to [`Templates::render`] carry.
pub const INLINE_TEMPLATE_NAME: &str = "inline";

/// Text or HTML output: HTML mode escapes every interpolated value (`&<>"'+`) unless it
/// comes from `safeHtml`, as Alertmanager's `html/template` does in HTML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderMode {
    Text,
    Html,
}

/// Bounds on one render, so that a template cannot hang or exhaust memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of output, and of any string a function builds.
    pub max_output_bytes: usize,
    /// Nested `template` calls.
    pub max_call_depth: usize,
    /// `range` iterations over the whole render.
    pub max_range_iterations: u64,
    /// Evaluated nodes and commands over the whole render (catches recursion that fans out).
    pub max_steps: u64,
    /// Size of one template file or text.
    pub max_source_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_output_bytes: 1 << 20,
            max_call_depth: 100,
            max_range_iterations: 100_000,
            max_steps: 1_000_000,
            max_source_bytes: 1 << 20,
        }
    }
}

/// A template failure, located as `file:line:column` (1-based; columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}:{line}:{column}: executing {template:?}: {message}")]
    Exec {
        file: String,
        template: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("no template named {0:?}")]
    NoSuchTemplate(String),
    /// A parse failure of a Prometheus-dialect text, worded as Prometheus's `Expander` words
    /// it (Go reports only the line of a parse error).
    #[error("error parsing template {name}: template: {name}:{line}: {message}")]
    PrometheusParse {
        name: String,
        line: usize,
        message: String,
    },
    /// An evaluation failure of a Prometheus-dialect text, worded as Prometheus's `Expander`
    /// words it. `column` is Go's: a 0-based byte offset within the line; `context` is the
    /// failing node's text.
    #[error(
        "error executing template {name}: template: {name}:{line}:{column}: executing {template:?} at <{context}>: {message}"
    )]
    PrometheusExec {
        name: String,
        template: String,
        line: usize,
        column: usize,
        context: String,
        message: String,
    },
    #[error("{file}: template source is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        file: String,
        size: usize,
        limit: usize,
    },
}

/// A file's text, shared by the templates defined in it, for error positions.
#[derive(Debug)]
pub(crate) struct Source {
    name: String,
    text: String,
}

impl Source {
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

/// One named template: a `define`, a `block`, or a file's top level.
#[derive(Debug)]
pub(crate) struct Defined {
    name: String,
    source: Arc<Source>,
    body: Vec<parse::Node>,
}

impl Defined {
    fn locate(&self, offset: usize, message: String) -> TemplateError {
        let (line, column) = self.source.line_column(offset);
        TemplateError::Exec {
            file: self.source.name.clone(),
            template: self.name.clone(),
            line,
            column,
            message,
        }
    }
}

/// A set of templates sharing one namespace of names.
#[derive(Debug, Clone)]
pub struct Templates {
    defined: HashMap<String, Arc<Defined>>,
    limits: Limits,
}

impl Default for Templates {
    fn default() -> Templates {
        Templates::new()
    }
}

impl Templates {
    /// Templates holding Tocsin's defaults ([`DEFAULT_TEMPLATES`]).
    pub fn new() -> Templates {
        let mut templates = Templates::empty();
        // The embedded defaults are tested to parse; should they not, users' own files still work.
        let _ = templates.add_file(DEFAULT_TEMPLATES_NAME, DEFAULT_TEMPLATES);
        templates
    }

    /// Templates without any definitions.
    pub fn empty() -> Templates {
        Templates {
            defined: HashMap::new(),
            limits: Limits::default(),
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Templates {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses a file and adds what it defines; the file's top level becomes a template named
    /// `name`. All or nothing: on error nothing changes. A definition replaces an earlier one of
    /// the same name from another file, unless its body is only whitespace.
    pub fn add_file(&mut self, name: &str, text: &str) -> Result<(), TemplateError> {
        let definitions = self.parse_definitions(name, text)?;
        for defined in definitions {
            let keeps_existing =
                parse::is_empty_body(&defined.body) && self.defined.contains_key(&defined.name);
            if !keeps_existing {
                self.defined.insert(defined.name.clone(), Arc::new(defined));
            }
        }
        Ok(())
    }

    /// Parses a text as [`Templates::add_file`] would, without keeping it: for checking
    /// configuration.
    pub fn check(&self, name: &str, text: &str) -> Result<(), TemplateError> {
        self.parse_definitions(name, text).map(|_| ())
    }

    fn parse_definitions(&self, name: &str, text: &str) -> Result<Vec<Defined>, TemplateError> {
        parse_source(
            name,
            text,
            funcs::Dialect::Alertmanager,
            self.limits.max_source_bytes,
        )
    }

    pub fn is_defined(&self, name: &str) -> bool {
        self.defined.contains_key(name)
    }

    /// The defined names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.defined.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Renders the template named `text_or_name` if there is one, else parses `text_or_name`
    /// as template text (as Alertmanager's `ExecuteTextString` does with configuration fields).
    pub fn render(
        &self,
        text_or_name: &str,
        data: &NotificationData,
        mode: RenderMode,
    ) -> Result<String, TemplateError> {
        if self.defined.contains_key(text_or_name) {
            return self.render_named(text_or_name, data, mode);
        }
        self.render_text(text_or_name, data, mode)
    }

    /// Renders a defined template.
    pub fn render_named(
        &self,
        name: &str,
        data: &NotificationData,
        mode: RenderMode,
    ) -> Result<String, TemplateError> {
        let template = self
            .defined
            .get(name)
            .ok_or_else(|| TemplateError::NoSuchTemplate(name.to_string()))?;
        let no_overlay = HashMap::new();
        let mut exec = exec::Exec::new(
            &no_overlay,
            &self.defined,
            mode == RenderMode::Html,
            &self.limits,
            funcs::FuncContext::alertmanager(),
        );
        exec.run(template, value::Value::from_data(data))?;
        Ok(exec.out)
    }

    /// Parses and renders a text; templates it defines are visible to this render only.
    pub fn render_text(
        &self,
        text: &str,
        data: &NotificationData,
        mode: RenderMode,
    ) -> Result<String, TemplateError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let mut definitions = self
            .parse_definitions(INLINE_TEMPLATE_NAME, text)?
            .into_iter();
        let Some(top_level) = definitions.next() else {
            return Ok(String::new());
        };
        let overlay: HashMap<String, Arc<Defined>> = definitions
            .filter(|defined| {
                !(parse::is_empty_body(&defined.body) && self.defined.contains_key(&defined.name))
            })
            .map(|defined| (defined.name.clone(), Arc::new(defined)))
            .collect();
        let mut exec = exec::Exec::new(
            &overlay,
            &self.defined,
            mode == RenderMode::Html,
            &self.limits,
            funcs::FuncContext::alertmanager(),
        );
        exec.run(&top_level, value::Value::from_data(data))?;
        Ok(exec.out)
    }
}

/// Parses one file or text into its top-level template (first) and the templates it defines,
/// with Go's rules for redefinitions within one text.
pub(crate) fn parse_source(
    name: &str,
    text: &str,
    dialect: funcs::Dialect,
    max_source_bytes: usize,
) -> Result<Vec<Defined>, TemplateError> {
    if text.len() > max_source_bytes {
        return Err(TemplateError::TooLarge {
            file: name.to_string(),
            size: text.len(),
            limit: max_source_bytes,
        });
    }
    let source = Arc::new(Source {
        name: name.to_string(),
        text: text.to_string(),
    });
    let parsed = parse::parse(text, dialect).map_err(|error| {
        let (line, column) = source.line_column(error.offset);
        TemplateError::Parse {
            file: name.to_string(),
            line,
            column,
            message: error.message,
        }
    })?;
    let mut definitions: Vec<Defined> = Vec::with_capacity(parsed.definitions.len() + 1);
    let top_level = std::iter::once(parse::Definition {
        name: name.to_string(),
        pos: 0,
        body: parsed.body,
    });
    for definition in top_level.chain(parsed.definitions) {
        if let Some(earlier) = definitions.iter_mut().find(|d| d.name == definition.name) {
            // Within one file Go allows a redefinition only if one of the two is empty.
            if parse::is_empty_body(&definition.body) {
                continue;
            }
            if !parse::is_empty_body(&earlier.body) {
                let (line, column) = source.line_column(definition.pos);
                return Err(TemplateError::Parse {
                    file: name.to_string(),
                    line,
                    column,
                    message: format!("multiple definition of template {:?}", definition.name),
                });
            }
            earlier.body = definition.body;
            continue;
        }
        definitions.push(Defined {
            name: definition.name,
            source: source.clone(),
            body: definition.body,
        });
    }
    Ok(definitions)
}

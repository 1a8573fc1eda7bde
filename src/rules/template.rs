//! Alerting rules' labels and annotations expanded with Prometheus's template language.
//!
//! The one place the rule manager touches the template engine: [`Expander`] carries what a
//! template may see (the sample's labels and value, the external labels and URL) and answers
//! `query` against the same engine and storage the rule is evaluated over, at the evaluation
//! time. A template that fails becomes `<error expanding template: ...>`, as in Prometheus; the
//! error is logged and evaluation goes on.

#![deny(clippy::disallowed_methods)]

use crate::promql::{Engine, Labels, Queryable, Value};
use tocsin_receivers::template::Limits;
use tocsin_receivers::template::prometheus::{
    QuerySample, RuleTemplateData, TemplateQuery, expand,
};

/// `query` in a template: an instant query at the evaluation time.
struct EngineQuery<'a> {
    engine: &'a Engine,
    storage: &'a dyn Queryable,
    at_ms: i64,
}

impl TemplateQuery for EngineQuery<'_> {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String> {
        let result = self
            .engine
            .instant_query(self.storage, expr, self.at_ms)
            .map_err(|error| error.to_string())?;
        match result.value {
            Value::Vector(samples) => Ok(samples
                .into_iter()
                .map(|sample| QuerySample {
                    labels: pairs(&sample.labels),
                    value: sample.v,
                })
                .collect()),
            Value::Scalar { v, .. } => Ok(vec![QuerySample {
                labels: Vec::new(),
                value: v,
            }]),
            // Prometheus's rule query function accepts only vectors and scalars.
            _ => Err("rule result is not a vector or scalar".to_string()),
        }
    }
}

pub fn pairs(labels: &Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Everything one alert's templates see.
pub struct Expander<'a> {
    /// `__alert_<rule name>`, the template's name in error messages.
    pub template_name: String,
    pub sample_labels: Vec<(String, String)>,
    pub external_labels: &'a [(String, String)],
    pub external_url: &'a str,
    pub value: f64,
    pub engine: &'a Engine,
    pub storage: &'a dyn Queryable,
    /// The evaluation time (not shifted by the query offset), for `query` and time functions.
    pub now_ms: i64,
}

impl Expander<'_> {
    /// The expanded text, or Prometheus's `<error expanding template: ...>`.
    pub fn expand(&self, text: &str) -> String {
        // Text without actions cannot change; skip the engine for the common case.
        if !text.contains("{{") {
            return text.to_string();
        }
        let data = RuleTemplateData {
            labels: &self.sample_labels,
            external_labels: self.external_labels,
            external_url: self.external_url,
            value: self.value,
        };
        let query = EngineQuery {
            engine: self.engine,
            storage: self.storage,
            at_ms: self.now_ms,
        };
        match expand(
            &self.template_name,
            text,
            &data,
            &query,
            self.now_ms,
            &Limits::default(),
        ) {
            Ok(expanded) => expanded,
            Err(error) => {
                tracing::warn!(template = %self.template_name, %error, "Expanding alert template failed");
                format!("<error expanding template: {error}>")
            }
        }
    }
}

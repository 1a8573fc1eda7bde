//! Log output in the two formats Prometheus and Alertmanager offer: logfmt and JSON.

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn as_tracing(self) -> Level {
        match self {
            LogLevel::Debug => Level::DEBUG,
            LogLevel::Info => Level::INFO,
            LogLevel::Warn => Level::WARN,
            LogLevel::Error => Level::ERROR,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Installs the process's logger, writing to standard error. Call once, before anything logs.
pub fn init(level: LogLevel, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level.as_tracing())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // A logger already installed (in tests) is not an error worth stopping for.
    drop(result);
}

/// `ts=… level=… caller=… msg="…" key=value`, the layout Prometheus's logs use, so existing log
/// pipelines parse Tocsin's lines.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let timestamp = jiff::Timestamp::now();
        write!(
            writer,
            "ts={timestamp:.3} level={} caller={}",
            metadata.level().as_str().to_lowercase(),
            metadata.target()
        )?;
        let mut fields = LogfmtFields::default();
        event.record(&mut fields);
        writeln!(writer, "{}", fields.text)
    }
}

#[derive(Default)]
struct LogfmtFields {
    text: String,
}

impl LogfmtFields {
    fn push(&mut self, key: &str, value: &str) {
        let key = if key == "message" { "msg" } else { key };
        let _ = write!(self.text, " {key}=");
        let needs_quotes = value.is_empty()
            || value.contains(|c: char| c == ' ' || c == '=' || c == '"' || c.is_control());
        if needs_quotes {
            let _ = write!(self.text, "{value:?}");
        } else {
            self.text.push_str(value);
        }
    }
}

impl Visit for LogfmtFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field.name(), &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_values_only_when_needed() {
        let mut fields = LogfmtFields::default();
        fields.push("message", "config loaded");
        fields.push("file", "/etc/tocsin.yml");
        fields.push("empty", "");
        assert_eq!(
            fields.text,
            " msg=\"config loaded\" file=/etc/tocsin.yml empty=\"\""
        );
    }
}

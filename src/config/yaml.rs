//! Reading YAML documents into the config model, with positions on every error.

use super::error::{ConfigError, Position};
use serde::de::DeserializeOwned;

/// Configuration files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Keys of Prometheus's and Alertmanager's configuration that Tocsin knows but does not
/// implement. Naming them as unsupported (rather than unknown) tells the user the key is right
/// but the feature is missing.
const UNSUPPORTED_KEYS: &[&str] = &[
    // Service discovery mechanisms other than static, file, HTTP and DNS.
    "azure_sd_configs",
    "consul_sd_configs",
    "digitalocean_sd_configs",
    "docker_sd_configs",
    "dockerswarm_sd_configs",
    "ec2_sd_configs",
    "eureka_sd_configs",
    "gce_sd_configs",
    "hetzner_sd_configs",
    "ionos_sd_configs",
    "kubernetes_sd_configs",
    "kuma_sd_configs",
    "lightsail_sd_configs",
    "linode_sd_configs",
    "marathon_sd_configs",
    "nerve_sd_configs",
    "nomad_sd_configs",
    "openstack_sd_configs",
    "ovhcloud_sd_configs",
    "puppetdb_sd_configs",
    "scaleway_sd_configs",
    "serverset_sd_configs",
    "triton_sd_configs",
    "uyuni_sd_configs",
    "vultr_sd_configs",
    "stackit_sd_configs",
    // Authentication schemes that need a cloud provider's SDK.
    "oauth2",
    "sigv4",
    "azuread",
    "google_iam",
    // Prometheus features outside Tocsin's scope.
    "tracing",
    "otlp",
    "runtime",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
    "scrape_native_histograms",
    "extra_scrape_metrics",
    "query_log_file",
    "scrape_failure_log_file",
    // Prometheus's TSDB retention in the config file (Tocsin sets retention with flags).
    "retention",
    // Custom request headers on the HTTP client (scrapes, SD, Alertmanager, remote).
    "http_headers",
    // Alertmanager integrations other than webhook and email.
    "discord_configs",
    "jira_configs",
    "msteams_configs",
    "msteamsv2_configs",
    "opsgenie_configs",
    "pagerduty_configs",
    "pushover_configs",
    "rocketchat_configs",
    "slack_configs",
    "sns_configs",
    "telegram_configs",
    "victorops_configs",
    "webex_configs",
    "wechat_configs",
    "incidentio_configs",
    "mattermost_configs",
    "googlechat_configs",
    // Email threading, newer than the email settings Tocsin implements.
    "threading",
    // Alertmanager global defaults that only those integrations use.
    "jira_api_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "opsgenie_api_url",
    "pagerduty_url",
    "rocketchat_api_url",
    "rocketchat_token",
    "rocketchat_token_file",
    "rocketchat_token_id",
    "rocketchat_token_id_file",
    "slack_api_url",
    "slack_api_url_file",
    "slack_app_token",
    "slack_app_token_file",
    "slack_app_url",
    "telegram_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "victorops_api_url",
    "webex_api_url",
    "wechat_api_corp_id",
    "wechat_api_secret",
    "wechat_api_url",
];

/// Parses one YAML document. `file` names the source in errors.
pub fn parse_document<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    serde_saphyr::from_str(text).map_err(|error| {
        let mut error = config_error(&error, file);
        error.message = name_the_key(text, error.at, error.message);
        error
    })
}

/// serde says only `invalid u64` when a number field holds text; the key and value are on the
/// line the error points at, so name them.
fn name_the_key(text: &str, at: Position, message: String) -> String {
    let Some(kind) = message.strip_prefix("invalid ") else {
        return message;
    };
    let expected = match kind {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "bool" | "boolean" => "true or false",
        _ => return message,
    };
    let line_index = usize::try_from(at.line).unwrap_or(0).saturating_sub(1);
    let column_index = usize::try_from(at.column).unwrap_or(0).saturating_sub(1);
    let Some(line) = text.lines().nth(line_index) else {
        return message;
    };
    let (before, value) = match line.char_indices().nth(column_index) {
        Some((byte, _)) => line.split_at(byte),
        None => return message,
    };
    let value = value
        .split(" #")
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches([',', '}']);
    let key = before
        .trim_end()
        .strip_suffix(':')
        .and_then(|key| key.rsplit([' ', '{', ',', '-']).next())
        .filter(|key| !key.is_empty());
    match key {
        Some(key) => format!("{key}: expected {expected}, found {value:?}"),
        None => format!("expected {expected}, found {value:?}"),
    }
}

/// Prints a config value as YAML (secrets come out as `<secret>`).
pub fn to_yaml<T: serde::Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|error| format!("# cannot print: {error}\n"))
}

fn config_error(error: &serde_saphyr::Error, file: &str) -> ConfigError {
    let error = error.without_snippet();
    let at = error.location().map(Position::from).unwrap_or_default();
    let rendered = error.render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    });
    ConfigError {
        file: file.to_string(),
        at,
        message: explain(strip_position(&rendered)),
    }
}

/// serde-saphyr appends its own ` at line L, column C`; ours comes first, so drop the copy.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(index) => &message[..index],
        None => message,
    }
}

/// Rewrites serde's "unknown field" into "not supported" for keys Tocsin knows but lacks.
fn explain(message: &str) -> String {
    let unknown_key = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    match unknown_key {
        Some(key) if UNSUPPORTED_KEYS.contains(&key) => {
            format!("`{key}` is not supported by Tocsin")
        }
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Limits {
        sample_limit: Option<u64>,
        honor_labels: Option<bool>,
    }

    #[test]
    fn type_errors_name_the_key_and_value() {
        let error = parse_document::<Limits>("sample_limit: lots\n", "f.yml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "f.yml:1:15: sample_limit: expected a whole number, 0 or more, found \"lots\""
        );
        let error = parse_document::<Limits>("{honor_labels: maybe}\n", "f.yml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "f.yml:1:16: honor_labels: expected true or false, found \"maybe\""
        );
    }
}

//! `log_notifications:`, a Tocsin extension at the top level beside `alertmanager`: receivers
//! whose notifications are also written to the node's log, one readable line each. The embedded
//! default configuration uses it, so a node with no configuration shows its alerts.
//!
//! It sits outside the Alertmanager document on purpose: that document stays one Alertmanager
//! and `amtool` accept (`amtool config show` and `config routes` parse it from
//! `/api/v2/status`), whether it is inline or an `alertmanager_config_file`. A receiver without
//! integrations keeps Alertmanager's meaning, a black hole, and logs nothing.

use super::alertmanager::{AlertmanagerConfig, LogConfig};
use super::{Invalid, Spanned};
use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogNotifications {
    /// Names of receivers of the Alertmanager part.
    #[serde(default)]
    pub receivers: Vec<Spanned<String>>,
    /// Whether resolved alerts are logged too.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
}

impl LogNotifications {
    /// Gives each named receiver of `alertmanager` a log integration. A name that is no
    /// receiver, or is listed twice, is an error at that name.
    pub fn apply(&self, alertmanager: &mut AlertmanagerConfig) -> Result<(), Invalid> {
        for (index, name) in self.receivers.iter().enumerate() {
            if self.receivers[..index]
                .iter()
                .any(|earlier| earlier.value == name.value)
            {
                return Err(Invalid::on(
                    name,
                    format!("log_notifications: receiver {:?} listed twice", name.value),
                ));
            }
            let receiver = alertmanager
                .receivers
                .iter_mut()
                .find(|receiver| receiver.value.name.value == name.value)
                .ok_or_else(|| {
                    Invalid::on(
                        name,
                        format!(
                            "log_notifications: no receiver named {:?} in the Alertmanager \
                             configuration",
                            name.value
                        ),
                    )
                })?;
            receiver.value.log_configs.push(LogConfig {
                send_resolved: self.send_resolved,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_text;
    use std::path::Path;

    const ALERTMANAGER: &str = "alertmanager:\n  route: {receiver: team}\n  receivers:\n    \
                                - name: team\n    - name: other\n";

    #[test]
    fn named_receivers_get_a_log_integration_and_the_alertmanager_text_stays_pure() {
        let text = format!(
            "{ALERTMANAGER}log_notifications:\n  receivers: [team]\n  send_resolved: false\n"
        );
        let loaded = load_text(&text, "t.yml", Path::new(".")).unwrap();
        let receivers = &loaded.alertmanager.receivers;
        assert_eq!(receivers[0].value.log_configs.len(), 1);
        assert!(!receivers[0].value.log_configs[0].send_resolved);
        assert!(receivers[1].value.log_configs.is_empty());
        assert!(
            !loaded.alertmanager_text.contains("log"),
            "{}",
            loaded.alertmanager_text
        );
    }

    #[test]
    fn unknown_and_repeated_receivers_are_errors_at_the_name() {
        let unknown = format!("{ALERTMANAGER}log_notifications:\n  receivers: [team, nobody]\n");
        let error = load_text(&unknown, "t.yml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("t.yml:7:") && error.contains("no receiver named \"nobody\""),
            "{error}"
        );
        let twice = format!("{ALERTMANAGER}log_notifications:\n  receivers: [team, team]\n");
        let error = load_text(&twice, "t.yml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(error.contains("listed twice"), "{error}");
    }

    #[test]
    fn log_configs_is_not_an_alertmanager_key() {
        let text = "alertmanager:\n  route: {receiver: team}\n  receivers:\n    \
                    - name: team\n      log_configs: [{}]\n";
        assert!(load_text(text, "t.yml", Path::new(".")).is_err());
    }
}

//! Tocsin's receivers: the integrations that turn a notification from the alerting pipeline
//! into a delivery (webhook, email, the node's log), the templates that render it, and the
//! delivery policy (retries, backoff, deadlines).
//!
//! The crate knows nothing of the pipeline's types: the node converts a flush into
//! [`NotificationData`], the data Alertmanager's templates see, and hands it to a notifier.

pub mod data;
pub mod email;
pub mod http_client;
pub mod log;
pub mod notifier;
pub mod retry;
pub mod template;
pub mod webhook;

pub use data::{AlertData, AlertStatus, KeyValues, NotificationData};

//! Alertmanager's API v2 (`/api/v2`), which amtool, Grafana and Prometheus speak.

pub mod wire;

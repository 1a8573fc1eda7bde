//! What was built: version, git revision and compiler, recorded by `build.rs`.

use serde::Serialize;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("TOCSIN_REVISION");
pub const BRANCH: &str = env!("TOCSIN_BRANCH");
pub const BUILD_DATE: &str = env!("TOCSIN_BUILD_DATE");
pub const RUSTC_VERSION: &str = env!("TOCSIN_RUSTC_VERSION");

/// The text `--version` prints, in the layout Prometheus's tools use.
pub const VERSION_TEXT: &str = concat!(
    "tocsin, version ",
    env!("CARGO_PKG_VERSION"),
    " (branch: ",
    env!("TOCSIN_BRANCH"),
    ", revision: ",
    env!("TOCSIN_REVISION"),
    ")\n  build date: ",
    env!("TOCSIN_BUILD_DATE"),
    "\n  compiler: ",
    env!("TOCSIN_RUSTC_VERSION"),
);

/// The `data` of `/api/v1/status/buildinfo` and the `versionInfo` of `/api/v2/status`. The key
/// `goVersion` is kept because Grafana and amtool read it; it carries the Rust compiler here.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub branch: &'static str,
    pub build_user: &'static str,
    pub build_date: &'static str,
    pub go_version: &'static str,
}

pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: VERSION,
        revision: REVISION,
        branch: BRANCH,
        build_user: "",
        build_date: BUILD_DATE,
        go_version: RUSTC_VERSION,
    }
}

//! The `tocsin` command line: parses flags and subcommands and calls into the library.
#![allow(clippy::print_stdout)]

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tocsin::logging::{LogFormat, LogLevel};
use tocsin::node::{ClusterFlags, NodeOptions};

#[derive(Parser)]
#[command(
    name = "tocsin",
    about = "A gossip-first, highly available alerting system.",
    long_about = "A gossip-first, highly available alerting system.\n\n\
        Without a subcommand, runs a node: Prometheus-compatible ingestion, storage and rules with \
        Alertmanager-compatible routing, silences and notifications, in one process. The \
        configuration is a prometheus.yml with optional `alertmanager:` and `cluster:` sections.",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Print version and build information.
    #[arg(long)]
    version: bool,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunFlags,
}

#[derive(Subcommand)]
enum Command {
    /// Check files without running a node.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run unit tests.
    #[command(subcommand)]
    Test(TestCommand),
    /// Create the certificates a cluster's nodes authenticate each other with: a cluster CA
    /// (`ca.pem`, `ca-key.pem`; reused if DIR already has them, so nodes can be added later) and
    /// for each NAME `NAME.pem` and `NAME-key.pem`. Give each node its own certificate and key,
    /// and `ca.pem`, in its `--cluster.tls-dir`; keep `ca-key.pem` away from the nodes.
    Certs {
        /// Folder to write the files into (created if missing).
        #[arg(long, value_name = "DIR", default_value = "certs")]
        dir: PathBuf,
        /// Node names (each node's `--cluster.node-name`).
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Validate configuration files, with the rule files, Alertmanager configuration and
    /// templates they reference. Prints `file:line:column: what is wrong` for the first error of
    /// each file and exits with status 1 if any file is invalid.
    Config {
        /// Configuration files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Validate rule files as `promtool check rules` does: prints `SUCCESS: N rules found` or
    /// every error of each file; exits with status 1 if any file is invalid, 3 if only lint
    /// checks found something and `--lint-fatal` is set.
    Rules {
        /// Rule files to check. Without any, the rules are read from standard input.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Lint checks to apply, comma-separated: all, duplicate-rules, none.
        #[arg(long, value_name = "CHECKS", default_value = "duplicate-rules")]
        lint: String,
        /// Exit with status 3 when a lint check finds something.
        #[arg(long = "lint-fatal")]
        lint_fatal: bool,
    },
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run rule unit tests (promtool's test file format); exits with status 1 if any fails.
    Rules {
        /// Unit test files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Only run test groups whose name matches this regular expression. Repeat for several.
        #[arg(long, value_name = "REGEX")]
        run: Vec<String>,
    },
}

#[derive(Args)]
struct RunFlags {
    /// Configuration file (a prometheus.yml, optionally with `alertmanager:` and `cluster:`).
    /// Without it, Tocsin runs with its embedded default configuration.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// Folder for the node's data. Created if missing; locked against a second process.
    #[arg(long = "storage.path", value_name = "DIR", default_value = "data/")]
    storage_path: PathBuf,

    /// Address for the HTTP API, UI and /metrics (host:port; `:9090` listens on all interfaces).
    #[arg(
        long = "web.listen-address",
        value_name = "ADDRESS",
        default_value = "0.0.0.0:9090"
    )]
    web_listen_address: String,

    /// The URL under which Tocsin is reached from outside (for links in notifications and the
    /// UI). Its path, if any, becomes the prefix of every HTTP endpoint. Default:
    /// http://<hostname>:<port>/.
    #[arg(long = "web.external-url", value_name = "URL")]
    web_external_url: Option<String>,

    /// Only log messages of this severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    log_level: LogLevel,

    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    log_format: LogFormat,

    /// UDP address for cluster traffic (QUIC). Empty: the node runs alone. Overrides the config's
    /// `cluster.listen_address`.
    #[arg(long = "cluster.listen-address", value_name = "ADDRESS")]
    cluster_listen_address: Option<String>,

    /// Address peers use to reach this node, if it differs from the listen address.
    ///
    #[arg(long = "cluster.advertise-address", value_name = "ADDRESS")]
    cluster_advertise_address: Option<String>,

    /// A peer to join, as host:port. Repeat for several.
    #[arg(long = "cluster.peer", value_name = "ADDRESS")]
    cluster_peer: Vec<String>,

    /// Name of the cluster; nodes of another cluster are refused. Default: tocsin.
    ///
    #[arg(long = "cluster.name", value_name = "NAME")]
    cluster_name: Option<String>,

    /// This node's name in the cluster and in its certificate file names. Default: the host name.
    ///
    #[arg(long = "cluster.node-name", value_name = "NAME")]
    cluster_node_name: Option<String>,

    /// Folder with ca.pem, <node>.pem and <node>-key.pem for mutual TLS between nodes.
    /// Default: certs.
    #[arg(long = "cluster.tls-dir", value_name = "DIR")]
    cluster_tls_dir: Option<PathBuf>,

    /// How long a peer ranked k waits (k × this) before notifying in another's place, e.g. 15s.
    /// Default: 15s.
    #[arg(long = "cluster.peer-timeout", value_name = "DURATION", value_parser = humantime::parse_duration)]
    cluster_peer_timeout: Option<std::time::Duration>,

    /// Run the cluster without authentication: each node makes itself a throw-away certificate
    /// and accepts any peer. For local experiments only; a warning is logged.
    #[arg(long = "cluster.insecure")]
    cluster_insecure: bool,

    /// How long to keep samples (e.g. 15d, 1y). If neither this, the deprecated
    /// --storage.tsdb.retention nor --storage.tsdb.retention.size is set, 15d. The config
    /// file's storage.tsdb.retention.time overrides it.
    #[arg(long = "storage.tsdb.retention.time", value_name = "DURATION", value_parser = parse_retention_time)]
    storage_tsdb_retention_time: Option<i64>,

    /// [DEPRECATED] Use --storage.tsdb.retention.time.
    #[arg(long = "storage.tsdb.retention", value_name = "DURATION", value_parser = parse_retention_time, hide = true)]
    storage_tsdb_retention: Option<i64>,

    /// Most bytes of blocks to keep, oldest deleted first (units: B, KB, MB, GB, TB, PB, EB,
    /// powers of 1024, e.g. 512MB). The config file's storage.tsdb.retention.size overrides it.
    #[arg(long = "storage.tsdb.retention.size", value_name = "SIZE", value_parser = parse_retention_size)]
    storage_tsdb_retention_size: Option<u64>,

    /// Enable the /api/v1/admin/tsdb/* endpoints (delete_series, clean_tombstones, snapshot).
    #[arg(long = "web.enable-admin-api")]
    web_enable_admin_api: bool,

    /// Max time to tolerate Tocsin's outage for restoring the "for" state of alerts.
    #[arg(long = "rules.alert.for-outage-tolerance", value_name = "DURATION", default_value = "1h", value_parser = parse_flag_duration)]
    rules_alert_for_outage_tolerance: std::time::Duration,

    /// Minimum duration between an alert's restoration and its firing ("for" state restored
    /// after a restart), for alerts whose "for" is at least this long.
    #[arg(long = "rules.alert.for-grace-period", value_name = "DURATION", default_value = "10m", value_parser = parse_flag_duration)]
    rules_alert_for_grace_period: std::time::Duration,

    /// Minimum time to wait before resending an alert to Alertmanager.
    #[arg(long = "rules.alert.resend-delay", value_name = "DURATION", default_value = "1m", value_parser = parse_flag_duration)]
    rules_alert_resend_delay: std::time::Duration,

    /// How many alerts the notifier queues for Alertmanagers; beyond it the oldest are dropped.
    #[arg(
        long = "alertmanager.notification-queue-capacity",
        value_name = "N",
        default_value_t = 10000
    )]
    alertmanager_notification_queue_capacity: usize,

    /// Send the queued alerts before shutting down (within 10 seconds).
    #[arg(
        long = "alertmanager.drain-notification-queue-on-shutdown",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    alertmanager_drain_notification_queue_on_shutdown: bool,

    /// Maximum overall number of samples to return via the remote read interface, in a single
    /// query. 0 means no limit. This limit is ignored for streamed response types.
    #[arg(
        long = "storage.remote.read-sample-limit",
        value_name = "N",
        default_value_t = 50_000_000
    )]
    storage_remote_read_sample_limit: u64,

    /// Maximum number of concurrent remote read calls (the others wait). 0 means no limit.
    #[arg(
        long = "storage.remote.read-concurrent-limit",
        value_name = "N",
        default_value_t = 10
    )]
    storage_remote_read_concurrent_limit: usize,

    /// Maximum number of bytes in a single frame for streaming remote read response types
    /// before marshalling. Note that clients might have a limit on frame size as well.
    #[arg(
        long = "storage.remote.read-max-bytes-in-frame",
        value_name = "BYTES",
        default_value_t = 1_048_576
    )]
    storage_remote_read_max_bytes_in_frame: usize,

    /// Maximum time a query may take before it is aborted (waiting for a slot included); a
    /// request's `timeout` parameter can only shorten it.
    #[arg(long = "query.timeout", value_name = "DURATION", default_value = "2m", value_parser = parse_flag_duration)]
    query_timeout: std::time::Duration,

    /// Maximum number of queries evaluated at once; more wait for a slot.
    #[arg(long = "query.max-concurrency", value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    query_max_concurrency: u32,

    /// Maximum number of samples a single query may load into memory. A query that would load
    /// more fails with errorType "execution".
    #[arg(
        long = "query.max-samples",
        value_name = "N",
        default_value_t = 50_000_000
    )]
    query_max_samples: usize,

    /// How far back an instant selector looks for a sample; a request's `lookback_delta`
    /// overrides it.
    #[arg(long = "query.lookback-delta", value_name = "DURATION", default_value = "5m", value_parser = parse_flag_duration)]
    query_lookback_delta: std::time::Duration,
}

/// A Prometheus duration flag (`1h`, `10m`).
fn parse_flag_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration: tocsin::config::PromDuration = text.parse().map_err(|e| format!("{e}"))?;
    Ok(std::time::Duration::from_millis(duration.as_millis()))
}

/// A Prometheus duration (`15d`, `1y`) in milliseconds.
fn parse_retention_time(text: &str) -> Result<i64, String> {
    let duration: tocsin::config::PromDuration = text.parse().map_err(|e| format!("{e}"))?;
    Ok(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

/// A size as Prometheus's `units.Base2Bytes` parses it.
fn parse_retention_size(text: &str) -> Result<u64, String> {
    tocsin::tsdb::units::parse_base2_bytes(text)
}

impl RunFlags {
    fn into_options(self) -> NodeOptions {
        let mut flags = std::collections::BTreeMap::new();
        let mut record = |name: &str, value: String| {
            flags.insert(name.to_string(), value);
        };
        let show_path = |path: &Option<PathBuf>| {
            path.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        record("config.file", show_path(&self.config_file));
        record("storage.path", self.storage_path.display().to_string());
        record("web.listen-address", self.web_listen_address.clone());
        record(
            "web.external-url",
            self.web_external_url.clone().unwrap_or_default(),
        );
        record("log.level", format!("{:?}", self.log_level).to_lowercase());
        record(
            "log.format",
            format!("{:?}", self.log_format).to_lowercase(),
        );
        record(
            "cluster.listen-address",
            self.cluster_listen_address.clone().unwrap_or_default(),
        );
        record(
            "cluster.advertise-address",
            self.cluster_advertise_address.clone().unwrap_or_default(),
        );
        record("cluster.peer", self.cluster_peer.join(","));
        record(
            "cluster.name",
            self.cluster_name.clone().unwrap_or_default(),
        );
        record(
            "cluster.node-name",
            self.cluster_node_name.clone().unwrap_or_default(),
        );
        record("cluster.tls-dir", show_path(&self.cluster_tls_dir));
        record("cluster.insecure", self.cluster_insecure.to_string());
        let show_ms = |ms: Option<i64>| {
            ms.map(|ms| tocsin::config::PromDuration::from_millis(ms.max(0) as u64).to_string())
                .unwrap_or_else(|| "0s".to_string())
        };
        record(
            "storage.tsdb.retention.time",
            show_ms(self.storage_tsdb_retention_time),
        );
        record(
            "storage.tsdb.retention",
            show_ms(self.storage_tsdb_retention),
        );
        record(
            "storage.tsdb.retention.size",
            tocsin::tsdb::units::ByteSize(self.storage_tsdb_retention_size.unwrap_or(0))
                .to_string(),
        );
        record(
            "web.enable-admin-api",
            self.web_enable_admin_api.to_string(),
        );
        let show_duration = |duration: std::time::Duration| {
            tocsin::config::PromDuration::from_millis(duration.as_millis() as u64).to_string()
        };
        record(
            "rules.alert.for-outage-tolerance",
            show_duration(self.rules_alert_for_outage_tolerance),
        );
        record(
            "rules.alert.for-grace-period",
            show_duration(self.rules_alert_for_grace_period),
        );
        record(
            "rules.alert.resend-delay",
            show_duration(self.rules_alert_resend_delay),
        );
        record(
            "alertmanager.notification-queue-capacity",
            self.alertmanager_notification_queue_capacity.to_string(),
        );
        record(
            "alertmanager.drain-notification-queue-on-shutdown",
            self.alertmanager_drain_notification_queue_on_shutdown
                .to_string(),
        );
        record(
            "storage.remote.read-sample-limit",
            self.storage_remote_read_sample_limit.to_string(),
        );
        record(
            "storage.remote.read-concurrent-limit",
            self.storage_remote_read_concurrent_limit.to_string(),
        );
        record(
            "storage.remote.read-max-bytes-in-frame",
            self.storage_remote_read_max_bytes_in_frame.to_string(),
        );
        record("query.timeout", show_duration(self.query_timeout));
        record(
            "query.max-concurrency",
            self.query_max_concurrency.to_string(),
        );
        record("query.max-samples", self.query_max_samples.to_string());
        record(
            "query.lookback-delta",
            show_duration(self.query_lookback_delta),
        );
        record(
            "cluster.peer-timeout",
            self.cluster_peer_timeout
                .map(|d| humantime::format_duration(d).to_string())
                .unwrap_or_default(),
        );
        NodeOptions {
            config_file: self.config_file,
            storage_path: self.storage_path,
            web_listen_address: self.web_listen_address,
            web_external_url: self.web_external_url,
            cluster: ClusterFlags {
                listen_address: self.cluster_listen_address,
                advertise_address: self.cluster_advertise_address,
                peers: self.cluster_peer,
                name: self.cluster_name,
                node_name: self.cluster_node_name,
                tls_dir: self.cluster_tls_dir,
                peer_timeout: self.cluster_peer_timeout,
                insecure: self.cluster_insecure,
            },
            tsdb_retention_time_ms: self.storage_tsdb_retention_time,
            tsdb_deprecated_retention_ms: self.storage_tsdb_retention,
            tsdb_retention_size_bytes: self.storage_tsdb_retention_size,
            web_enable_admin_api: self.web_enable_admin_api,
            rules: tocsin::node::RulesFlags {
                outage_tolerance: self.rules_alert_for_outage_tolerance,
                grace_period: self.rules_alert_for_grace_period,
                resend_delay: self.rules_alert_resend_delay,
            },
            notifier: tocsin::node::notifier::NotifierSettings {
                queue_capacity: self.alertmanager_notification_queue_capacity,
                drain_on_shutdown: self.alertmanager_drain_notification_queue_on_shutdown,
                ..Default::default()
            },
            remote_read: tocsin::api::remote_read::ReadLimits {
                sample_limit: self.storage_remote_read_sample_limit,
                concurrent_limit: self.storage_remote_read_concurrent_limit,
                max_bytes_in_frame: self.storage_remote_read_max_bytes_in_frame,
            },
            query: tocsin::promql::limits::QuerySettings::new(
                self.query_timeout,
                self.query_max_concurrency as usize,
                self.query_max_samples,
                i64::try_from(self.query_lookback_delta.as_millis()).unwrap_or(i64::MAX),
            ),
            flags,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("{}", tocsin::build_info::VERSION_TEXT);
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Check(CheckCommand::Config { files })) => check_config(&files),
        Some(Command::Check(CheckCommand::Rules {
            files,
            lint,
            lint_fatal,
        })) => check_rules(&files, &lint, lint_fatal),
        Some(Command::Test(TestCommand::Rules { files, run })) => test_rules(&files, &run),
        Some(Command::Certs { dir, names }) => create_certs(&dir, &names),
        None => run_node(cli.run),
    }
}

fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut all_valid = true;
    for file in files {
        println!("Checking {}", file.display());
        match tocsin::config::load_file(file) {
            Ok(loaded) => println!(
                "  SUCCESS: {} is valid ({} scrape jobs, {} rule files, {} templates)",
                file.display(),
                loaded.config.scrape_configs.len(),
                loaded.rule_files.len(),
                loaded.template_files.len()
            ),
            Err(errors) => {
                all_valid = false;
                for error in &errors.0 {
                    eprintln!("  FAILED: {error}");
                }
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check_rules(files: &[PathBuf], lint: &str, lint_fatal: bool) -> ExitCode {
    let lint = match tocsin::rules::check::LintSettings::parse(lint, lint_fatal) {
        Ok(lint) => lint,
        Err(error) => {
            eprintln!("tocsin: error: --lint: {error}");
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(tocsin::rules::check::run(
        files,
        lint,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}

fn test_rules(files: &[PathBuf], run: &[String]) -> ExitCode {
    let mut options = tocsin::rules::unittest::TestOptions::default();
    for pattern in run {
        match regex::Regex::new(pattern) {
            Ok(regex) => options.run.push(regex),
            Err(error) => {
                eprintln!("tocsin: error: --run {pattern:?}: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::from(tocsin::rules::unittest::run(
        files,
        &options,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}

fn create_certs(dir: &std::path::Path, names: &[String]) -> ExitCode {
    for name in names {
        let mut settings = tocsin_mesh::ClusterSettings::new(name.clone());
        settings.node_name = name.clone();
        if let Err(error) = settings.validate() {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    }
    match tocsin_mesh::certs::create_certs(dir, names) {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cannot create certificates: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_node(flags: RunFlags) -> ExitCode {
    tocsin::logging::init(flags.log_level, flags.log_format);
    let options = flags.into_options();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tocsin::node::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

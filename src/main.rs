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

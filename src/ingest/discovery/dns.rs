//! `dns_sd_configs`: targets from DNS records, re-resolved every `refresh_interval`, with
//! Prometheus's labels: `__meta_dns_name` (the configured name), and for SRV records
//! `__meta_dns_srv_record_target` (with its final dot) and `__meta_dns_srv_record_port`, for MX
//! `__meta_dns_mx_record_target`, for NS `__meta_dns_ns_record_target`. Each name is one group
//! (its source is the name). A name the servers say does not exist (or has no records of the
//! type) has no targets; a name that fails to resolve keeps its last targets, as Prometheus
//! does. Queries go to the servers of `/etc/resolv.conf` with its search list and `ndots`,
//! over UDP with TCP when an answer is truncated; answers are not cached, so every refresh
//! sees the current records.

use super::{SD_COUNTERS, TargetGroup};
use crate::config::prometheus::{DnsRecordType, DnsSdConfig};
use crate::ingest::targets::ADDRESS_LABEL;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub const NAME_LABEL: &str = "__meta_dns_name";
pub const SRV_TARGET_LABEL: &str = "__meta_dns_srv_record_target";
pub const SRV_PORT_LABEL: &str = "__meta_dns_srv_record_port";
pub const MX_TARGET_LABEL: &str = "__meta_dns_mx_record_target";
pub const NS_TARGET_LABEL: &str = "__meta_dns_ns_record_target";

/// The most targets one name may yield (a bound on what a DNS answer can make us hold; an
/// answer over UDP or TCP is at most 64 KiB anyway).
pub const MAX_TARGETS_PER_NAME: usize = 10_000;

/// The longest one name's lookup may take, all servers and retries included.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

/// One `dns_sd_config`, ready to refresh.
pub struct DnsSd {
    names: Vec<String>,
    record_type: DnsRecordType,
    port: u16,
    refresh_interval: Duration,
    resolver: TokioResolver,
    /// Each name's last good group, kept when a lookup fails.
    last: BTreeMap<String, TargetGroup>,
}

impl std::fmt::Debug for DnsSd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsSd")
            .field("names", &self.names)
            .field("record_type", &self.record_type)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// What one lookup of one name gave.
enum Outcome {
    Group(TargetGroup),
    Failed(String),
}

impl DnsSd {
    /// Resolves through the servers, search list and options of `/etc/resolv.conf`.
    pub fn new(config: &DnsSdConfig) -> Result<DnsSd, String> {
        let mut builder = TokioResolver::builder_tokio()
            .map_err(|error| format!("cannot read /etc/resolv.conf: {error}"))?;
        tune(builder.options_mut());
        let resolver = builder
            .build()
            .map_err(|error| format!("cannot build the DNS resolver: {error}"))?;
        Ok(DnsSd::with_resolver(config, resolver))
    }

    /// Resolves through `server` only (UDP, TCP for truncated answers), names taken as they
    /// are. For tests, which run their own DNS server.
    pub fn with_server(config: &DnsSdConfig, server: SocketAddr) -> Result<DnsSd, String> {
        let connection = |protocol| {
            let mut connection = ConnectionConfig::new(protocol);
            connection.port = server.port();
            connection
        };
        let name_server = NameServerConfig::new(
            server.ip(),
            true,
            vec![
                connection(ProtocolConfig::Udp),
                connection(ProtocolConfig::Tcp),
            ],
        );
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), vec![name_server]),
            TokioRuntimeProvider::default(),
        );
        tune(builder.options_mut());
        builder.options_mut().ndots = 0;
        let resolver = builder
            .build()
            .map_err(|error| format!("cannot build the DNS resolver: {error}"))?;
        Ok(DnsSd::with_resolver(config, resolver))
    }

    fn with_resolver(config: &DnsSdConfig, resolver: TokioResolver) -> DnsSd {
        DnsSd {
            names: config.names.iter().map(|name| name.value.clone()).collect(),
            record_type: config.record_type,
            port: config.port,
            refresh_interval: config.refresh_interval.as_std(),
            resolver,
            last: BTreeMap::new(),
        }
    }

    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// Looks every name up (concurrently). A name that fails keeps its last group; the error
    /// is returned only when every name failed (and then nothing changes).
    pub async fn refresh(&mut self) -> Result<Vec<TargetGroup>, String> {
        let mut lookups = tokio::task::JoinSet::new();
        for (index, name) in self.names.iter().enumerate() {
            let resolver = self.resolver.clone();
            let name = name.clone();
            let (record_type, port) = (self.record_type, self.port);
            lookups.spawn(
                async move { (index, lookup_one(&resolver, &name, record_type, port).await) },
            );
        }
        let mut outcomes: Vec<Option<Outcome>> = (0..self.names.len()).map(|_| None).collect();
        while let Some(joined) = lookups.join_next().await {
            if let Ok((index, outcome)) = joined
                && let Some(slot) = outcomes.get_mut(index)
            {
                *slot = Some(outcome);
            }
        }
        let mut errors = Vec::new();
        for (name, outcome) in self.names.iter().zip(outcomes) {
            SD_COUNTERS.dns_lookups.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Some(Outcome::Group(group)) => {
                    self.last.insert(name.clone(), group);
                }
                Some(Outcome::Failed(error)) => {
                    SD_COUNTERS
                        .dns_lookup_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(name, %error, "dns_sd: lookup failed; keeping its last targets");
                    errors.push(error);
                }
                None => {
                    SD_COUNTERS
                        .dns_lookup_failures
                        .fetch_add(1, Ordering::Relaxed);
                    errors.push(format!("{name}: the lookup task failed"));
                }
            }
        }
        if !self.names.is_empty() && errors.len() == self.names.len() {
            return Err(errors.join("; "));
        }
        Ok(self
            .names
            .iter()
            .filter_map(|name| self.last.get(name).cloned())
            .collect())
    }
}

/// Prometheus asks its servers afresh at every refresh; a cache would hide changed records.
fn tune(options: &mut ResolverOpts) {
    options.cache_size = 0;
    options.preserve_intermediates = true;
}

fn record_type(kind: DnsRecordType) -> RecordType {
    match kind {
        DnsRecordType::Srv => RecordType::SRV,
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Ns => RecordType::NS,
    }
}

/// A name as records carry it: fully qualified, with its final dot.
fn rooted(name: &Name) -> String {
    let mut text = name.to_ascii();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// `host:port`, with brackets around an IPv6 address (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn lookup_one(
    resolver: &TokioResolver,
    name: &str,
    kind: DnsRecordType,
    port: u16,
) -> Outcome {
    let looked_up =
        tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup(name, record_type(kind))).await;
    let mut group = TargetGroup {
        source: name.to_string(),
        targets: Vec::new(),
        labels: BTreeMap::new(),
    };
    let lookup = match looked_up {
        Err(_) => {
            return Outcome::Failed(format!(
                "{name}: no answer within {} s",
                LOOKUP_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(NetError::Dns(DnsError::NoRecordsFound(no_records))))
            if matches!(
                no_records.response_code,
                ResponseCode::NXDomain | ResponseCode::NoError
            ) =>
        {
            // The name does not exist, or has no records of this type: no targets.
            return Outcome::Group(group);
        }
        Ok(Err(error)) => return Outcome::Failed(format!("{name}: {error}")),
        Ok(Ok(lookup)) => lookup,
    };
    for record in lookup.answers() {
        if group.targets.len() >= MAX_TARGETS_PER_NAME {
            tracing::warn!(
                name,
                limit = MAX_TARGETS_PER_NAME,
                "dns_sd: too many records; ignoring the rest"
            );
            break;
        }
        let mut target = BTreeMap::new();
        let address = match &record.data {
            RData::SRV(srv) => {
                let host = rooted(&srv.target);
                target.insert(SRV_TARGET_LABEL.to_string(), host.clone());
                target.insert(SRV_PORT_LABEL.to_string(), srv.port.to_string());
                join_host_port(host.trim_end_matches('.'), srv.port)
            }
            RData::MX(mx) => {
                let host = rooted(&mx.exchange);
                target.insert(MX_TARGET_LABEL.to_string(), host.clone());
                join_host_port(host.trim_end_matches('.'), port)
            }
            RData::NS(ns) => {
                let host = rooted(&ns.0);
                target.insert(NS_TARGET_LABEL.to_string(), host.clone());
                join_host_port(host.trim_end_matches('.'), port)
            }
            RData::A(a) => join_host_port(&a.0.to_string(), port),
            RData::AAAA(aaaa) => join_host_port(&aaaa.0.to_string(), port),
            // A CNAME chain leading to the records asked for.
            RData::CNAME(_) => continue,
            other => {
                tracing::warn!(name, record = ?other.record_type(), "dns_sd: unexpected record; ignored");
                continue;
            }
        };
        target.insert(ADDRESS_LABEL.to_string(), address);
        target.insert(NAME_LABEL.to_string(), name.to_string());
        group.targets.push(target);
    }
    Outcome::Group(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("::1", 9100), "[::1]:9100");
        assert_eq!(join_host_port("node.example", 9100), "node.example:9100");
    }
}

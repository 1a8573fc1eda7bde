//! Scrape targets: target groups from `static_configs` and `file_sd_configs`, and the labels
//! Prometheus gives each target (`PopulateLabels`): the discovered labels, the job's defaults
//! (`job`, `__scheme__`, `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__`,
//! `__param_*`), `relabel_configs`, `__meta_*` removed, `instance` defaulting to `__address__`.
//!
//! HTTP and DNS discovery, and the task that runs every mechanism of a job, are in
//! [`super::discovery`].

use super::relabel::{self, LabelBuilder};
use crate::config::prometheus::{ScrapeConfig, StaticConfig};
use crate::config::{PromDuration, Spanned};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const ADDRESS_LABEL: &str = "__address__";
pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_LABEL_PREFIX: &str = "__param_";
pub const META_LABEL_PREFIX: &str = "__meta_";
pub const JOB_LABEL: &str = "job";
pub const INSTANCE_LABEL: &str = "instance";
/// The label file discovery adds to its targets.
pub const FILE_PATH_LABEL: &str = "__meta_filepath";

/// Bounds on what one discovery file may hold.
pub const MAX_FILE_SD_BYTES: u64 = 16 << 20;
/// The most files one `file_sd_config`'s globs may expand to.
pub const MAX_FILE_SD_FILES: usize = 10_000;
/// The most targets one job may discover (beyond that, the rest are ignored and logged).
pub const MAX_DISCOVERED_TARGETS: usize = 100_000;

/// A set of targets sharing labels, as a discovery mechanism reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetGroup {
    /// Where it came from (`static/0`, `path/to/file.yml:2`), unique within a job.
    pub source: String,
    /// Each target's own labels (at least `__address__`).
    pub targets: Vec<BTreeMap<String, String>>,
    /// Labels every target of the group gets unless it sets them itself.
    pub labels: BTreeMap<String, String>,
}

/// The groups of a job's `static_configs`.
pub fn static_groups(job: &ScrapeConfig) -> Vec<TargetGroup> {
    static_config_groups(&job.static_configs)
}

/// The groups of a `static_configs` list (a scrape job's or an Alertmanager set's).
pub fn static_config_groups(configs: &[Spanned<StaticConfig>]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(index, config)| TargetGroup {
            source: index.to_string(),
            targets: config
                .value
                .targets
                .iter()
                .map(|target| BTreeMap::from([(ADDRESS_LABEL.to_string(), target.value.clone())]))
                .collect(),
            labels: config
                .value
                .labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        })
        .collect()
}

/// One group as a `file_sd` file writes it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Parses a `file_sd` file (JSON when its name ends in `.json`, YAML otherwise): a list of
/// `{targets: [...], labels: {...}}`. Each group gets `__meta_filepath`.
pub fn parse_file_sd(path: &Path, text: &str) -> Result<Vec<TargetGroup>, String> {
    let name = path.display().to_string();
    let is_json = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
    let groups: Vec<FileGroup> = if is_json {
        serde_json::from_str(text).map_err(|error| format!("{name}: {error}"))?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        crate::config::parse_document(text, &name).map_err(|error| error.to_string())?
    };
    let mut out = Vec::with_capacity(groups.len());
    for (index, group) in groups.into_iter().enumerate() {
        let mut labels = group.labels.unwrap_or_default();
        for label_name in labels.keys() {
            if label_name.is_empty() {
                return Err(format!("{name}: group {index}: empty label name"));
            }
        }
        labels.insert(FILE_PATH_LABEL.to_string(), name.clone());
        let mut targets = Vec::with_capacity(group.targets.len());
        for target in group.targets {
            if target.is_empty() {
                return Err(format!("{name}: group {index}: empty target address"));
            }
            targets.push(BTreeMap::from([(ADDRESS_LABEL.to_string(), target)]));
        }
        out.push(TargetGroup {
            source: format!("{name}:{index}"),
            targets,
            labels,
        });
    }
    Ok(out)
}

/// Reads a file of at most [`MAX_FILE_SD_BYTES`].
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE_SD_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if text.len() as u64 > MAX_FILE_SD_BYTES {
        return Err(format!(
            "{}: larger than the limit of {MAX_FILE_SD_BYTES} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// The state of one `file_sd_config`: the files its patterns matched and what each held.
/// [`FileSd::refresh`] re-reads files whose modification time or size changed, forgets files
/// that are gone, and keeps a file's previous groups when it cannot be read or parsed, as
/// Prometheus does.
#[derive(Debug)]
pub struct FileSd {
    patterns: Vec<PathBuf>,
    files: HashMap<PathBuf, FileState>,
    /// The last error per file, for logs and tests.
    pub errors: Vec<String>,
}

#[derive(Debug)]
struct FileState {
    stamp: Option<(SystemTime, u64)>,
    groups: Vec<TargetGroup>,
}

impl FileSd {
    /// `files` as configured; relative paths resolve against `base_dir` (the config file's
    /// folder).
    pub fn new(files: impl IntoIterator<Item = String>, base_dir: &Path) -> FileSd {
        FileSd {
            patterns: files.into_iter().map(|file| base_dir.join(file)).collect(),
            files: HashMap::new(),
            errors: Vec::new(),
        }
    }

    /// Forgets what was read, so the next [`FileSd::refresh`] re-reads every file.
    pub fn invalidate(&mut self) {
        for state in self.files.values_mut() {
            state.stamp = None;
        }
    }

    fn matching_files(&mut self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for pattern in &self.patterns {
            let text = pattern.to_string_lossy();
            match glob::glob(&text) {
                Ok(paths) => {
                    for path in paths.flatten() {
                        if out.len() >= MAX_FILE_SD_FILES {
                            self.errors.push(format!(
                                "{text}: more than {MAX_FILE_SD_FILES} files; ignoring the rest"
                            ));
                            break;
                        }
                        out.push(path);
                    }
                }
                Err(error) => self.errors.push(format!("{text}: {error}")),
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Re-reads what changed. Returns the groups of every file when anything changed.
    pub fn refresh(&mut self) -> Option<Vec<TargetGroup>> {
        self.errors.clear();
        let paths = self.matching_files();
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|path, _| paths.contains(path));
        changed |= self.files.len() != before;
        for path in paths {
            let stamp = std::fs::metadata(&path)
                .ok()
                .and_then(|metadata| Some((metadata.modified().ok()?, metadata.len())));
            if let Some(state) = self.files.get(&path)
                && state.stamp.is_some()
                && state.stamp == stamp
            {
                continue;
            }
            let parsed = read_bounded(&path).and_then(|text| parse_file_sd(&path, &text));
            match parsed {
                Ok(groups) => {
                    changed = true;
                    self.files.insert(path, FileState { stamp, groups });
                }
                Err(error) => {
                    // Keep what the file held before; try again next time.
                    self.errors.push(error);
                    self.files.entry(path).or_insert(FileState {
                        stamp: None,
                        groups: Vec::new(),
                    });
                }
            }
        }
        changed.then(|| self.groups())
    }

    /// The groups of every file, in path order.
    pub fn groups(&self) -> Vec<TargetGroup> {
        let mut paths: Vec<&PathBuf> = self.files.keys().collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|path| self.files.get(path))
            .flat_map(|state| state.groups.iter().cloned())
            .collect()
    }
}

/// A target after relabeling, ready to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its labels, `__address__`, `__scheme__` and the other `__` labels included (`__meta_*`
    /// removed).
    pub labels: LabelBuilder,
    /// Its labels before relabeling.
    pub discovered: LabelBuilder,
    /// The URL to scrape.
    pub url: url::Url,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// The labels every sample of the target gets: those not starting with `__`.
    pub fn public_labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels
            .iter()
            .filter(|(name, _)| !name.starts_with("__"))
    }

    /// An identity for the target, stable across runs: FNV-1a over every label and the URL
    /// (as Prometheus's `Target.hash` combines its labels' hash and URL).
    pub fn hash(&self) -> u64 {
        let mut hash = Fnv::new();
        for (name, value) in self.labels.iter() {
            hash.write(name.as_bytes());
            hash.write(&[0xff]);
            hash.write(value.as_bytes());
            hash.write(&[0xff]);
        }
        hash.write(self.url.as_str().as_bytes());
        hash.0
    }

    /// How long to wait before the first scrape so that targets spread over the interval:
    /// Prometheus's `Target.offset`, pinned to absolute time. `now_ns` is Unix time in
    /// nanoseconds.
    pub fn offset(&self, now_ns: u128, seed: u64) -> Duration {
        let interval = self.interval.as_nanos().max(1);
        let base = interval - now_ns % interval;
        let offset = u128::from(self.hash() ^ seed) % interval;
        let mut next = base + offset;
        if next > interval {
            next -= interval;
        }
        Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
    }
}

/// 64-bit FNV-1a.
pub(crate) struct Fnv(pub u64);

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// What relabeling made of one discovered target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Populated {
    /// To be scraped.
    Active(Target),
    /// Dropped by relabeling (or unusable: `error` says why).
    Dropped {
        discovered: LabelBuilder,
        error: Option<String>,
    },
}

/// Prometheus's `PopulateDiscoveredLabels`: the target's labels, then the group's, then the
/// job's defaults for what neither set.
pub fn discovered_labels(
    job: &ScrapeConfig,
    target: &BTreeMap<String, String>,
    group: &BTreeMap<String, String>,
) -> LabelBuilder {
    let mut builder = LabelBuilder::from_pairs(target.iter().map(|(n, v)| (n.clone(), v.clone())));
    for (name, value) in group {
        if !target.contains_key(name) {
            builder.set(name.clone(), value.clone());
        }
    }
    let defaults = [
        (JOB_LABEL, job.job_name().to_string()),
        (SCRAPE_INTERVAL_LABEL, job.scrape_interval().to_string()),
        (SCRAPE_TIMEOUT_LABEL, job.scrape_timeout().to_string()),
        (METRICS_PATH_LABEL, job.metrics_path.clone()),
        (SCHEME_LABEL, job.scheme.to_string()),
    ];
    for (name, value) in defaults {
        if builder.get(name).is_empty() {
            builder.set(name, value);
        }
    }
    for (key, values) in &job.params {
        let name = format!("{PARAM_LABEL_PREFIX}{key}");
        if let Some(first) = values.first()
            && builder.get(&name).is_empty()
        {
            builder.set(name, first.clone());
        }
    }
    builder
}

/// Prometheus's `PopulateLabels` for one discovered target.
pub fn populate(
    job: &ScrapeConfig,
    target: &BTreeMap<String, String>,
    group: &BTreeMap<String, String>,
) -> Populated {
    let discovered = discovered_labels(job, target, group);
    let mut labels = discovered.clone();
    if !relabel::process(&mut labels, &job.relabel_configs, job.name_validation()) {
        return Populated::Dropped {
            discovered,
            error: None,
        };
    }
    match finish_target(job, labels) {
        Ok(target) => Populated::Active(Target {
            discovered,
            ..target
        }),
        Err(error) => Populated::Dropped {
            discovered,
            error: Some(error),
        },
    }
}

fn finish_target(job: &ScrapeConfig, mut labels: LabelBuilder) -> Result<Target, String> {
    let address = labels.get(ADDRESS_LABEL).to_string();
    if address.is_empty() {
        return Err("no address".to_string());
    }
    check_address(&address)?;
    let interval_text = labels.get(SCRAPE_INTERVAL_LABEL).to_string();
    let interval: PromDuration = interval_text
        .parse()
        .map_err(|error| format!("error parsing scrape interval: {error}"))?;
    if interval.is_zero() {
        return Err("scrape interval cannot be 0".to_string());
    }
    let timeout_text = labels.get(SCRAPE_TIMEOUT_LABEL).to_string();
    let timeout: PromDuration = timeout_text
        .parse()
        .map_err(|error| format!("error parsing scrape timeout: {error}"))?;
    if timeout.is_zero() {
        return Err("scrape timeout cannot be 0".to_string());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({timeout_text:?} > {interval_text:?})"
        ));
    }
    labels.retain(|name, _| !name.starts_with(META_LABEL_PREFIX));
    if labels.get(INSTANCE_LABEL).is_empty() {
        labels.set(INSTANCE_LABEL, address);
    }
    let url = target_url(job, &labels)?;
    Ok(Target {
        discovered: LabelBuilder::new(),
        url,
        interval: interval.as_std(),
        timeout: timeout.as_std(),
        labels,
    })
}

/// Prometheus's `CheckTargetAddress`: a `/` in the address cannot make a URL's host.
fn check_address(address: &str) -> Result<(), String> {
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    Ok(())
}

/// `__scheme__://__address____metrics_path__?params`, the `__param_*` labels replacing the
/// first value of the job's parameter of the same name (Prometheus's `Target.URL`).
fn target_url(job: &ScrapeConfig, labels: &LabelBuilder) -> Result<url::Url, String> {
    let mut params: BTreeMap<String, Vec<String>> = job.params.clone();
    for (name, value) in labels.iter() {
        if let Some(key) = name.strip_prefix(PARAM_LABEL_PREFIX) {
            match params.get_mut(key) {
                Some(values) if !values.is_empty() => values[0] = value.to_string(),
                _ => {
                    params.insert(key.to_string(), vec![value.to_string()]);
                }
            }
        }
    }
    let scheme = labels.get(SCHEME_LABEL);
    let address = labels.get(ADDRESS_LABEL);
    let path = labels.get(METRICS_PATH_LABEL);
    let slash = if path.starts_with('/') { "" } else { "/" };
    let mut url = url::Url::parse(&format!("{scheme}://{address}{slash}{path}"))
        .map_err(|error| format!("invalid target URL for {address:?}: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported scheme {scheme:?}"));
    }
    if !params.is_empty() {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (key, values) in &params {
            for value in values {
                query.append_pair(key, value);
            }
        }
    }
    Ok(url)
}

/// Every target of `groups`, active and dropped, in discovery order. At most
/// [`MAX_DISCOVERED_TARGETS`]; duplicates (same labels and URL) are kept once.
pub fn targets_from_groups(job: &ScrapeConfig, groups: &[TargetGroup]) -> Vec<Populated> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for group in groups {
        for target in &group.targets {
            if out.len() >= MAX_DISCOVERED_TARGETS {
                tracing::warn!(
                    job = job.job_name(),
                    limit = MAX_DISCOVERED_TARGETS,
                    "too many discovered targets; ignoring the rest"
                );
                return out;
            }
            let populated = populate(job, target, &group.labels);
            if let Populated::Active(target) = &populated
                && !seen.insert(target.hash())
            {
                continue;
            }
            out.push(populated);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{Config, Spanned};

    fn job(yaml: &str) -> ScrapeConfig {
        let mut config: Config =
            crate::config::parse_document(&format!("scrape_configs:\n{yaml}"), "p.yml").unwrap();
        config.finish().unwrap();
        let job: Spanned<ScrapeConfig> = config.scrape_configs.remove(0);
        job.value
    }

    fn active(populated: &Populated) -> &Target {
        match populated {
            Populated::Active(target) => target,
            other => panic!("expected an active target, got {other:?}"),
        }
    }

    fn pairs(builder: &LabelBuilder) -> Vec<(String, String)> {
        builder.clone().into_pairs()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn static_targets_get_prometheus_labels() {
        let job = job(concat!(
            "- job_name: node\n",
            "  scrape_interval: 15s\n",
            "  params: {module: [http_2xx, x], other: [y]}\n",
            "  static_configs:\n",
            "  - targets: ['a:9100', 'b:9100']\n",
            "    labels: {env: prod, job: custom}\n",
        ));
        let groups = static_groups(&job);
        let targets = targets_from_groups(&job, &groups);
        assert_eq!(targets.len(), 2);
        let a = active(&targets[0]);
        assert_eq!(
            pairs(&a.labels),
            owned(&[
                ("__address__", "a:9100"),
                ("__metrics_path__", "/metrics"),
                ("__param_module", "http_2xx"),
                ("__param_other", "y"),
                ("__scheme__", "http"),
                ("__scrape_interval__", "15s"),
                ("__scrape_timeout__", "10s"),
                ("env", "prod"),
                ("instance", "a:9100"),
                ("job", "custom"),
            ])
        );
        assert_eq!(
            a.public_labels().collect::<Vec<_>>(),
            vec![("env", "prod"), ("instance", "a:9100"), ("job", "custom")]
        );
        assert_eq!(
            a.url.as_str(),
            "http://a:9100/metrics?module=http_2xx&module=x&other=y"
        );
        assert_eq!(a.interval, Duration::from_secs(15));
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert_ne!(a.hash(), active(&targets[1]).hash());
    }

    #[test]
    fn relabeling_rewrites_drops_and_keeps_discovered_labels() {
        // The blackbox exporter pattern: the target becomes a parameter.
        let job = job(concat!(
            "- job_name: blackbox\n",
            "  metrics_path: /probe\n",
            "  static_configs:\n",
            "  - targets: ['https://example.com', 'http://drop.me']\n",
            "  relabel_configs:\n",
            "  - source_labels: [__address__]\n",
            "    regex: .*drop.*\n",
            "    action: drop\n",
            "  - source_labels: [__address__]\n",
            "    target_label: __param_target\n",
            "  - source_labels: [__param_target]\n",
            "    target_label: instance\n",
            "  - target_label: __address__\n",
            "    replacement: 127.0.0.1:9115\n",
            "  - target_label: __meta_x\n",
            "    replacement: gone\n",
            "  - source_labels: [__scrape_interval__]\n",
            "    target_label: interval\n",
        ));
        let targets = targets_from_groups(&job, &static_groups(&job));
        let kept = active(&targets[0]);
        assert_eq!(
            kept.url.as_str(),
            "http://127.0.0.1:9115/probe?target=https%3A%2F%2Fexample.com"
        );
        assert_eq!(
            kept.public_labels().collect::<Vec<_>>(),
            vec![
                ("instance", "https://example.com"),
                ("interval", "1m"),
                ("job", "blackbox")
            ]
        );
        assert!(!kept.labels.has("__meta_x"));
        assert_eq!(kept.discovered.get("__address__"), "https://example.com");
        match &targets[1] {
            Populated::Dropped { discovered, error } => {
                assert_eq!(discovered.get("__address__"), "http://drop.me");
                assert_eq!(error, &None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unusable_targets_are_dropped_with_a_reason() {
        let job = job(concat!(
            "- job_name: j\n",
            "  scrape_interval: 10s\n",
            "  static_configs:\n",
            "  - targets: ['a:1', 'b:1', 'c:1']\n",
            "  relabel_configs:\n",
            "  - source_labels: [__address__]\n",
            "    regex: a:1\n",
            "    target_label: __scrape_timeout__\n",
            "    replacement: 20s\n",
            "  - source_labels: [__address__]\n",
            "    regex: b:1\n",
            "    target_label: __address__\n",
            "    replacement: ''\n",
            "  - source_labels: [__address__]\n",
            "    regex: c:1\n",
            "    target_label: __address__\n",
            "    replacement: x/y\n",
        ));
        let targets = targets_from_groups(&job, &static_groups(&job));
        let errors: Vec<String> = targets
            .iter()
            .map(|target| match target {
                Populated::Dropped {
                    error: Some(error), ..
                } => error.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            errors,
            [
                "scrape timeout cannot be greater than scrape interval (\"20s\" > \"10s\")",
                "no address",
                "\"x/y\" is not a valid hostname",
            ]
        );
    }

    #[test]
    fn duplicate_targets_are_scraped_once() {
        let job =
            job("- job_name: j\n  static_configs:\n  - targets: ['a:1']\n  - targets: ['a:1']\n");
        assert_eq!(targets_from_groups(&job, &static_groups(&job)).len(), 1);
    }

    #[test]
    fn offsets_are_deterministic_and_within_the_interval() {
        let job = job(
            "- job_name: j\n  scrape_interval: 10s\n  static_configs:\n  - targets: ['a:1', 'b:2']\n",
        );
        let targets = targets_from_groups(&job, &static_groups(&job));
        let a = active(&targets[0]);
        let now = 1_700_000_000_123_456_789u128;
        let offset = a.offset(now, 0);
        assert!(offset <= Duration::from_secs(10));
        assert_eq!(offset, a.offset(now, 0));
        // The scrape lands at the same phase of the interval whenever the loop starts.
        let phase = |now: u128| (now + a.offset(now, 0).as_nanos()) % 10_000_000_000;
        assert_eq!(phase(now), phase(now + 3_000_000_000));
    }

    #[test]
    fn file_sd_json_and_yaml() {
        let groups = parse_file_sd(
            Path::new("t.json"),
            r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "x"}}, {"targets": ["c:3"]}]"#,
        )
        .unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, "t.json:0");
        assert_eq!(groups[0].targets.len(), 2);
        assert_eq!(groups[0].labels.get("env").unwrap(), "x");
        assert_eq!(groups[1].labels.get(FILE_PATH_LABEL).unwrap(), "t.json");
        let groups = parse_file_sd(
            Path::new("t.yml"),
            "- targets: [a:1]\n  labels:\n    env: y\n",
        )
        .unwrap();
        assert_eq!(groups[0].targets[0].get(ADDRESS_LABEL).unwrap(), "a:1");
        assert!(parse_file_sd(Path::new("t.yml"), "").unwrap().is_empty());
        assert!(parse_file_sd(Path::new("t.json"), "{").is_err());
        assert!(parse_file_sd(Path::new("t.yml"), "- targets: [a]\n  bogus: 1\n").is_err());
    }

    #[test]
    fn file_sd_follows_changes() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("targets.json");
        std::fs::write(&path, r#"[{"targets": ["a:1"]}]"#).unwrap();
        let mut sd = FileSd::new(["*.json".to_string()], folder.path());
        let groups = sd.refresh().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(sd.refresh(), None, "nothing changed");
        // A change of size is seen even within the file system's timestamp granularity.
        std::fs::write(&path, r#"[{"targets": ["a:1", "b:2"]}]"#).unwrap();
        assert_eq!(sd.refresh().unwrap()[0].targets.len(), 2);
        // A broken file keeps its previous targets.
        std::fs::write(&path, "[{").unwrap();
        let kept = sd.refresh();
        assert!(kept.is_none() || kept.unwrap()[0].targets.len() == 2);
        assert_eq!(sd.groups()[0].targets.len(), 2);
        assert_eq!(sd.errors.len(), 1);
        // A removed file removes its targets.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(sd.refresh(), Some(Vec::new()));
    }
}

//! Reading a configuration from disk and following what it references: rule files, an
//! `alertmanager_config_file`, notification templates.

use super::alertmanager::{AlertmanagerConfig, parse_alertmanager_file};
use super::prometheus::{RuleFile, parse_rule_file, parse_scrape_config_file};
use super::{Config, ConfigError, Invalid, MAX_FILE_BYTES, Spanned, parse_document};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tocsin_receivers::template::{TemplateError, Templates};

/// A glob in the config matching more files than this is refused (a typo like `/**` would
/// otherwise read a whole disk).
const MAX_FILES_PER_GLOB: usize = 10_000;

/// The Alertmanager part when a config has none: every alert goes to a receiver that does
/// nothing, as in Alertmanager's own minimal configuration.
const FALLBACK_ALERTMANAGER: &str = "route:\n  receiver: default\nreceivers:\n  - name: default\n";

/// A configuration with everything it references read and checked.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// Where the config came from (a path, or a name such as `<embedded default>`).
    pub source_name: String,
    /// The text as the user wrote it.
    pub source_text: String,
    pub config: Config,
    /// The Alertmanager part: inline, from `alertmanager_config_file`, or the fallback.
    pub alertmanager: AlertmanagerConfig,
    /// The Alertmanager part as text, for `/api/v2/status` (`config.original`).
    pub alertmanager_text: String,
    pub rule_files: Vec<(PathBuf, RuleFile)>,
    pub template_files: Vec<PathBuf>,
    /// Tocsin's default notification templates plus those files, compiled.
    pub templates: Arc<Templates>,
    /// The folder the Alertmanager part's relative paths (`*_file`, templates) resolve against.
    pub alertmanager_dir: PathBuf,
}

/// Every file's first error, in the order the files were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<ConfigError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl From<ConfigError> for LoadErrors {
    fn from(error: ConfigError) -> Self {
        LoadErrors(vec![error])
    }
}

pub fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    let name = path.display().to_string();
    let metadata = std::fs::metadata(path)
        .map_err(|error| ConfigError::whole_file(&name, format!("cannot read: {error}")))?;
    if !metadata.is_file() {
        return Err(ConfigError::whole_file(&name, "not a regular file"));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(ConfigError::whole_file(
            &name,
            format!(
                "file is {} bytes, more than the limit of {MAX_FILE_BYTES}",
                metadata.len()
            ),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|error| ConfigError::whole_file(&name, format!("cannot read: {error}")))?;
    String::from_utf8(bytes).map_err(|error| {
        ConfigError::whole_file(
            &name,
            format!(
                "not valid UTF-8 at byte {}",
                error.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Loads a config file and everything it references.
pub fn load_file(path: &Path) -> Result<LoadedConfig, LoadErrors> {
    let text = read_bounded(path)?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    load_text(&text, &path.display().to_string(), base_dir)
}

/// Loads a config given as text; relative paths in it resolve against `base_dir`.
pub fn load_text(
    text: &str,
    source_name: &str,
    base_dir: &Path,
) -> Result<LoadedConfig, LoadErrors> {
    let mut config: Config = parse_document(text, source_name)?;
    config
        .finish()
        .map_err(|invalid| invalid.in_file(source_name))?;

    let mut errors = Vec::new();
    include_scrape_config_files(&mut config, source_name, base_dir, &mut errors);
    let mut rule_files = Vec::new();
    for pattern in &config.rule_files {
        match expand_glob(base_dir, pattern) {
            Ok(paths) => {
                for path in paths {
                    let name = path.display().to_string();
                    match read_bounded(&path).and_then(|text| parse_rule_file(&text, &name)) {
                        Ok(rules) => rule_files.push((path, rules)),
                        Err(error) => errors.push(error),
                    }
                }
            }
            Err(invalid) => errors.push(invalid.in_file(source_name)),
        }
    }

    let (mut alertmanager, alertmanager_text, alertmanager_dir) =
        match load_alertmanager(&config, text, source_name, base_dir) {
            Ok(loaded) => loaded,
            Err(error) => {
                errors.push(error);
                return Err(LoadErrors(errors));
            }
        };
    if let Some(section) = &config.log_notifications
        && let Err(invalid) = section.value.apply(&mut alertmanager)
    {
        errors.push(invalid.in_file(source_name));
    }

    let mut template_files = Vec::new();
    let mut templates = Templates::new();
    for pattern in &alertmanager.templates {
        match expand_glob(&alertmanager_dir, pattern) {
            Ok(paths) => {
                for path in paths {
                    let name = path.display().to_string();
                    let compiled = read_bounded(&path).and_then(|text| {
                        templates
                            .add_file(&name, &text)
                            .map_err(|error| template_error(&name, error))
                    });
                    match compiled {
                        Ok(()) => template_files.push(path),
                        Err(error) => errors.push(error),
                    }
                }
            }
            Err(invalid) => errors.push(invalid.in_file(source_name)),
        }
    }

    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    Ok(LoadedConfig {
        source_name: source_name.to_string(),
        source_text: text.to_string(),
        config,
        alertmanager,
        alertmanager_text,
        rule_files,
        template_files,
        templates: Arc::new(templates),
        alertmanager_dir,
    })
}

/// A template file's parse error, at its position in that file.
fn template_error(file: &str, error: TemplateError) -> ConfigError {
    match error {
        TemplateError::Parse {
            file,
            line,
            column,
            message,
        } => ConfigError {
            file,
            at: super::Position {
                line: line as u64,
                column: column as u64,
            },
            message,
        },
        other => ConfigError::whole_file(file, other.to_string()),
    }
}

/// Appends the jobs of `scrape_config_files` to `config.scrape_configs`, so every user of the
/// config finds all jobs in one place.
fn include_scrape_config_files(
    config: &mut Config,
    source_name: &str,
    base_dir: &Path,
    errors: &mut Vec<ConfigError>,
) {
    let mut known_jobs: std::collections::HashMap<String, String> = config
        .scrape_configs
        .iter()
        .map(|job| {
            let name = &job.value.job_name;
            (
                name.value.clone(),
                format!("{source_name}:{}", name.referenced.line()),
            )
        })
        .collect();
    let mut included = Vec::new();
    for pattern in &config.scrape_config_files {
        match expand_glob(base_dir, pattern) {
            Ok(paths) => {
                for path in paths {
                    let name = path.display().to_string();
                    let parsed = read_bounded(&path).and_then(|text| {
                        parse_scrape_config_file(&text, &name, &config.global, &mut known_jobs)
                    });
                    match parsed {
                        Ok(jobs) => included.extend(jobs),
                        Err(error) => errors.push(error),
                    }
                }
            }
            Err(invalid) => errors.push(invalid.in_file(source_name)),
        }
    }
    config.scrape_configs.extend(included);
}

/// The Alertmanager part, its text, and the folder its relative paths resolve against.
fn load_alertmanager(
    config: &Config,
    text: &str,
    source_name: &str,
    base_dir: &Path,
) -> Result<(AlertmanagerConfig, String, PathBuf), ConfigError> {
    if let Some(inline) = &config.alertmanager {
        let inline_text =
            section_text(text, inline).unwrap_or_else(|| super::to_yaml(&inline.value));
        return Ok((inline.value.clone(), inline_text, base_dir.to_path_buf()));
    }
    if let Some(file) = &config.alertmanager_config_file {
        let path = base_dir.join(&file.value);
        let name = path.display().to_string();
        let file_text = read_bounded(&path).map_err(|error| {
            Invalid::on(file, format!("alertmanager_config_file: {}", error.message))
                .in_file(source_name)
        })?;
        let parsed = parse_alertmanager_file(&file_text, &name)?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok((parsed, file_text, dir));
    }
    let parsed = parse_alertmanager_file(FALLBACK_ALERTMANAGER, "<fallback alertmanager config>")?;
    Ok((
        parsed,
        FALLBACK_ALERTMANAGER.to_string(),
        base_dir.to_path_buf(),
    ))
}

/// The lines of an inline section, de-indented, so `/api/v2/status` shows what the user wrote.
fn section_text<T>(text: &str, section: &Spanned<T>) -> Option<String> {
    let first_line = usize::try_from(section.referenced.line())
        .ok()?
        .checked_sub(1)?;
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.get(first_line)?;
    let indent = first.len() - first.trim_start().len();
    let mut out = String::new();
    for line in &lines[first_line..] {
        let this_indent = line.len() - line.trim_start().len();
        if !line.trim().is_empty() && this_indent < indent {
            break;
        }
        out.push_str(line.get(indent..).unwrap_or("").trim_end());
        out.push('\n');
    }
    Some(out)
}

/// Files matching a glob from the config, relative to `base_dir`, sorted. Matching nothing is
/// not an error (Prometheus accepts a rule glob that matches no file).
fn expand_glob(base_dir: &Path, pattern: &Spanned<String>) -> Result<Vec<PathBuf>, Invalid> {
    let full = if Path::new(&pattern.value).is_absolute() {
        PathBuf::from(&pattern.value)
    } else {
        base_dir.join(&pattern.value)
    };
    let full = full.to_string_lossy().into_owned();
    let matches = glob::glob(&full).map_err(|error| {
        Invalid::on(
            pattern,
            format!("invalid file pattern {:?}: {error}", pattern.value),
        )
    })?;
    let mut paths = Vec::new();
    for entry in matches {
        let path = entry.map_err(|error| {
            Invalid::on(
                pattern,
                format!("cannot read {}: {error}", error.path().display()),
            )
        })?;
        if path.is_file() {
            paths.push(path);
        }
        if paths.len() > MAX_FILES_PER_GLOB {
            return Err(Invalid::on(
                pattern,
                format!(
                    "{:?} matches more than {MAX_FILES_PER_GLOB} files",
                    pattern.value
                ),
            ));
        }
    }
    paths.sort();
    Ok(paths)
}

//! Layering: flag > environment > `--config` file > default.
//!
//! clap resolves flags, environment variables and defaults, and remembers where each value came
//! from. The file goes in between: every setting clap took from its default is replaced by the
//! file's value when the file has one. The merge works on TOML tables (the settings written out,
//! the file's keys laid over them, the result read back), so it needs no per-setting code and
//! reads the file with the same types, and the same refusal of unknown keys, as everything else.

use std::collections::BTreeSet;
use std::path::Path;

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::Settings;

/// Why `herald serve` cannot start with these settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("--tls-cert and --tls-key must be given together")]
    TlsPair,
    #[error("--heartbeat must be at least 1 second")]
    Heartbeat,
    #[error("--cors-origin {0:?}: give exact origins like https://app.example.com; a wildcard cannot be combined with credentials")]
    CorsOrigin(String),
    #[error("--max-body-bytes must be at least 1")]
    BodyLimit,
    #[error("{0} {1}")]
    Invalid(&'static str, &'static str),
}

/// The `serve` subcommand with every flag also read from `HERALD_<FLAG>`.
pub fn serve_command(command: clap::Command) -> clap::Command {
    command.mut_args(|arg| {
        let id = arg.get_id().as_str();
        if id == "help" {
            return arg;
        }
        let name = format!("HERALD_{}", id.to_ascii_uppercase());
        arg.env(name)
    })
}

impl Settings {
    /// Records which settings were given as flags or environment variables, so the config file
    /// does not override them. Called by the command-line parser.
    pub fn mark_given(&mut self, matches: &ArgMatches) {
        self.given = matches
            .ids()
            .filter(|id| {
                matches!(
                    matches.value_source(id.as_str()),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
            .map(|id| file_key(id.as_str()))
            .collect();
    }

    /// The final settings: the config file laid under the flags, then checked.
    pub fn resolve(self) -> Result<Self, ConfigError> {
        let settings = match self.config.clone() {
            Some(path) => self.under_file(&path)?,
            None => self,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn under_file(self, path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let parse_error = |message: String| ConfigError::Parse {
            path: shown.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: toml::Table = toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        let known = file_keys();
        if let Some(unknown) = file.keys().find(|key| !known.contains(*key)) {
            return Err(parse_error(format!(
                "unknown setting `{unknown}` (keys are the names of `herald serve`'s flags, e.g. `max-body-bytes`)"
            )));
        }
        let base =
            toml::Table::try_from(&self).map_err(|e| parse_error(format!("internal: {e}")))?;
        let overlay = |keys: &mut dyn Iterator<Item = (&String, &toml::Value)>| {
            let mut merged = base.clone();
            for (key, value) in keys.filter(|(key, _)| !self.given.contains(*key)) {
                merged.insert(key.clone(), value.clone());
            }
            merged.try_into::<Settings>()
        };
        let mut settings = overlay(&mut file.iter()).map_err(|error| {
            // Name the key whose value does not fit (serde's message does not say).
            let culprit = file
                .iter()
                .find(|entry| overlay(&mut std::iter::once(*entry)).is_err());
            let message = error.message().trim_end_matches('\n');
            parse_error(match culprit {
                Some((key, _)) => format!("`{key}`: {message}"),
                None => message.to_owned(),
            })
        })?;
        settings.config = self.config;
        settings.given = self.given;
        Ok(settings)
    }
}

/// The keys a config file may hold: every flag but `--config` itself.
fn file_keys() -> BTreeSet<String> {
    use clap::Args;
    Settings::augment_args(clap::Command::new("serve"))
        .get_arguments()
        .map(|arg| file_key(arg.get_id().as_str()))
        .filter(|key| key != "config")
        .collect()
}

/// A clap argument id (the field name) as a file key (the flag's name).
fn file_key(id: &str) -> String {
    id.replace('_', "-")
}

/// Settings given as flags or environment variables, by file key.
pub type Given = BTreeSet<String>;

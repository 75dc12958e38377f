//! Config definitions: Kafka's config types, one property's definition, and the
//! check of a value against it. The broker's and the topics' tables are built
//! from these, so start-up parsing, DescribeConfigs and AlterConfigs agree.

/// The Kafka type of a config value, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    /// A secret: never logged, never echoed in an error, hidden by DescribeConfigs.
    Password,
}

impl ConfigType {
    /// The `config_type` code of DescribeConfigs v3+.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Password => 9,
        }
    }
}

/// One property: name, type, default (None for Kafka's `null`), allowed values, doc.
#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    pub default: Option<&'static str>,
    /// Lowest allowed numeric value, where Kafka has one.
    pub min: Option<i64>,
    /// Allowed values of an enumerated string (or each item of a list).
    pub one_of: &'static [&'static str],
    pub doc: &'static str,
}

pub const fn def(
    name: &'static str,
    kind: ConfigType,
    default: Option<&'static str>,
    min: Option<i64>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        min,
        one_of: &[],
        doc,
    }
}

pub const fn choice(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    one_of: &'static [&'static str],
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default: Some(default),
        min: None,
        one_of,
        doc,
    }
}

use ConfigType as T;

/// Kafka's `Long.MAX_VALUE`, the default of the flush settings.
pub const LONG_MAX: &str = "9223372036854775807";

/// What logs, errors and DescribeConfigs show in place of a secret's value.
pub const HIDDEN: &str = "[hidden]";

/// A config key or value that is not acceptable, with the reason.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown config `{0}`")]
    Unknown(String),
    #[error("environment variable {var} names unknown config `{key}`")]
    UnknownEnv { var: String, key: String },
    #[error("invalid value `{value}` for config `{key}`: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("malformed line {line} in {path}: `{text}` (expected key=value)")]
    Malformed { path: String, line: usize, text: String },
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
}

/// The definition named `key` in `table`.
pub fn find<'a>(table: &'a [ConfigDef], key: &str) -> Option<&'a ConfigDef> {
    table.iter().find(|d| d.name == key)
}

/// Checks `value` against `def`'s type, lower bound and allowed values.
pub fn validate(def: &ConfigDef, value: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::Invalid {
        key: def.name.to_string(),
        value: if def.kind == T::Password {
            HIDDEN.to_string()
        } else {
            value.to_string()
        },
        reason: reason.to_string(),
    };
    let v = value.trim();
    match def.kind {
        T::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(bad("expected true or false"));
            }
        }
        T::Int | T::Short | T::Long => {
            let n: i64 = v.parse().map_err(|_| bad("expected an integer"))?;
            let (lo, hi) = match def.kind {
                T::Short => (i16::MIN as i64, i16::MAX as i64),
                T::Int => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if n < lo || n > hi {
                return Err(bad("out of range for its type"));
            }
            if let Some(min) = def.min {
                if n < min {
                    return Err(bad(&format!("must be at least {min}")));
                }
            }
        }
        T::Double => {
            let d: f64 = v.parse().map_err(|_| bad("expected a number"))?;
            if !(0.0..=1.0).contains(&d) && def.name == "min.cleanable.dirty.ratio" {
                return Err(bad("must be between 0 and 1"));
            }
        }
        T::Password => {}
        T::String | T::List => {
            if !def.one_of.is_empty() {
                let items: Vec<&str> = if def.kind == T::List {
                    v.split(',').map(str::trim).collect()
                } else {
                    vec![v]
                };
                for item in items {
                    if !def.one_of.contains(&item) {
                        return Err(bad(&format!("must be one of {}", def.one_of.join(", "))));
                    }
                }
            }
        }
    }
    Ok(())
}

//! How hard a commit is pushed to disk.

use std::fmt;

use crate::{Error, Result};

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// fsync on every commit (`synchronous=FULL`): a returned publish/ack survives power loss.
    #[default]
    Full,
    /// Survives a process crash; the last commits may be lost on power loss.
    Normal,
    /// No fsync: for tests and bulk loads.
    Off,
}

impl std::str::FromStr for Durability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Durability> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            "off" => Ok(Durability::Off),
            _ => Err(Error::option(
                "durability",
                format!("unknown durability '{s}': expected full, normal or off"),
            )),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
            Durability::Off => "off",
        })
    }
}

//! The value types task fields are read into: names and ids, profiles, durations, generations
//! and counts, each checked as it is read (errors name the field's path) and published in the
//! schema. The closed lists of words are in [`super::words`].

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::duration;
use super::json::invalid;
use crate::error::Error;

/// The longest name or id accepted: no Power BI or Fabric name comes close.
pub const MAX_NAME_CHARS: usize = 1024;

/// A name or an id: one line of printable text, trimmed, not empty, at most [`MAX_NAME_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Name(pub String);

impl Name {
    /// Checks `text` as a name; errors name `field`.
    pub fn parse(field: &str, text: &str) -> Result<Name, Error> {
        Self::check(text).map_err(|(message, help)| Error::task(field, message, help))
    }

    fn check(text: &str) -> Result<Name, (String, &'static str)> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(("is empty".into(), "remove it or give a value"));
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err((
                format!("is longer than {MAX_NAME_CHARS} characters"),
                "give the item's name or id",
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err((
                "holds a control character".into(),
                "names and ids are one line of printable text",
            ));
        }
        Ok(Name(trimmed.to_string()))
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Name::check(&text).map_err(|(message, help)| invalid(message, help))
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": "\\S"})
    }
}

/// A duration: ISO-8601 (`"PT2H"`) or seconds (`90`, `"90"`, `0.5`), at most [`duration::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses `text` (CLI flags); errors name `field`.
    pub fn parse(field: &str, text: &str) -> Result<Dur, Error> {
        duration::parse(field, &serde_json::Value::String(text.to_string())).map(Dur)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

struct DurVisitor;

impl DurVisitor {
    fn number<E: de::Error>(n: f64) -> Result<Dur, E> {
        duration::seconds(n).map(Dur).ok_or_else(|| {
            invalid(
                format!("`{}` is {}", duration::show(n), duration::OUT_OF_RANGE),
                duration::HELP,
            )
        })
    }
}

impl Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration string or a number of seconds")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
        Self::number(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
        Self::number(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
        Self::number(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
        duration::parse_str(v).map(Dur).ok_or_else(|| {
            invalid(
                format!("`{v}` is not a duration (or is out of range)"),
                duration::HELP,
            )
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match jiff::SignedDuration::try_from(self.0) {
            Ok(d) => s.collect_str(&d),
            Err(_) => s.serialize_f64(self.0.as_secs_f64()),
        }
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "ISO-8601 (\"PT2H\", \"PT30S\", \"P1D\") or seconds (90, \"90\", 0.5), at most a year",
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": duration::MAX.as_secs()},
                {"type": "string", "pattern": "^\\s*([Pp][0-9A-Za-z.,]*|[0-9]+(\\.[0-9]+)?)\\s*$"}
            ]
        })
    }
}

/// A dataflow generation: 1 (Power BI) or 2 (Fabric Dataflow Gen2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Generation(pub u8);

impl<'de> Deserialize<'de> for Generation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            n @ (1 | 2) => Ok(Generation(n as u8)),
            n => Err(invalid(
                format!("`{n}` is not a dataflow generation"),
                "1 (Power BI dataflow) or 2 (Fabric Dataflow Gen2); omit it to detect",
            )),
        }
    }
}

impl JsonSchema for Generation {
    fn schema_name() -> Cow<'static, str> {
        "Generation".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "enum": [1, 2]})
    }
}

/// A count of things at once (`maxParallel`…): 1 to [`MAX_PARALLEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Parallel(pub usize);

/// The most refreshes a run starts at once: far above what any capacity accepts.
pub const MAX_PARALLEL: usize = 1000;

impl<'de> Deserialize<'de> for Parallel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            n @ 1..=1000 => Ok(Parallel(n as usize)),
            n => Err(invalid(
                format!("`{n}` is not between 1 and {MAX_PARALLEL}"),
                "e.g. 4",
            )),
        }
    }
}

impl JsonSchema for Parallel {
    fn schema_name() -> Cow<'static, str> {
        "Parallel".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": 1, "maximum": MAX_PARALLEL})
    }
}

/// A profile name: letters, digits and underscores, lowercased (it names environment variables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Profile(pub String);

impl Profile {
    /// The profile of a task that names none.
    pub fn name(given: Option<Profile>) -> String {
        given.map_or_else(|| "default".to_string(), |p| p.0)
    }

    /// Checks `text` as a profile name; errors name `field`.
    pub fn parse(field: &str, text: &str) -> Result<Profile, Error> {
        Self::check(text).ok_or_else(|| Error::task(field, PROFILE_MESSAGE, PROFILE_HELP))
    }

    fn check(text: &str) -> Option<Profile> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        ok.then(|| Profile(text.to_ascii_lowercase()))
    }
}

const PROFILE_MESSAGE: &str = "must be letters, digits and underscores";
const PROFILE_HELP: &str =
    "a profile `finance` reads PBIOPS_PROFILE_FINANCE_* from the environment";

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Profile::check(&text).ok_or_else(|| invalid(PROFILE_MESSAGE, PROFILE_HELP))
    }
}

impl JsonSchema for Profile {
    fn schema_name() -> Cow<'static, str> {
        "Profile".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}$"})
    }
}

/// A multiple of an item's p90 duration (`maxOverrun`): a finite number from 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Multiple(pub f64);

impl<'de> Deserialize<'de> for Multiple {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match f64::deserialize(d)? {
            n if n.is_finite() && (1.0..=100.0).contains(&n) => Ok(Multiple(n)),
            n => Err(invalid(
                format!("`{n}` is not a multiple between 1 and 100"),
                "e.g. 2: end the wait once the refresh has run twice as long as 9 in 10 recent ones",
            )),
        }
    }
}

impl JsonSchema for Multiple {
    fn schema_name() -> Cow<'static, str> {
        "Multiple".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "number", "minimum": 1, "maximum": 100})
    }
}

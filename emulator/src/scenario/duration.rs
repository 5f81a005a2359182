//! `durationSeconds` of a model's or dataflow's `refresh`: a fixed number, or a distribution
//! drawn from the scenario's `seed`, so a fleet of models has realistic, varied but reproducible
//! durations.
//!
//! Parsed by hand from JSON (not an untagged enum) so that a bad distribution is named precisely
//! instead of "data did not match any variant".

use crate::random::{Purpose, Rng};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

/// How long a refresh runs, in seconds on the emulator's clock.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationSpec {
    /// Always this many seconds: `600`.
    Fixed(f64),
    /// `{"distribution": "lognormal", "median": 600, "sigma": 0.5, "min": 30, "max": 7200}`:
    /// `exp(ln(median) + sigma·Z)`, clamped to `[min, max]` when given.
    LogNormal {
        /// The median (`> 0`).
        median: f64,
        /// The standard deviation of the logarithm (`≥ 0`).
        sigma: f64,
        /// Lower clamp.
        min: Option<f64>,
        /// Upper clamp.
        max: Option<f64>,
    },
    /// `{"uniform": [a, b]}` (or `{"distribution": "uniform", "min": a, "max": b}`).
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound (`≥ min`).
        max: f64,
    },
}

impl From<f64> for DurationSpec {
    fn from(seconds: f64) -> DurationSpec {
        DurationSpec::Fixed(seconds)
    }
}

impl DurationSpec {
    /// One duration in seconds; a fixed duration uses no randomness.
    pub(crate) fn sample(&self, rng: &mut Rng) -> f64 {
        match *self {
            DurationSpec::Fixed(seconds) => seconds,
            DurationSpec::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                let x = (median.ln() + sigma * rng.normal()).exp();
                x.max(min.unwrap_or(0.0)).min(max.unwrap_or(f64::MAX))
            }
            DurationSpec::Uniform { min, max } => min + (max - min) * (1.0 - rng.unit()),
        }
    }

    /// Draw `index` of `purpose` for entity `key` (a model or dataflow id) under `seed`, rounded
    /// to the millisecond: the API shows milliseconds, so the shown duration is then exactly the
    /// drawn one whatever the sub-millisecond part of the start.
    pub(crate) fn draw(&self, seed: u64, key: &str, purpose: Purpose, index: u64) -> f64 {
        let seconds = self.sample(&mut Rng::stream(seed, key, purpose, index));
        (seconds * 1000.0).round() / 1000.0
    }

    /// Checks the numbers; the error names the offending part.
    pub(crate) fn check(&self) -> Result<(), String> {
        let non_negative = |name: &str, v: f64| {
            if (0.0..=MAX_SECONDS).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{name}: must be a non-negative number of seconds, got {v}"
                ))
            }
        };
        match *self {
            DurationSpec::Fixed(seconds) => {
                non_negative("", seconds).map_err(|e| e.trim_start_matches(": ").to_owned())
            }
            DurationSpec::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                non_negative("median", median)?;
                if median == 0.0 {
                    return Err("median: must be positive".to_owned());
                }
                if !(sigma.is_finite() && (0.0..=10.0).contains(&sigma)) {
                    return Err(format!("sigma: must be between 0 and 10, got {sigma}"));
                }
                bounds(min, max, non_negative)
            }
            DurationSpec::Uniform { min, max } => bounds(Some(min), Some(max), non_negative),
        }
    }
}

/// Durations beyond a year are refused: they would only overflow timestamps.
const MAX_SECONDS: f64 = 366.0 * 86_400.0;

fn bounds(
    min: Option<f64>,
    max: Option<f64>,
    non_negative: impl Fn(&str, f64) -> Result<(), String>,
) -> Result<(), String> {
    if let Some(min) = min {
        non_negative("min", min)?;
    }
    if let Some(max) = max {
        non_negative("max", max)?;
    }
    match (min, max) {
        (Some(min), Some(max)) if min > max => Err(format!("max: {max} is below min {min}")),
        _ => Ok(()),
    }
}

fn number(map: &Map<String, Value>, name: &str) -> Result<Option<f64>, String> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{name}: expected a number, got {v}")),
    }
}

fn parse(value: &Value) -> Result<DurationSpec, String> {
    let expected = "expected seconds, {\"distribution\": \"lognormal\", \"median\", \"sigma\", \"min\"?, \"max\"?} or {\"uniform\": [min, max]}";
    let spec = match value {
        Value::Number(n) => DurationSpec::Fixed(n.as_f64().unwrap_or(f64::NAN)),
        Value::Object(map) if map.contains_key("uniform") => {
            if let Some(other) = map.keys().find(|k| *k != "uniform") {
                return Err(format!("{other}: unknown field next to uniform"));
            }
            match map
                .get("uniform")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                Some([a, b]) => match (a.as_f64(), b.as_f64()) {
                    (Some(min), Some(max)) => DurationSpec::Uniform { min, max },
                    _ => return Err("uniform: expected [min, max] numbers".to_owned()),
                },
                _ => return Err("uniform: expected [min, max]".to_owned()),
            }
        }
        Value::Object(map) => {
            let allowed: &[&str] = match map.get("distribution").and_then(Value::as_str) {
                Some("lognormal") => &["distribution", "median", "sigma", "min", "max"],
                Some("uniform") => &["distribution", "min", "max"],
                Some(other) => {
                    return Err(format!(
                        "distribution: unknown distribution '{other}'; expected lognormal or uniform"
                    ));
                }
                None => return Err(format!("distribution: required; {expected}")),
            };
            if let Some(other) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(format!(
                    "{other}: unknown field; expected {}",
                    allowed.join(", ")
                ));
            }
            let required =
                |name: &str| number(map, name)?.ok_or_else(|| format!("{name}: required"));
            if allowed.len() == 3 {
                DurationSpec::Uniform {
                    min: required("min")?,
                    max: required("max")?,
                }
            } else {
                DurationSpec::LogNormal {
                    median: required("median")?,
                    sigma: required("sigma")?,
                    min: number(map, "min")?,
                    max: number(map, "max")?,
                }
            }
        }
        other => return Err(format!("{expected}, got {other}")),
    };
    spec.check()?;
    Ok(spec)
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DurationSpec, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse(&value).map_err(D::Error::custom)
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = match *self {
            DurationSpec::Fixed(seconds) => json!(seconds),
            DurationSpec::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                let mut map = Map::new();
                map.insert("distribution".into(), json!("lognormal"));
                map.insert("median".into(), json!(median));
                map.insert("sigma".into(), json!(sigma));
                for (name, bound) in [("min", min), ("max", max)] {
                    if let Some(bound) = bound {
                        map.insert(name.into(), json!(bound));
                    }
                }
                Value::Object(map)
            }
            DurationSpec::Uniform { min, max } => json!({"uniform": [min, max]}),
        };
        value.serialize(serializer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(value: Value) -> Result<DurationSpec, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn every_form_round_trips() {
        for value in [
            json!(4.0),
            json!({"distribution": "lognormal", "median": 600.0, "sigma": 0.5, "min": 30.0, "max": 7200.0}),
            json!({"distribution": "lognormal", "median": 600.0, "sigma": 0.5}),
            json!({"uniform": [10.0, 20.0]}),
        ] {
            let parsed = spec(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), value);
        }
        assert_eq!(
            spec(json!({"distribution": "uniform", "min": 1, "max": 2})).unwrap(),
            DurationSpec::Uniform { min: 1.0, max: 2.0 }
        );
    }

    #[test]
    fn bad_distributions_are_named() {
        let cases = [
            (json!(-1), "non-negative"),
            (json!({"uniform": [5, 1]}), "max:"),
            (json!({"uniform": [1]}), "uniform:"),
            (json!({"distribution": "normal"}), "distribution:"),
            (
                json!({"distribution": "lognormal", "median": 60}),
                "sigma: required",
            ),
            (
                json!({"distribution": "lognormal", "median": 0, "sigma": 1}),
                "median:",
            ),
            (
                json!({"distribution": "lognormal", "median": 6, "sigma": 1, "mean": 2}),
                "mean:",
            ),
            (json!("10"), "expected seconds"),
        ];
        for (value, want) in cases {
            let err = spec(value.clone()).unwrap_err();
            assert!(err.contains(want), "{value}: {err}");
        }
    }

    #[test]
    fn lognormal_draws_centre_on_the_median_within_the_clamp() {
        let s = spec(json!({"distribution": "lognormal", "median": 600, "sigma": 0.5, "min": 300, "max": 900}))
            .unwrap();
        let mut draws: Vec<f64> = (0..2001)
            .map(|i| s.sample(&mut Rng::stream(3, "m", Purpose::Run, i)))
            .collect();
        draws.sort_by(f64::total_cmp);
        assert!(draws.iter().all(|d| (300.0..=900.0).contains(d)));
        assert!((draws[1000] - 600.0).abs() < 30.0, "{}", draws[1000]);
        let u = DurationSpec::Uniform {
            min: 10.0,
            max: 20.0,
        };
        let d = u.sample(&mut Rng::stream(3, "m", Purpose::Run, 0));
        assert!((10.0..=20.0).contains(&d));
    }
}

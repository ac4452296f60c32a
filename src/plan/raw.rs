//! The plan file as serde reads it, before validation.
//!
//! Every field is optional and loosely typed on purpose: numbers are read as wide whole
//! numbers and names as text, so that a missing id, a negative `retries` or a `jobs` of
//! a billion becomes one clear problem among all the others found by `validate`, instead
//! of serde stopping at the first with "expected u32". Only the *shape* is enforced here:
//! unknown fields are refused (`deny_unknown_fields`), and so are values of the wrong kind
//! (a list where a name belongs).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The top level of a plan file (SPEC.md "Plan file (YAML, version 1)").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub version: Option<Whole>,
    pub name: Option<Text>,
    pub workspaces: Option<String>,
    pub jobs: Option<Whole>,
    pub timeout: Option<Text>,
    pub retries: Option<Whole>,
    pub grace: Option<Text>,
    pub ignore: Option<Vec<String>>,
    pub agent: Option<RawAgent>,
    pub instances: Option<Vec<RawInstance>>,
    pub tasks: Option<Vec<RawTask>>,
}

/// An `agent:` block, at plan or instance level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub kind: Option<String>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    pub max_turns: Option<Whole>,
    pub max_budget_usd: Option<f64>,
    pub session: Option<String>,
    pub env: Option<BTreeMap<String, Text>>,
    pub idle_timeout: Option<Text>,
    pub setting_sources: Option<Vec<String>>,
    pub mcp_config: Option<Vec<String>>,
}

/// One entry of `instances:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    pub name: Option<Text>,
    pub role: Option<Text>,
    pub context: Option<String>,
    pub template: Option<String>,
    pub ignore: Option<Vec<String>>,
    pub agent: Option<RawAgent>,
}

/// One entry of `tasks:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    pub id: Option<Text>,
    pub instance: Option<Text>,
    pub prompt: Option<String>,
    pub needs: Option<Vec<Text>>,
    pub timeout: Option<Text>,
    pub retries: Option<Whole>,
    pub check: Option<String>,
    pub idle_timeout: Option<Text>,
    pub expect: Option<String>,
    pub output_schema: Option<String>,
}

/// A scalar taken as its text: `id: 1`, `timeout: 90` and `PORT: 8080` are read as the
/// strings `1`, `90` and `8080`, so validation can say what is wrong with them in words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl Visitor<'_> for TextVisitor {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }

            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }

            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }

        deserializer.deserialize_any(TextVisitor)
    }
}

/// A whole number of any size, so that `-1` and `99999999999999999999` reach validation
/// (which names the allowed range) instead of failing as "expected u32". Numbers beyond
/// `i128` saturate, which is still out of every range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole(pub i128);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WholeVisitor;

        impl Visitor<'_> for WholeVisitor {
            type Value = Whole;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(i128::from(v)))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole(i128::from(v)))
            }

            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Whole, E> {
                Ok(Whole(v))
            }

            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Whole, E> {
                Ok(Whole(i128::try_from(v).unwrap_or(i128::MAX)))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Whole, E> {
                // YAML reads very long numbers as floats: keep their sign and size.
                if v.is_finite() && v.fract() == 0.0 {
                    #[allow(clippy::cast_possible_truncation)] // `as` saturates, as wanted
                    return Ok(Whole(v as i128));
                }
                Err(E::invalid_type(de::Unexpected::Float(v), &self))
            }
        }

        deserializer.deserialize_any(WholeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_read_as_text_and_numbers_as_wide_wholes() {
        let task: RawTask =
            serde_yaml::from_str("id: 1\nretries: -3\ntimeout: 90\nneeds: [a, 2]").unwrap();
        assert_eq!(task.id, Some(Text("1".into())));
        assert_eq!(task.retries, Some(Whole(-3)));
        assert_eq!(task.timeout, Some(Text("90".into())));
        assert_eq!(task.needs, Some(vec![Text("a".into()), Text("2".into())]));
        let plan: RawPlan = serde_yaml::from_str("jobs: 99999999999999999999999999").unwrap();
        assert!(plan.jobs.is_some_and(|j| j.0 > 256));
        let plan: RawPlan = serde_yaml::from_str("jobs: 1e3").unwrap();
        assert_eq!(plan.jobs, Some(Whole(1000)));
    }

    #[test]
    fn wrong_shapes_and_unknown_fields_are_refused_with_a_location() {
        let err = serde_yaml::from_str::<RawPlan>("jobs: 2.5").unwrap_err();
        assert!(err.to_string().contains("expected a whole number"), "{err}");
        let err =
            serde_yaml::from_str::<RawPlan>("tasks:\n  - id: a\n    nedes: [b]\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("tasks[0]: unknown field `nedes`"),
            "{err}"
        );
        assert_eq!(err.location().map(|l| l.line()), Some(3));
        let err = serde_yaml::from_str::<RawPlan>("name: [a]").unwrap_err();
        assert!(err.to_string().contains("expected a string"), "{err}");
    }
}

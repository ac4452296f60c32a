//! Reading a plan file: bytes to text to YAML to [`Plan`], every problem located.
//!
//! Three passes, each refusing what the next could not explain well: the bytes must be
//! UTF-8 text without NUL; the YAML must parse, hold one mapping and no duplicate key
//! anywhere (serde would keep the last of two `env` keys silently); then the typed read
//! ([`super::raw`]) and the semantic checks ([`super::validate`]), which report every
//! problem at once. Loading only reads: it never creates, changes or deletes anything.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

use super::Plan;
use super::locate::Locator;
use super::raw::RawPlan;
use super::validate::validate;
use crate::error::{Error, PlanProblem, Result};

/// Larger than any plan anyone writes; stops `/dev/zero` or a log file given by mistake
/// from being read whole.
const MAX_PLAN_BYTES: u64 = 16 * 1024 * 1024;

/// Loads and validates the plan at `path`. Creates and deletes nothing.
pub fn load(path: &Path) -> Result<Plan> {
    let bytes = read(path)?;
    let problem = |line: Option<usize>, column: Option<usize>, field: &str, message: String| {
        Error::Plan(vec![PlanProblem {
            file: path.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message,
        }])
    };
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(problem(
            None,
            None,
            "",
            format!(
                "not a plan: the file is larger than {} MiB",
                MAX_PLAN_BYTES >> 20
            ),
        ));
    }
    let text = match (
        bytes.iter().position(|b| *b == 0),
        std::str::from_utf8(&bytes),
    ) {
        (Some(at), _) => {
            let (line, column) = line_column(&bytes, at);
            return Err(problem(
                Some(line),
                Some(column),
                "",
                "not a plan: the file holds binary data (a NUL byte); a plan is a YAML text file"
                    .into(),
            ));
        }
        (None, Err(err)) => {
            let (line, column) = line_column(&bytes, err.valid_up_to());
            return Err(problem(
                Some(line),
                Some(column),
                "",
                "not a plan: the file is not UTF-8 text; a plan is a YAML text file".into(),
            ));
        }
        (None, Ok(text)) => text,
    };
    let locator = Locator::new(text);
    match serde_yaml::from_str::<Shape>(text) {
        Err(err) => return Err(Error::Plan(vec![serde_problem(path, &err, &locator)])),
        Ok(Shape::Map) => {}
        Ok(Shape::Null) => {
            let what = if text.trim().is_empty() {
                "is empty"
            } else {
                "holds no YAML value"
            };
            return Err(problem(
                None,
                None,
                "",
                format!("the plan file {what}; a plan needs at least `instances:` and `tasks:`"),
            ));
        }
        Ok(other) => {
            return Err(problem(
                Some(1),
                Some(1),
                "",
                format!(
                    "a plan is a YAML mapping of fields (`instances:`, `tasks:`, ...), but this \
                     file holds {other}"
                ),
            ));
        }
    }
    if let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        let unknown = super::fields::unknown_fields(path, &locator, &value);
        if !unknown.is_empty() {
            return Err(Error::Plan(unknown));
        }
    }
    let raw: RawPlan = serde_yaml::from_str(text)
        .map_err(|err| Error::Plan(vec![serde_problem(path, &err, &locator)]))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    validate(path, &dir, &locator, &raw).map_err(Error::Plan)
}

/// Reads at most one byte more than [`MAX_PLAN_BYTES`], so too large is detectable.
fn read(path: &Path) -> Result<Vec<u8>> {
    let read_error = |source| Error::PlanRead {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Ok(bytes)
}

/// 1-based line and column (in characters) of byte `at`.
fn line_column(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Turns a serde_yaml error into a located problem. Its text reads
/// `<path>: <message> at line L column C`; the path becomes the field, the location the
/// prefix. A duplicate key is located at its second occurrence when the text shows it.
fn serde_problem(file: &Path, err: &serde_yaml::Error, locator: &Locator) -> PlanProblem {
    let mut text = err.to_string();
    let mut pos = err.location().map(|l| (l.line(), l.column()));
    if let Some((line, column)) = pos {
        text = text.replacen(&format!(" at line {line} column {column}"), "", 1);
    }
    let (field, mut message) = match text.split_once(": ") {
        Some((path, rest)) if is_field_path(path) => (path.to_string(), rest.to_string()),
        _ => (String::new(), text.clone()),
    };
    if let Some(key) = message.strip_prefix(DUPLICATE) {
        let key_path = if field.is_empty() {
            key.to_string()
        } else {
            format!("{field}.{key}")
        };
        if let Some(second) = locator.keys(&key_path).nth(1) {
            pos = Some((second.line, second.column));
        }
        message = format!("duplicate key `{key}`");
    } else if err.location().is_some() && is_syntax_error(&message) {
        message = format!("not valid YAML: {message}");
    }
    PlanProblem {
        file: file.to_path_buf(),
        line: pos.map(|p| p.0),
        column: pos.map(|p| p.1),
        field,
        message,
    }
}

/// libyaml's scanner and parser messages, as opposed to serde's type errors.
fn is_syntax_error(message: &str) -> bool {
    [
        "did not find",
        "found ",
        "could not find",
        "mapping values are not allowed",
        "block sequence entries are not allowed",
        "while ",
        "unexpected end",
        "found character",
        "invalid ",
        "control characters are not allowed",
        "unknown anchor",
    ]
    .iter()
    .any(|start| message.starts_with(start))
        && !message.starts_with("invalid type")
        && !message.starts_with("invalid value")
        && !message.starts_with("invalid length")
}

/// serde_yaml's path syntax: `tasks[1].needs`, `agent.env.HOME`.
fn is_field_path(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '?'))
}

const DUPLICATE: &str = "duplicate key in mapping: ";

/// What the YAML document is, read only to check its shape: one mapping at the top and no
/// duplicate key in any mapping. Accepts numbers of any size, so those reach validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Null,
    Scalar,
    Seq,
    Map,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Null => "nothing",
            Shape::Scalar => "a single value",
            Shape::Seq => "a list",
            Shape::Map => "a mapping",
        })
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

/// A mapping key as text, for the duplicate check. YAML allows collections as keys
/// (`[a, b]: x`); a plan never needs them, and the typed read refuses them later.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Key, E> {
        Ok(Key("null".into()))
    }
    fn visit_none<E>(self) -> Result<Key, E> {
        Ok(Key("null".into()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        Key::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Key, A::Error> {
        ShapeVisitor.visit_seq(seq).map(|_| Key("[...]".into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Key, A::Error> {
        ShapeVisitor.visit_map(map).map(|_| Key("{...}".into()))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Key, A::Error> {
        ShapeVisitor.visit_enum(data).map(|_| Key("!tagged".into()))
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_none<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        Shape::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<Shape>()?.is_some() {}
        Ok(Shape::Seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(Key(key)) = map.next_key::<Key>()? {
            if !keys.insert(key.clone()) {
                return Err(de::Error::custom(format!("{DUPLICATE}{key}")));
            }
            map.next_value::<Shape>()?;
        }
        Ok(Shape::Map)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Shape, A::Error> {
        // A tagged value (`!tag x`): check what it holds.
        let (Key(_), variant) = data.variant::<Key>()?;
        variant.newtype_variant::<Shape>()
    }
}

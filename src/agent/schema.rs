//! `output_schema`: the JSON Schema a task's final answer must match.
//!
//! Read once when the plan is resolved (a missing or invalid schema is a plan problem,
//! exit 2). Where the CLI holds the answer to the schema itself (claude `--json-schema`,
//! codex `--output-schema`), its structured answer is still checked here: the pass rule
//! must not rest on the agent's word. Never fetches a remote `$ref`.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A task's `output_schema`, loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Resolved against the plan's folder.
    pub path: PathBuf,
    pub value: Value,
}

impl Schema {
    /// Reads and compiles the schema at `path`; the error says why it cannot be used.
    pub fn load(path: &Path) -> Result<Schema, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("is not JSON: {e}"))?;
        jsonschema::validator_for(&value).map_err(|e| format!("is not a JSON Schema: {e}"))?;
        Ok(Schema {
            // Absolute: a CLI given the path runs in another folder.
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            value,
        })
    }

    /// The schema on one line, for a command-line argument.
    pub fn compact(&self) -> String {
        self.value.to_string()
    }

    /// Checks `answer`; the error lists what does not match (at most five places).
    pub fn check(&self, answer: &Value) -> Result<(), String> {
        let validator = jsonschema::validator_for(&self.value).map_err(|e| e.to_string())?;
        let problems: Vec<String> = validator
            .iter_errors(answer)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at `{at}`: {e}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The final answer as JSON: the structured output where the CLI gave one, else the
    /// final text (whole, or the last fenced ```json block in it).
    pub fn answer(structured: Option<&Value>, text: Option<&str>) -> Option<Value> {
        if let Some(v) = structured {
            return Some(v.clone());
        }
        let text = text?.trim();
        if let Ok(v) = serde_json::from_str(text) {
            return Some(v);
        }
        let fenced = text
            .rsplit("```json")
            .next()
            .filter(|_| text.contains("```json"))?;
        let body = fenced.split("```").next()?;
        serde_json::from_str(body.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_and_mismatches_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(
            &path,
            r#"{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}"#,
        )
        .unwrap();
        let schema = Schema::load(&path).unwrap();
        assert!(schema.check(&serde_json::json!({"n": 3})).is_ok());
        let err = schema.check(&serde_json::json!({"n": "x"})).unwrap_err();
        assert!(err.contains("/n"), "{err}");
        let answer = Schema::answer(None, Some("Here:\n```json\n{\"n\": 1}\n```\n")).unwrap();
        assert_eq!(answer, serde_json::json!({"n": 1}));
        assert!(Schema::answer(None, Some("no json")).is_none());
        std::fs::write(&path, r#"{"type": 12}"#).unwrap();
        assert!(Schema::load(&path).unwrap_err().contains("JSON Schema"));
    }
}

//! Every unknown field of a plan at once. serde stops at the first unknown field it meets,
//! which would hide a second typo until the first is fixed; this pass walks the YAML once
//! against the plan's field names and reports them all, each where its key stands.

use std::path::Path;

use serde_yaml::Value;

use super::locate::Locator;
use crate::error::PlanProblem;

const TOP: &[&str] = &[
    "version",
    "name",
    "workspaces",
    "jobs",
    "timeout",
    "retries",
    "grace",
    "ignore",
    "agent",
    "instances",
    "tasks",
];
const AGENT: &[&str] = &[
    "kind",
    "command",
    "args",
    "model",
    "permission_mode",
    "allowed_tools",
    "max_turns",
    "max_budget_usd",
    "session",
    "env",
    "idle_timeout",
    "setting_sources",
    "mcp_config",
];
const INSTANCE: &[&str] = &["name", "role", "context", "template", "ignore", "agent"];
const TASK: &[&str] = &[
    "id",
    "instance",
    "prompt",
    "needs",
    "timeout",
    "retries",
    "check",
    "idle_timeout",
    "expect",
    "output_schema",
];

/// The unknown fields of the plan `value` (empty when there are none).
pub fn unknown_fields(file: &Path, locator: &Locator, value: &Value) -> Vec<PlanProblem> {
    let mut problems = Vec::new();
    let mut check = |map: &Value, path: &str, known: &[&str]| {
        let Value::Mapping(map) = map else { return };
        for key in map.keys().filter_map(Value::as_str) {
            if known.contains(&key) {
                continue;
            }
            let key_path = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            let pos = locator
                .keys(&key_path)
                .next()
                .or_else(|| locator.find(&key_path));
            let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            problems.push(PlanProblem {
                file: file.to_path_buf(),
                line: pos.map(|p| p.line),
                column: pos.map(|p| p.column),
                field: if path.is_empty() {
                    key.to_string()
                } else {
                    path.to_string()
                },
                message: format!(
                    "unknown field `{key}`, expected one of {}",
                    expected.join(", ")
                ),
            });
        }
    };
    check(value, "", TOP);
    check(&value["agent"], "agent", AGENT);
    for (list, known) in [("instances", INSTANCE), ("tasks", TASK)] {
        if let Value::Sequence(items) = &value[list] {
            for (i, item) in items.iter().enumerate() {
                check(item, &format!("{list}[{i}]"), known);
                if list == "instances" {
                    check(&item["agent"], &format!("{list}[{i}].agent"), AGENT);
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::raw::RawPlan;

    /// The error serde gives for a plan whose `level` carries the field `name`.
    fn serde_error(level: &str, name: &str) -> String {
        let yaml = match level {
            "top" => format!("{name}: null"),
            "agent" => format!("agent: {{{name}: null}}"),
            "instance" => format!("instances: [{{{name}: null}}]"),
            _ => format!("tasks: [{{{name}: null}}]"),
        };
        match serde_yaml::from_str::<RawPlan>(&yaml) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_field_lists_are_exactly_what_the_typed_read_accepts() {
        for (level, known) in [
            ("top", TOP),
            ("agent", AGENT),
            ("instance", INSTANCE),
            ("task", TASK),
        ] {
            for name in known {
                let err = serde_error(level, name);
                assert!(!err.contains("unknown field"), "{level}.{name}: {err}");
            }
            assert!(
                serde_error(level, "zzz").contains("unknown field"),
                "{level}"
            );
        }
    }

    #[test]
    fn every_unknown_field_is_reported_where_its_key_stands() {
        let text = "bogus: 1\ninstances:\n  - name: dev\n    foo: 2\n    agent: {modle: x}\n\
                    tasks:\n  - {id: a, colour: red}\n";
        let value: Value = serde_yaml::from_str(text).unwrap();
        let problems = unknown_fields(Path::new("p.yaml"), &Locator::new(text), &value);
        let found: Vec<String> = problems
            .iter()
            .map(|p| format!("{}:{}:{}", p.line.unwrap(), p.column.unwrap(), p.field))
            .collect();
        assert_eq!(
            found,
            [
                "1:1:bogus",
                "4:5:instances[0]",
                "5:13:instances[0].agent",
                "7:13:tasks[0]"
            ]
        );
        assert!(
            problems[3]
                .message
                .starts_with("unknown field `colour`, expected one of `id`")
        );
    }
}

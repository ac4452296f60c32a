//! A plan run end to end with the scripted agent: statuses, change kinds, patches that
//! `git apply` reproduces, parallelism, ordering within an instance, session.md, `--only`,
//! `--fresh`, `--dry-run`, and the run directory's files.
//!
//! This file holds the plan several areas share; the tests are grouped by theme in the files
//! below.

mod changes;
mod environment;
mod scheduling;
mod selection;
mod statuses;
mod terminal;
mod whole;
mod workspaces;

/// A chain of needs over two instances (`base` → `mid` → `top`) and a task apart (`other`).
const CHAIN: &str = r#"
name: chain
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: x, role: developer}
  - {name: y, role: tester}
tasks:
  - {id: base, instance: x, prompt: "@append count.txt base"}
  - {id: mid, instance: y, needs: [base], prompt: "@append count.txt mid"}
  - {id: top, instance: y, needs: [mid], prompt: "@append count.txt top"}
  - {id: other, instance: x, prompt: "@append count.txt other"}
"#;

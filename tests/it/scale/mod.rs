//! Beyond one machine, and runs that pay only for what changed: `--shard`, `merge`, the
//! result cache and `clean`, end to end with the scripted agent.

mod clean;
mod docs;
mod merge;
mod shards;

/// Six instances in four groups: `a`→`b` by needs (with `c` needing `b`), `d`↔`e`, and `f`
/// alone; every task appends to a file, so the changes show which ran.
pub const TEAM: &str = r#"
name: team
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: a, role: developer}
  - {name: b, role: tester}
  - {name: c, role: reviewer}
  - {name: d, role: developer}
  - {name: e, role: tester}
  - {name: f, role: developer}
tasks:
  - {id: a1, instance: a, prompt: "@append out.txt a1"}
  - {id: b1, instance: b, needs: [a1], prompt: "@append out.txt b1"}
  - {id: c1, instance: c, needs: [b1], prompt: "@append out.txt c1"}
  - {id: d1, instance: d, prompt: "@append out.txt d1"}
  - {id: e1, instance: e, needs: [d1], prompt: "@append out.txt e1"}
  - {id: e2, instance: e, prompt: "@exit 1"}
  - {id: f1, instance: f, prompt: "@append out.txt f1"}
"#;

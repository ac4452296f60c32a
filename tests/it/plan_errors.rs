//! Plans that must be refused before anything runs: each malformed plan is one table row
//! with the exact message fragment it must show (with its `file:line:column:` prefix where
//! known). `validate` and `run` both exit 2 on it and leave the folder as they found it —
//! no workspaces, no run directory, no `runs/`. Plus good plans that validate silently,
//! and property tests that no input makes the loader panic.

use std::collections::BTreeSet;
use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;
use proptest::prelude::*;

use crate::support::{Project, output_text};

/// A plan the agent lookup accepts: `/bin/true` exists everywhere.
const GOOD: &str = "\
name: good
agent: {kind: generic, command: /bin/true}
instances:
  - name: dev
    role: developer
  - name: test
    role: tester
tasks:
  - id: schema
    instance: dev
    prompt: Write the schema.
  - id: auth
    instance: test
    prompt: Test the schema.
    needs: [schema]
    timeout: 1h30m
";

/// One malformed plan: the file (relative to the project), its bytes, and the fragment
/// its one problem must show.
struct Case {
    name: &'static str,
    file: &'static str,
    content: &'static [u8],
    fragment: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "unknown field",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}]
tasks:
  - id: a
    instance: dev
    prompt: p
    nedes: [b]
",
        fragment: "plans/bad.yaml:6:5: `tasks[0]`: unknown field `nedes`, expected one of `id`, \
                   `instance`, `prompt`, `needs`, `timeout`, `retries`, `check`, `idle_timeout`, `expect`, `output_schema`",
    },
    Case {
        name: "duplicate key in a struct",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}]
tasks:
  - id: a
    instance: dev
    id: b
    prompt: p
",
        fragment: "plans/bad.yaml:5:5: `tasks[0]`: duplicate key `id`",
    },
    Case {
        name: "duplicate key in a map",
        file: "plans/bad.yaml",
        content: b"agent:
  env:
    TOKEN: a
    TOKEN: b
instances: [{name: dev, role: developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:4:5: `agent.env`: duplicate key `TOKEN`",
    },
    Case {
        name: "duplicate instance",
        file: "plans/bad.yaml",
        content: b"instances:
  - {name: dev, role: developer}
  - {name: dev, role: tester}
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:3:12: `instances[1].name`: duplicate instance name `dev` \
                   (also `instances[0]`)",
    },
    Case {
        name: "duplicate task id",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}]
tasks:
  - {id: a, instance: dev, prompt: p}
  - {id: a, instance: dev, prompt: q}
",
        fragment: "plans/bad.yaml:4:10: `tasks[1].id`: duplicate task id `a` (also `tasks[0]`)",
    },
    Case {
        name: "unknown instance",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}, {name: qa, role: tester}]
tasks:
  - id: a
    instance: deve
    prompt: p
",
        fragment: "plans/bad.yaml:4:15: `tasks[0].instance`: unknown instance `deve` \
                   (known: dev, qa)",
    },
    Case {
        name: "unknown need",
        file: "plans/x.yaml",
        content: b"instances: [{name: dev, role: developer}, {name: qa, role: tester}]
tasks:
  - id: schema
    instance: dev
    prompt: p
  - id: auth
    instance: qa
    prompt: p
    needs: [schema, shema]
",
        fragment: "plans/x.yaml:9:21: `tasks[1].needs`: unknown task `shema` \
                   (known: schema, auth)",
    },
    Case {
        name: "cycle",
        file: "plans/bad.yaml",
        content: b"instances: [{name: a, role: developer}, {name: b, role: tester}]
tasks:
  - {id: one, instance: a, prompt: p, needs: [two]}
  - {id: two, instance: b, prompt: p, needs: [three]}
  - {id: three, instance: b, prompt: p, needs: [one]}
",
        fragment: "plans/bad.yaml:3:47: `tasks[0].needs`: dependency cycle: \
                   one -> two -> three -> one",
    },
    Case {
        name: "cycle through an instance's file order",
        file: "plans/bad.yaml",
        content: b"instances: [{name: a, role: developer}, {name: b, role: tester}]
tasks:
  - {id: first, instance: a, prompt: p, needs: [check]}
  - {id: second, instance: a, prompt: p}
  - {id: check, instance: b, prompt: p, needs: [second]}
",
        fragment: "dependency cycle: first -> check -> second -> first \
                   (`second` runs after `first` on instance `a`)",
    },
    Case {
        name: "task needs itself",
        file: "plans/bad.yaml",
        content: b"instances: [{name: a, role: developer}]
tasks:
  - {id: one, instance: a, prompt: p, needs: [one]}
",
        fragment: "plans/bad.yaml:3:47: `tasks[0].needs`: task `one` cannot need itself",
    },
    Case {
        name: "name with `..`",
        file: "plans/bad.yaml",
        content: b"instances:
  - name: ..
    role: developer
tasks: [{id: a, instance: .., prompt: p}]
",
        fragment: "plans/bad.yaml:2:11: `instances[0].name`: invalid instance name `..`: must \
                   start with a lowercase letter or a digit",
    },
    Case {
        name: "name with `/`",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}]
tasks:
  - id: a/../../etc
    instance: dev
    prompt: p
",
        fragment: "plans/bad.yaml:3:9: `tasks[0].id`: invalid task id `a/../../etc`: contains \
                   `/`; use only a-z, 0-9, `.`, `_` and `-`",
    },
    Case {
        name: "absolute plan name",
        file: "plans/bad.yaml",
        content: b"name: /etc
instances: [{name: dev, role: developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:1:7: `name`: invalid plan name `/etc`: must start with a \
                   lowercase letter or a digit",
    },
    Case {
        name: "a file stem that is no name",
        file: "plans/My Plan.yaml",
        content: b"instances: [{name: dev, role: developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/My Plan.yaml: `name`: the plan's name defaults to the file's stem \
                   `My Plan`, which is not a valid name: it must start with a lowercase letter \
                   or a digit; add a `name:` field",
    },
    Case {
        name: "bad duration",
        file: "plans/bad.yaml",
        content: b"timeout: 5min
instances: [{name: dev, role: developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:1:10: `timeout`: `5min` has an unknown unit `min`; use `h`, \
                   `m`, `s` or `ms`",
    },
    Case {
        name: "zero timeout",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}]
tasks:
  - id: a
    instance: dev
    prompt: p
    timeout: 0s
",
        fragment: "plans/bad.yaml:6:14: `tasks[0].timeout`: `0s` is zero; a timeout must be \
                   above zero",
    },
    Case {
        name: "negative retries",
        file: "plans/bad.yaml",
        content: b"retries: -1
instances: [{name: dev, role: developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:1:10: `retries`: `-1` is negative; must be from 0 to 20",
    },
    Case {
        name: "huge jobs",
        file: "plans/bad.yaml",
        content: b"jobs: 1000000
instances: [{name: dev, role: developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:1:7: `jobs`: `1000000` is too large; must be from 1 to 256",
    },
    Case {
        name: "absurd budget",
        file: "plans/bad.yaml",
        content: b"agent: {max_budget_usd: 0}
instances: [{name: dev, role: developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:1:25: `agent.max_budget_usd`: `0` is out of range; must be \
                   above 0 and at most 10000",
    },
    Case {
        name: "missing template",
        file: "plans/bad.yaml",
        content: b"instances:
  - name: dev
    role: developer
    template: ../fixtures/nowhere
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:4:15: `instances[0].template`: template folder \
                   `../fixtures/nowhere` does not exist (looked at `plans/../fixtures/nowhere`)",
    },
    Case {
        name: "empty prompt",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}]
tasks:
  - id: a
    instance: dev
    prompt: \"\"
",
        fragment: "plans/bad.yaml:5:13: `tasks[0].prompt`: the prompt is empty",
    },
    Case {
        name: "role of two words",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: lead developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:1:31: `instances[0].role`: `lead developer` is not a single \
                   word",
    },
    Case {
        name: "unknown permission mode",
        file: "plans/bad.yaml",
        content: b"agent:
  permission_mode: yolo
instances: [{name: dev, role: developer}]
tasks: [{id: a, instance: dev, prompt: p}]
",
        fragment: "plans/bad.yaml:2:20: `agent.permission_mode`: unknown permission mode \
                   `yolo`; use one of acceptEdits, bypassPermissions, default, dontAsk, plan",
    },
    Case {
        name: "empty file",
        file: "plans/bad.yaml",
        content: b"",
        fragment: "plans/bad.yaml: the plan file is empty; a plan needs at least `instances:` \
                   and `tasks:`",
    },
    Case {
        name: "binary garbage",
        file: "plans/bad.yaml",
        content: b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe",
        fragment: "plans/bad.yaml:1:8: not a plan: the file holds binary data (a NUL byte); a \
                   plan is a YAML text file",
    },
    Case {
        name: "not YAML",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}\ntasks: {\n",
        fragment: "plans/bad.yaml:2:1: not valid YAML: did not find expected ',' or ']', while \
                   parsing a flow sequence at line 1 column 12",
    },
    Case {
        name: "a list, not a mapping",
        file: "plans/bad.yaml",
        content: b"- name: dev\n- id: a\n",
        fragment: "plans/bad.yaml:1:1: a plan is a YAML mapping of fields (`instances:`, \
                   `tasks:`, ...), but this file holds a list",
    },
    Case {
        name: "no tasks",
        file: "plans/bad.yaml",
        content: b"instances: [{name: dev, role: developer}]\ntasks: []\n",
        fragment: "plans/bad.yaml:2:8: `tasks`: a plan needs at least one task",
    },
];

/// Everything in `dir`, recursively, relative to it.
fn tree(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.expect("walk");
            e.path()
                .strip_prefix(dir)
                .expect("inside")
                .display()
                .to_string()
        })
        .collect()
}

fn borg(p: &Project) -> Command {
    Command::from_std(p.command())
}

#[test]
fn every_malformed_plan_is_refused_with_its_message_and_exit_2() {
    // Collect every mismatch, so one run shows all rows that are off.
    let mut failures = Vec::new();
    for case in CASES {
        let p = Project::new();
        p.write(case.file, case.content);
        let before = tree(p.path());
        let validate = p.run(&["validate", case.file]);
        let run = p.run(&[case.file, "--workspaces", "ws", "--out", "run"]);
        for (what, out) in [("validate", &validate), ("run", &run)] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let ok = out.status.code() == Some(2)
                && stderr.starts_with("error: the plan has a problem:\n")
                && stderr.contains(case.fragment)
                && (what == "run" || out.stdout.is_empty());
            if !ok {
                failures.push(format!(
                    "{} ({what}): expected exit 2 and\n  {}\n{}",
                    case.name,
                    case.fragment,
                    output_text(out)
                ));
            }
        }
        if tree(p.path()) != before {
            failures.push(format!(
                "{}: the run created {:?}",
                case.name,
                tree(p.path())
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_missing_plan_file_is_refused() {
    let p = Project::new();
    borg(&p)
        .args(["validate", "plans/missing.yaml"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("error: cannot read plan `plans/missing.yaml`"))
        .stderr(contains("No such file or directory"));
    borg(&p)
        .args([
            "run",
            "plans/missing.yaml",
            "--workspaces",
            "ws",
            "--out",
            "run",
        ])
        .assert()
        .code(2)
        .stderr(contains("error: cannot read plan `plans/missing.yaml`"));
    assert_eq!(tree(p.path()), BTreeSet::new());
}

#[test]
fn a_folder_given_as_plan_is_refused() {
    let p = Project::new();
    std::fs::create_dir(p.join("plans")).expect("mkdir");
    borg(&p)
        .args(["validate", "plans"])
        .assert()
        .code(2)
        .stderr(contains("error: cannot read plan `plans`"));
}

#[test]
fn a_good_plan_validates_silently_and_writes_nothing() {
    let p = Project::new();
    p.write("plans/good.yaml", GOOD);
    borg(&p)
        .args(["validate", "plans/good.yaml"])
        .assert()
        .code(0)
        .stdout("")
        .stderr("");
    assert_eq!(
        tree(p.path()),
        ["plans", "plans/good.yaml"].map(String::from).into()
    );
}

#[test]
fn a_template_next_to_the_plan_is_found_from_another_folder() {
    let p = Project::new();
    p.write("plans/fixtures/app/README.md", "hello");
    p.write(
        "plans/t.yaml",
        GOOD.replace("role: tester", "role: tester\n    template: fixtures/app"),
    );
    borg(&p)
        .args(["validate", "plans/t.yaml"])
        .assert()
        .code(0)
        .stdout("")
        .stderr("");
}

#[test]
fn every_problem_of_a_plan_is_reported_at_once_in_file_order() {
    let p = Project::new();
    p.write(
        "plans/many.yaml",
        "\
name: many
jobs: 0
instances:
  - {name: dev, role: developer}
tasks:
  - id: Schema
    instance: dev
    prompt: p
  - id: auth
    instance: qa
    prompt: p
    needs: [schema]
    retries: 99
",
    );
    let out = borg(&p)
        .args(["validate", "plans/many.yaml"])
        .assert()
        .code(2)
        .stdout("");
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_eq!(
        stderr,
        "\
error: the plan has 5 problems:
  plans/many.yaml:2:7: `jobs`: `0` is too small; must be from 1 to 256
  plans/many.yaml:6:9: `tasks[0].id`: invalid task id `Schema`: must start with a lowercase letter or a digit
  plans/many.yaml:10:15: `tasks[1].instance`: unknown instance `qa` (known: dev)
  plans/many.yaml:12:13: `tasks[1].needs`: unknown task `schema` (known: Schema, auth)
  plans/many.yaml:13:14: `tasks[1].retries`: `99` is too large; must be from 0 to 20
"
    );
}

#[test]
fn validate_also_checks_the_agent_command() {
    let p = Project::new();
    p.write(
        "plans/agent.yaml",
        GOOD.replace("/bin/true", "./no-such-agent"),
    );
    borg(&p)
        .args(["validate", "plans/agent.yaml"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains(
            "agent command `./no-such-agent` was not found at `plans/./no-such-agent`",
        ));
}

/// YAML-ish text: lines built from plan-like pieces, so the generator reaches the
/// validator and the locator, not only the YAML parser.
fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("name: x".to_string()),
        Just("instances:".to_string()),
        Just("tasks:".to_string()),
        Just("- name: dev".to_string()),
        Just("  role: developer".to_string()),
        Just("- id: a".to_string()),
        Just("  instance: dev".to_string()),
        Just("  prompt: |".to_string()),
        Just("  needs: [a, b, {c: d}]".to_string()),
        Just("  timeout: 1h30m".to_string()),
        Just("agent: {kind: generic, env: {A: 1}}".to_string()),
        Just("  - ".to_string()),
        Just("&x *x !t <<: ---".to_string()),
        "[ -~]{0,30}",
    ];
    prop::collection::vec((0usize..6, piece), 0..24).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(indent, text)| format!("{}{text}\n", " ".repeat(indent)))
            .collect()
    })
}

fn load_bytes(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, bytes).expect("write");
    // Any answer is fine; a panic fails the test.
    let _ = borg_batch::plan::load(&path);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn loading_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load_bytes(&bytes);
    }

    #[test]
    fn loading_yamlish_text_never_panics(text in yamlish()) {
        load_bytes(text.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn validate_on_random_input_exits_0_or_2(text in yamlish()) {
        let p = Project::new();
        p.write("p.yaml", text);
        let out = p.run(&["validate", "p.yaml"]);
        prop_assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "{}",
            output_text(&out)
        );
        prop_assert_eq!(tree(p.path()), ["p.yaml".to_string()].into());
    }
}

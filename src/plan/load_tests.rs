//! Whole-file tests of [`super::load`]: a plan's text in, the plan or the exact rendered
//! problems out. The binary-level tests (exit codes, nothing written) are in
//! `tests/it/plan_errors.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{AgentKind, SessionMode, load};
use crate::error::Error;

/// Writes `text` as `<tmp>/<name>` and loads it.
fn load_text(name: &str, text: &str) -> (tempfile::TempDir, crate::Result<super::Plan>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write plan");
    let result = load(&path);
    (dir, result)
}

/// The problems of a plan that must fail, rendered, with the temp folder cut off.
fn problems(text: &str) -> Vec<String> {
    let (dir, result) = load_text("p.yaml", text);
    match result {
        Err(Error::Plan(problems)) => {
            let prefix = format!("{}/", dir.path().display());
            problems
                .iter()
                .map(|p| p.to_string().replace(&prefix, ""))
                .collect()
        }
        other => panic!("expected plan problems, got {other:?}"),
    }
}

const GOOD: &str = "\
name: demo
jobs: 2
timeout: 1h30m
retries: 1
grace: 0s
agent:
  kind: generic
  command: /bin/true
  env: {PORT: 8080}
instances:
  - name: dev
    role: developer
    ignore: [target/]
    agent: {model: opus, session: fresh, max_turns: 5, max_budget_usd: 1.5}
  - name: test
    role: tester
tasks:
  - id: schema
    instance: dev
    prompt: Write the schema.
  - id: auth
    instance: test
    prompt: |
      Test it.
    needs: [schema]
    timeout: 90s
    retries: 0
    check: cargo test
";

#[test]
fn a_good_plan_loads_with_every_field() {
    let (dir, result) = load_text("good.yaml", GOOD);
    let plan = result.expect("good plan");
    assert_eq!(plan.name, "demo");
    assert_eq!(plan.dir, dir.path());
    assert_eq!(plan.jobs, Some(2));
    assert_eq!(plan.timeout, Some(Duration::from_secs(5400)));
    assert_eq!(plan.retries, Some(1));
    assert_eq!(plan.grace, Some(Duration::ZERO));
    assert_eq!(plan.ignore, [".git/"]);
    assert_eq!(plan.agent.kind, Some(AgentKind::Generic));
    assert_eq!(
        plan.agent.env.as_ref().map(|e| e["PORT"].as_str()),
        Some("8080")
    );
    let dev = plan.instance("dev").expect("dev");
    assert_eq!(dev.ignore, ["target/"]);
    assert_eq!(dev.agent.session, Some(SessionMode::Fresh));
    assert_eq!(dev.agent.max_turns, Some(5));
    assert_eq!(dev.agent.max_budget_usd, Some(1.5));
    let auth = plan.task("auth").expect("auth");
    assert_eq!(auth.needs, ["schema"]);
    assert_eq!(auth.prompt, "Test it.\n");
    assert_eq!(auth.timeout, Some(Duration::from_secs(90)));
    assert_eq!(auth.check.as_deref(), Some("cargo test"));
}

#[test]
fn the_name_defaults_to_the_stem_and_must_be_a_valid_name() {
    let minimal = "instances: [{name: a, role: dev}]\ntasks: [{id: t, instance: a, prompt: p}]\n";
    let (_dir, result) = load_text("feature-auth.yml", minimal);
    assert_eq!(result.expect("plan").name, "feature-auth");
    let (dir, result) = load_text("Feature Auth.yaml", minimal);
    let Err(Error::Plan(problems)) = result else {
        panic!("expected a problem");
    };
    assert_eq!(
        problems[0].to_string(),
        format!(
            "{}/Feature Auth.yaml: `name`: the plan's name defaults to the file's stem \
             `Feature Auth`, which is not a valid name: it must start with a lowercase letter \
             or a digit; add a `name:` field",
            dir.path().display()
        )
    );
}

#[test]
fn the_plan_dir_is_dot_for_a_bare_file_name() {
    // `load` on a relative bare name: the parent is empty, which must read as `.`.
    let minimal = "instances: [{name: a, role: dev}]\ntasks: [{id: t, instance: a, prompt: p}]\n";
    let (dir, _) = load_text("bare.yaml", minimal);
    let plan = crate::plan::load(&dir.path().join("bare.yaml")).expect("plan");
    assert_eq!(plan.path, dir.path().join("bare.yaml"));
    assert_eq!(Path::new(".").join("x"), PathBuf::from("./x"));
}

#[test]
fn semantic_problems_are_all_reported_with_line_column_and_field() {
    let text = "\
name: demo
jobs: 0
retries: -1
timeout: 0s
agent: {kind: claud, permission_mode: yolo, env: {1BAD: x}}
instances:
  - name: dev
    role: Developer
  - name: dev
    role: tester
    template: nowhere
tasks:
  - id: schema
    instance: dev
    prompt: '  '
  - id: ../up
    instance: devv
    prompt: p
    needs: [schema, shema, ../up]
  - id: a
    instance: dev
    prompt: p
    needs: [b]
    timeout: 1.5h
  - id: b
    instance: test2
    prompt: p
    needs: [a]
";
    assert_eq!(
        problems(text),
        [
            "p.yaml:2:7: `jobs`: `0` is too small; must be from 1 to 256",
            "p.yaml:3:10: `retries`: `-1` is negative; must be from 0 to 20",
            "p.yaml:4:10: `timeout`: `0s` is zero; a timeout must be above zero",
            "p.yaml:5:15: `agent.kind`: unknown agent kind `claud`; use `claude`, `codex` or `generic`",
            "p.yaml:5:39: `agent.permission_mode`: unknown permission mode `yolo`; use one of \
             acceptEdits, bypassPermissions, default, dontAsk, plan",
            "p.yaml:5:57: `agent.env.1BAD`: `1BAD` is not a valid environment variable name; \
             use letters, digits and `_`, not starting with a digit",
            "p.yaml:8:11: `instances[0].role`: `Developer` is not a single word; use lowercase \
             letters, digits, `_` and `-`, starting with a letter",
            "p.yaml:9:11: `instances[1].name`: duplicate instance name `dev` (also `instances[0]`)",
            "p.yaml:11:15: `instances[1].template`: template folder `nowhere` does not exist \
             (looked at `nowhere`)",
            "p.yaml:15:13: `tasks[0].prompt`: the prompt is empty",
            "p.yaml:16:9: `tasks[1].id`: invalid task id `../up`: must start with a lowercase \
             letter or a digit",
            "p.yaml:17:15: `tasks[1].instance`: unknown instance `devv` (known: dev)",
            "p.yaml:19:21: `tasks[1].needs`: unknown task `shema` (known: schema, ../up, a, b)",
            "p.yaml:19:28: `tasks[1].needs`: task `../up` cannot need itself",
            "p.yaml:23:13: `tasks[2].needs`: dependency cycle: a -> b -> a",
            "p.yaml:24:14: `tasks[2].timeout`: `1.5h` has a fraction; use smaller units \
             instead, e.g. `1m30s`",
            "p.yaml:26:15: `tasks[3].instance`: unknown instance `test2` (known: dev)",
        ]
    );
}

#[test]
fn duplicate_keys_are_refused_in_structs_and_in_maps() {
    assert_eq!(
        problems("name: a\ntasks: []\nname: b\n"),
        ["p.yaml:3:1: duplicate key `name`"]
    );
    assert_eq!(
        problems("agent:\n  env:\n    A: 1\n    B: 2\n    A: 3\n"),
        ["p.yaml:5:5: `agent.env`: duplicate key `A`"]
    );
    assert_eq!(
        problems("tasks:\n  - {id: a, id: b}\n"),
        ["p.yaml:2:13: `tasks[0]`: duplicate key `id`"]
    );
}

#[test]
fn shape_and_syntax_problems_name_the_file() {
    assert_eq!(
        problems(""),
        ["p.yaml: the plan file is empty; a plan needs at least `instances:` and `tasks:`"]
    );
    assert_eq!(
        problems("# only a comment\n"),
        [
            "p.yaml: the plan file holds no YAML value; a plan needs at least `instances:` \
             and `tasks:`"
        ]
    );
    assert_eq!(
        problems("- a\n- b\n"),
        [
            "p.yaml:1:1: a plan is a YAML mapping of fields (`instances:`, `tasks:`, ...), \
             but this file holds a list"
        ]
    );
    assert_eq!(
        problems("hello world\n"),
        [
            "p.yaml:1:1: a plan is a YAML mapping of fields (`instances:`, `tasks:`, ...), \
             but this file holds a single value"
        ]
    );
    let syntax = problems("tasks:\n  - id: [a\n");
    assert!(
        syntax[0].starts_with("p.yaml:3:1: not valid YAML: did not find expected ',' or ']'"),
        "{syntax:?}"
    );
    let two_docs = problems("a: 1\n---\nb: 2\n");
    assert_eq!(
        two_docs,
        ["p.yaml: deserializing from YAML containing more than one document is not supported"]
    );
}

#[test]
fn type_problems_stop_at_the_first_with_its_location() {
    assert_eq!(
        problems("tasks:\n  - id: a\n    nedes: [b]\n"),
        [
            "p.yaml:3:5: `tasks[0]`: unknown field `nedes`, expected one of `id`, `instance`, \
             `prompt`, `needs`, `timeout`, `retries`, `check`, `idle_timeout`, `expect`, `output_schema`"
        ]
    );
    assert_eq!(
        problems("jobs: [1]\n"),
        ["p.yaml:1:7: `jobs`: invalid type: sequence, expected a whole number"]
    );
}

#[test]
fn binary_and_non_utf8_files_are_refused() {
    assert_eq!(
        problems("name: a\nx\0y"),
        [
            "p.yaml:2:2: not a plan: the file holds binary data (a NUL byte); a plan is a YAML text file"
        ]
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("latin1.yaml");
    std::fs::write(&path, b"name: caf\xe9\n").expect("write");
    let err = load(&path).expect_err("not utf-8");
    assert!(
        err.to_string().ends_with(
            "latin1.yaml:1:10: not a plan: the file is not UTF-8 text; a plan is a YAML text file"
        ),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = load(Path::new("/nonexistent/plan.yaml")).expect_err("missing");
    assert!(matches!(err, Error::PlanRead { .. }));
    assert_eq!(err.to_string(), "cannot read plan `/nonexistent/plan.yaml`");
}

#[test]
fn huge_numbers_and_limits_are_refused_in_words() {
    let text = "\
jobs: 99999999999999999999999
grace: 2h
agent: {max_turns: 0, max_budget_usd: .nan}
instances: [{name: a, role: dev, agent: {max_budget_usd: -1}}]
tasks: [{id: t, instance: a, prompt: p, retries: 21, timeout: 200h}]
";
    assert_eq!(
        problems(text),
        [
            "p.yaml:1:7: `jobs`: `99999999999999999999999` is too large; must be from 1 to 256",
            "p.yaml:2:8: `grace`: `2h` is too long; at most `1h`",
            "p.yaml:3:20: `agent.max_turns`: `0` is too small; must be from 1 to 10000",
            "p.yaml:3:39: `agent.max_budget_usd`: `NaN` is out of range; must be above 0 and at most 10000",
            "p.yaml:4:58: `instances[0].agent.max_budget_usd`: `-1` is out of range; must be above 0 and at most 10000",
            "p.yaml:5:50: `tasks[0].retries`: `21` is too large; must be from 0 to 20",
            "p.yaml:5:63: `tasks[0].timeout`: `200h` is too long; at most `168h`",
        ]
    );
}

#[test]
fn missing_required_fields_and_empty_lists_are_named() {
    assert_eq!(
        problems("name: x\ninstances: []\ntasks:\n  - instance: a\n"),
        [
            "p.yaml:2:12: `instances`: a plan needs at least one instance",
            "p.yaml:4:5: `tasks[0]`: missing `id`",
            "p.yaml:4:5: `tasks[0]`: missing `prompt`",
            "p.yaml:4:15: `tasks[0].instance`: unknown instance `a` (known: none)",
        ]
    );
}

#[test]
fn templates_resolve_against_the_plan_folder_and_must_be_folders() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("fixtures/app")).expect("mkdir");
    std::fs::write(dir.path().join("fixtures/file"), "x").expect("write");
    let plans = dir.path().join("plans");
    std::fs::create_dir(&plans).expect("mkdir");
    let path = plans.join("t.yaml");
    let text = "\
instances:
  - {name: a, role: dev, template: ../fixtures/app}
  - {name: b, role: dev, template: ../fixtures/file}
tasks: [{id: t, instance: a, prompt: p}]
";
    std::fs::write(&path, text).expect("write");
    let Err(Error::Plan(problems)) = load(&path) else {
        panic!("expected a problem");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "instances[1].template");
    assert!(
        problems[0]
            .message
            .starts_with("template `../fixtures/file` is not a folder")
    );
    std::fs::write(&path, text.replace("fixtures/file", "fixtures/app")).expect("write");
    let plan = load(&path).expect("plan");
    assert_eq!(
        plan.instances[0].template,
        Some(plans.join("../fixtures/app"))
    );
}

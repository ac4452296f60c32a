//! `kind: codex`: the real Codex CLI (`.ci/install-codex`) through borg-batch against the
//! loopback Responses API: a thread continued across tasks and runs (`exec resume`), own
//! tokens per task, a rate limit tried again, an API error failing the task, an unknown
//! thread replaced by a new one, `--output-schema` and the answer checked.

use crate::support::fake_api::{self, Dialect, FakeApi, Turn};
use crate::support::{change, task};

use super::{Rig, assert_passed, logged_commands};

const TWO_TASKS: &str = r#"
agent: {kind: codex, command: "{cli}", args: {args}}
timeout: 120s
grace: 1s
instances:
  - {name: dev, role: developer}
tasks:
  - {id: one, instance: dev, prompt: "first prompt: remember PELICAN"}
  - {id: two, instance: dev, prompt: "second prompt: what was the word?"}
"#;

fn rig() -> Option<Rig> {
    fake_api::codex_binary().map(Rig::new)
}

fn run(rig: &Rig, api: &FakeApi, yaml: &str) -> std::process::Output {
    rig.plan(yaml, &api.codex_args());
    rig.borg(&["plan.yaml"], &api.codex_env())
}

fn tokens(t: &serde_json::Value) -> (u64, u64) {
    let n = |k: &str| {
        t["tokens"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("no tokens in {t:#}"))
    };
    (n("input"), n("output"))
}

#[test]
fn codex_continues_one_thread_across_tasks_and_runs_with_each_tasks_own_tokens() {
    let Some(rig) = rig() else { return };
    let api = FakeApi::start_as(
        Dialect::OpenAi,
        vec![
            Turn::exec_command("printf 'made by codex\\n' > made.txt"),
            Turn::text("first answer: PELICAN noted"),
            Turn::text("second answer: PELICAN"),
        ],
    );
    let out = run(&rig, &api, TWO_TASKS);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let r = rig.report();
    let (one, two) = (task(&r, "one"), task(&r, "two"));
    assert_passed(one);
    assert_passed(two);
    // The tool call really ran, in the instance's project files.
    let made = std::fs::read_to_string(rig.files("dev").join("made.txt")).unwrap();
    assert_eq!(made, "made by codex\n");
    change(one, "made.txt");
    assert_eq!(one["result"], "first answer: PELICAN noted");
    // The thread id is the session; `exec resume` keeps it.
    let thread = one["session_id"].as_str().unwrap().to_owned();
    assert_eq!(two["session_id"], thread.as_str(), "{two:#}");
    let stored = rig.p.read("workspaces/plan/dev/state/session_id");
    assert_eq!(stored.trim(), thread);
    let log_two = rig.run_file("logs/two.1.log");
    let commands = logged_commands(&log_two);
    assert_eq!(commands.len(), 1, "{log_two}");
    assert!(commands[0].contains(" exec resume "), "{}", commands[0]);
    assert!(
        commands[0].contains(&format!(" {thread} - ")),
        "{}",
        commands[0]
    );
    // The model saw the first task's conversation again, and only the new prompt is new.
    let requests = api.requests();
    assert_eq!(requests.len(), 3);
    let third = fake_api::conversation_text(&requests[2]);
    for earlier in [
        "first prompt: remember PELICAN",
        "first answer: PELICAN noted",
    ] {
        assert!(third.contains(earlier), "missing {earlier:?} in {third}");
    }
    // Tokens: Codex reports the thread's total; each task gets its own share.
    let (i, o) = (fake_api::INPUT_TOKENS, fake_api::OUTPUT_TOKENS);
    assert_eq!(tokens(one), (2 * i, 2 * o), "two requests");
    assert_eq!(tokens(two), (i, o), "one request, not the thread's total");
    assert!(
        one["cost_usd"].is_null() && two["cost_usd"].is_null(),
        "{r:#}"
    );
    // Its own CODEX_HOME per instance, never the user's ~/.codex.
    assert!(
        rig.root
            .join("workspaces/plan/dev/state/codex/sessions")
            .is_dir()
    );
    assert!(!rig.root.join("home/.codex").exists());

    // A second run continues the same thread.
    drop(api);
    let api = FakeApi::start_as(
        Dialect::OpenAi,
        vec![Turn::text("third answer"), Turn::text("fourth answer")],
    );
    let out = run(&rig, &api, TWO_TASKS);
    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let log = rig.run_file("logs/one.1.log");
    assert!(log.contains(&format!(" {thread} - ")), "{log}");
    let first = fake_api::conversation_text(&api.requests()[0]);
    assert!(first.contains("second answer: PELICAN"), "{first}");
    let r = rig.report();
    assert_eq!(tokens(task(&r, "one")), (i, o));
}

const TWO_INSTANCES: &str = r#"
agent: {kind: codex, command: "{cli}", args: {args}}
timeout: 120s
grace: 1s
instances:
  - {name: a, role: developer}
  - {name: b, role: developer}
tasks:
  - {id: limited, instance: a, prompt: "[a] do it"}
  - {id: refused, instance: b, prompt: "[b] do it"}
"#;

#[test]
fn codex_rate_limit_is_tried_again_and_an_api_error_fails_the_task() {
    let Some(rig) = rig() else { return };
    let api = FakeApi::start_keyed_as(
        Dialect::OpenAi,
        [
            (
                "[a]",
                vec![
                    Turn::status(429, "slow down"),
                    Turn::text("done after the wait"),
                ],
            ),
            ("[b]", vec![Turn::status(400, "this request is bad")]),
        ],
    );
    let out = run(&rig, &api, TWO_INSTANCES);

    assert_eq!(out.status.code(), Some(1), "{}", rig.explain(&out));
    let r = rig.report();
    let limited = task(&r, "limited");
    assert_passed(limited);
    assert_eq!(limited["result"], "done after the wait");
    let notes = limited["notes"].to_string();
    assert!(notes.contains("rate limited"), "{limited:#}");
    let refused = task(&r, "refused");
    assert_eq!(refused["status"], "failed", "{refused:#}");
    assert_eq!(refused["exit_code"], 1, "{refused:#}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("exited with code 1") && error.contains("this request is bad"),
        "{error}"
    );
    assert!(
        !refused["notes"].to_string().contains("rate limited"),
        "{refused:#}"
    );
}

#[test]
fn an_unknown_codex_thread_is_replaced_by_a_new_one_with_the_history() {
    let Some(rig) = rig() else { return };
    let one_task = r#"
agent: {kind: codex, command: "{cli}", args: {args}}
timeout: 120s
grace: 1s
instances:
  - {name: dev, role: developer}
tasks:
  - {id: one, instance: dev, prompt: "the prompt"}
"#;
    let api = FakeApi::start_as(Dialect::OpenAi, vec![Turn::text("first run")]);
    let out = run(&rig, &api, one_task);
    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let gone = "0199aaaa-0000-7000-8000-000000000000";
    rig.p.write("workspaces/plan/dev/state/session_id", gone);

    drop(api);
    let api = FakeApi::start_as(Dialect::OpenAi, vec![Turn::text("second run")]);
    let out = run(&rig, &api, one_task);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let r = rig.report();
    let one = task(&r, "one");
    assert_passed(one);
    assert!(
        one["notes"]
            .to_string()
            .contains(&format!("session `{gone}` could not be resumed")),
        "{one:#}"
    );
    let session = one["session_id"].as_str().unwrap();
    assert_ne!(session, gone);
    // First the resume, then a new thread, which got the task history in its prompt.
    let log = rig.run_file("logs/one.1.log");
    let commands = logged_commands(&log);
    assert_eq!(commands.len(), 2, "{log}");
    assert!(commands[0].contains(" resume "), "{log}");
    assert!(!commands[1].contains(" resume "), "{log}");
    assert!(log.contains("no rollout found"), "{log}");
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "the failed resume asked nothing");
    let text = fake_api::conversation_text(&requests[0]);
    assert!(text.contains("# Task history of this workspace"), "{text}");
}

#[test]
fn codex_gets_the_output_schema_and_its_answer_is_checked() {
    let Some(rig) = rig() else { return };
    rig.p.write(
        "answer.schema.json",
        r#"{"type":"object","properties":{"answer":{"type":"integer"}},"required":["answer"],"additionalProperties":false}"#,
    );
    let yaml = r#"
agent: {kind: codex, command: "{cli}", args: {args}}
timeout: 120s
grace: 1s
instances:
  - {name: a, role: developer}
  - {name: b, role: developer}
tasks:
  - {id: good, instance: a, prompt: "[a] answer", output_schema: answer.schema.json}
  - {id: bad, instance: b, prompt: "[b] answer", output_schema: answer.schema.json}
"#;
    let api = FakeApi::start_keyed_as(
        Dialect::OpenAi,
        [
            ("[a]", vec![Turn::text(r#"{"answer": 42}"#)]),
            ("[b]", vec![Turn::text(r#"{"answer": "forty-two"}"#)]),
        ],
    );
    let out = run(&rig, &api, yaml);

    assert_eq!(out.status.code(), Some(1), "{}", rig.explain(&out));
    let r = rig.report();
    let good = task(&r, "good");
    assert_passed(good);
    assert_eq!(good["structured_output"], serde_json::json!({"answer": 42}));
    let bad = task(&r, "bad");
    assert_eq!(bad["status"], "failed", "{bad:#}");
    let error = bad["error"].as_str().unwrap();
    assert!(
        error.contains("does not match `answer.schema.json`"),
        "{error}"
    );
    // The CLI passed the schema on to the API as the response format.
    let sent = &api.requests_for("[a]")[0]["text"]["format"];
    assert_eq!(sent["type"], "json_schema", "{sent:#}");
    assert_eq!(sent["schema"]["required"][0], "answer", "{sent:#}");
}

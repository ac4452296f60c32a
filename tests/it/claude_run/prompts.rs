//! What a prompt carries: with `session: fresh` the task history travels in the prompt and
//! nothing is resumed; every prompt holds the earlier tasks' history but its own text once.

use crate::support::fake_api::{self, FakeApi, Turn};
use crate::support::task;

use super::{assert_passed, logged_commands, prompt_of, rig};

// 11. session: fresh — the history travels in the prompt.

#[test]
fn fresh_sessions_send_the_task_history_in_the_prompt_and_never_resume() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}", session: fresh}
timeout: 60s
grace: 1s
instances:
  - {name: dev, role: developer, context: "CONTEXT-MARKER-7"}
tasks:
  - {id: one, instance: dev, prompt: "first prompt ALBATROSS"}
  - {id: two, instance: dev, prompt: "second prompt"}
"#,
    );
    let api = FakeApi::start(vec![
        Turn::text("first answer"),
        Turn::text("second answer"),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let r = rig.report();
    let (one, two) = (task(&r, "one"), task(&r, "two"));
    assert_passed(one);
    assert_passed(two);
    assert_ne!(
        one["session_id"], two["session_id"],
        "a new session per task"
    );
    for name in ["one", "two"] {
        let log = rig.run_file(&format!("logs/{name}.1.log"));
        let commands = logged_commands(&log);
        assert_eq!(commands.len(), 1, "{log}");
        assert!(!commands[0].contains("--resume"), "{}", commands[0]);
        assert!(
            !commands[0].contains("--append-system-prompt"),
            "{}",
            commands[0]
        );
    }
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    let second = prompt_of(&requests[1]);
    assert!(
        second.contains("first prompt ALBATROSS"),
        "history: {second}"
    );
    assert!(
        second.contains("CONTEXT-MARKER-7"),
        "role context: {second}"
    );
    assert!(second.trim_end().ends_with("second prompt"), "{second}");
    // A new conversation: nothing of the first answer but what session.md recorded.
    assert!(!fake_api::conversation_text(&requests[1]).contains("first answer"));
    assert!(
        !rig.p.join("workspaces/plan/dev/state/session_id").exists(),
        "no session kept for fresh"
    );
}

// The prompt: the task's own text once, after the history of the tasks before it.

#[test]
fn a_prompt_holds_the_history_of_earlier_tasks_but_no_copy_of_its_own() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: r, role: developer}
  - {name: f, role: developer, agent: {session: fresh}}
tasks:
  - {id: r1, instance: r, prompt: "[task:r1] alpha prompt"}
  - {id: f1, instance: f, prompt: "[task:f1] beta prompt"}
  - {id: f2, instance: f, prompt: "[task:f2] gamma prompt"}
"#,
    );
    let api = FakeApi::start_keyed([
        ("[task:r1]", vec![Turn::text("alpha done")]),
        ("[task:f1]", vec![Turn::text("beta done")]),
        ("[task:f2]", vec![Turn::text("gamma done")]),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    // The first task of a resuming instance: nothing to resume, no history, just the task
    // (its role context went in --append-system-prompt).
    let r1 = prompt_of(&api.requests_for("[task:r1]")[0]);
    assert_eq!(r1.trim_end(), "[task:r1] alpha prompt", "{r1}");
    // A fresh-session task: the earlier task in the history, its own text once, last.
    let f2 = prompt_of(&api.requests_for("[task:f2]")[0]);
    assert_eq!(f2.matches("[task:f1] beta prompt").count(), 1, "{f2}");
    assert_eq!(f2.matches("[task:f2] gamma prompt").count(), 1, "{f2}");
    assert!(f2.trim_end().ends_with("[task:f2] gamma prompt"), "{f2}");
}

//! Resumed sessions: one session per instance across tasks and runs (each resume a fork),
//! `--fresh` forgetting it, a session the CLI no longer knows replaced by a fresh one, and a
//! retry resuming the session as it was before the failed attempt.

use crate::support::fake_api::{self, FakeApi, Turn};
use crate::support::task;

use super::{TWO_TASKS, assert_passed, logged_commands, prompt_of, rig};

// 2. One session per instance, across tasks and runs; --fresh forgets it.

#[test]
fn tasks_of_one_instance_share_one_session_across_tasks_and_runs() {
    let Some(rig) = rig() else { return };
    rig.plan(TWO_TASKS);
    let api = FakeApi::start(vec![
        Turn::text("first answer: PELICAN noted"),
        Turn::text("second answer: PELICAN"),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let r = rig.report();
    let (one, two) = (task(&r, "one"), task(&r, "two"));
    assert_passed(one);
    assert_passed(two);
    let session = one["session_id"].as_str().unwrap().to_owned();
    // Each resume is a fork (the resumed session stays as it was for a retry), so the
    // second task continues the conversation under a new id.
    let latest_session = two["session_id"].as_str().unwrap().to_owned();
    assert_ne!(
        latest_session, session,
        "task two forked task one's session"
    );
    // The second CLI start resumed the first task's session ...
    let log_two = rig.run_file("logs/two.1.log");
    let commands = logged_commands(&log_two);
    assert_eq!(commands.len(), 1, "{log_two}");
    assert!(
        commands[0].contains(&format!("--resume {session}")),
        "{}",
        commands[0]
    );
    let log_one = rig.run_file("logs/one.1.log");
    assert!(
        !log_one.contains("--resume"),
        "nothing to resume yet: {log_one}"
    );
    // ... so the model saw the first conversation again.
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    let second = fake_api::conversation_text(&requests[1]);
    for earlier in [
        "first prompt: remember PELICAN",
        "first answer: PELICAN noted",
        "second prompt: what was the word?",
    ] {
        assert!(second.contains(earlier), "missing {earlier:?} in {second}");
    }
    // Resumed, the history is not sent again in the prompt.
    assert_eq!(
        prompt_of(&requests[1]).trim_end(),
        "second prompt: what was the word?",
        "{second}"
    );
    let stored = rig.p.read("workspaces/plan/dev/state/session_id");
    assert_eq!(stored.trim(), latest_session, "the newest session is kept");

    // A second run of the plan continues the same session.
    drop(api);
    let api = FakeApi::start(vec![
        Turn::text("third answer"),
        Turn::text("fourth answer"),
    ]);
    let out = rig.borg(&api, &["plan.yaml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let log = rig.run_file("logs/one.1.log");
    assert!(
        log.contains(&format!("--resume {latest_session} --fork-session")),
        "{log}"
    );
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    let first_of_run_two = fake_api::conversation_text(&requests[0]);
    assert!(
        first_of_run_two.contains("second answer: PELICAN"),
        "the earlier run's conversation: {first_of_run_two}"
    );

    // --fresh forgets it: the next request carries no earlier message.
    drop(api);
    let api = FakeApi::start(vec![Turn::text("fresh one"), Turn::text("fresh two")]);
    let out = rig.borg(&api, &["plan.yaml", "--fresh"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let log = rig.run_file("logs/one.1.log");
    assert!(!log.contains("--resume"), "{log}");
    let requests = api.requests();
    let first = fake_api::conversation_text(&requests[0]);
    for old in ["PELICAN noted", "third answer", "fourth answer"] {
        assert!(!first.contains(old), "{old:?} survived --fresh: {first}");
    }
    let r = rig.report();
    assert_ne!(task(&r, "one")["session_id"], session.as_str());
    let two_log = rig.run_file("logs/two.1.log");
    let fresh_one = task(&r, "one")["session_id"].as_str().unwrap().to_owned();
    assert!(
        two_log.contains(&format!("--resume {fresh_one} --fork-session")),
        "the fresh session is continued again: {two_log}"
    );
}

// 12. A session the CLI no longer knows.

#[test]
fn an_unknown_session_is_replaced_by_a_fresh_one_with_the_history() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: dev, role: developer}
tasks:
  - {id: next, instance: dev, prompt: "continue the work"}
"#,
    );
    let bogus = "11111111-2222-3333-4444-555555555555";
    rig.p.write("workspaces/plan/dev/state/session_id", bogus);
    rig.p.write(
        "workspaces/plan/dev/session.md",
        "# Session: dev\n\nYou are the developer.\n\n## Task: 2026-01-01T00:00:00Z\n\n\
         Task `earlier`:\n\nEARLIER-TASK-MARKER build the parser\n\nOutcome: passed\n",
    );
    let api = FakeApi::start(vec![Turn::text("continued")]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let r = rig.report();
    let t = task(&r, "next");
    assert_passed(t);
    assert_eq!(t["attempts"], 1, "{t:#}");
    assert_eq!(t["result"], "continued");
    let session = t["session_id"].as_str().unwrap();
    assert_ne!(session, bogus);
    assert_eq!(
        rig.p.read("workspaces/plan/dev/state/session_id").trim(),
        session
    );
    let notes = t["notes"].to_string();
    assert!(notes.contains("could not be resumed"), "{t:#}");
    assert!(notes.contains(bogus), "{t:#}");
    // First the resume, then a fresh start.
    let log = rig.run_file("logs/next.1.log");
    let commands = logged_commands(&log);
    assert_eq!(commands.len(), 2, "{log}");
    assert!(commands[0].contains(&format!("--resume {bogus}")), "{log}");
    assert!(!commands[1].contains("--resume"), "{log}");
    assert!(log.contains("No conversation found"), "{log}");
    // The fresh session got the history in its prompt.
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "the failed resume asked nothing");
    let text = prompt_of(&requests[0]);
    assert!(
        text.contains("EARLIER-TASK-MARKER build the parser"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("continue the work"), "{text}");
}

// A retry continues the session as it was before the task, not the failed attempt's.

#[test]
fn a_retry_resumes_the_session_as_it_was_before_the_failed_attempt() {
    let Some(rig) = rig() else { return };
    rig.plan(&TWO_TASKS.replace("grace: 1s", "grace: 1s\nretries: 1"));
    let api = FakeApi::start(vec![
        Turn::text("first answer"),
        // Task two, attempt 1: the model asks for a change, then the API fails.
        Turn::write(&rig.files("dev").join("half.txt"), "half\n"),
        Turn::status(500, "broken midway"),
        // Attempt 2.
        Turn::text("second answer"),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let r = rig.report();
    let two = task(&r, "two");
    assert_passed(two);
    assert_eq!(two["attempts"], 2, "{two:#}");
    assert_eq!(two["flaky"], true);
    let session = task(&r, "one")["session_id"].as_str().unwrap().to_owned();
    let log = rig.run_file("logs/two.2.log");
    let commands = logged_commands(&log);
    assert!(
        commands[0].contains(&format!("--resume {session} --fork-session")),
        "{log}"
    );
    // The retry's conversation: task one, then task two's prompt once, nothing of the
    // failed attempt (its tool call, its error).
    let requests = api.requests();
    let retry = fake_api::conversation_text(requests.last().unwrap());
    assert!(retry.contains("first answer"), "{retry}");
    assert_eq!(retry.matches("second prompt").count(), 1, "{retry}");
    assert!(
        !retry.contains("half.txt"),
        "the failed attempt's tool call: {retry}"
    );
}

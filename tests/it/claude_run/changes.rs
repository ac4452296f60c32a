//! What a task produced, as borg-batch reports it: files written and edited by the CLI's real
//! tool calls become changes and a patch, and a check's test output is counted (a failing
//! check fails the task).

use std::fs;

use crate::support::fake_api::{FakeApi, Turn};
use crate::support::{change, task};

use super::{assert_passed, cost, rig};

// 1. Real tool calls, reported as changes.

#[test]
fn files_written_and_edited_by_real_tool_calls_are_reported_as_changes() {
    let Some(rig) = rig() else { return };
    rig.p.write(
        "tpl/src/main.rs",
        "fn main() {\n    println!(\"old\");\n}\n",
    );
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: dev, role: developer, template: tpl}
tasks:
  - {id: build, instance: dev, prompt: "Write notes.txt and edit src/main.rs"}
"#,
    );
    let files = rig.files("dev");
    let main_rs = files.join("src/main.rs");
    let api = FakeApi::start(vec![
        Turn::write(&files.join("notes.txt"), "first line\nsecond line\n"),
        Turn::read(&main_rs),
        Turn::edit(&main_rs, "\"old\"", "\"new\""),
        Turn::text("Wrote notes.txt and edited main.rs."),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    assert_eq!(api.remaining(), 0, "every scripted turn was asked for");
    assert_eq!(api.unscripted(), 0);
    // The CLI really did it.
    assert_eq!(
        fs::read_to_string(&main_rs).unwrap(),
        "fn main() {\n    println!(\"new\");\n}\n"
    );
    let r = rig.report();
    let t = task(&r, "build");
    assert_passed(t);
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["result"], "Wrote notes.txt and edited main.rs.");
    let session = t["session_id"].as_str().expect("session_id set");
    assert_eq!(session.len(), 36, "a UUID: {session}");
    assert!(cost(t) > 0.0, "{t:#}");

    let added = change(t, "notes.txt");
    assert_eq!(added["kind"], "added", "{added:#}");
    assert_eq!(added["binary"], false);
    assert!(added["size_before"].is_null());
    assert_eq!(added["size_after"], 23);
    let diff = added["diff"].as_str().unwrap();
    assert!(diff.contains("+first line\n+second line\n"), "{diff}");
    let modified = change(t, "src/main.rs");
    assert_eq!(modified["kind"], "modified", "{modified:#}");
    let diff = modified["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    println!(\"old\");\n+    println!(\"new\");\n"),
        "{diff}"
    );
    // Nothing else: the CLI's own state lives outside project-files/.
    assert_eq!(
        t["changes"].as_array().unwrap().len(),
        2,
        "{:#}",
        t["changes"]
    );

    assert_eq!(t["patch"], "diffs/build.patch");
    let patch = rig.run_file("diffs/build.patch");
    assert!(
        patch.contains("diff --git a/notes.txt b/notes.txt\nnew file mode 100644\n"),
        "{patch}"
    );
    assert!(
        patch.contains("diff --git a/src/main.rs b/src/main.rs\n"),
        "{patch}"
    );
    assert!(patch.contains("+    println!(\"new\");"), "{patch}");

    // The transcript: each tool call with its input, the assistant's text, cost and turns.
    let transcript = rig.run_file("logs/build.1.txt");
    assert!(
        transcript.contains(&format!("→ Write {}", files.join("notes.txt").display())),
        "{transcript}"
    );
    assert!(
        transcript.contains(&format!("→ Read {}", main_rs.display())),
        "{transcript}"
    );
    assert!(
        transcript.contains(&format!("→ Edit {}", main_rs.display())),
        "{transcript}"
    );
    assert!(
        transcript.contains("Assistant:\n  Wrote notes.txt and edited main.rs."),
        "{transcript}"
    );
    assert!(transcript.contains("\nResult: success · "), "{transcript}");
    assert!(
        !transcript.contains("\"type\":\"assistant\""),
        "{transcript}"
    );
}

// 8. A check's test output counted; a failing check fails the task.

#[test]
fn a_checks_cargo_test_output_is_counted_and_its_failure_fails_the_task() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: a, role: developer}
  - {name: b, role: tester}
tasks:
  - id: green
    instance: a
    prompt: "[task:green] go"
    check: "echo 'test result: ok. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out'"
  - id: red
    instance: b
    prompt: "[task:red] go"
    check: "echo 'test result: FAILED. 3 passed; 1 failed; 2 ignored; 0 measured'; exit 1"
"#,
    );
    let api = FakeApi::start_keyed([
        ("[task:green]", vec![Turn::text("green done")]),
        ("[task:red]", vec![Turn::text("red done")]),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(1), "{}", rig.explain(&out));
    let r = rig.report();
    let green = task(&r, "green");
    assert_passed(green);
    assert_eq!(
        green["tests"],
        serde_json::json!({"passed": 3, "failed": 1, "skipped": 2, "partial": false, "failures": []})
    );
    let red = task(&r, "red");
    assert_eq!(red["status"], "failed", "{red:#}");
    assert_eq!(red["exit_code"], 0, "the agent itself was fine: {red:#}");
    assert_eq!(red["result"], "red done");
    assert_eq!(
        red["tests"],
        serde_json::json!({"passed": 3, "failed": 1, "skipped": 2, "partial": false, "failures": []})
    );
    let error = red["error"].as_str().unwrap();
    assert!(error.contains("check"), "{error}");
    assert!(error.contains("exit 1"), "names the check: {error}");
    assert!(error.contains("code 1"), "{error}");
    // The check's output is in the task's log, after the agent's.
    let log = rig.run_file("logs/red.1.log");
    let agent_at = log
        .find("\"type\":\"result\"")
        .expect("agent output in the log");
    let check_at = log
        .find("test result: FAILED.")
        .expect("check output in the log");
    assert!(agent_at < check_at, "{log}");
}

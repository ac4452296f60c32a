//! What a run reports: every status (passed, failed, timed out, skipped) and exit 1 on a
//! failure, every field of report.json and every file of the run directory, and `report`
//! rendering each format again byte for byte.

use std::time::Instant;

use crate::support::{Project, change, output_text, task};

const THREE_STATUSES: &str = r#"
name: statuses
timeout: 20s
grace: 1s
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: a, role: developer}
  - {name: b, role: tester}
  - {name: c, role: reviewer}
tasks:
  - id: good
    instance: a
    prompt: "@write ok.txt\nfine\n@end"
  - id: bad
    instance: b
    prompt: "@stderr something broke\n@exit 3"
  - id: slow
    instance: c
    timeout: 1s
    prompt: "@sleep 30"
  - id: after-bad
    instance: a
    needs: [bad]
    prompt: "@write never.txt\nx\n@end"
  - id: after-good
    instance: a
    needs: [good]
    prompt: "@print hello"
"#;

#[test]
fn every_status_is_reported_and_a_failure_exits_1() {
    let p = Project::new();
    p.plan(THREE_STATUSES);
    let started = Instant::now();
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        started.elapsed().as_secs() < 20,
        "the 1s timeout ended the slow task"
    );
    let r = p.report("statuses");
    assert_eq!(task(&r, "good")["status"], "passed");
    assert_eq!(task(&r, "good")["exit_code"], 0);
    let bad = task(&r, "bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["exit_code"], 3);
    assert_eq!(bad["error"], "the agent exited with code 3");
    let slow = task(&r, "slow");
    assert_eq!(slow["status"], "timed_out");
    assert_eq!(slow["error"], "the agent timed out after 1s");
    assert!(slow["exit_code"].is_null(), "ended by a signal: {slow}");
    let skipped = task(&r, "after-bad");
    assert_eq!(skipped["status"], "skipped");
    assert_eq!(skipped["error"], "need `bad` did not pass (failed)");
    assert_eq!(skipped["attempts"], 0);
    assert_eq!(task(&r, "after-good")["status"], "passed");
    assert!(!p.join("workspaces/plan/a/project-files/never.txt").exists());
    let s = &r["summary"];
    assert_eq!(
        (
            s["total"].as_u64(),
            s["passed"].as_u64(),
            s["failed"].as_u64()
        ),
        (Some(5), Some(2), Some(1))
    );
    assert_eq!(
        (s["timed_out"].as_u64(), s["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    // The failing agent's own words are in its log.
    let log = std::fs::read_to_string(p.latest("statuses").join("logs/bad.1.log")).unwrap();
    assert!(log.contains("something broke"), "{log}");
}

#[test]
fn report_json_has_every_field_of_the_spec() {
    let p = Project::new();
    p.plan(THREE_STATUSES);
    p.run(&["plan.yaml"]);
    let r = p.report("statuses");
    for key in [
        "run_id",
        "plan",
        "plan_name",
        "carried_from",
        "started_at",
        "finished_at",
        "summary",
        "tasks",
    ] {
        assert!(r.get(key).is_some(), "report.json lacks `{key}`");
    }
    for key in [
        "total",
        "passed",
        "failed",
        "timed_out",
        "skipped",
        "interrupted",
        "flaky",
        "cost_usd",
    ] {
        assert!(r["summary"].get(key).is_some(), "summary lacks `{key}`");
    }
    let good = task(&r, "good");
    for key in [
        "id",
        "instance",
        "status",
        "carried_over",
        "attempts",
        "flaky",
        "leaked",
        "exit_code",
        "duration_ms",
        "session_id",
        "cost_usd",
        "result",
        "error",
        "tests",
        "log",
        "patch",
        "history",
        "changes",
    ] {
        assert!(good.get(key).is_some(), "task lacks `{key}`");
    }
    assert_eq!(good["session_id"], "scripted-a");
    assert_eq!(good["cost_usd"], 0.0012);
    assert_eq!(good["result"], "done: good");
    assert_eq!(good["log"], "logs/good.1.log");
    assert_eq!(good["patch"], "diffs/good.patch");
    assert_eq!(good["history"][0]["attempt"], 1);
    assert_eq!(good["history"][0]["status"], "passed");
    let c = change(good, "ok.txt");
    for key in [
        "path",
        "kind",
        "binary",
        "symlink",
        "size_before",
        "size_after",
        "diff",
    ] {
        assert!(c.get(key).is_some(), "change lacks `{key}`");
    }
    // Every file the spec lists is in the run directory.
    let dir = p.latest("statuses");
    for file in [
        "report.json",
        "report.md",
        "junit.xml",
        "report.html",
        "journal.jsonl",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    // The journal has a line per finished attempt and per task.
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let kinds: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "attempt").count(),
        4,
        "{journal}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "task").count(),
        5,
        "{journal}"
    );
    // Two tasks printed a result line with a cost (the failed and timed-out ones did not).
    assert_eq!(r["summary"]["cost_usd"], 0.0024);
}

#[test]
fn report_renders_every_format_again_byte_identical() {
    let p = Project::new();
    p.plan(THREE_STATUSES);
    p.run(&["plan.yaml"]);
    let dir = p.latest("statuses");
    for (format, file) in [
        ("json", "report.json"),
        ("md", "report.md"),
        ("junit", "junit.xml"),
        ("html", "report.html"),
    ] {
        let out = p.run(&["report", dir.to_str().unwrap(), "--format", format]);
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        let original = std::fs::read(dir.join(file)).unwrap();
        assert!(!original.is_empty(), "{file} is empty");
        assert!(
            out.stdout == original,
            "{format} differs from the run's {file}"
        );
        let to = p.join(&format!("again.{format}"));
        let out = p.run(&[
            "report",
            dir.to_str().unwrap(),
            "--format",
            format,
            "-o",
            to.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        assert!(
            std::fs::read(&to).unwrap() == original,
            "{format} -o differs"
        );
    }
    let out = p.run(&["report", p.path().to_str().unwrap(), "--format", "md"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("report.json"),
        "{}",
        output_text(&out)
    );
}

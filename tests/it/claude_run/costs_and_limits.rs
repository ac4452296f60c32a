//! Money and rate limits: each task reports its own cost (not the resumed session's running
//! total), and rate-limit and overload answers are retried with back-off apart from
//! `retries`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fake_api::{FakeApi, Turn};
use crate::support::task;

use super::{TWO_TASKS, assert_passed, cost, logged_commands, rig};

/// What one turn of the fake model costs with the CLI's default model (docs/claude-cli.md:
/// 1000 input and 100 output tokens).
const TURN_COST: f64 = 0.006;
/// The CLI's own result line (the last `"type":"result"` JSON line) in an attempt's log.
fn logged_result(log: &str) -> Value {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| v["type"] == "result")
        .unwrap_or_else(|| panic!("no result line in the log:\n{log}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

// 3. Each task's own cost, not the session's running total.

#[test]
fn each_task_reports_its_own_cost_and_the_summary_sums_them() {
    let Some(rig) = rig() else { return };
    rig.plan(TWO_TASKS);
    let files = rig.files("dev");
    // Task one: two turns; task two (resumed): one turn.
    let api = FakeApi::start(vec![
        Turn::write(&files.join("a.txt"), "a\n"),
        Turn::text("first answer"),
        Turn::text("second answer"),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let r = rig.report();
    let (one, two) = (task(&r, "one"), task(&r, "two"));
    assert_passed(one);
    assert_passed(two);
    // What the CLI said: a running total over the resumed session.
    let total_one = logged_result(&rig.run_file("logs/one.1.log"))["total_cost_usd"]
        .as_f64()
        .unwrap();
    let total_two = logged_result(&rig.run_file("logs/two.1.log"))["total_cost_usd"]
        .as_f64()
        .unwrap();
    assert!(total_one > 0.0);
    assert!(
        total_two > total_one,
        "the CLI's total is cumulative on resume: {total_one} then {total_two}"
    );
    assert!(close(cost(one), total_one), "{} vs {total_one}", cost(one));
    assert!(
        close(cost(two), total_two - total_one),
        "task two's own cost is {} (CLI total {total_two} minus {total_one}), reported {}",
        total_two - total_one,
        cost(two)
    );
    // With the fake's fixed usage: two turns, then one.
    assert!(close(cost(one), 2.0 * TURN_COST), "{}", cost(one));
    assert!(close(cost(two), TURN_COST), "{}", cost(two));
    let summary = r["summary"]["cost_usd"].as_f64().unwrap();
    assert!(close(summary, cost(one) + cost(two)), "{summary}");
}

// 5. Rate limits and overload: retried by borg-batch, apart from `retries`.

#[test]
fn rate_limit_and_overload_answers_are_retried_with_backoff() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
retries: 0
instances:
  - {name: dev, role: developer}
tasks:
  - {id: busy, instance: dev, prompt: "hello"}
"#,
    );
    let api = FakeApi::start(vec![
        Turn::status(429, "rate limited: slow down"),
        Turn::status(529, "overloaded right now"),
        Turn::text("finally"),
    ]);

    let started = Instant::now();
    let out = rig.borg(&api, &["plan.yaml"], &[("CLAUDE_CODE_MAX_RETRIES", "0")]);
    let elapsed = started.elapsed();

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    assert_eq!(api.requests().len(), 3, "the CLI itself did not retry");
    assert_eq!(api.remaining(), 0);
    let r = rig.report();
    let t = task(&r, "busy");
    assert_passed(t);
    assert_eq!(t["result"], "finally");
    assert_eq!(t["attempts"], 1, "rate-limit tries are not attempts: {t:#}");
    assert_eq!(t["history"].as_array().unwrap().len(), 1, "{t:#}");
    assert_eq!(t["flaky"], false);
    let notes: Vec<&str> = t["notes"]
        .as_array()
        .unwrap_or_else(|| panic!("no notes in {t:#}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let limited: Vec<&&str> = notes
        .iter()
        .filter(|n| n.contains("rate limit") || n.contains("overload"))
        .collect();
    assert_eq!(limited.len(), 2, "one note per back-off: {notes:#?}");
    assert!(limited[0].contains("slow down"), "{notes:#?}");
    assert!(limited[1].contains("overloaded right now"), "{notes:#?}");
    // Back-off: 2 s, then 4 s (plus jitter) before the tries.
    assert!(
        elapsed >= Duration::from_secs(6),
        "no back-off: {elapsed:?}"
    );
    let log = rig.run_file("logs/busy.1.log");
    assert_eq!(logged_commands(&log).len(), 3, "{log}");
}

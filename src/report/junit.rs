//! `junit.xml`: one `<testsuite>` per instance and one `<testcase>` per task, for CI test
//! tabs (GitLab, Jenkins, GitHub test-reporter actions).
//!
//! Made from the report alone — never from log files — so `borg-batch report` renders it
//! again byte-identical. Agent text can hold anything; characters XML 1.0 forbids are
//! dropped (quick-junit drops C0 controls and ANSI escapes; we also drop U+FFFE/U+FFFF), and
//! long text is capped so one chatty agent does not make the file unreadable.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{
    FlakyOrRerun, NonSuccessKind, Property, Report as Junit, TestCase, TestCaseStatus, TestRerun,
    TestSuite,
};

use super::summary::{duration, one_line, run_duration_ms, status_word};
use super::{AttemptReport, Report, Status, TaskReport};

/// How much of the result text goes into a failure's description or `system-out`.
const EXCERPT_CHARS: usize = 4_000;
/// How much of an error goes into a `message` attribute (the full one is in the text).
const MESSAGE_CHARS: usize = 500;

/// The whole `junit.xml`.
pub fn render(report: &Report) -> String {
    let mut junit = Junit::new(clean(&report.plan_name));
    if let Ok(started) = chrono::DateTime::parse_from_rfc3339(&report.started_at) {
        junit.set_timestamp(started);
    }
    if let Some(ms) = run_duration_ms(report) {
        junit.set_time(Duration::from_millis(ms));
    }
    // One suite per instance, in the order instances first appear in the plan.
    let mut instances: Vec<&str> = Vec::new();
    for t in &report.tasks {
        if !instances.contains(&t.instance.as_str()) {
            instances.push(&t.instance);
        }
    }
    for instance in instances {
        let mut suite = TestSuite::new(clean(instance));
        let mut time = 0;
        for t in report.tasks.iter().filter(|t| t.instance == instance) {
            suite.add_test_case(test_case(report, t));
            time += t.duration_ms;
        }
        suite.set_time(Duration::from_millis(time));
        junit.add_test_suite(suite);
    }
    junit
        .to_string()
        .expect("a JUnit report serializes to a string")
}

fn test_case(report: &Report, t: &TaskReport) -> TestCase {
    let mut status = match t.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Failed => failure(NonSuccessKind::Failure, "failed", t),
        Status::TimedOut => failure(NonSuccessKind::Failure, "timeout", t),
        Status::Interrupted => failure(NonSuccessKind::Error, "interrupted", t),
        Status::Skipped => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(clean(t.error.as_deref().unwrap_or("skipped")));
            s
        }
    };
    // Earlier attempts that did not pass: flakyFailure under a pass, rerunFailure under a
    // final failure (the final attempt is the test case's own status).
    if t.status != Status::Skipped {
        let earlier = t.history.len().saturating_sub(1);
        status.add_reruns(
            t.history[..earlier]
                .iter()
                .filter(|a| !a.status.is_pass())
                .map(rerun),
        );
        status.set_rerun_kind(FlakyOrRerun::Rerun);
    }
    let mut case = TestCase::new(clean(&t.id), status);
    case.set_classname(clean(&format!("{}.{}", report.plan_name, t.instance)));
    case.set_time(Duration::from_millis(t.duration_ms));
    case.add_properties(properties(t));
    if let (true, Some(result)) = (t.status.is_pass(), &t.result) {
        case.set_system_out(clean(&cap(result, EXCERPT_CHARS)));
    }
    case
}

/// A non-passing final status: the error as message, the details as text.
fn failure(kind: NonSuccessKind, ty: &str, t: &TaskReport) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(kind);
    let message = t.error.as_deref().map_or_else(
        || status_word(t.status).to_string(),
        |e| cap(e, MESSAGE_CHARS),
    );
    s.set_message(clean(&message));
    s.set_type(ty);
    s.set_description(clean(&description(t)));
    s
}

/// The text of a failure: the error, the agent's result (capped) and every attempt.
fn description(t: &TaskReport) -> String {
    let mut out = String::new();
    if let Some(error) = &t.error {
        let _ = writeln!(out, "error: {error}");
    }
    if let Some(result) = &t.result {
        let _ = writeln!(out, "result:\n{}", cap(result, EXCERPT_CHARS));
    }
    if !t.history.is_empty() {
        out.push_str("attempts:\n");
        for a in &t.history {
            let _ = writeln!(out, "  {}", attempt_line(a));
        }
    }
    for note in &t.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// `#1 failed exit 1 6.9s logs/auth.1.log: agent said no`
fn attempt_line(a: &AttemptReport) -> String {
    let mut s = format!("#{} {}", a.attempt, status_word(a.status));
    if let Some(code) = a.exit_code {
        let _ = write!(s, " exit {code}");
    }
    let _ = write!(s, " {}", duration(a.duration_ms));
    if let Some(log) = &a.log {
        let _ = write!(s, " {log}");
    }
    if let Some(e) = &a.error {
        let _ = write!(s, ": {}", one_line(e, 200));
    }
    s
}

fn rerun(a: &AttemptReport) -> TestRerun {
    let kind = if a.status == Status::Interrupted {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    let mut r = TestRerun::new(kind);
    r.set_time(Duration::from_millis(a.duration_ms));
    r.set_message(clean(&attempt_line(a)));
    r.set_type(if a.status == Status::TimedOut {
        "timeout"
    } else {
        a.status.as_str()
    });
    if let Some(e) = &a.error {
        r.set_description(clean(&cap(e, EXCERPT_CHARS)));
    }
    r
}

/// Facts a CI tab can show next to the test: attempts, cost, log and patch paths.
fn properties(t: &TaskReport) -> Vec<Property> {
    let mut props = vec![Property::new("attempts", t.attempts.to_string())];
    if t.carried_over {
        props.push(Property::new("carried_over", "true"));
    }
    if t.flaky {
        props.push(Property::new("flaky", "true"));
    }
    if t.leaked {
        props.push(Property::new("leaked", "true"));
    }
    if let Some(code) = t.exit_code {
        props.push(Property::new("exit_code", code.to_string()));
    }
    if let Some(cost) = t.cost_usd {
        props.push(Property::new("cost_usd", format!("{cost:.6}")));
    }
    for (name, value) in [("log", &t.log), ("patch", &t.patch)] {
        if let Some(v) = value {
            props.push(Property::new(name, clean(v)));
        }
    }
    if let Some(tests) = &t.tests {
        props.push(Property::new(
            "tests",
            format!(
                "{} passed, {} failed, {} skipped",
                tests.passed, tests.failed, tests.skipped
            ),
        ));
    }
    props
}

/// Drops what XML 1.0 cannot hold that quick-junit's own filter lets through.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|&c| c != '\u{fffe}' && c != '\u{ffff}' && c != '\u{7f}')
        .collect()
}

fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push_str("\n… (cut: the full text is in report.json)");
    out
}

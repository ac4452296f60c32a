//! The final summary printed when a run ends, and the small text helpers every human-facing
//! rendering shares (durations, costs, status words, test counts), so the terminal, the
//! Markdown and the HTML page say the same thing the same way.
//!
//! Pure functions of the report: no clock, no environment, no file reads.

use std::fmt::Write as _;
use std::path::Path;

use super::{Report, Status, TaskReport, TestCounts};

/// The files a finished run leaves for its readers, in the order they are listed.
pub const REPORT_FILES: [&str; 4] = ["report.json", "report.md", "junit.xml", "report.html"];

/// What the user reads last: counts, cost, each task that did not pass with its error (one
/// line each), and where the reports are.
pub fn final_summary(report: &Report, run_dir: &Path) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let run_time = run_duration_ms(report).map(|ms| format!(" in {}", duration(ms)));
    let _ = writeln!(
        out,
        "{}: {} task{}{}: {} · cost {}",
        report.plan_name,
        s.total,
        if s.total == 1 { "" } else { "s" },
        run_time.unwrap_or_default(),
        counts_line(report),
        usd(s.cost_usd),
    );
    let problems: Vec<&TaskReport> = report
        .tasks
        .iter()
        .filter(|t| {
            matches!(
                t.status,
                Status::Failed | Status::TimedOut | Status::Interrupted
            )
        })
        .collect();
    if !problems.is_empty() {
        let width = problems
            .iter()
            .map(|t| t.instance.len() + t.id.len() + 1)
            .max()
            .unwrap_or(0);
        out.push_str("did not pass:\n");
        for t in problems {
            let name = format!("{}/{}", t.instance, t.id);
            let earlier = if t.carried_over { " (earlier run)" } else { "" };
            let error = t
                .error
                .as_deref()
                .map_or_else(String::new, |e| one_line(e, 160));
            let _ = writeln!(
                out,
                "  {name:<width$}  {}{earlier}: {error}",
                status_word(t.status)
            );
        }
    }
    out.push_str("reports:\n");
    for file in REPORT_FILES {
        let _ = writeln!(out, "  {}", run_dir.join(file).display());
    }
    out
}

/// `3 passed (1 flaky), 1 failed, 2 skipped`: only the non-zero counts, passed always.
pub fn counts_line(report: &Report) -> String {
    let s = &report.summary;
    let mut parts = vec![if s.flaky > 0 {
        format!("{} passed ({} flaky)", s.passed, s.flaky)
    } else {
        format!("{} passed", s.passed)
    }];
    for (n, word) in [
        (s.failed, "failed"),
        (s.timed_out, "timed out"),
        (s.skipped, "skipped"),
        (s.interrupted, "interrupted"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    parts.join(", ")
}

/// The status in words, as a reader says it (`timed out`, not `timed_out`).
pub fn status_word(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::TimedOut => "timed out",
        Status::Skipped => "skipped",
        Status::Interrupted => "interrupted",
    }
}

/// A duration the way people read it: `850ms`, `6.9s`, `2m 05s`, `1h 02m`.
pub fn duration(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        // Tenths, truncated: 59.99s must not print as "60.0s".
        format!("{}.{}s", ms / 1_000, (ms % 1_000) / 100)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1_000)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// A cost in US dollars with four decimals (agent costs are often below a cent).
pub fn usd(cost: f64) -> String {
    format!("${cost:.4}")
}

/// A task's cost, or a dash when the agent reported none.
/// A task's duration, or "–" for a task that never ran.
pub fn task_duration(t: &crate::report::TaskReport) -> String {
    if t.attempts == 0 {
        "–".to_string()
    } else {
        duration(t.duration_ms)
    }
}

/// An RFC 3339 time as people read it: `2026-11-25 16:35:42 UTC` (the text as it is if it
/// does not parse).
pub fn human_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

pub fn task_cost(cost: Option<f64>) -> String {
    cost.map_or_else(|| "–".to_string(), usd)
}

/// `12 passed, 1 failed`: zero counts left out, except a lone `0 passed`; `(partial)` where
/// the output told only part of the truth.
pub fn tests_line(tests: Option<&TestCounts>) -> String {
    let Some(t) = tests else {
        return "–".to_string();
    };
    let mut parts = Vec::new();
    for (n, word) in [
        (t.passed, "passed"),
        (t.failed, "failed"),
        (t.skipped, "skipped"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    if parts.is_empty() {
        parts.push("0 passed".to_string());
    }
    let line = parts.join(", ");
    if t.partial {
        format!("{line} (partial)")
    } else {
        line
    }
}

/// The sum of every task's test counts, or `None` when no task reported any.
pub fn total_tests(report: &Report) -> Option<TestCounts> {
    report
        .tasks
        .iter()
        .filter_map(|t| t.tests.as_ref())
        .fold(None, |sum: Option<TestCounts>, t| {
            let sum = sum.unwrap_or_default();
            Some(TestCounts {
                passed: sum.passed + t.passed,
                failed: sum.failed + t.failed,
                skipped: sum.skipped + t.skipped,
                partial: sum.partial || t.partial,
                failures: Vec::new(),
            })
        })
}

/// Lines added and removed by a unified diff (headers not counted).
pub fn diff_stat(diff: &str) -> (usize, usize) {
    let (mut added, mut removed) = (0, 0);
    for line in diff.lines() {
        if line.starts_with("+++ ") || line.starts_with("--- ") {
            continue;
        }
        if line.starts_with('+') {
            added += 1;
        } else if line.starts_with('-') {
            removed += 1;
        }
    }
    (added, removed)
}

/// Wall time of the run from its start and finish stamps, when both parse.
pub fn run_duration_ms(report: &Report) -> Option<u64> {
    let start = chrono::DateTime::parse_from_rfc3339(&report.started_at).ok()?;
    let end = chrono::DateTime::parse_from_rfc3339(&report.finished_at).ok()?;
    u64::try_from((end - start).num_milliseconds()).ok()
}

/// The first line of `text`, control characters dropped, cut at `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let first = text.trim().lines().next().unwrap_or("");
    let mut out: String = first
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    if first.chars().count() > max || text.trim().lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

/// Tasks in the order their details are shown: every task that did not pass first, then
/// the rest, each group in plan order.
pub fn problems_first(report: &Report) -> Vec<&TaskReport> {
    let (mut bad, good): (Vec<&TaskReport>, Vec<&TaskReport>) =
        report.tasks.iter().partition(|t| !t.status.is_pass());
    bad.extend(good);
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(6_950), "6.9s");
        assert_eq!(duration(59_999), "59.9s");
        assert_eq!(duration(125_000), "2m 05s");
        assert_eq!(duration(3_720_000), "1h 02m");
    }

    #[test]
    fn one_line_cuts_and_marks() {
        assert_eq!(one_line("a\nb", 10), "a…");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("x\u{1b}[31my", 10), "x[31my");
    }
}

//! The final summary printed when a run ends, and the small text helpers every human-facing
//! rendering shares (durations, costs, status words, test counts), so the terminal, the
//! Markdown and the HTML page say the same thing the same way.
//!
//! Pure functions of the report: no clock, no environment, no file reads.

use std::fmt::Write as _;
use std::path::Path;

use super::term::Paint;
use super::{Report, Status, TaskReport, TestCounts};

/// The files a finished run leaves for its readers, in the order they are listed.
pub const REPORT_FILES: [&str; 4] = ["report.json", "report.md", "junit.xml", "report.html"];

/// Lines of a task's failure output the final summary shows (the reports hold them all).
const SUMMARY_FAILURE_LINES: usize = 6;

/// What the user reads last: counts and cost (of the same set of tasks), each task that did
/// not pass with its error and the last lines of its failure output, how many files each
/// instance changed, and the page to open.
pub fn final_summary(report: &Report, run_dir: &Path, paint: Paint) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let run_time = run_duration_ms(report).map(|ms| format!(" in {}", duration(ms)));
    let carried = report.tasks.iter().filter(|t| t.carried_over).count();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if carried == 0 {
        let _ = writeln!(
            out,
            "{}: {} task{}{}: {} · cost {}",
            paint.bold(&report.plan_name),
            s.total,
            plural(s.total),
            run_time.unwrap_or_default(),
            counts_line_painted(report, paint),
            usd(s.cost_usd),
        );
    } else {
        // The counts are the plan's state; the cost and time are this run's alone: say
        // which tasks each describes.
        let ran = s.total - carried;
        let _ = writeln!(
            out,
            "{}: {} task{}: {} ({carried} carried over from an earlier run)",
            paint.bold(&report.plan_name),
            s.total,
            plural(s.total),
            counts_line_painted(report, paint),
        );
        let _ = writeln!(
            out,
            "this run: {ran} task{}{} · cost {}",
            plural(ran),
            run_time.unwrap_or_default(),
            usd(s.cost_usd)
        );
    }
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
            let word = status_word(t.status);
            let word = match t.status {
                Status::Failed => paint.red(word),
                _ => paint.yellow(word),
            };
            let _ = writeln!(out, "  {name:<width$}  {word}{earlier}: {error}");
            if let Some(output) = t.failure_output.as_deref().filter(|o| !o.trim().is_empty()) {
                let shown = failure_excerpt(output, SUMMARY_FAILURE_LINES);
                out.push_str(&indented(&shown, "      │ ", paint));
            }
        }
    }
    let changed = changed_files(report);
    if !changed.is_empty() {
        let parts: Vec<String> = changed
            .iter()
            .map(|(instance, n)| format!("{instance} {n} file{}", plural(*n)))
            .collect();
        let _ = writeln!(out, "changed: {}", parts.join(" · "));
    }
    let _ = writeln!(
        out,
        "review: {}",
        paint.bold(&review_page(report, run_dir).display().to_string())
    );
    let _ = writeln!(
        out,
        "reports: {}/ ({}, logs/, diffs/)",
        run_dir.display(),
        REPORT_FILES.join(", ")
    );
    out
}

/// The page to open: `runs/<plan>/latest/report.html` when the run is under `runs/<plan>/`
/// (the link points at it), else the run directory's own.
pub fn review_page(report: &Report, run_dir: &Path) -> std::path::PathBuf {
    let root = crate::history::runs_root(&report.plan_name);
    if run_dir.parent() == Some(root.as_path()) {
        root.join("latest").join("report.html")
    } else {
        run_dir.join("report.html")
    }
}

/// Per instance with any change, how many files its tasks changed (every path any of its
/// tasks touched, once), in plan order of the instances' first tasks.
pub fn changed_files(report: &Report) -> Vec<(String, usize)> {
    let mut order: Vec<String> = Vec::new();
    let mut paths: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        std::collections::BTreeMap::new();
    for t in &report.tasks {
        if !order.contains(&t.instance) {
            order.push(t.instance.clone());
        }
        paths
            .entry(&t.instance)
            .or_default()
            .extend(t.changes.iter().map(|c| c.path.as_str()));
    }
    order
        .into_iter()
        .filter_map(|i| {
            let n = paths.get(i.as_str()).map_or(0, |p| p.len());
            (n > 0).then_some((i, n))
        })
        .collect()
}

/// The last `max` non-blank lines of a failure output, control characters shown as `�`
/// (they could move the cursor or recolour the terminal), with a line saying how many were
/// left out.
pub fn failure_excerpt(output: &str, max: usize) -> String {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    let start = lines.len().saturating_sub(max);
    let mut out = String::new();
    if start > 0 {
        let _ = writeln!(
            out,
            "… {start} earlier line{}",
            if start == 1 { "" } else { "s" }
        );
    }
    for line in &lines[start..] {
        let clean: String = line
            .chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect();
        out.push_str(&clean);
        out.push('\n');
    }
    out
}

/// Each line of `text` behind `prefix` (dimmed).
pub fn indented(text: &str, prefix: &str, paint: Paint) -> String {
    let mut out = String::new();
    let prefix = paint.dim(prefix);
    for line in text.lines() {
        let _ = writeln!(out, "{prefix}{line}");
    }
    out
}

/// [`counts_line`] with the failure counts coloured.
fn counts_line_painted(report: &Report, paint: Paint) -> String {
    if !paint.on {
        return counts_line(report);
    }
    counts_line(report)
        .split(", ")
        .map(|part| {
            if part.ends_with("failed") || part.ends_with("interrupted") {
                paint.red(part)
            } else if part.ends_with("timed out") {
                paint.yellow(part)
            } else if part.contains("passed") {
                paint.green(part)
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
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

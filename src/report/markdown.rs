//! `report.md`: a summary table and the diffs, for a pull-request comment or a job summary.
//!
//! Everything an agent wrote is untrusted: prose is escaped (no raw HTML, no Markdown links
//! or images that would make GitHub fetch something), code goes in fences longer than any
//! backtick run inside it, so a diff holding ```` ``` ```` or `</details>` cannot break out.
//! The whole text stays under GitHub's comment limit; what does not fit points at
//! `report.html`.

use std::fmt::Write as _;

use super::summary::{self, diff_stat, task_cost, task_duration, tests_line};
use super::{Change, ChangeKind, InstanceReport, Report, Status, TaskReport};

/// GitHub's limit for a comment body, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;
/// Room kept for the truncation note and the closing lines.
const RESERVE: usize = 1_024;
/// A single diff longer than this is cut, so one huge file does not crowd out the others.
const DIFF_LINES_MAX: usize = 400;
const DIFF_BYTES_MAX: usize = 24_000;
/// The agent's result is a summary, not a transcript.
const RESULT_CHARS_MAX: usize = 2_000;

/// The whole `report.md`: title, counts, the table, then per task the error, the result
/// and the diffs (tasks that did not pass first), cut to fit a GitHub comment.
pub fn render(report: &Report) -> String {
    let mut out = render_summary(report);
    let limit = GITHUB_COMMENT_LIMIT - RESERVE;
    if out.len() > limit {
        // Thousands of tasks: even the table does not fit.
        let cut = out[..limit].rfind('\n').map_or(0, |i| i + 1);
        let rows_left = out[cut..].lines().count();
        out.truncate(cut);
        let _ = writeln!(
            out,
            "\n> [!NOTE]\n> Truncated to fit a GitHub comment: {rows_left} more rows of the \
             table are left out. `report.html` in the run directory shows every task."
        );
        return out;
    }
    let (mut left_out, mut diffs_cut) = whole_changes(&mut out, report, limit);
    let tasks: Vec<&TaskReport> = summary::problems_first(report)
        .into_iter()
        .filter(|t| has_details(t))
        .collect();
    if !tasks.is_empty() {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str("## Details per task\n\n");
    }
    for (i, task) in tasks.iter().enumerate() {
        let full = details(task, true);
        if out.len() + full.len() <= limit {
            out.push_str(&full);
            continue;
        }
        let short = details(task, false);
        if out.len() + short.len() <= limit {
            out.push_str(&short);
            diffs_cut = true;
            continue;
        }
        left_out += tasks.len() - i;
        break;
    }
    if left_out > 0 || diffs_cut {
        let what = if left_out > 0 {
            format!(
                "the details of {left_out} more task{} or instance{} are left out",
                if left_out == 1 { "" } else { "s" },
                if left_out == 1 { "" } else { "s" }
            )
        } else {
            "some diffs are left out".to_string()
        };
        let _ = writeln!(
            out,
            "> [!NOTE]\n> Truncated to fit a GitHub comment: {what}. \
             `report.html` in the run directory shows every diff."
        );
    }
    out
}

/// The title, the counts and the table only: for `$GITHUB_STEP_SUMMARY`.
pub fn render_summary(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# borg-batch: {}\n", text(&report.plan_name));
    let _ = writeln!(
        out,
        "Run `{}` · plan {} · {} → {}",
        code_span_safe(&report.run_id),
        text(&report.plan),
        text(&summary::human_time(&report.started_at)),
        text(&summary::human_time(&report.finished_at))
    );
    if let Some(from) = &report.carried_from {
        let _ = writeln!(
            out,
            "\nOutcomes of tasks not run carried over from {}",
            text(from)
        );
    }
    if let Some(shard) = &report.shard {
        let _ = writeln!(
            out,
            "\nShard {}: the other shards' tasks are listed as skipped",
            text(&shard.to_string())
        );
    }
    out.push('\n');
    let s = &report.summary;
    let mut parts = vec![format!("✅ {} passed", s.passed)];
    for (n, what) in [
        (s.failed, "❌ {} failed"),
        (s.timed_out, "⏱️ {} timed out"),
        (s.skipped, "⏭️ {} skipped"),
        (s.interrupted, "⛔ {} interrupted"),
        (s.flaky, "⚠️ {} flaky"),
    ] {
        if n > 0 {
            parts.push(what.replace("{}", &n.to_string()));
        }
    }
    let _ = writeln!(
        out,
        "**{} task{}:** {} · **cost** {}\n",
        s.total,
        if s.total == 1 { "" } else { "s" },
        parts.join(" · "),
        summary::usd(s.cost_usd)
    );
    out.push_str(
        "| Task | Instance | Status | Attempts | Duration | Cost | Files changed | Tests |\n",
    );
    out.push_str("|---|---|---|--:|--:|--:|---|---|\n");
    for t in &report.tasks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&t.id),
            cell(&t.instance),
            status_cell(t),
            t.attempts,
            task_duration(t),
            task_cost(t.cost_usd),
            files_cell(&t.changes),
            tests_line(t.tests.as_ref())
        );
    }
    out
}

/// The "Whole change per instance" section: each instance that changed, in review order
/// (the first, the last of its pipeline, open), with its patch, its changed paths and
/// their diffs while they fit under `limit`. Returns how many instances were left out
/// and whether some diffs were.
fn whole_changes(out: &mut String, report: &Report, limit: usize) -> (usize, bool) {
    let changed: Vec<&InstanceReport> = report
        .instances
        .iter()
        .filter(|i| !i.changes.is_empty())
        .collect();
    if changed.is_empty() {
        return (0, false);
    }
    out.push_str(
        "\n## Whole change per instance\n\nEach instance's files now against the state its \
         workspace was created with; the per-task changes are below.\n\n",
    );
    let mut diffs_cut = false;
    for (i, inst) in changed.iter().enumerate() {
        let open = i == 0;
        let full = instance_details(inst, open, true);
        if out.len() + full.len() <= limit {
            out.push_str(&full);
            continue;
        }
        let short = instance_details(inst, open, false);
        if out.len() + short.len() <= limit {
            out.push_str(&short);
            diffs_cut = true;
            continue;
        }
        return (changed.len() - i, true);
    }
    (0, diffs_cut)
}

/// One instance's `<details>` block; without its diffs when `with_diffs` is false.
fn instance_details(inst: &InstanceReport, open: bool, with_diffs: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<details{}><summary>📦 <code>{}</code> — {} changed path{}</summary>\n",
        if open { " open" } else { "" },
        html(&inst.name),
        inst.changes.len(),
        if inst.changes.len() == 1 { "" } else { "s" }
    );
    if let Some(patch) = &inst.patch {
        let _ = writeln!(out, "Patch: `{}`\n", code_span_safe(patch));
    }
    out.push_str(&changes_block(&inst.changes, with_diffs));
    close_details(&mut out);
    out
}

/// The changed paths, each with its diff (fenced, cut) when `with_diffs`, else a line
/// saying the diffs are left out.
fn changes_block(changes: &[Change], with_diffs: bool) -> String {
    let mut out = String::new();
    for c in changes {
        let _ = writeln!(out, "- {}", change_line(c));
        if let (true, Some(diff)) = (with_diffs, c.diff.as_deref().filter(|d| is_unified(d))) {
            let _ = writeln!(out, "\n{}", indent(&fenced(&cap_diff(diff), "diff")));
        }
    }
    if !with_diffs
        && changes
            .iter()
            .any(|c| c.diff.as_deref().is_some_and(is_unified))
    {
        out.push_str("\n_Diffs left out to fit a GitHub comment: see `report.html`._\n");
    }
    out
}

/// Exactly one blank line before `</details>`, so the Markdown above it is closed.
fn close_details(out: &mut String) {
    while out.ends_with("\n\n") {
        out.pop();
    }
    out.push_str("\n</details>\n\n");
}

fn has_details(t: &TaskReport) -> bool {
    t.error.is_some() || t.result.is_some() || !t.changes.is_empty() || !t.notes.is_empty()
}

/// `✅ passed`, with the flaky and carried-over marks.
fn status_cell(t: &TaskReport) -> String {
    let mut s = format!("{} {}", marker(t.status), summary::status_word(t.status));
    if t.flaky {
        s.push_str(" ⚠️ flaky");
    }
    if t.carried_over {
        s.push_str(" (carried over)");
    }
    s
}

fn marker(status: Status) -> &'static str {
    match status {
        Status::Passed => "✅",
        Status::Failed => "❌",
        Status::TimedOut => "⏱️",
        Status::Skipped => "⏭️",
        Status::Interrupted => "⛔",
    }
}

/// `3 (+40 −2)`: how many paths changed and the text lines added and removed.
fn files_cell(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "–".to_string();
    }
    let diffs: Vec<&str> = changes
        .iter()
        .filter_map(|c| c.diff.as_deref().filter(|d| is_unified(d)))
        .collect();
    if diffs.is_empty() {
        return changes.len().to_string();
    }
    let (added, removed) = diffs
        .into_iter()
        .map(diff_stat)
        .fold((0, 0), |(a, r), (x, y)| (a + x, r + y));
    format!("{} (+{added} −{removed})", changes.len())
}

/// One task's `<details>` block; without its diffs when `with_diffs` is false.
fn details(t: &TaskReport, with_diffs: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<details{}><summary>{} <code>{}</code> ({}) — {}</summary>\n",
        if t.status.is_pass() { "" } else { " open" },
        marker(t.status),
        html(&t.id),
        html(&t.instance),
        summary::status_word(t.status)
    );
    if let Some(error) = &t.error {
        let _ = writeln!(out, "**Error**\n\n{}", fenced(error, "text"));
    }
    if !t.notes.is_empty() {
        out.push_str("**Notes**\n\n");
        for note in &t.notes {
            let _ = writeln!(out, "- {}", text(note));
        }
        out.push('\n');
    }
    if let Some(result) = &t.result {
        let _ = writeln!(out, "**Result**\n\n{}", fenced(&cap_chars(result), "text"));
    }
    if !t.changes.is_empty() {
        let _ = writeln!(out, "**Changes**\n");
    }
    out.push_str(&changes_block(&t.changes, with_diffs));
    close_details(&mut out);
    out
}

/// `**modified** src/a.rs (+3 −1)`, or the binary/symlink/mode facts in words.
fn change_line(c: &Change) -> String {
    let mut s = format!("**{}** {}", c.kind.as_str(), text(&c.path));
    if c.path_lossy {
        s.push_str(" (name is not UTF-8)");
    }
    if c.symlink {
        let target = |t: &Option<String>| t.as_deref().map_or("?".to_string(), text);
        match c.kind {
            ChangeKind::Added => {
                let _ = write!(s, " — symlink → {}", target(&c.target_after));
            }
            ChangeKind::Deleted => {
                let _ = write!(s, " — symlink (was → {})", target(&c.target_before));
            }
            ChangeKind::Modified => {
                let _ = write!(
                    s,
                    " — symlink {} → {}",
                    target(&c.target_before),
                    target(&c.target_after)
                );
            }
        }
    } else if c.binary {
        let size = |n: Option<u64>| n.map_or("?".to_string(), |n| format!("{n} bytes"));
        let _ = match c.kind {
            ChangeKind::Added => write!(s, " — binary, {}", size(c.size_after)),
            ChangeKind::Deleted => write!(s, " — binary, was {}", size(c.size_before)),
            ChangeKind::Modified => write!(
                s,
                " — binary, {} → {}",
                size(c.size_before),
                size(c.size_after)
            ),
        };
    } else if let Some(diff) = c.diff.as_deref().filter(|d| is_unified(d)) {
        let (a, r) = diff_stat(diff);
        let _ = write!(s, " (+{a} −{r})");
    } else if let Some(line) = &c.diff {
        // A size line for a file too large to diff.
        let _ = write!(s, " — {}", text(line));
    }
    if let (Some(before), Some(after)) = (c.mode_before, c.mode_after) {
        let _ = write!(s, " — mode {before:o} → {after:o}");
    }
    s
}

/// A unified diff has hunks; anything else is a size line for a file too large to diff.
fn is_unified(diff: &str) -> bool {
    diff.lines().any(|l| l.starts_with("@@ "))
}

/// `content` in a code fence longer than any backtick run inside it.
pub(crate) fn fenced(content: &str, lang: &str) -> String {
    let longest = longest_backtick_run(content);
    let fence = "`".repeat((longest + 1).max(3));
    let body = content.trim_end_matches('\n');
    format!("{fence}{lang}\n{body}\n{fence}\n")
}

fn longest_backtick_run(s: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// Indents a block so it belongs to the list item above it.
fn indent(block: &str) -> String {
    block.lines().map(|l| format!("  {l}\n")).collect()
}

/// The first lines of a long diff, with a line saying how much was cut.
fn cap_diff(diff: &str) -> String {
    let total = diff.lines().count();
    let mut out = String::new();
    let mut kept = 0;
    for line in diff.lines() {
        if kept == DIFF_LINES_MAX || out.len() + line.len() > DIFF_BYTES_MAX {
            break;
        }
        out.push_str(line);
        out.push('\n');
        kept += 1;
    }
    if kept < total {
        let _ = writeln!(out, "… {} more lines: see report.html", total - kept);
    }
    out
}

fn cap_chars(s: &str) -> String {
    if s.chars().count() <= RESULT_CHARS_MAX {
        return s.to_string();
    }
    let mut out: String = s.chars().take(RESULT_CHARS_MAX).collect();
    out.push_str("\n… (cut: the full text is in report.json)");
    out
}

/// Agent text as inert Markdown on one line: HTML entities for `<`, `>` and `&`, a
/// backslash before every character Markdown could read as syntax, no line breaks.
pub(crate) fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '~' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A table cell: [`text`], which already escapes `|` and drops line breaks.
fn cell(s: &str) -> String {
    text(s)
}

/// Text inside our own inline HTML (`<summary>`): HTML-escaped, one line.
fn html(s: &str) -> String {
    super::html::escape(&s.replace(['\n', '\r'], " "))
}

/// Run ids are UUIDs; anything else is stripped of backticks so the code span holds.
fn code_span_safe(s: &str) -> String {
    s.chars().filter(|c| *c != '`' && !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outgrow_backticks_inside() {
        assert!(fenced("a ```` b", "diff").starts_with("`````diff\n"));
        assert!(fenced("plain", "text").starts_with("```text\n"));
    }

    #[test]
    fn prose_cannot_inject() {
        assert_eq!(
            text("<b>|x|\n![i](u)"),
            "&lt;b&gt;\\|x\\| \\!\\[i\\]\\(u\\)"
        );
    }
}

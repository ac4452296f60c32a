//! `report.html`: one self-contained page to review every task and every diff, as GitHub's
//! "Files changed" does. It opens on each instance's whole change (the last instance of a
//! pipeline first: it holds the feature), the per-task cards below it; a jump list of the
//! instances, tasks and files, sticky file headers with anchors and "viewed" boxes,
//! word-level highlights, unified or split, expand/collapse all, why a task failed (error,
//! failure output, failing tests) and its transcript beside its diff.
//!
//! It must escape everything an agent wrote — file contents, paths, results, errors — so a
//! file holding `<script>` shows as text; the only script on the page is our own, inline,
//! and the page makes no request of its own (it works from `file://`, offline, in CI
//! artifacts). The diffs travel as JSON in a `<script type="application/json">` (with `<`
//! escaped, so no `</script>` can end it) and become tables only when scrolled near, so a
//! run of 10,000 changed files opens at once. Deterministic: the same report and
//! transcripts give the same bytes.

mod diff;

use std::fmt::Write as _;

use super::summary::{self, duration, status_word, task_cost, task_duration, tests_line};
use super::{InstanceReport, Report, Status, TaskReport};

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/script.js");

/// HTML-escapes text for element content and quoted attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in HTML text; show them as a mark.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// What the page shows besides report.json: each task's final transcript
/// (`logs/<task>.<attempt>.txt`), read from the run directory.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// By task id.
    pub transcripts: std::collections::BTreeMap<String, String>,
}

/// The most of one transcript the page holds (its head; the file has it all).
const TRANSCRIPT_BYTES: usize = 64 * 1024;

impl Extras {
    /// The transcripts of `report`'s tasks that this run ran, where their files exist.
    pub fn load(report: &Report, run_dir: &std::path::Path) -> Extras {
        let mut transcripts = std::collections::BTreeMap::new();
        for t in report.tasks.iter().filter(|t| !t.carried_over) {
            let Some(log) = t.log.as_deref().and_then(|l| l.strip_suffix(".log")) else {
                continue;
            };
            if log.contains("..") || log.starts_with('/') {
                continue;
            }
            let Ok(bytes) = std::fs::read(run_dir.join(format!("{log}.txt"))) else {
                continue;
            };
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if text.len() > TRANSCRIPT_BYTES {
                let mut cut = TRANSCRIPT_BYTES;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str(&format!(
                    "\n… cut here; the whole transcript is {log}.txt\n"
                ));
            }
            transcripts.insert(t.id.clone(), text);
        }
        Extras { transcripts }
    }
}

/// The whole page, without transcripts.
pub fn render(report: &Report) -> String {
    render_with(report, &Extras::default())
}

/// The whole page.
pub fn render_with(report: &Report, extras: &Extras) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · borg-batch report</title>\n<style>\n{STYLE}</style>\n</head>\n\
         <body data-run=\"{}\">\n<div class=\"page\">\n",
        escape(&report.plan_name),
        escape(&report.run_id)
    );
    out.push_str(&header(report));
    out.push_str(&overview(report));
    out.push_str(
        "<div class=\"toolbar\">\
         <label class=\"check\"><input type=\"checkbox\" id=\"hide-passed\"> Only failed</label>\
         <span class=\"spacer\"></span>\
         <button type=\"button\" class=\"btn\" id=\"expand-all\">Expand all</button>\
         <button type=\"button\" class=\"btn\" id=\"collapse-all\">Collapse all</button>\
         <div class=\"seg\" role=\"group\" aria-label=\"Diff view\">\
         <button type=\"button\" id=\"view-unified\" class=\"on\">Unified</button>\
         <button type=\"button\" id=\"view-split\">Split</button></div>\
         </div>\n<div class=\"layout\">\n",
    );
    let tasks = summary::problems_first(report);
    let instances: Vec<&InstanceReport> = report
        .instances
        .iter()
        .filter(|i| !i.changes.is_empty())
        .collect();
    out.push_str(&diff::tree(&instances, &tasks));
    out.push_str("<main>\n");
    let mut files = diff::Files::default();
    if !instances.is_empty() {
        out.push_str(
            "<section class=\"whole\" id=\"whole-change\"><h2 class=\"part\">Whole change per \
             instance</h2><p class=\"lead\">Each instance's files now against the state its \
             workspace was created with. <a href=\"#tasks\">Per-task changes</a> are below.</p>\n",
        );
        for inst in &instances {
            out.push_str(&instance_card(inst, &mut files));
        }
        out.push_str("</section>\n<h2 class=\"part\" id=\"tasks\">Per-task changes</h2>\n");
    }
    for task in tasks {
        out.push_str(&card(task, extras.transcripts.get(&task.id), &mut files));
    }
    let _ = write!(
        out,
        "</main>\n</div>\n<footer>borg-batch · run <code>{}</code></footer>\n</div>\n\
         <script type=\"application/json\" id=\"diff-data\">{}</script>\n\
         <script>\n{SCRIPT}</script>\n</body>\n</html>\n",
        escape(&report.run_id),
        files.json()
    );
    out
}

/// Plan name, run facts, and the counts as coloured chips.
fn header(report: &Report) -> String {
    let mut out = String::from("<header>\n");
    let _ = writeln!(
        out,
        "<div class=\"brand\">borg-batch report</div><h1>{}</h1>",
        escape(&report.plan_name)
    );
    out.push_str("<dl class=\"facts\">");
    let mut fact = |name: &str, value: String| {
        let _ = write!(out, "<div><dt>{name}</dt><dd>{value}</dd></div>");
    };
    fact("Run", format!("<code>{}</code>", escape(&report.run_id)));
    fact("Plan", format!("<code>{}</code>", escape(&report.plan)));
    fact("Started", escape(&summary::human_time(&report.started_at)));
    fact(
        "Finished",
        escape(&summary::human_time(&report.finished_at)),
    );
    if let Some(ms) = summary::run_duration_ms(report) {
        fact("Wall time", duration(ms));
    }
    if let Some(from) = &report.carried_from {
        fact("Carried from", format!("<code>{}</code>", escape(from)));
    }
    if let Some(shard) = &report.shard {
        fact("Shard", escape(&shard.to_string()));
    }
    out.push_str("</dl>\n<div class=\"chips\">");
    let s = &report.summary;
    let _ = write!(out, "<span class=\"chip total\">{} tasks</span>", s.total);
    for (n, class, word) in [
        (s.passed, "passed", "passed"),
        (s.failed, "failed", "failed"),
        (s.timed_out, "timed_out", "timed out"),
        (s.skipped, "skipped", "skipped"),
        (s.interrupted, "interrupted", "interrupted"),
        (s.flaky, "flaky", "flaky"),
    ] {
        if n > 0 || class == "passed" {
            let _ = write!(out, "<span class=\"chip {class}\"><b>{n}</b> {word}</span>");
        }
    }
    let task_time: u64 = report.tasks.iter().map(|t| t.duration_ms).sum();
    let _ = write!(
        out,
        "<span class=\"chip plain\">task time <b>{}</b></span>\
         <span class=\"chip plain\">cost <b>{}</b></span>",
        duration(task_time),
        summary::usd(s.cost_usd)
    );
    if let Some(tests) = summary::total_tests(report) {
        let _ = write!(
            out,
            "<span class=\"chip plain\">tests <b>{}</b></span>",
            tests_line(Some(&tests))
        );
    }
    out.push_str("</div>\n</header>\n");
    out
}

/// The table of every task in plan order, each row linking to its card.
fn overview(report: &Report) -> String {
    let mut out = String::from(
        "<table class=\"overview\"><thead><tr><th>Task</th><th>Instance</th><th>Status</th>\
         <th class=\"num\">Attempts</th><th class=\"num\">Duration</th><th class=\"num\">Cost\
         </th><th class=\"num\">Files</th><th>Tests</th></tr></thead><tbody>\n",
    );
    for t in &report.tasks {
        let _ = writeln!(
            out,
            "<tr class=\"task-row\" data-status=\"{}\"><td><a href=\"#task-{}\">{}</a></td>\
             <td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            t.status.as_str(),
            escape(&t.id),
            escape(&t.id),
            escape(&t.instance),
            badges(t),
            t.attempts,
            task_duration(t),
            task_cost(t.cost_usd),
            files(t),
            tests_line(t.tests.as_ref())
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

/// The status badge plus the flaky, carried-over and leaked marks.
fn badges(t: &TaskReport) -> String {
    let mut out = format!(
        "<span class=\"badge {}\">{}</span>",
        t.status.as_str(),
        status_word(t.status)
    );
    for (on, class, word) in [
        (t.flaky, "flaky", "flaky"),
        (t.carried_over, "muted", "carried over"),
        (t.leaked, "muted", "leaked processes"),
    ] {
        if on {
            let _ = write!(out, " <span class=\"badge {class}\">{word}</span>");
        }
    }
    out
}

fn files(t: &TaskReport) -> String {
    if t.changes.is_empty() {
        return "–".to_string();
    }
    if !t
        .changes
        .iter()
        .any(|c| c.diff.as_deref().is_some_and(|d| d.contains("\n@@ ")))
    {
        return t.changes.len().to_string();
    }
    let (a, r) = t
        .changes
        .iter()
        .filter_map(|c| c.diff.as_deref())
        .map(summary::diff_stat)
        .fold((0, 0), |(a, r), (x, y)| (a + x, r + y));
    format!(
        "{} <span class=\"plus\">+{a}</span> <span class=\"minus\">−{r}</span>",
        t.changes.len()
    )
}

/// One task: its facts, why it did not pass (error, failure output, failing tests),
/// notes, result, attempts, then its changed files with its transcript beside them.
fn card(t: &TaskReport, transcript: Option<&String>, files: &mut diff::Files) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<section class=\"card {status}\" id=\"task-{id}\" data-status=\"{status}\">\n\
         <div class=\"card-head\"><h2><a href=\"#task-{id}\">{id}</a></h2>\
         <span class=\"instance\">{}</span>{}</div>",
        escape(&t.instance),
        badges(t),
        status = t.status.as_str(),
        id = escape(&t.id),
    );
    out.push_str("<dl class=\"facts small\">");
    let mut fact = |name: &str, value: String| {
        let _ = write!(out, "<div><dt>{name}</dt><dd>{value}</dd></div>");
    };
    fact("Attempts", t.attempts.to_string());
    // A task that never ran has no duration, cost or tests worth a dash each.
    if t.attempts > 0 {
        fact("Duration", duration(t.duration_ms));
    }
    if t.cost_usd.is_some() {
        fact("Cost", task_cost(t.cost_usd));
    }
    if t.tests.is_some() {
        fact("Tests", tests_line(t.tests.as_ref()));
    }
    if let Some(code) = t.exit_code {
        fact("Agent exit code", code.to_string());
    }
    if let Some(check) = check_verdict(t) {
        fact("Check", check);
    }
    for (name, path) in [("Log", &t.log), ("Patch", &t.patch)] {
        if let Some(p) = path {
            fact(name, link(p));
        }
    }
    if let Some(p) = t
        .log
        .as_deref()
        .and_then(|l| l.strip_suffix(".log"))
        .filter(|_| transcript.is_some())
    {
        fact("Transcript", link(&format!("{p}.txt")));
    }
    if let Some(session) = &t.session_id {
        fact("Session", format!("<code>{}</code>", escape(session)));
    }
    out.push_str("</dl>\n");
    if let Some(error) = &t.error {
        if t.status == Status::Skipped {
            let _ = writeln!(out, "<pre class=\"box note\">{}</pre>", escape(error));
        } else {
            out.push_str(&why(t, error));
        }
    }
    if !t.notes.is_empty() {
        out.push_str("<ul class=\"box note\">");
        for n in &t.notes {
            let _ = write!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul>\n");
    }
    if let Some(result) = &t.result {
        let _ = writeln!(
            out,
            "<details class=\"result\"{}><summary>Agent result</summary><pre>{}</pre></details>",
            if result.len() < 2_000 { " open" } else { "" },
            escape(result)
        );
    }
    // One attempt says nothing the facts above do not.
    if t.history.len() > 1 {
        out.push_str(&attempts(t));
    }
    if t.changes.is_empty() && transcript.is_none() {
        out.push_str("</section>\n");
        return out;
    }
    let _ = write!(
        out,
        "<div class=\"work{}\">\n<div class=\"files\">",
        if transcript.is_some() {
            " with-transcript"
        } else {
            ""
        }
    );
    if !t.changes.is_empty() {
        let _ = writeln!(
            out,
            "<h3>{} changed path{}</h3>",
            t.changes.len(),
            if t.changes.len() == 1 { "" } else { "s" }
        );
        for (n, c) in t.changes.iter().enumerate() {
            out.push_str(&files.change(&t.id, n, c));
        }
    }
    out.push_str("</div>\n");
    if let Some(text) = transcript {
        let _ = writeln!(
            out,
            "<aside class=\"transcript\"><h3>Transcript</h3><pre>{}</pre></aside>",
            escape(text)
        );
    }
    out.push_str("</div>\n</section>\n");
    out
}

/// One instance's whole change: its patch and every changed file, as on a task's card.
fn instance_card(inst: &InstanceReport, files: &mut diff::Files) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<section class=\"card whole-change\" id=\"instance-{id}\">\n\
         <div class=\"card-head\"><h2><a href=\"#instance-{id}\">{id}</a></h2>\
         <span class=\"instance\">whole change</span></div>",
        id = escape(&inst.name),
    );
    out.push_str("<dl class=\"facts small\">");
    let _ = write!(
        out,
        "<div><dt>Changed paths</dt><dd>{}</dd></div>",
        inst.changes.len()
    );
    if let Some(p) = &inst.patch {
        let _ = write!(out, "<div><dt>Patch</dt><dd>{}</dd></div>", link(p));
    }
    out.push_str("</dl>\n<div class=\"work\">\n<div class=\"files\">");
    let key = diff::instance_key(&inst.name);
    for (n, c) in inst.changes.iter().enumerate() {
        out.push_str(&files.change(&key, n, c));
    }
    out.push_str("</div>\n</div>\n</section>\n");
    out
}

/// "failed" when the agent passed and its check did not: the card must not read as if exit
/// code 0 were the whole story.
fn check_verdict(t: &TaskReport) -> Option<String> {
    let error = t.error.as_deref()?;
    (error.starts_with("the check") && !t.status.is_pass()).then(|| {
        format!(
            "<span class=\"badge {}\">{}</span>",
            t.status.as_str(),
            status_word(t.status)
        )
    })
}

/// The error box: the error in words, the failure output, the failing tests.
fn why(t: &TaskReport, error: &str) -> String {
    let mut out = String::from("<div class=\"box error\">");
    let _ = write!(out, "<div class=\"why\">{}</div>", escape(error));
    if let Some(failures) = t
        .tests
        .as_ref()
        .map(|c| &c.failures)
        .filter(|f| !f.is_empty())
    {
        out.push_str("<ul class=\"failures\">");
        for f in failures {
            let _ = write!(out, "<li><code>{}</code>", escape(&f.name));
            if !f.message.is_empty() {
                let _ = write!(out, "<pre>{}</pre>", escape(&f.message));
            }
            out.push_str("</li>");
        }
        out.push_str("</ul>");
    }
    if let Some(output) = t.failure_output.as_deref().filter(|o| !o.trim().is_empty()) {
        let _ = write!(
            out,
            "<div class=\"label\">Failure output</div><pre class=\"failure-output\">{}</pre>",
            escape(output.trim_end())
        );
    }
    out.push_str("</div>\n");
    out
}

fn attempts(t: &TaskReport) -> String {
    let mut out = String::from(
        "<table class=\"attempts\"><thead><tr><th>#</th><th>Status</th><th>Exit</th>\
         <th>Duration</th><th>Log</th><th>Error</th></tr></thead><tbody>",
    );
    for a in &t.history {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><span class=\"badge {}\">{}</span></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            a.attempt,
            a.status.as_str(),
            status_word(a.status),
            a.exit_code.map_or("–".to_string(), |c| c.to_string()),
            duration(a.duration_ms),
            a.log.as_deref().map_or("–".to_string(), link),
            escape(a.error.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

/// A link to a file of the run directory (relative, so it works wherever the run is
/// copied); anything that could be a URL scheme is shown as text instead.
fn link(path: &str) -> String {
    if path.contains(':') || path.starts_with('/') || path.starts_with("//") {
        return format!("<code>{}</code>", escape(path));
    }
    format!("<a href=\"{p}\"><code>{p}</code></a>", p = escape(path))
}

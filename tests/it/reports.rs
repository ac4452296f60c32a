//! The report renderers on one representative report: every status, retries, carried-over
//! tasks, every kind of change, and agent text that tries to break out of its context
//! (`<script>`, `</details>`, backticks). Snapshots pin the Markdown, JSON and JUnit bytes;
//! a real XML parser and a real browser (headless Chromium) check what they accept.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use borg_batch::config::{self, Format};
use borg_batch::report::{
    AttemptReport, Change, ChangeKind, InstanceReport, Report, Status, Summary, TaskReport,
    TestCounts, TestFailure, html, markdown, render, summary,
};
use borg_batch::runner::events::{Event, Reporter};

const XSS: &str = "<script>alert(1)</script>";

fn attempt(n: u32, status: Status, error: Option<&str>, task: &str) -> AttemptReport {
    AttemptReport {
        attempt: n,
        status,
        exit_code: if matches!(status, Status::TimedOut | Status::Interrupted) {
            None
        } else {
            Some(i32::from(!status.is_pass()))
        },
        duration_ms: 4_000 + u64::from(n) * 1_000,
        error: error.map(str::to_string),
        log: Some(format!("logs/{task}.{n}.log")),
        cost_usd: Some(0.01),
        session_id: None,
    }
}

fn counts(passed: u64, failed: u64, skipped: u64) -> Option<TestCounts> {
    Some(TestCounts {
        passed,
        failed,
        skipped,
        ..TestCounts::default()
    })
}

fn text_change(path: &str, kind: ChangeKind, diff: &str) -> Change {
    Change {
        path: path.to_string(),
        kind,
        binary: false,
        symlink: false,
        size_before: (kind != ChangeKind::Added).then_some(40),
        size_after: (kind != ChangeKind::Deleted).then_some(60),
        diff: Some(diff.to_string()),
        path_lossy: false,
        mode_before: None,
        mode_after: None,
        target_before: None,
        target_after: None,
    }
}

fn task(id: &str, instance: &str, status: Status) -> TaskReport {
    let mut t = TaskReport::not_run(id, instance, status, "");
    t.error = None;
    t.attempts = 1;
    t.exit_code = Some(i32::from(!status.is_pass()));
    t.duration_ms = 6_900;
    t.cost_usd = Some(0.0123);
    t.log = Some(format!("logs/{id}.1.log"));
    t.history = vec![attempt(1, status, None, id)];
    t
}

/// Every status, retries, carried-over outcomes and every kind of change.
pub fn sample() -> Report {
    let mut schema = task("schema", "db", Status::Passed);
    schema.result =
        Some("Added the users table.\n\n| a | b |\n<img src=x onerror=alert(2)>".into());
    schema.tests = counts(12, 0, 1);
    schema.patch = Some("diffs/schema.patch".into());
    schema.session_id = Some("5f0c3a5e-sess".into());
    schema.changes = vec![
        text_change(
            "migrations/001_users.sql",
            ChangeKind::Added,
            "--- /dev/null\n+++ b/migrations/001_users.sql\n@@ -0,0 +1,3 @@\n+CREATE TABLE users (\n+  id INTEGER PRIMARY KEY\n+);\n",
        ),
        text_change(
            "src/db.rs",
            ChangeKind::Modified,
            "--- a/src/db.rs\n+++ b/src/db.rs\n@@ -1,4 +1,5 @@\n use std::io;\n-fn open() {}\n+fn open() -> io::Result<()> {\n+    Ok(())\n+}\n \n@@ -20,2 +21,2 @@ impl Db {\n-    old();\n+    new();\n \\ No newline at end of file\n",
        ),
        text_change(
            "NOTES.txt",
            ChangeKind::Deleted,
            "--- a/NOTES.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-remember the milk\n",
        ),
    ];

    let mut auth = task("auth", "dev", Status::Failed);
    auth.attempts = 2;
    auth.duration_ms = 131_000;
    auth.error =
        Some("agent exited with code 1: `cargo test` failed | 3 tests <b>failed</b>".into());
    auth.result = Some(format!("I could not finish. {XSS}\n```\nstill broken\n```"));
    auth.history = vec![
        attempt(
            1,
            Status::Failed,
            Some("check `cargo test` exited with code 101"),
            "auth",
        ),
        attempt(2, Status::Failed, Some("agent exited with code 1"), "auth"),
    ];
    auth.log = Some("logs/auth.2.log".into());
    auth.tests = counts(9, 3, 0).map(|mut t| {
        t.failures = vec![
            TestFailure {
                name: "auth::tests::login_rejects_bad_password".into(),
                message: "assertion `left == right` failed\n  left: 401\n right: 200".into(),
            },
            TestFailure {
                name: format!("auth::tests::{XSS}"),
                message: "panicked at src/auth.rs:9:5: </failure>]]>".into(),
            },
            TestFailure {
                name: "auth::tests::token_expiry".into(),
                message: String::new(),
            },
        ];
        t
    });
    auth.failure_output = Some(format!(
        "---- auth::tests::login_rejects_bad_password stdout ----\nassertion failed {XSS}\n\x1b[31mred\x1b[0m ::error::forged\n\n\
         test result: FAILED. 9 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out\n"
    ));
    auth.patch = Some("diffs/auth.patch".into());
    auth.notes = vec!["session `abc` could not be resumed; started a fresh one".into()];
    let mut page = text_change(
        "web/index.html",
        ChangeKind::Modified,
        "--- a/web/index.html\n+++ b/web/index.html\n@@ -1,3 +1,4 @@\n <body>\n-<p>old</p>\n+<p>new & \"quoted\" 'single'</p>\n+<script>alert(1)</script>\n </details>\n",
    );
    page.mode_before = Some(0o644);
    page.mode_after = Some(0o755);
    auth.changes = vec![
        page,
        text_change(
            "README.md",
            ChangeKind::Modified,
            "--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,4 @@\n # App\n+```sh\n+cargo run ````\n+```\n",
        ),
    ];

    let mut slow = task("slow", "dev", Status::TimedOut);
    slow.exit_code = None;
    slow.duration_ms = 300_000;
    slow.error = Some("timed out after 5m; the agent's process group was ended".into());

    let mut docs = TaskReport::not_run(
        "docs",
        "writer",
        Status::Skipped,
        "need `auth` did not pass",
    );
    docs.notes = vec![];

    let mut deploy = task("deploy", "ops", Status::Interrupted);
    deploy.exit_code = None;
    deploy.error = Some("interrupted by SIGINT".into());
    deploy.cost_usd = None;

    let mut flaky = task("e2e", "tester", Status::Passed);
    flaky.flaky = true;
    flaky.attempts = 2;
    flaky.duration_ms = 61_500;
    flaky.cost_usd = Some(0.05);
    flaky.leaked = true;
    flaky.history = vec![
        attempt(
            1,
            Status::Failed,
            Some("check exited with code 1: 1 test failed"),
            "e2e",
        ),
        attempt(2, Status::Passed, None, "e2e"),
    ];
    flaky.log = Some("logs/e2e.2.log".into());
    flaky.tests = counts(30, 0, 2);
    flaky.result = Some("All green on the second try.".into());
    let mut logo = text_change("assets/logo.png", ChangeKind::Added, "");
    (logo.binary, logo.diff, logo.size_after) = (true, None, Some(20_480));
    let mut link = text_change("current", ChangeKind::Added, "");
    (link.symlink, link.diff, link.target_after) = (true, None, Some("releases/v2".into()));
    let mut relink = text_change("latest", ChangeKind::Modified, "");
    (relink.symlink, relink.diff) = (true, None);
    (relink.target_before, relink.target_after) = (Some("v1".into()), Some("v2".into()));
    let mut lossy = text_change(
        "data/caf\u{fffd}.txt",
        ChangeKind::Added,
        "--- /dev/null\n+++ b/data/caf\u{fffd}.txt\n@@ -0,0 +1 @@\n+bonjour\n",
    );
    lossy.path_lossy = true;
    let mut big = text_change("data/dump.csv", ChangeKind::Modified, "");
    big.diff = Some("file is larger than 1 MiB: 2097152 bytes → 2097200 bytes".into());
    flaky.changes = vec![logo, link, relink, lossy, big];

    let mut lint = task("lint", "db", Status::Passed);
    lint.carried_over = true;
    lint.cost_usd = Some(0.002);

    let mut never = TaskReport::not_run("cleanup", "ops", Status::Skipped, "not selected");
    never.carried_over = true;

    let tasks = vec![schema, auth, slow, docs, deploy, flaky, lint, never];
    // In review order: the last instance of the pipeline first.
    let instances = vec![
        InstanceReport {
            name: "tester".into(),
            changes: vec![text_change(
                "tests/auth_test.rs",
                ChangeKind::Added,
                "--- /dev/null\n+++ b/tests/auth_test.rs\n@@ -0,0 +1 @@\n+#[test] fn login() {}\n",
            )],
            patch: Some("diffs/tester.patch".into()),
            in_shard: None,
        },
        InstanceReport {
            name: "dev".into(),
            changes: tasks[1].changes.clone(),
            patch: Some("diffs/dev.patch".into()),
            in_shard: None,
        },
        InstanceReport {
            name: "ops".into(),
            changes: vec![],
            patch: None,
            in_shard: None,
        },
    ];
    Report {
        run_id: "8c1e2d7a-3b4f-4e5a-9c6d-7e8f9a0b1c2d".into(),
        plan: "plans/feature.yaml".into(),
        plan_name: "feature-auth".into(),
        carried_from: Some("runs/feature-auth/20250101-120000-0a1b2c3d".into()),
        shard: None,
        started_at: "2025-01-02T10:00:00Z".into(),
        finished_at: "2025-01-02T10:07:31Z".into(),
        summary: Summary::of(&tasks),
        tasks,
        instances,
    }
}

#[test]
fn markdown_snapshot() {
    insta::assert_snapshot!("md", render(&sample(), Format::Md));
}

#[test]
fn step_summary_snapshot() {
    insta::assert_snapshot!("md_summary", markdown::render_summary(&sample()));
}

#[test]
fn json_snapshot() {
    insta::assert_snapshot!("json", render(&sample(), Format::Json));
}

#[test]
fn junit_snapshot() {
    insta::assert_snapshot!("junit", render(&sample(), Format::Junit));
}

#[test]
fn final_summary_snapshot() {
    let text = summary::final_summary(
        &sample(),
        Path::new("runs/feature-auth/x"),
        borg_batch::report::term::Paint::PLAIN,
    );
    insta::assert_snapshot!("final_summary", text);
}

#[test]
fn renderings_are_deterministic() {
    for format in [Format::Md, Format::Json, Format::Junit, Format::Html] {
        assert_eq!(render(&sample(), format), render(&sample(), format));
    }
}

#[test]
fn markdown_fences_hold_backticks_and_details() {
    let md = render(&sample(), Format::Md);
    // README.md's diff has a run of four backticks: its fence must be longer.
    assert!(md.contains("  `````diff\n"), "{md}");
    // Agent text is inert: raw HTML only inside code fences.
    let prose = outside_fences(&md);
    assert!(!prose.contains("<script"), "raw HTML leaked: {prose}");
    assert!(!prose.contains("<img"), "raw HTML leaked: {prose}");
    assert!(md.contains(XSS), "the diff shows the file as it is");
    // Outside the fences, every `<details>` and `</details>` is one of ours: the two
    // instances that changed, then the seven tasks with details.
    assert_eq!(prose.matches("<details").count(), 9);
    assert_eq!(prose.matches("</details>").count(), 9);
    // The whole change opens the details, the last instance of the pipeline first.
    let whole = md
        .find("## Whole change per instance")
        .expect("whole-change section");
    let tester = md
        .find("<code>tester</code> — 1 changed path")
        .expect("tester's");
    let dev = md.find("<code>dev</code> — ").expect("dev's");
    let tasks = md.find("## Details").expect("per-task details");
    assert!(whole < tester && tester < dev && dev < tasks, "{md}");
    assert!(md.contains("Patch: `diffs/tester.patch`"), "{md}");
}

/// The Markdown with every fenced code block left out (CommonMark's fence rules: a fence
/// closes on a line of at least as many backticks).
fn outside_fences(md: &str) -> String {
    let mut out = String::new();
    let mut open: Option<usize> = None;
    for line in md.lines() {
        let t = line.trim_start();
        let ticks = t.chars().take_while(|c| *c == '`').count();
        match open {
            None if ticks >= 3 => open = Some(ticks),
            None => {
                out.push_str(line);
                out.push('\n');
            }
            Some(n) if ticks >= n && t.trim_end().len() == ticks => open = None,
            Some(_) => {}
        }
    }
    assert!(open.is_none(), "a fence was never closed");
    out
}

#[test]
fn markdown_is_capped_for_github_comments() {
    let mut r = sample();
    let huge: String = (0..30_000)
        .map(|i| format!("+line {i} with some text\n"))
        .collect();
    for (i, t) in r.tasks.iter_mut().enumerate() {
        t.changes.push(text_change(
            &format!("gen/huge{i}.txt"),
            ChangeKind::Added,
            &format!("--- /dev/null\n+++ b/gen/huge{i}.txt\n@@ -0,0 +1,30000 @@\n{huge}"),
        ));
    }
    let md = render(&r, Format::Md);
    assert!(
        md.chars().count() < markdown::GITHUB_COMMENT_LIMIT,
        "{} chars",
        md.len()
    );
    assert!(md.contains("report.html"));
    assert!(md.contains("Truncated to fit a GitHub comment"));

    // So many tasks that the table alone is too long.
    let one = sample().tasks[0].clone();
    r.tasks = (0..2_000)
        .map(|i| TaskReport {
            id: format!("t{i}"),
            ..one.clone()
        })
        .collect();
    let md = render(&r, Format::Md);
    assert!(md.len() < markdown::GITHUB_COMMENT_LIMIT && md.contains("more rows of the table"));
}

#[test]
fn junit_parses_as_xml() {
    let xml = render(&sample(), Format::Junit);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut names: Vec<String> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                names.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
            }
            Ok(_) => {}
            Err(e) => panic!(
                "junit.xml does not parse at {}: {e}",
                reader.buffer_position()
            ),
        }
    }
    let count = |n: &str| names.iter().filter(|x| *x == n).count();
    assert_eq!(count("testsuite"), 5, "one suite per instance");
    assert_eq!(count("testcase"), 8, "one case per task");
    assert_eq!(count("failure"), 2);
    assert_eq!(count("error"), 1);
    assert_eq!(count("skipped"), 2);
    assert_eq!(count("flakyFailure"), 1);
    assert_eq!(count("rerunFailure"), 1);
    assert!(xml.contains("type=\"timeout\""));
    assert!(xml.contains("classname=\"feature-auth.dev\""));
}

#[test]
fn junit_drops_characters_xml_forbids() {
    let mut r = sample();
    r.tasks[1].error = Some("bad \u{0}\u{1b}[31mred\u{1b}[0m \u{fffe} byte".into());
    let xml = render(&r, Format::Junit);
    assert!(!xml.contains('\u{0}') && !xml.contains('\u{1b}') && !xml.contains('\u{fffe}'));
    assert!(xml.contains("bad red  byte"));
}

#[test]
fn html_escapes_everything_and_has_one_script() {
    let page = render(&sample(), Format::Html);
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains(XSS));
    assert!(!page.contains("<img"));
    // Our own script and the diff data (JSON, not run).
    assert_eq!(page.matches("<script").count(), 2, "only our own scripts");
    assert_eq!(
        page.matches("<script type=\"application/json\" id=\"diff-data\">")
            .count(),
        1
    );
    for t in &sample().tasks {
        assert!(
            page.contains(&format!("id=\"task-{}\"", t.id)),
            "no card for {}",
            t.id
        );
    }
    assert!(page.contains("releases/v2"), "symlink target shown");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external request"
    );
    assert_eq!(
        html::escape("<a href='x'>&\""),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
    );
}

#[test]
fn html_folds_long_diffs() {
    let mut r = sample();
    let long: String = (0..500).map(|i| format!("+line {i}\n")).collect();
    r.tasks[0].changes = vec![text_change(
        "gen/long.txt",
        ChangeKind::Added,
        &format!("--- /dev/null\n+++ b/gen/long.txt\n@@ -0,0 +1,500 @@\n{long}"),
    )];
    let page = render(&r, Format::Html);
    assert!(
        page.contains("<section class=\"file collapsed\""),
        "long diff not folded"
    );
    assert!(
        page.contains("[1,null,500,\"line 499\"]"),
        "folded, not cut"
    );
}

#[test]
fn report_command_renders_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let r = sample();
    std::fs::write(dir.path().join("report.json"), render(&r, Format::Json)).unwrap();
    for (format, name) in [
        ("md", Format::Md),
        ("junit", Format::Junit),
        ("html", Format::Html),
    ] {
        let out = assert_cmd::Command::cargo_bin("borg-batch")
            .unwrap()
            .args(["report", dir.path().to_str().unwrap(), "--format", format])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            render(&r, name),
            "{format}"
        );
    }
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn feed(mode: config::Progress) -> String {
    feed_with(mode, |p| p)
}

fn feed_with(
    mode: config::Progress,
    setup: impl FnOnce(borg_batch::report::progress::Progress) -> borg_batch::report::progress::Progress,
) -> String {
    let r = sample();
    let out = Shared::default();
    let mut p = setup(borg_batch::report::progress::Progress::new(
        mode,
        Box::new(out.clone()),
    ));
    let run_dir = Path::new("runs/feature-auth/x");
    let started = |attempt| Event::AttemptStarted {
        task: "e2e",
        instance: "tester",
        attempt,
        max_attempts: 2,
        timeout: Duration::from_secs(20),
    };
    let finished = |i: usize| Event::AttemptFinished {
        task: "e2e",
        instance: "tester",
        attempt: &r.tasks[5].history[i],
    };
    let events = [
        Event::RunStarted {
            run_id: &r.run_id,
            plan_name: &r.plan_name,
            run_dir,
            to_run: 6,
            total: 8,
        },
        started(1),
        finished(0),
        started(2),
        finished(1),
        Event::TaskFinished { task: &r.tasks[5] },
        Event::TaskFinished { task: &r.tasks[1] },
        Event::TaskFinished { task: &r.tasks[3] },
        Event::RunFinished {
            report: &r,
            run_dir,
        },
    ];
    for e in &events {
        p.event(e).unwrap();
    }
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    // The elapsed-time column depends on the clock.
    let redact = |l: &str| {
        l.split_once("s] ")
            .map_or(l.to_string(), |(_, r)| format!("[t] {r}"))
    };
    text.lines().map(redact).collect::<Vec<_>>().join("\n")
}

#[test]
fn progress_lines_snapshot() {
    insta::assert_snapshot!("progress_lines", feed(config::Progress::Lines));
}

#[test]
fn progress_lines_in_github_actions_annotate_and_group_each_failure() {
    let text = feed_with(config::Progress::Lines, |p| p.github_actions(true));
    assert!(
        text.contains("::error title=borg-batch%3A dev/auth failed::agent exited with code 1"),
        "{text}"
    );
    let group = text
        .split("::group::dev/auth: failure output\n")
        .nth(1)
        .unwrap();
    let (inside, _) = group.split_once("::endgroup::").unwrap();
    assert!(inside.contains("assertion failed"), "{inside}");
    // The agent's own `::error::` line is defused, not a second annotation.
    assert_eq!(text.matches("::error title=").count(), 1, "{text}");
    assert!(!text.lines().any(|l| l.starts_with("::error::")));
    let plain = feed(config::Progress::Lines);
    assert!(!plain.contains("::error title") && !plain.contains("::group::"));
}

#[test]
fn progress_labels_are_coloured_only_when_asked() {
    let paint = borg_batch::report::term::Paint { on: true };
    let coloured = feed_with(config::Progress::Lines, |p| p.with_paint(paint));
    assert!(
        coloured.contains("\u{1b}[1;32mPASS   \u{1b}[0m"),
        "{coloured}"
    );
    assert!(coloured.contains("\u{1b}[1;31mFAIL   \u{1b}[0m"));
    assert!(
        coloured.contains("\u{1b}[31mfailed\u{1b}[0m"),
        "summary status word"
    );
    assert!(!feed(config::Progress::Lines).contains('\u{1b}'));
}

#[test]
fn progress_verbose_shows_every_attempt_and_the_limit() {
    let text = feed_with(config::Progress::Lines, |p| p.verbose(true));
    assert!(
        text.contains("START   tester/e2e (attempt 1/2, limit 20s)"),
        "{text}"
    );
    assert!(
        text.contains("DONE    tester/e2e attempt 2/2 passed"),
        "{text}"
    );
}

#[test]
fn progress_quiet_prints_only_the_summary() {
    let quiet = feed(config::Progress::Quiet);
    assert!(quiet.starts_with("feature-auth: 8 tasks"), "{quiet}");
    assert!(!quiet.contains("START"));
}

/// Runs `cmd` and kills it after `limit`; `None` when it did not finish in time.
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Option<std::process::Output> {
    use std::os::unix::process::CommandExt;
    // Its own process group, so its helper processes can be ended with it.
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromium");
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let end_group = || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    };
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            end_group();
            let stdout = reader.join().unwrap().unwrap_or_default();
            let stderr = Vec::new();
            return Some(std::process::Output {
                status,
                stdout,
                stderr,
            });
        }
        if Instant::now() > deadline {
            end_group();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Headless, offline, no first-run work: the page must render on its own.
const CHROMIUM_FLAGS: &str = "--headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars";

fn chromium(profile: &Path) -> Option<Command> {
    let bin = PathBuf::from("/usr/bin/chromium");
    if !bin.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "/usr/bin/chromium is missing on CI"
        );
        eprintln!("note: /usr/bin/chromium not found; skipping the browser test");
        return None;
    }
    let mut cmd = Command::new(bin);
    cmd.args(CHROMIUM_FLAGS.split(' '))
        .arg(format!("--user-data-dir={}", profile.display()));
    Some(cmd)
}

#[test]
fn html_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, render(&sample(), Format::Html)).unwrap();
    let url = format!("file://{}", page.display());
    let Some(mut dump) = chromium(&dir.path().join("profile-dom")) else {
        return;
    };
    let out = run_with_timeout(dump.arg("--dump-dom").arg(&url), Duration::from_secs(60))
        .expect("chromium --dump-dom did not finish in 60 s");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "no DOM dumped: {dom}"
    );
    for t in &sample().tasks {
        assert!(
            dom.contains(&format!("id=\"task-{}\"", t.id)),
            "task {} missing",
            t.id
        );
    }
    // The page opens on each instance's whole change, before the per-task cards.
    let whole = dom
        .find("id=\"whole-change\"")
        .expect("the whole-change section");
    let first_card = dom.find("id=\"task-").expect("task cards");
    assert!(whole < first_card, "the whole change comes first");
    let (tester, dev) = (
        dom.find("id=\"instance-tester\"")
            .expect("tester's whole change"),
        dom.find("id=\"instance-dev\"").expect("dev's whole change"),
    );
    assert!(
        tester < dev && dev < first_card,
        "instances in review order"
    );
    assert!(
        dom.contains("href=\"diffs/tester.patch\""),
        "the instance patch is linked"
    );
    assert!(
        !dom.contains("id=\"instance-ops\""),
        "an instance without changes has no section"
    );
    assert!(
        dom.contains("href=\"#f-@tester-0\""),
        "the jump list holds the instance's files"
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)"),
        "escaped script is not text"
    );
    assert!(
        !dom.contains("<script>alert(1)"),
        "the agent's script became an element"
    );

    let shot = dir.path().join("shot.png");
    let mut snap = chromium(&dir.path().join("profile-shot")).unwrap();
    snap.arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2000")
        .arg(&url);
    let out = run_with_timeout(&mut snap, Duration::from_secs(60))
        .expect("chromium --screenshot did not finish in 60 s");
    assert!(out.status.success(), "chromium --screenshot failed");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot is {size} bytes");
}

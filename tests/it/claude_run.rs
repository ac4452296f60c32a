//! The real Claude Code CLI driven *through borg-batch*, against the loopback Messages API
//! ([`FakeApi`]): real tool calls change real files, and what borg-batch makes of them
//! (changes, patches, sessions, costs, timeouts, rate limits, errors, parallel instances,
//! checks, dry runs, preflight) is asserted on the run directory and on what the CLI sent.
//!
//! borg-batch picks each instance's `CLAUDE_CONFIG_DIR` itself; the tests only give it the
//! fake API's environment (and a temporary `HOME`, so that the user's own `~/.claude*` is
//! never touched and a leak into `HOME` is visible). Without the CLI installed
//! (`.ci/install-claude`) the tests are skipped, except under CI where they fail.
//! No traffic leaves 127.0.0.1.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wait_timeout::ChildExt;

use crate::support::fake_api::{self, FakeApi, Turn};
use crate::support::{Project, change, output_text, task, wait_for};

/// The longest a borg-batch run may take here before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// What one turn of the fake model costs with the CLI's default model (docs/claude-cli.md:
/// 1000 input and 100 output tokens).
const TURN_COST: f64 = 0.006;

/// A temporary project for borg-batch plus the CLI to drive.
struct Rig {
    p: Project,
    claude: PathBuf,
    /// The project folder, canonical: the CLI reports and resolves paths by the real path.
    root: PathBuf,
}

/// `None` (the test returns) when the CLI is not installed; a panic under CI.
fn rig() -> Option<Rig> {
    let claude = fake_api::claude_binary()?;
    let p = Project::new();
    let root = p.path().canonicalize().unwrap();
    fs::create_dir_all(root.join("home")).unwrap();
    Some(Rig { p, claude, root })
}

impl Rig {
    /// Writes `plan.yaml`; `{claude}` becomes the CLI's absolute path.
    fn plan(&self, yaml: &str) {
        self.p.write(
            "plan.yaml",
            yaml.replace("{claude}", &self.claude.to_string_lossy()),
        );
    }

    /// The instance's `project-files/`, where its agent works.
    fn files(&self, instance: &str) -> PathBuf {
        self.root
            .join(format!("workspaces/{instance}/project-files"))
    }

    /// The temporary `HOME` of every borg-batch run here.
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Runs borg-batch with `args` against `api` (its environment set, anything that could
    /// send the CLI elsewhere removed), `HOME` a temporary folder, plus `env`.
    fn borg(&self, api: &FakeApi, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.p.command();
        for name in fake_api::ENV_REMOVE {
            cmd.env_remove(name);
        }
        cmd.envs(api.api_env())
            .env("HOME", self.home())
            .envs(env.iter().copied())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run_bounded(cmd)
    }

    /// `out` and the logs of the latest run (their ends), for assertion messages.
    fn explain(&self, out: &Output) -> String {
        let mut text = output_text(out);
        let logs = self.p.join("runs/plan/latest/logs");
        for name in list(&logs) {
            let log = fs::read_to_string(logs.join(&name)).unwrap_or_default();
            let mut start = log.len().saturating_sub(3000);
            while !log.is_char_boundary(start) {
                start += 1;
            }
            text.push_str(&format!("\n--- logs/{name} (end)\n{}", &log[start..]));
        }
        text
    }

    fn report(&self) -> Value {
        self.p.report("plan")
    }

    /// A file of the latest run directory.
    fn run_file(&self, rel: &str) -> String {
        let path = self.p.latest("plan").join(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }
}

/// Runs `cmd` to completion within [`RUN_LIMIT`] (killed and a panic otherwise).
fn run_bounded(mut cmd: std::process::Command) -> Output {
    let mut child = cmd.spawn().expect("borg-batch starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let Some(status) = child.wait_timeout(RUN_LIMIT).unwrap() else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("borg-batch did not finish within {RUN_LIMIT:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The CLI's own result line (the last `"type":"result"` JSON line) in an attempt's log.
fn logged_result(log: &str) -> Value {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| v["type"] == "result")
        .unwrap_or_else(|| panic!("no result line in the log:\n{log}"))
}

/// The command line borg-batch logged for each agent start in an attempt's log.
fn logged_commands(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.starts_with("--- borg-batch: ") && l.contains(" -p "))
        .collect()
}

/// The latest prompt in a request: the last text block of a user message that is not one of
/// the CLI's `<system-reminder>`s (tool results left out).
fn prompt_of(body: &Value) -> String {
    let mut last = String::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        if message["role"] != "user" {
            continue;
        }
        match &message["content"] {
            Value::String(s) => last.clone_from(s),
            Value::Array(blocks) => {
                let mut texts = blocks
                    .iter()
                    .filter(|b| b["type"] == "text")
                    .filter_map(|b| b["text"].as_str())
                    .filter(|t| !t.trim_start().starts_with("<system-reminder>"));
                if let Some(text) = texts.next_back() {
                    text.clone_into(&mut last);
                }
            }
            _ => {}
        }
    }
    last
}

fn assert_passed(t: &Value) {
    assert_eq!(t["status"], "passed", "{t:#}");
    assert_eq!(t["exit_code"], 0, "{t:#}");
    assert!(t["error"].is_null(), "{t:#}");
}

fn cost(t: &Value) -> f64 {
    t["cost_usd"]
        .as_f64()
        .unwrap_or_else(|| panic!("no cost_usd in {t:#}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

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
}

// 2. One session per instance, across tasks and runs; --fresh forgets it.

const TWO_TASKS: &str = r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: dev, role: developer}
tasks:
  - {id: one, instance: dev, prompt: "first prompt: remember PELICAN"}
  - {id: two, instance: dev, prompt: "second prompt: what was the word?"}
"#;

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
    let stored = rig.p.read("workspaces/dev/state/session_id");
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

// 4. A model that never answers: the timeout ends the CLI and everything it started.

#[test]
fn a_hanging_model_times_out_and_no_process_of_the_cli_survives() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 3s
grace: 1s
instances:
  - {name: dev, role: developer}
tasks:
  - {id: hang, instance: dev, prompt: "answer me"}
"#,
    );
    let api = FakeApi::start(vec![Turn::Hang]);
    let workspace = rig.root.join("workspaces");

    let started = Instant::now();
    let (out, seen) = std::thread::scope(|s| {
        let run = s.spawn(|| rig.borg(&api, &["plan.yaml"], &[]));
        // While the model hangs, the CLI's processes are found by their working dir: the
        // check below can see them.
        let mut seen = Vec::new();
        wait_for(Duration::from_secs(20), || {
            if api.requests().is_empty() {
                return false;
            }
            seen = fake_api::processes_in(&workspace);
            !seen.is_empty()
        });
        (run.join().unwrap(), seen)
    });
    let elapsed = started.elapsed();

    assert_eq!(out.status.code(), Some(1), "{}", rig.explain(&out));
    assert!(!seen.is_empty(), "the CLI was never seen running");
    assert!(elapsed < Duration::from_secs(25), "took {elapsed:?}");
    let r = rig.report();
    let t = task(&r, "hang");
    assert_eq!(t["status"], "timed_out", "{t:#}");
    assert_eq!(t["error"], "the agent timed out after 3s");
    // Ended by borg-batch's SIGTERM: the CLI traps it and exits 143 itself.
    assert!(t["exit_code"].is_null() || t["exit_code"] == 143, "{t:#}");
    let left = fake_api::processes_in(&workspace);
    assert!(left.is_empty(), "left running: {left:#?} (seen: {seen:#?})");
    // And they stay gone: nothing was merely slow to notice.
    std::thread::sleep(Duration::from_millis(500));
    let left = fake_api::processes_in(&workspace);
    assert!(left.is_empty(), "left running: {left:#?}");
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

// 6. An error result: failed, in the CLI's own words.

#[test]
fn an_api_error_fails_the_task_with_the_clis_own_words() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: a, role: developer}
  - {name: b, role: developer}
tasks:
  - {id: server, instance: a, prompt: "[task:server] hi"}
  - {id: bad-request, instance: b, prompt: "[task:bad] hi"}
"#,
    );
    // A 400 reaches the user only after the CLI retried it with fewer betas (6 requests).
    let api = FakeApi::start_keyed([
        (
            "[task:server]",
            vec![Turn::status(500, "the fake broke down")],
        ),
        (
            "[task:bad]",
            vec![Turn::status(400, "messages: this request is malformed"); 8],
        ),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(1), "{}", rig.explain(&out));
    let r = rig.report();
    let server = task(&r, "server");
    assert_eq!(server["status"], "failed", "{server:#}");
    assert_eq!(server["exit_code"], 1);
    assert_eq!(server["attempts"], 1);
    let error = server["error"].as_str().unwrap();
    assert!(error.contains("API Error: 500"), "{error}");
    assert!(error.contains("the fake broke down"), "{error}");
    assert!(
        server["notes"].is_null(),
        "a 500 is not a rate limit: {server:#}"
    );
    assert_eq!(api.requests_for("[task:server]").len(), 1, "not retried");

    let bad = task(&r, "bad-request");
    assert_eq!(bad["status"], "failed", "{bad:#}");
    let error = bad["error"].as_str().unwrap();
    assert!(error.contains("API Error: 400"), "{error}");
    assert!(error.contains("this request is malformed"), "{error}");
    assert_eq!(r["summary"]["failed"], 2);
}

// 7. Three instances at once, each with its own configuration.

#[test]
fn three_instances_at_once_keep_their_configuration_intact() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: a, role: developer}
  - {name: b, role: tester}
  - {name: c, role: reviewer}
tasks:
  - {id: ta, instance: a, prompt: "[task:a] write"}
  - {id: tb, instance: b, prompt: "[task:b] write"}
  - {id: tc, instance: c, prompt: "[task:c] write"}
"#,
    );
    let script = |name: &str| {
        (
            format!("[task:{name}]"),
            vec![
                Turn::write(
                    &rig.files(name).join(format!("{name}.txt")),
                    &format!("{name}\n"),
                ),
                Turn::text(format!("did {name}")),
            ],
        )
    };
    let api = FakeApi::start_keyed([script("a"), script("b"), script("c")]);

    let started = Instant::now();
    let out = rig.borg(&api, &["plan.yaml", "--jobs", "3"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    assert_eq!(api.unscripted(), 0);
    let r = rig.report();
    let mut sessions = Vec::new();
    for name in ["a", "b", "c"] {
        let t = task(&r, &format!("t{name}"));
        assert_passed(t);
        assert_eq!(t["result"], format!("did {name}"));
        assert_eq!(change(t, &format!("{name}.txt"))["kind"], "added");
        sessions.push(t["session_id"].as_str().unwrap().to_owned());
        // The instance's own configuration: written by its CLI, and valid JSON.
        let config = rig.root.join(format!("workspaces/{name}/state/claude"));
        let json = config.join(".claude.json");
        let text = fs::read_to_string(&json).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; config dir holds {:?}",
                json.display(),
                list(&config)
            )
        });
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", json.display()));
        // Its session is stored there, under its own project-files/.
        let project = rig
            .files(name)
            .display()
            .to_string()
            .replace(['/', '.'], "-");
        let transcript = config
            .join("projects")
            .join(project)
            .join(format!("{}.jsonl", sessions.last().unwrap()));
        assert!(transcript.is_file(), "{}", transcript.display());
    }
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), 3, "one session per instance");
    // The three ran at once: their requests overlapped in time, so the run took about one
    // task's time, not three (a loose bound: the CLI's start-up dominates).
    let max_one = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    let sum: u64 = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_ms"].as_u64().unwrap())
        .sum();
    assert!(
        started.elapsed().as_millis() < u128::from(sum),
        "not parallel: {:?} for tasks of {max_one} ms at most, {sum} ms in all",
        started.elapsed()
    );
    // Nothing of Claude Code's landed in HOME.
    let home = list(&rig.home());
    assert!(home.is_empty(), "written under HOME: {home:?}");
}

/// The names in a folder (empty when it does not exist).
fn list(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default()
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
        serde_json::json!({"passed": 3, "failed": 1, "skipped": 2})
    );
    let red = task(&r, "red");
    assert_eq!(red["status"], "failed", "{red:#}");
    assert_eq!(red["exit_code"], 0, "the agent itself was fine: {red:#}");
    assert_eq!(red["result"], "red done");
    assert_eq!(
        red["tests"],
        serde_json::json!({"passed": 3, "failed": 1, "skipped": 2})
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

// 9. --dry-run: the exact command line, nothing started.

#[test]
fn dry_run_shows_the_claude_command_line_and_starts_nothing() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}", model: claude-sonnet-4-5, max_turns: 5}
instances:
  - name: dev
    role: developer
    context: Follow the house style.
tasks:
  - {id: one, instance: dev, prompt: "do it"}
"#,
    );
    let api = FakeApi::start(vec![Turn::text("never asked")]);

    let out = rig.borg(&api, &["plan.yaml", "--dry-run"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "{} -p --output-format stream-json --verbose --permission-mode acceptEdits \
         --allowedTools Read,Edit,Write,Bash --model claude-sonnet-4-5 --max-turns 5 \
         --append-system-prompt 'You are the developer.",
        rig.claude.display()
    );
    assert!(
        stdout.contains(&expected),
        "expected {expected}\nin:\n{stdout}"
    );
    assert!(stdout.contains("Follow the house style.'"), "{stdout}");
    assert!(!stdout.contains("--resume"), "{stdout}");
    assert!(api.all_requests().is_empty(), "a process was started");
    assert!(
        !rig.p.join("workspaces").exists(),
        "a dry run writes nothing"
    );
    assert!(!rig.p.join("runs").exists(), "a dry run writes nothing");
}

// 10. Preflight: a CLI that does not answer --version.

#[test]
fn preflight_refuses_a_cli_that_fails_version_before_creating_anything() {
    let p = Project::new();
    let script = p.write(
        "bin/claude",
        "#!/bin/sh\necho 'broken install' >&2\nexit 3\n",
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    p.plan(
        r#"
instances:
  - {name: dev, role: developer}
tasks:
  - {id: one, instance: dev, prompt: "do it"}
"#,
    );

    let mut cmd = p.command();
    cmd.env("CLAUDE_CODE_PATH", &script)
        .arg("plan.yaml")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd);

    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&script.display().to_string()),
        "names the command: {stderr}"
    );
    assert!(stderr.contains("--version"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("install"),
        "how to install: {stderr}"
    );
    assert!(stderr.contains("CLAUDE_CODE_PATH"), "{stderr}");
    assert!(
        !p.join("workspaces").exists(),
        "created before the preflight"
    );
    assert!(!p.join("runs").exists(), "created before the preflight");
}

// 11. session: fresh — the history travels in the prompt.

#[test]
fn fresh_sessions_send_the_task_history_in_the_prompt_and_never_resume() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}", session: fresh}
timeout: 60s
grace: 1s
instances:
  - {name: dev, role: developer, context: "CONTEXT-MARKER-7"}
tasks:
  - {id: one, instance: dev, prompt: "first prompt ALBATROSS"}
  - {id: two, instance: dev, prompt: "second prompt"}
"#,
    );
    let api = FakeApi::start(vec![
        Turn::text("first answer"),
        Turn::text("second answer"),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let r = rig.report();
    let (one, two) = (task(&r, "one"), task(&r, "two"));
    assert_passed(one);
    assert_passed(two);
    assert_ne!(
        one["session_id"], two["session_id"],
        "a new session per task"
    );
    for name in ["one", "two"] {
        let log = rig.run_file(&format!("logs/{name}.1.log"));
        let commands = logged_commands(&log);
        assert_eq!(commands.len(), 1, "{log}");
        assert!(!commands[0].contains("--resume"), "{}", commands[0]);
        assert!(
            !commands[0].contains("--append-system-prompt"),
            "{}",
            commands[0]
        );
    }
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    let second = prompt_of(&requests[1]);
    assert!(
        second.contains("first prompt ALBATROSS"),
        "history: {second}"
    );
    assert!(
        second.contains("CONTEXT-MARKER-7"),
        "role context: {second}"
    );
    assert!(second.trim_end().ends_with("second prompt"), "{second}");
    // A new conversation: nothing of the first answer but what session.md recorded.
    assert!(!fake_api::conversation_text(&requests[1]).contains("first answer"));
    assert!(
        !rig.p.join("workspaces/dev/state/session_id").exists(),
        "no session kept for fresh"
    );
}

// The prompt: the task's own text once, after the history of the tasks before it.

#[test]
fn a_prompt_holds_the_history_of_earlier_tasks_but_no_copy_of_its_own() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: r, role: developer}
  - {name: f, role: developer, agent: {session: fresh}}
tasks:
  - {id: r1, instance: r, prompt: "[task:r1] alpha prompt"}
  - {id: f1, instance: f, prompt: "[task:f1] beta prompt"}
  - {id: f2, instance: f, prompt: "[task:f2] gamma prompt"}
"#,
    );
    let api = FakeApi::start_keyed([
        ("[task:r1]", vec![Turn::text("alpha done")]),
        ("[task:f1]", vec![Turn::text("beta done")]),
        ("[task:f2]", vec![Turn::text("gamma done")]),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    // The first task of a resuming instance: nothing to resume, no history, just the task
    // (its role context went in --append-system-prompt).
    let r1 = prompt_of(&api.requests_for("[task:r1]")[0]);
    assert_eq!(r1.trim_end(), "[task:r1] alpha prompt", "{r1}");
    // A fresh-session task: the earlier task in the history, its own text once, last.
    let f2 = prompt_of(&api.requests_for("[task:f2]")[0]);
    assert_eq!(f2.matches("[task:f1] beta prompt").count(), 1, "{f2}");
    assert_eq!(f2.matches("[task:f2] gamma prompt").count(), 1, "{f2}");
    assert!(f2.trim_end().ends_with("[task:f2] gamma prompt"), "{f2}");
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
    rig.p.write("workspaces/dev/state/session_id", bogus);
    rig.p.write(
        "workspaces/dev/session.md",
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
        rig.p.read("workspaces/dev/state/session_id").trim(),
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

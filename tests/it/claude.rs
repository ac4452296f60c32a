//! The real Claude Code CLI against our loopback Messages API ([`FakeApi`]).
//!
//! These tests pin down the behaviour of the CLI that borg-batch relies on (the result line,
//! sessions and `--resume`, errors, real file changes by its tools) and prove the fake server
//! good enough to drive it. They call the CLI directly, not through borg-batch. Without the
//! CLI installed (`.ci/install-claude`) they are skipped, except under CI where they fail.
//! No traffic leaves 127.0.0.1.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::fake_api::{self, FakeApi, Turn};
use crate::support::output_within;

/// What the CLI is always given here, as borg-batch will give it.
const ARGS: &[&str] = &[
    "-p",
    "--output-format",
    "json",
    "--permission-mode",
    "acceptEdits",
    "--allowedTools",
    "Read,Edit,Write,Bash",
];

const TIMEOUT: Duration = Duration::from_secs(30);

/// One finished CLI run.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The last stdout line that is a JSON object with `"type":"result"` (not necessarily
    /// its first key: the CLI puts `type` near the end).
    fn result(&self) -> Value {
        self.stdout
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["type"] == "result")
            .unwrap_or_else(|| panic!("no result line in {self:#?}"))
    }
}

/// A working dir and a config dir, both temporary.
struct Dirs {
    _root: TempDir,
    work: std::path::PathBuf,
    config: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    let config = root.path().join("config");
    fs::create_dir_all(&work).unwrap();
    fs::create_dir_all(&config).unwrap();
    // Canonical, since the CLI reports and keys sessions by the real path.
    let work = work.canonicalize().unwrap();
    Dirs {
        _root: root,
        work,
        config,
    }
}

/// Runs the CLI with `prompt` on stdin and `extra` arguments after [`ARGS`], ending it after
/// [`TIMEOUT`].
fn run_claude(
    api: &FakeApi,
    claude: &Path,
    dirs: &Dirs,
    prompt: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = api.command(claude, &dirs.work, &dirs.config);
    cmd.args(ARGS).args(extra).envs(env.iter().copied());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn claude");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(prompt.as_bytes())
        .unwrap();
    let out = output_within(child, TIMEOUT, "claude");
    Run {
        status: out.status,
        stdout: String::from_utf8(out.stdout).expect("claude's stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("claude's stderr is UTF-8"),
    }
}

fn assert_success(run: &Run) -> Value {
    let result = run.result();
    assert!(run.status.success(), "{run:#?}");
    assert_eq!(result["subtype"], "success", "{result:#}");
    assert_eq!(result["is_error"], false, "{result:#}");
    result
}

#[test]
fn write_tool_creates_the_file_and_the_result_reports_success_and_cost() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let file = dirs.work.join("hello.txt");
    let content = "hello\nfrom the fake model\n";
    let api = FakeApi::start(vec![
        Turn::write(&file, content),
        Turn::text("Wrote hello.txt."),
    ]);

    let run = run_claude(&api, &claude, &dirs, "Create hello.txt", &[], &[]);

    let result = assert_success(&run);
    assert_eq!(fs::read_to_string(&file).unwrap(), content);
    assert_eq!(result["result"], "Wrote hello.txt.");
    assert_eq!(result["num_turns"], 2);
    let session = result["session_id"].as_str().unwrap();
    assert_eq!(session.len(), 36, "a UUID: {session}");
    let cost = result["total_cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "cost {cost}");
    assert_eq!(result["permission_denials"], Value::Array(vec![]));
    assert_eq!(api.remaining(), 0);
    assert_eq!(api.unscripted(), 0);

    // What the CLI sent: streamed requests, the prompt in the first user message, and the
    // Write tool's result in the second request.
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r["stream"] == true));
    assert!(fake_api::conversation_text(&requests[0]).contains("Create hello.txt"));
    assert!(fake_api::conversation_text(&requests[1]).contains("File created successfully"));
    let first = &api.all_requests()[0];
    assert_eq!(first.path, "/v1/messages?beta=true");
    assert_eq!(first.header("x-api-key"), Some("test-key"));
    assert_eq!(first.header("x-claude-code-session-id"), Some(session));
    // Its sessions live in the config dir, in a folder named after the working dir.
    let project = dirs.work.display().to_string().replace(['/', '.'], "-");
    assert!(
        dirs.config
            .join("projects")
            .join(project)
            .join(format!("{session}.jsonl"))
            .is_file()
    );
}

#[test]
fn resume_sends_the_first_conversation_again() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let api = FakeApi::start(vec![
        Turn::text("first answer: remember the word PELICAN"),
        Turn::text("second answer"),
    ]);

    let first = assert_success(&run_claude(&api, &claude, &dirs, "first prompt", &[], &[]));
    let session = first["session_id"].as_str().unwrap();
    let second = run_claude(
        &api,
        &claude,
        &dirs,
        "second prompt",
        &["--resume", session],
        &[],
    );

    let second = assert_success(&second);
    assert_eq!(second["result"], "second answer");
    // The session id stays the same on resume in this CLI version (it may change in others;
    // borg-batch keeps whatever the latest result says).
    assert_eq!(second["session_id"], session);
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    let text = fake_api::conversation_text(&requests[1]);
    for earlier in [
        "first prompt",
        "first answer: remember the word PELICAN",
        "second prompt",
    ] {
        assert!(text.contains(earlier), "missing {earlier:?} in {text}");
    }
    // total_cost_usd of a resumed session counts the earlier runs too.
    assert!(second["total_cost_usd"].as_f64() > first["total_cost_usd"].as_f64());
}

#[test]
fn resume_of_an_unknown_session_exits_1_without_a_result_line() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let api = FakeApi::start(vec![]);
    let unknown = "11111111-2222-3333-4444-555555555555";

    let run = run_claude(&api, &claude, &dirs, "hi", &["--resume", unknown], &[]);

    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert!(run.stdout.trim().is_empty(), "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("No conversation found with session ID: {unknown}"))
    );
    assert!(api.requests().is_empty());
}

#[test]
fn edit_tool_edits_an_existing_file() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let file = dirs.work.join("main.rs");
    fs::write(&file, "fn main() {\n    println!(\"old\");\n}\n").unwrap();
    let api = FakeApi::start(vec![
        Turn::read(&file),
        Turn::edit(&file, "\"old\"", "\"new\""),
        Turn::text("Edited."),
    ]);

    let result = assert_success(&run_claude(&api, &claude, &dirs, "Edit main.rs", &[], &[]));

    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "fn main() {\n    println!(\"new\");\n}\n"
    );
    assert_eq!(result["num_turns"], 3);
    let requests = api.requests();
    assert!(fake_api::conversation_text(&requests[1]).contains("println!(\"old\")"));
    assert!(fake_api::conversation_text(&requests[2]).contains("has been updated successfully"));
}

#[test]
fn bash_tool_runs_in_the_working_dir() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let api = FakeApi::start(vec![
        Turn::bash("printf '%s' \"$PWD\" > where.txt"),
        Turn::text("done"),
    ]);

    assert_success(&run_claude(&api, &claude, &dirs, "Where am I?", &[], &[]));

    let written = fs::read_to_string(dirs.work.join("where.txt")).unwrap();
    assert_eq!(Path::new(&written), dirs.work);
}

#[test]
fn server_error_gives_is_error_true_and_exit_1() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let api = FakeApi::start(vec![Turn::status(500, "the fake broke")]);

    let run = run_claude(&api, &claude, &dirs, "hi", &[], &[]);

    let result = run.result();
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert_eq!(result["is_error"], true);
    // Not an error subtype: only is_error (and the exit code) tell.
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["api_error_status"], 500);
    assert!(
        result["result"]
            .as_str()
            .unwrap()
            .contains("the fake broke"),
        "{result:#}"
    );
    assert_eq!(
        api.requests().len(),
        1,
        "CLAUDE_CODE_MAX_RETRIES=0: no retry"
    );
}

#[test]
fn bad_request_is_retried_with_fewer_betas_then_reported() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let script = std::iter::repeat_n(Turn::status(400, "no such thing"), 8).collect();
    let api = FakeApi::start(script);

    let run = run_claude(&api, &claude, &dirs, "hi", &[], &[]);

    let result = run.result();
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 400);
    let tries = api.requests().len();
    assert!((2..=8).contains(&tries), "{tries} requests for a 400");
}

#[test]
fn rate_limit_is_retried_when_retries_are_allowed() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let api = FakeApi::start(vec![
        Turn::status(429, "slow down"),
        Turn::text("recovered"),
    ]);

    let run = run_claude(
        &api,
        &claude,
        &dirs,
        "hi",
        &[],
        &[("CLAUDE_CODE_MAX_RETRIES", "1")],
    );

    let result = assert_success(&run);
    assert_eq!(result["result"], "recovered");
    assert_eq!(api.requests().len(), 2);
}

#[test]
fn stream_json_ends_with_the_result_line() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let api = FakeApi::start(vec![Turn::bash("true"), Turn::text("streamed")]);
    let extra = ["--output-format", "stream-json", "--verbose"];

    let run = run_claude(&api, &claude, &dirs, "hi", &extra, &[]);

    let result = assert_success(&run);
    assert_eq!(result["result"], "streamed");
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines only"))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"system"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"result"), "{kinds:?}");
    assert!(
        kinds.contains(&"assistant") && kinds.contains(&"user"),
        "{kinds:?}"
    );
}

#[test]
fn append_system_prompt_lands_at_the_end_of_the_system_prompt() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let dirs = dirs();
    let api = FakeApi::start(vec![Turn::text("ok")]);
    let role = "ROLE: you review Rust code.";

    assert_success(&run_claude(
        &api,
        &claude,
        &dirs,
        "hi",
        &["--append-system-prompt", role],
        &[],
    ));

    let system = &api.requests()[0]["system"];
    let last = system.as_array().unwrap().last().unwrap()["text"]
        .as_str()
        .unwrap();
    assert!(last.ends_with(role), "{last}");
    assert!(!fake_api::conversation_text(&api.requests()[0]).contains(role));
}

#[test]
fn parallel_clis_each_get_their_own_keyed_script() {
    let Some(claude) = fake_api::claude_binary() else {
        return;
    };
    let (a, b) = (dirs(), dirs());
    let api = FakeApi::start_keyed([
        (
            "[task:a]",
            vec![
                Turn::write(&a.work.join("a.txt"), "A\n"),
                Turn::text("did a"),
            ],
        ),
        (
            "[task:b]",
            vec![
                Turn::write(&b.work.join("b.txt"), "B\n"),
                Turn::text("did b"),
            ],
        ),
    ]);

    let (run_a, run_b) = std::thread::scope(|s| {
        let run_a = s.spawn(|| run_claude(&api, &claude, &a, "[task:a] write a", &[], &[]));
        let run_b = s.spawn(|| run_claude(&api, &claude, &b, "[task:b] write b", &[], &[]));
        (run_a.join().unwrap(), run_b.join().unwrap())
    });

    assert_eq!(assert_success(&run_a)["result"], "did a");
    assert_eq!(assert_success(&run_b)["result"], "did b");
    assert_eq!(fs::read_to_string(a.work.join("a.txt")).unwrap(), "A\n");
    assert_eq!(fs::read_to_string(b.work.join("b.txt")).unwrap(), "B\n");
    assert_eq!(api.requests_for("[task:a]").len(), 2);
    assert_eq!(api.requests_for("[task:b]").len(), 2);
    assert_eq!(api.unscripted(), 0);
}

// The server alone, without the CLI: these run everywhere.

/// Sends one raw HTTP request and reads the answer to the end.
fn raw_request(api: &FakeApi, body: &str) -> String {
    let addr = api.base_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/messages?beta=true HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn fake_api_streams_a_tool_call_as_sse_events() {
    let api = FakeApi::start(vec![Turn::bash("ls")]);
    let body = r#"{"model":"m","stream":true,"tools":[{"name":"Bash"}],
                   "messages":[{"role":"user","content":"hi"}]}"#;

    let answer = raw_request(&api, body);

    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("content-type: text/event-stream"),
        "{answer}"
    );
    let events: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let json: String = answer
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["delta"]["partial_json"].as_str().map(str::to_owned))
        .collect();
    let input: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(input["command"], "ls");
    assert!(answer.contains(r#""stop_reason":"tool_use""#));
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn fake_api_answers_side_requests_without_using_the_script() {
    let api = FakeApi::start(vec![Turn::text("main")]);

    let side = raw_request(
        &api,
        r#"{"model":"haiku","messages":[{"role":"user","content":"t"}]}"#,
    );

    assert!(side.starts_with("HTTP/1.1 200 OK\r\n"), "{side}");
    assert!(side.contains(r#""text":"ok""#), "{side}");
    assert_eq!(api.remaining(), 1);
    assert!(api.requests().is_empty());
    assert_eq!(api.all_requests().len(), 1);
}

#[test]
fn fake_api_keys_by_the_marker_occurring_last_in_the_latest_prompt() {
    let api = FakeApi::start_keyed([("[task:a]", vec![Turn::text("A")]), ("[task:b]", vec![])]);
    let body = r#"{"stream":false,"tools":[{"name":"Bash"}],"messages":[
        {"role":"user","content":[{"type":"text","text":"history: [task:b] ... now: [task:a]"}]}]}"#;

    let answer = raw_request(&api, body);

    assert!(answer.contains(r#""text":"A""#), "{answer}");
    assert_eq!(api.requests_for("[task:a]").len(), 1);
    assert_eq!(api.unscripted(), 0);
}

#[test]
fn dropping_the_fake_api_releases_a_hanging_turn() {
    let api = FakeApi::start(vec![Turn::Hang]);
    let addr = api.base_url().trim_start_matches("http://").to_owned();
    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let body = r#"{"tools":[{"name":"Bash"}],"messages":[]}"#;
        write!(
            stream,
            "POST /v1/messages HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.requests().is_empty() {
        assert!(Instant::now() < deadline, "request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }

    let started = Instant::now();
    drop(api);

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drop took {:?}",
        started.elapsed()
    );
    assert_eq!(client.join().unwrap(), "", "a hang answers nothing");
}

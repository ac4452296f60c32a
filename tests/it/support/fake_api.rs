//! A loopback server speaking the Anthropic Messages API, for driving the real Claude Code CLI.
//!
//! Tests point the CLI at it with `ANTHROPIC_BASE_URL` (see [`FakeApi::env`]) and script what
//! "the model" answers: text, tool calls that the CLI really executes (Write, Edit, Bash, ...),
//! HTTP errors, or a hang. Several CLI processes can share one server: with
//! [`FakeApi::start_keyed`] each request is matched to a script by a marker string found in
//! the prompt, so parallel tasks each get their own conversation.
//!
//! It must never talk to anything but 127.0.0.1, and it must never keep the test process
//! alive: dropping it closes every connection (a [`Turn::Hang`] is released) and joins its
//! threads. What the CLI sends and expects is written down in `docs/claude-cli.md`.
//!
//! std only: one thread per connection, HTTP/1.1, `Connection: close` after every response.
//! Streamed answers are real SSE event sequences (`message_start` ... `message_stop`).

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// Input tokens reported for every answer (`message_start.usage`). Fixed, so a test can rely
/// on every turn costing the same; with the CLI's default model this is a cost well above 0.
pub const INPUT_TOKENS: u64 = 1000;
/// Output tokens reported for every answer (`message_delta.usage`).
pub const OUTPUT_TOKENS: u64 = 100;

/// The text answered to a main-conversation request when its script has no turn left.
pub const EXHAUSTED: &str = "[fake_api] script exhausted";
/// The text answered to a main-conversation request that no key of a keyed server matches.
pub const UNMATCHED: &str = "[fake_api] no script for this prompt";

/// Environment variables removed from the CLI's environment by [`FakeApi::command`]: anything
/// that could send it elsewhere (another API, a proxy, a cloud provider), log it in, or
/// change the model. Tests that start `borg-batch` (which passes its environment on to the
/// CLI) should remove them from that command too.
pub const ENV_REMOVE: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SSE_PORT",
    "CLAUDE_CONFIG_DIR",
    "CLAUDECODE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// One answer of "the model" to one main-conversation request.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// A final text answer (`stop_reason: end_turn`): the CLI prints it as `result` and exits.
    Text(String),
    /// A tool call (`stop_reason: tool_use`) that the CLI executes, then asks again with the
    /// tool's result. `input` is the tool's JSON input, e.g. Write `{file_path, content}`.
    ToolUse { name: String, input: Value },
    /// An HTTP error answer with an Anthropic-style error body carrying this message.
    /// Note: the CLI retries 429/5xx itself (`CLAUDE_CODE_MAX_RETRIES`, set to 0 by
    /// [`FakeApi::env`]) and answers a 400 by retrying up to 5 times with fewer beta
    /// features, so a 400 that should reach the user needs 6 of these in a row.
    Status(u16, String),
    /// Read the request and never answer (until the server is dropped).
    Hang,
}

impl Turn {
    pub fn text(text: impl Into<String>) -> Turn {
        Turn::Text(text.into())
    }

    pub fn tool(name: impl Into<String>, input: Value) -> Turn {
        Turn::ToolUse {
            name: name.into(),
            input,
        }
    }

    /// Write tool: the CLI wants an absolute `file_path`.
    pub fn write(path: &Path, content: &str) -> Turn {
        Turn::tool("Write", json!({"file_path": path, "content": content}))
    }

    /// Edit tool: replaces the one occurrence of `old` in the file at the absolute `path`.
    pub fn edit(path: &Path, old: &str, new: &str) -> Turn {
        Turn::tool(
            "Edit",
            json!({"file_path": path, "old_string": old, "new_string": new}),
        )
    }

    pub fn read(path: &Path) -> Turn {
        Turn::tool("Read", json!({"file_path": path}))
    }

    /// Bash tool: runs in the CLI's working directory.
    pub fn bash(command: &str) -> Turn {
        Turn::tool(
            "Bash",
            json!({"command": command, "description": "Run a command"}),
        )
    }

    pub fn status(code: u16, message: impl Into<String>) -> Turn {
        Turn::Status(code, message.into())
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path with query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Value::Null` if there was none or it was not JSON).
    pub body: Value,
    /// Whether it was a turn of a main conversation (a Messages request with tools), as
    /// opposed to a side request (count_tokens, a tool-less helper call, anything else).
    pub main: bool,
    /// The script key it was matched to (`Some("")` on an unkeyed server).
    pub key: Option<String>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The server. Dropping it stops it.
#[derive(Debug)]
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled on shutdown, to release hanging turns.
    released: Condvar,
    shutdown: AtomicBool,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct State {
    /// false: one script, stored under "", serving every main-conversation request.
    keyed: bool,
    scripts: BTreeMap<String, VecDeque<Turn>>,
    requests: Vec<Request>,
    exhausted: usize,
    unmatched: usize,
    /// Each connection's handler with a clone of its socket, shut down on drop so that no
    /// handler stays blocked in a read.
    conns: Vec<(TcpStream, JoinHandle<()>)>,
}

impl FakeApi {
    /// Serves `script` in order to the main-conversation requests of any CLI process.
    pub fn start(script: Vec<Turn>) -> FakeApi {
        Self::launch(false, BTreeMap::from([(String::new(), script.into())]))
    }

    /// Serves one script per key: a main-conversation request gets the next turn of the
    /// script whose key occurs in its latest user text (the prompt of the current task; when
    /// that text holds several keys, e.g. a task history followed by the task's own prompt,
    /// the one occurring last wins). Put a marker like `[task:abc]` in each prompt.
    pub fn start_keyed<K: Into<String>>(
        scripts: impl IntoIterator<Item = (K, Vec<Turn>)>,
    ) -> FakeApi {
        let scripts = scripts
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::launch(true, scripts)
    }

    fn launch(keyed: bool, scripts: BTreeMap<String, VecDeque<Turn>>) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                keyed,
                scripts,
                requests: Vec::new(),
                exhausted: 0,
                unmatched: 0,
                conns: Vec::new(),
            }),
            released: Condvar::new(),
            shutdown: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fake-api-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn acceptor")
        };
        FakeApi {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bodies of the main-conversation requests, in arrival order (all keys).
    pub fn requests(&self) -> Vec<Value> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.main)
            .map(|r| r.body.clone())
            .collect()
    }

    /// Bodies of the main-conversation requests matched to `key`.
    pub fn requests_for(&self, key: &str) -> Vec<Value> {
        let state = self.lock();
        let hits = state
            .requests
            .iter()
            .filter(|r| r.main && r.key.as_deref() == Some(key));
        hits.map(|r| r.body.clone()).collect()
    }

    /// Every request received, side requests included.
    pub fn all_requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Turns not yet served, over all scripts.
    pub fn remaining(&self) -> usize {
        self.lock().scripts.values().map(VecDeque::len).sum()
    }

    /// Main-conversation requests answered with [`EXHAUSTED`] or [`UNMATCHED`]: a test whose
    /// script fits its CLI runs sees 0.
    pub fn unscripted(&self) -> usize {
        let state = self.lock();
        state.exhausted + state.unmatched
    }

    /// The API part of the CLI's environment: base URL, a dummy key, no traffic elsewhere,
    /// no retries (a test that wants them sets `CLAUDE_CODE_MAX_RETRIES` after these).
    pub fn api_env(&self) -> Vec<(String, String)> {
        [
            ("ANTHROPIC_BASE_URL", self.base_url()),
            ("ANTHROPIC_API_KEY", "test-key".to_owned()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
            ("DISABLE_AUTOUPDATER", "1".to_owned()),
            ("DISABLE_TELEMETRY", "1".to_owned()),
            ("DISABLE_ERROR_REPORTING", "1".to_owned()),
            ("CLAUDE_CODE_MAX_RETRIES", "0".to_owned()),
            ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// [`Self::api_env`] plus an isolated configuration: `CLAUDE_CONFIG_DIR=config_dir` (where
    /// the CLI keeps `.claude.json` and its sessions) and `HOME=config_dir/home`, so nothing
    /// of the real user's `~/.claude*` is read or written. The folders are created.
    pub fn env(&self, config_dir: &Path) -> Vec<(String, String)> {
        let home = config_dir.join("home");
        std::fs::create_dir_all(&home).expect("create fake home");
        let mut env = self.api_env();
        env.push((
            "CLAUDE_CONFIG_DIR".to_owned(),
            config_dir.display().to_string(),
        ));
        env.push(("HOME".to_owned(), home.display().to_string()));
        env
    }

    /// A command running `claude` in `cwd` against this server, with [`ENV_REMOVE`] removed
    /// and [`Self::env`] set. Add the CLI's arguments and stdin yourself.
    pub fn command(&self, claude: &Path, cwd: &Path, config_dir: &Path) -> Command {
        let mut cmd = Command::new(claude);
        cmd.current_dir(cwd);
        for name in ENV_REMOVE {
            cmd.env_remove(name);
        }
        cmd.envs(self.env(config_dir));
        cmd
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Taking the lock orders the flag before any hanging handler's next check.
        drop(self.lock());
        self.shared.released.notify_all();
        // Wake the acceptor out of accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let conns = std::mem::take(&mut self.lock().conns);
        for (conn, _) in &conns {
            let _ = conn.shutdown(Shutdown::Both);
        }
        for (_, handler) in conns {
            let _ = handler.join();
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A handler that panicked must not hide the requests from the test.
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let handler = {
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name("fake-api-conn".into())
                .spawn(move || serve_connection(&stream, &shared))
        };
        let Ok(handler) = handler else { continue };
        let mut state = lock(shared);
        state.conns.push((clone, handler));
        // Forget finished connections so a long test does not pile them up.
        let (done, open): (Vec<_>, Vec<_>) = std::mem::take(&mut state.conns)
            .into_iter()
            .partition(|(_, h)| h.is_finished());
        state.conns = open;
        drop(state);
        for (_, handler) in done {
            let _ = handler.join();
        }
    }
}

fn serve_connection(stream: &TcpStream, shared: &Shared) {
    // Generous: the CLI sends its request right away; this only bounds a broken client.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut reader = BufReader::new(stream);
    // One request per connection: every answer says `Connection: close`.
    let Ok(Some(request)) = read_request(&mut reader) else {
        return;
    };
    let answer = route(request, shared);
    let mut out = stream;
    let _ = answer.write_to(&mut out, shared);
    let _ = out.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// What to send back.
enum Answer {
    Json(u16, Value),
    Stream(Vec<Value>),
    Hang,
}

impl Answer {
    fn write_to(&self, out: &mut impl Write, shared: &Shared) -> io::Result<()> {
        match self {
            Answer::Json(status, body) => {
                let body = body.to_string();
                write!(
                    out,
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\n\
                     request-id: req_fake_{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    reason(*status),
                    shared.next_id.fetch_add(1, Ordering::SeqCst),
                    body.len(),
                )
            }
            Answer::Stream(events) => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
                     cache-control: no-cache\r\nrequest-id: req_fake_{}\r\nconnection: close\r\n\r\n",
                    shared.next_id.fetch_add(1, Ordering::SeqCst),
                )?;
                for event in events {
                    let name = event["type"].as_str().unwrap_or("message");
                    write!(out, "event: {name}\ndata: {event}\n\n")?;
                    out.flush()?;
                }
                Ok(())
            }
            Answer::Hang => {
                let mut state = lock(shared);
                while !shared.shutdown.load(Ordering::SeqCst) {
                    state = shared
                        .released
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                Ok(())
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Error",
    }
}

/// The Anthropic error type for an HTTP status, as the real API names them.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

fn route(mut request: Request, shared: &Shared) -> Answer {
    let path = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let answer = if request.method == "POST" && path == "/v1/messages/count_tokens" {
        Answer::Json(200, json!({"input_tokens": INPUT_TOKENS}))
    } else if request.method == "POST" && path == "/v1/messages" {
        let has_tools = request.body["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty());
        if has_tools {
            request.main = true;
            // Recorded by next_turn, before the answer, so a hanging turn is visible too.
            return match next_turn(&mut request, shared) {
                Turn::Status(status, message) => Answer::Json(status, error_body(status, &message)),
                Turn::Hang => Answer::Hang,
                turn => message_answer(&request.body, &turn, shared),
            };
        }
        // A helper call of the CLI (title, quota, ...): answer without consuming a script.
        message_answer(&request.body, &Turn::text("ok"), shared)
    } else {
        Answer::Json(
            404,
            error_body(404, &format!("fake_api: no route for {path}")),
        )
    };
    lock(shared).requests.push(request);
    answer
}

/// Takes the turn for a main-conversation request and records the request.
fn next_turn(request: &mut Request, shared: &Shared) -> Turn {
    let mut state = lock(shared);
    let key = if state.keyed {
        let keys: Vec<&str> = state.scripts.keys().map(String::as_str).collect();
        find_key(&request.body, &keys).map(str::to_owned)
    } else {
        Some(String::new())
    };
    request.key.clone_from(&key);
    let turn = match key.and_then(|k| state.scripts.get_mut(&k)) {
        None => {
            state.unmatched += 1;
            Turn::text(UNMATCHED)
        }
        Some(script) => script.pop_front().unwrap_or_else(|| {
            state.exhausted += 1;
            Turn::text(EXHAUSTED)
        }),
    };
    state.requests.push(request.clone());
    turn
}

/// A text or tool-use message, streamed when the request asked for it.
fn message_answer(body: &Value, turn: &Turn, shared: &Shared) -> Answer {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let model = body["model"].as_str().unwrap_or("claude-fake").to_owned();
    let (block, stop_reason) = match turn {
        Turn::ToolUse { name, input } => (
            json!({"type": "tool_use", "id": format!("toolu_fake_{id}"), "name": name, "input": input}),
            "tool_use",
        ),
        Turn::Text(text) => (json!({"type": "text", "text": text}), "end_turn"),
        Turn::Status(..) | Turn::Hang => unreachable!("answered without a message"),
    };
    // Message ids must be unique: the CLI merges streamed messages that share one.
    let message_id = format!("msg_fake_{id}");
    if body["stream"].as_bool() != Some(true) {
        return Answer::Json(
            200,
            json!({
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
                "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            }),
        );
    }
    let mut events = vec![
        json!({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        json!({"type": "ping"}),
    ];
    // Deltas come in two pieces, as the real API splits them, to exercise reassembly.
    match turn {
        Turn::ToolUse { input, .. } => {
            let mut start = block;
            start["input"] = json!({});
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": start}));
            let input = input.to_string();
            for part in split_in_two(&input) {
                events.push(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": part}}));
            }
        }
        _ => {
            let text = block["text"].as_str().unwrap_or_default();
            events.push(json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}));
            for part in split_in_two(text) {
                events.push(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": part}}));
            }
        }
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS}}));
    events.push(json!({"type": "message_stop"}));
    Answer::Stream(events)
}

fn split_in_two(s: &str) -> Vec<&str> {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    let (a, b) = s.split_at(mid);
    [a, b].into_iter().filter(|p| !p.is_empty()).collect()
}

/// The key occurring last in the latest user message text that holds any key.
fn find_key<'k>(body: &Value, keys: &[&'k str]) -> Option<&'k str> {
    let messages = body["messages"].as_array()?;
    for message in messages.iter().rev().filter(|m| m["role"] == "user") {
        let text = user_text(&message["content"]);
        let best = keys
            .iter()
            .filter(|k| !k.is_empty())
            .filter_map(|k| text.rfind(*k).map(|at| (at, *k)))
            .max();
        if let Some((_, key)) = best {
            return Some(key);
        }
    }
    None
}

/// The text typed by the user in one message: a string, or the `text` blocks of an array
/// (tool results are left out: a file's content must not select a script).
fn user_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Every text in a request's messages (user and assistant text, tool inputs and tool results),
/// one per line: for asserting what a conversation carried, e.g. after `--resume`.
pub fn conversation_text(body: &Value) -> String {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    match k.as_str() {
                        "text" | "content" | "input" => walk(v, out),
                        _ if v.is_object() || v.is_array() => walk(v, out),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&body["messages"], &mut out);
    out.join("\n")
}

/// One HTTP/1.1 request: request line, headers, and a `Content-Length` or chunked body.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while reader.read_line(&mut line)? > 0 && line.trim() != "" {
                    line.clear();
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
        main: false,
        key: None,
    }))
}

/// The Claude Code CLI the tests drive: `$BORG_TEST_CLAUDE`, else the pinned install that
/// `.ci/install-claude` makes under `.tools/claude`. Missing: a panic under CI (`$CI` set),
/// else a note on stderr and `None`, and the test returns early.
pub fn claude_binary() -> Option<PathBuf> {
    let path = std::env::var_os("BORG_TEST_CLAUDE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/claude/node_modules/.bin/claude"),
        PathBuf::from,
    );
    if path.is_file() {
        return Some(path);
    }
    let why = format!(
        "the Claude Code CLI is not at {} (run .ci/install-claude, or set BORG_TEST_CLAUDE)",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

/// Live processes whose working directory is `dir` or inside it (from `/proc/<pid>/cwd`),
/// as `"<pid>: <command line>"`. The CLI and the helpers it spawns all run in the task's
/// `project-files/`, whatever their command lines say, so this finds every one of them.
pub fn processes_in(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        // Unreadable (another user's) or gone: not ours.
        let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
            continue;
        };
        if cwd.starts_with(&dir) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{pid}: {}", cmdline.trim_end()));
        }
    }
    found
}

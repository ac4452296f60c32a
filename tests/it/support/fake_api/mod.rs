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
//!
//! The same server speaks two more APIs ([`Dialect`]): OpenAI's Responses API for the Codex
//! CLI (`openai`) and the Gemini API for the Gemini CLI (`gemini`), with the same scripts,
//! keys and records; only the wire format differs.
//!
//! The parts: this file holds the scripts ([`Turn`]), what was received ([`Request`]) and the
//! server's handle; `http` accepts connections and speaks HTTP/1.1, `script` routes a request
//! and picks the turn that answers it, `sse` writes that turn as a Messages API answer.

mod gemini;
mod http;
mod openai;
mod script;
mod sse;

use std::collections::{BTreeMap, VecDeque};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

pub use script::conversation_text;

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

/// Which API the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Anthropic's Messages API (`POST /v1/messages`), for Claude Code.
    Anthropic,
    /// OpenAI's Responses API (`POST /v1/responses`, SSE), for the Codex CLI.
    OpenAi,
    /// The Gemini API (`POST /v1beta/models/<m>:streamGenerateContent`), for the Gemini CLI.
    Gemini,
}

impl Turn {
    /// Codex's `exec_command` tool: a shell command run in the CLI's working directory.
    pub fn exec_command(cmd: &str) -> Turn {
        Turn::tool("exec_command", json!({"cmd": cmd}))
    }

    /// Gemini CLI's `write_file` tool (an absolute `file_path`).
    pub fn write_file(path: &Path, content: &str) -> Turn {
        Turn::tool("write_file", json!({"file_path": path, "content": content}))
    }

    /// Gemini CLI's `run_shell_command` tool.
    pub fn run_shell_command(command: &str) -> Turn {
        Turn::tool("run_shell_command", json!({"command": command}))
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
    dialect: Dialect,
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
        Self::start_as(Dialect::Anthropic, script)
    }

    /// [`Self::start`] speaking `dialect`.
    pub fn start_as(dialect: Dialect, script: Vec<Turn>) -> FakeApi {
        Self::launch(
            dialect,
            false,
            BTreeMap::from([(String::new(), script.into())]),
        )
    }

    /// Serves one script per key: a main-conversation request gets the next turn of the
    /// script whose key occurs in its latest user text (the prompt of the current task; when
    /// that text holds several keys, e.g. a task history followed by the task's own prompt,
    /// the one occurring last wins). Put a marker like `[task:abc]` in each prompt.
    pub fn start_keyed<K: Into<String>>(
        scripts: impl IntoIterator<Item = (K, Vec<Turn>)>,
    ) -> FakeApi {
        Self::start_keyed_as(Dialect::Anthropic, scripts)
    }

    /// [`Self::start_keyed`] speaking `dialect`.
    pub fn start_keyed_as<K: Into<String>>(
        dialect: Dialect,
        scripts: impl IntoIterator<Item = (K, Vec<Turn>)>,
    ) -> FakeApi {
        let scripts = scripts
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::launch(dialect, true, scripts)
    }

    fn launch(dialect: Dialect, keyed: bool, scripts: BTreeMap<String, VecDeque<Turn>>) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            dialect,
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
                .spawn(move || http::accept_loop(&listener, &shared))
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

    /// What points the Codex CLI at this server: `-c` overrides naming a provider `fake`
    /// with this base URL, the Responses wire API, its key in `FAKE_OPENAI_KEY` (see
    /// [`Self::codex_env`]) and no retries, and the model.
    pub fn codex_args(&self) -> Vec<String> {
        let base = format!("{}/v1", self.base_url());
        [
            "model_provider=\"fake\"".to_owned(),
            "model_providers.fake.name=\"fake\"".to_owned(),
            format!("model_providers.fake.base_url=\"{base}\""),
            "model_providers.fake.wire_api=\"responses\"".to_owned(),
            "model_providers.fake.env_key=\"FAKE_OPENAI_KEY\"".to_owned(),
            "model_providers.fake.request_max_retries=0".to_owned(),
            "model_providers.fake.stream_max_retries=0".to_owned(),
            "model=\"fake-model\"".to_owned(),
        ]
        .into_iter()
        .flat_map(|c| ["-c".to_owned(), c])
        .collect()
    }

    /// The Codex CLI's environment for [`Self::codex_args`].
    pub fn codex_env(&self) -> Vec<(String, String)> {
        vec![
            ("FAKE_OPENAI_KEY".to_owned(), "test-key".to_owned()),
            ("NO_PROXY".to_owned(), "127.0.0.1,localhost".to_owned()),
        ]
    }

    /// The Gemini CLI's environment: this server as `GOOGLE_GEMINI_BASE_URL`, a dummy
    /// `GEMINI_API_KEY`, the workspace trusted, no telemetry.
    pub fn gemini_env(&self) -> Vec<(String, String)> {
        [
            ("GOOGLE_GEMINI_BASE_URL", self.base_url()),
            ("GEMINI_API_KEY", "test-key".to_owned()),
            ("GEMINI_CLI_TRUST_WORKSPACE", "true".to_owned()),
            ("GEMINI_TELEMETRY_ENABLED", "false".to_owned()),
            ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
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

/// The Claude Code CLI the tests drive: `$BORG_TEST_CLAUDE`, else the pinned install that
/// `.ci/install-claude` makes under `.tools/claude`. Missing: a panic under CI (`$CI` set),
/// else a note on stderr and `None`, and the test returns early.
pub fn claude_binary() -> Option<PathBuf> {
    cli_binary("claude", "Claude Code")
}

/// The Codex CLI (`$BORG_TEST_CODEX`, else `.ci/install-codex`'s), as [`claude_binary`].
pub fn codex_binary() -> Option<PathBuf> {
    cli_binary("codex", "Codex")
}

/// The Gemini CLI (`$BORG_TEST_GEMINI`, else `.ci/install-gemini`'s), as [`claude_binary`].
pub fn gemini_binary() -> Option<PathBuf> {
    cli_binary("gemini", "Gemini")
}

fn cli_binary(name: &str, title: &str) -> Option<PathBuf> {
    let var = format!("BORG_TEST_{}", name.to_ascii_uppercase());
    let path = std::env::var_os(&var).map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!(".tools/{name}/node_modules/.bin/{name}"))
        },
        PathBuf::from,
    );
    if path.is_file() {
        return Some(path);
    }
    let why = format!(
        "the {title} CLI is not at {} (run .ci/install-{name}, or set {var})",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

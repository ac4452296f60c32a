//! The agent seam: everything that differs between coding-agent CLIs lives behind
//! [`Adapter`], one file per kind (`claude.rs`, `codex.rs`, `gemini.rs`, `generic.rs`).
//! An adapter owns its command line and prompt, how its output becomes one
//! [`AgentResult`], resume, rate-limit and unknown-session detection, what its exit codes
//! mean, its per-instance configuration folder and the environment it needs. The runner
//! knows no agent by name: adding one is adding a file here and its tests.
//!
//! Building an invocation is pure (nothing spawns or touches the file system), so
//! `--dry-run` prints exactly what a run would execute.

pub mod claude;
pub mod codex;
pub mod generic;
pub mod schema;
pub mod testcounts;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use serde_json::Value;

use crate::config::AgentConfig;
use crate::error::Result;
use crate::exec::capture::StdoutSink;
use crate::plan::{AgentKind, SessionMode};
use crate::report::Tokens;
use crate::workspace::Workspace;

/// The most of the instance's task history (session.md) sent in a prompt.
pub const HISTORY_BYTES: usize = 64 * 1024;

/// Variables by which a parent Claude Code session marks the processes it starts (in the
/// 2.1.332 bundle: `CLAUDECODE`, `CLAUDE_CODE_SESSION_ID`, `CLAUDE_CODE_CHILD_SESSION`,
/// `CLAUDE_CODE_SESSION_ATTENDED`, `CLAUDE_PID`, `CLAUDE_CODE_CHILD_NOTES_DIR`,
/// `CLAUDE_CODE_STARTER_MAY_HOLD_CONNECTOR_FILE`, `AI_AGENT`, `CLAUDE_EFFORT`, plus the
/// entry point and IDE port it reads). An agent started by borg-batch (itself perhaps run
/// from inside Claude Code) must not inherit them: the CLI would take itself for a nested
/// child of that session. Removed for every kind (a generic agent may start Claude Code).
pub const PARENT_SESSION_VARS: &[&str] = &[
    "CLAUDECODE",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_CHILD_SESSION",
    "CLAUDE_CODE_SESSION_ATTENDED",
    "CLAUDE_CODE_CHILD_NOTES_DIR",
    "CLAUDE_CODE_STARTER_MAY_HOLD_CONNECTOR_FILE",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SSE_PORT",
    "CLAUDE_EFFORT",
    "CLAUDE_PID",
    "AI_AGENT",
];

/// One agent process to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Given on standard input.
    pub prompt: String,
}

/// What goes into one attempt's invocation besides the agent's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// The role's built-in text plus the instance's `context`.
    pub role_context: &'a str,
    /// The instance's task history from session.md (already cut to [`HISTORY_BYTES`]).
    pub history: &'a str,
    pub task_prompt: &'a str,
    /// The session to continue, if the instance has one (and its kind keeps sessions).
    pub resume: Option<&'a str>,
    /// The id a new session is given, where the runner chooses it
    /// ([`Adapter::chooses_session_id`]); recorded before the spawn.
    pub new_session: Option<&'a str>,
    /// The task's `output_schema`: its path and its text.
    pub schema: Option<&'a schema::Schema>,
}

/// What an adapter puts on its command line for one attempt (the prompt is built here).
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    pub resume: Option<&'a str>,
    pub new_session: Option<&'a str>,
    /// The role context, when the kind takes it outside the prompt and it is not empty.
    pub system_prompt: Option<&'a str>,
    pub schema: Option<&'a schema::Schema>,
}

/// The agent's own account of the attempt, the same shape for every kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentResult {
    /// Claude's `subtype` (`success`, `error_max_turns`, ...); for others, their own word
    /// for how it ended where they give one.
    pub subtype: Option<String>,
    /// `is_error` as reported; `None` when the agent did not say (which does not pass for
    /// kinds whose pass rule wants it said).
    pub is_error: Option<bool>,
    /// The session or thread id to continue.
    pub session_id: Option<String>,
    pub total_cost_usd: Option<f64>,
    pub tokens: Option<Tokens>,
    pub num_turns: Option<u64>,
    /// The final text.
    pub result: Option<String>,
    /// The final answer as JSON, where the CLI gave one (claude `--json-schema`).
    pub structured_output: Option<Value>,
    /// Tools the agent asked for and was refused, by name.
    pub permission_denials: Vec<String>,
    /// Error texts the CLI listed.
    pub errors: Vec<String>,
    /// The HTTP status of a failed API call, where the CLI says.
    pub api_error_status: Option<u64>,
}

/// Reads an agent's standard output as it comes into an [`AgentResult`].
pub trait Collector: Send {
    fn push(&mut self, bytes: &[u8]);
    /// The output is at its end: what it said, if it said anything.
    fn finish(self: Box<Self>) -> Option<AgentResult>;
}

impl StdoutSink for Box<dyn Collector> {
    fn push(&mut self, bytes: &[u8]) {
        (**self).push(bytes);
    }
}

/// One kind of agent CLI.
pub trait Adapter: Sync {
    /// Whether the CLI keeps sessions borg-batch can continue (`session: resume`).
    fn keeps_sessions(&self) -> bool {
        false
    }

    /// Whether a new session's id is chosen by borg-batch ([`Request::new_session`]), so it
    /// is known, and recorded, before the spawn.
    fn chooses_session_id(&self) -> bool {
        false
    }

    /// Whether the role context can travel outside the prompt (a system-prompt flag).
    fn takes_system_prompt(&self) -> bool {
        false
    }

    /// The built-in arguments (before `agent.args`).
    fn args(&self, agent: &AgentConfig, launch: &Launch<'_>) -> Vec<String>;

    /// Adds what the CLI needs in its environment: its own configuration folder in the
    /// instance's `state/`, the user's login where it can travel without a copy.
    fn environment(&self, _agent: &AgentConfig, _ws: &Workspace, _env: &mut Env) {}

    /// Makes what the CLI needs on disk before it starts (its configuration folder in
    /// `state/`). The only adapter method that writes.
    fn prepare(&self, _agent: &AgentConfig, _ws: &Workspace) -> Result<()> {
        Ok(())
    }

    /// Variables removed from the inherited environment (on top of
    /// [`PARENT_SESSION_VARS`]).
    fn env_remove(&self) -> &'static [&'static str] {
        &[]
    }

    /// A reader of the CLI's standard output.
    fn collector(&self) -> Box<dyn Collector>;

    /// Why an agent that exited with `code` did not pass, by the pass rule; `None` if it
    /// passed. (Timeouts, signals and interrupts are the runner's.)
    fn judge(&self, code: i32, result: Option<&AgentResult>) -> Option<String>;

    /// Whether a failed result is the API refusing for load (rate limit, overloaded):
    /// worth a back-off and another try, apart from `retries`.
    fn is_rate_limited(&self, result: &AgentResult) -> bool {
        mentions_rate_limit(result)
    }

    /// Whether the CLI said the session to resume is unknown to it (`output_tail`: the end
    /// of its output).
    fn is_unknown_session(&self, _result: Option<&AgentResult>, _output_tail: &str) -> bool {
        false
    }

    /// Whether `total_cost_usd` covers the whole resumed session (so a task's own cost is
    /// the difference).
    fn cumulative_cost(&self) -> bool {
        false
    }

    /// Whether `tokens` count the whole resumed session (so a task's own are the
    /// difference).
    fn cumulative_tokens(&self) -> bool {
        false
    }

    /// Whether the CLI itself holds the final answer to `output_schema`; otherwise
    /// borg-batch validates the final text.
    fn enforces_schema(&self) -> bool {
        false
    }

    /// Before the first task: the CLI works and can reach its API (exit 2 otherwise).
    fn preflight(&self, _agent: &AgentConfig) -> Result<()> {
        Ok(())
    }
}

/// The environment added for an agent, by name.
pub type Env = BTreeMap<String, OsString>;

/// The adapter of `kind`.
pub fn adapter(kind: AgentKind) -> &'static dyn Adapter {
    match kind {
        AgentKind::Claude => &claude::Claude,
        AgentKind::Codex => &codex::Codex,
        AgentKind::Generic => &generic::Generic,
    }
}

/// Whether tasks of an instance with `agent` continue one session.
pub fn resumes(agent: &AgentConfig) -> bool {
    agent.session == SessionMode::Resume && adapter(agent.kind).keeps_sessions()
}

/// Whether the role context and history travel in the prompt (rather than in a system
/// prompt and a resumed session).
pub fn context_in_prompt(agent: &AgentConfig, resume: Option<&str>) -> bool {
    !resumes(agent) || resume.is_none()
}

/// Builds the command line and prompt for one attempt.
pub fn invocation(agent: &AgentConfig, req: &Request<'_>) -> Invocation {
    let adapter = adapter(agent.kind);
    let resumes = resumes(agent);
    let resume = req.resume.filter(|_| resumes);
    let system_prompt = (resumes && adapter.takes_system_prompt())
        .then_some(req.role_context)
        .filter(|r| !r.is_empty());
    let mut prompt = String::new();
    if resume.is_none() {
        // A fresh session (or none kept): the role and history stand in for it.
        if !(resumes && adapter.takes_system_prompt()) {
            push_section(&mut prompt, "Your role", req.role_context);
        }
        push_section(&mut prompt, "Task history of this workspace", req.history);
        if !prompt.is_empty() {
            prompt.push_str("# Your task\n\n");
        }
    }
    prompt.push_str(req.task_prompt);
    let launch = Launch {
        resume,
        new_session: req.new_session.filter(|_| resumes && resume.is_none()),
        system_prompt,
        schema: req.schema,
    };
    let mut args = adapter.args(agent, &launch);
    args.extend(agent.args.iter().cloned());
    Invocation {
        program: agent.program.clone(),
        args,
        prompt,
    }
}

/// The environment an agent of `agent`'s kind gets on top of `env` (which holds
/// `agent.env` and the `BORG_*` variables), and the names removed from the inherited one.
pub fn environment(agent: &AgentConfig, ws: &Workspace, env: &mut Env) -> Vec<OsString> {
    let adapter = adapter(agent.kind);
    adapter.environment(agent, ws, env);
    PARENT_SESSION_VARS
        .iter()
        .chain(adapter.env_remove())
        // What the plan sets itself is kept.
        .filter(|name| !env.contains_key(**name))
        .map(OsString::from)
        .collect()
}

fn push_section(prompt: &mut String, title: &str, body: &str) {
    let body = body.trim();
    if !body.is_empty() {
        prompt.push_str(&format!("# {title}\n\n{body}\n\n"));
    }
}

/// Reads JSON lines of standard output, handing each object line to a callback.
#[derive(Debug, Default)]
pub struct JsonLines {
    lines: crate::exec::capture::Lines,
}

/// What a line-based collector does with each JSON object line.
pub type OnObject<'a> = &'a mut dyn FnMut(&serde_json::Map<String, Value>);

impl JsonLines {
    pub fn push(&mut self, bytes: &[u8], on_object: OnObject<'_>) {
        self.lines
            .push(bytes, &mut |line| json_line(line, on_object));
    }

    /// The end of output (an unterminated last line counts).
    pub fn finish(&mut self, on_object: OnObject<'_>) {
        self.lines.finish(&mut |line| json_line(line, on_object));
    }
}

fn json_line(line: &str, on_object: OnObject<'_>) {
    if !(line.starts_with('{') && line.ends_with('}')) {
        return;
    }
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) {
        on_object(&map);
    }
}

/// The CLI's own words for a failed result: subtype, result text, errors, denials.
pub fn describe_failure(r: &AgentResult) -> String {
    let mut parts = Vec::new();
    match (r.subtype.as_deref(), r.is_error) {
        (Some("success") | None, Some(true)) => {
            parts.push("the agent reported an error".to_string());
        }
        (Some("success") | None, None) => {
            parts.push("the agent's result line has no `is_error: false`".to_string());
        }
        (Some("success") | None, Some(false)) => {}
        (Some(subtype), _) => parts.push(format!("the agent stopped with `{subtype}`")),
    }
    if let Some(text) = r.result.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        parts.push(one_line(text, 500));
    }
    if !r.errors.is_empty() {
        parts.push(one_line(&r.errors.join("; "), 500));
    }
    if !r.permission_denials.is_empty() {
        parts.push(format!(
            "permission denied for: {}",
            r.permission_denials.join(", ")
        ));
    }
    parts.join(": ")
}

/// Whether a result names HTTP 429 or 529, a rate limit or an overloaded API.
pub fn mentions_rate_limit(r: &AgentResult) -> bool {
    if let Some(status) = r.api_error_status {
        return matches!(status, 429 | 529);
    }
    let mut text = r.result.clone().unwrap_or_default();
    for e in &r.errors {
        text.push(' ');
        text.push_str(e);
    }
    let text = text.to_ascii_lowercase();
    [
        "429",
        "529",
        "rate_limit",
        "rate limit",
        "overloaded",
        "resource_exhausted",
        "too many requests",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// `text` on one line, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// A shell-quoted rendering of a command line, for `--dry-run` and messages.
pub fn shell_line(program: &std::path::Path, args: &[String]) -> String {
    std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn agent(kind: AgentKind) -> AgentConfig {
        AgentConfig {
            kind,
            command: "agent".into(),
            program: "/usr/bin/agent".into(),
            args: vec!["--extra".into()],
            model: Some("sonnet".into()),
            permission_mode: "acceptEdits".into(),
            allowed_tools: vec!["Read".into(), "Write".into()],
            max_turns: Some(7),
            max_budget_usd: Some(1.5),
            session: SessionMode::Resume,
            env: BTreeMap::new(),
            setting_sources: vec!["user".into()],
            mcp_config: Vec::new(),
            idle_timeout: None,
        }
    }

    pub fn request(resume: Option<&str>) -> Request<'_> {
        Request {
            role_context: "You are a developer.",
            history: "## Task: t0\nearlier",
            task_prompt: "Do the thing.",
            resume,
            ..Request::default()
        }
    }

    #[test]
    fn generic_and_fresh_send_role_and_history_in_the_prompt() {
        let inv = invocation(&agent(AgentKind::Generic), &request(Some("ignored")));
        assert_eq!(inv.args, vec!["--extra".to_string()]);
        assert!(
            inv.prompt
                .starts_with("# Your role\n\nYou are a developer.")
        );
        assert!(inv.prompt.contains("earlier"));
        assert!(inv.prompt.ends_with("# Your task\n\nDo the thing."));

        let mut fresh = agent(AgentKind::Claude);
        fresh.session = SessionMode::Fresh;
        let inv = invocation(&fresh, &request(Some("sess-1")));
        assert!(
            !inv.args
                .iter()
                .any(|a| a == "--resume" || a == "--append-system-prompt")
        );
        assert!(inv.prompt.contains("You are a developer."));
    }

    #[test]
    fn parent_session_variables_are_removed_unless_the_plan_sets_them() {
        let ws = Workspace::new(std::path::Path::new("/ws"), "plan", "dev");
        let mut env = Env::new();
        env.insert("CLAUDE_PID".into(), "1".into());
        let removed = environment(&agent(AgentKind::Generic), &ws, &mut env);
        assert!(removed.contains(&OsString::from("CLAUDECODE")));
        assert!(removed.contains(&OsString::from("CLAUDE_CODE_SESSION_ID")));
        assert!(!removed.contains(&OsString::from("CLAUDE_PID")));
    }

    #[test]
    fn rate_limits_are_found_in_the_words() {
        let r = AgentResult {
            result: Some("API Error: 429 rate_limit_error".into()),
            ..AgentResult::default()
        };
        assert!(mentions_rate_limit(&r));
        let r = AgentResult {
            api_error_status: Some(500),
            ..AgentResult::default()
        };
        assert!(!mentions_rate_limit(&r));
    }
}

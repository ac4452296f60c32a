//! The agent as a command: its command line and prompt (SPEC.md "Agent invocation"), and
//! what its result line means (the pass rule).
//!
//! Pure functions: nothing here spawns or touches the file system, so `--dry-run` prints
//! exactly what a run would execute.

pub mod claude;
pub mod testcounts;

use std::path::PathBuf;

use serde_json::Value;

use crate::config::AgentConfig;
use crate::plan::{AgentKind, SessionMode};

/// The most of the instance's task history (session.md) sent in a prompt.
pub const HISTORY_BYTES: usize = 64 * 1024;

/// One agent process to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Given on standard input.
    pub prompt: String,
}

/// What goes into one attempt's invocation besides the agent's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The role's built-in text plus the instance's `context`.
    pub role_context: &'a str,
    /// The instance's task history from session.md (already cut to [`HISTORY_BYTES`]).
    pub history: &'a str,
    pub task_prompt: &'a str,
    /// The session to continue (`kind: claude`, `session: resume`), if there is one.
    pub resume: Option<&'a str>,
}

/// Whether the role context and history travel in the prompt (rather than in
/// `--append-system-prompt` and a resumed session).
pub fn context_in_prompt(agent: &AgentConfig, resume: Option<&str>) -> bool {
    match agent.kind {
        AgentKind::Generic => true,
        AgentKind::Claude => agent.session == SessionMode::Fresh || resume.is_none(),
    }
}

/// Builds the command line and prompt for one attempt.
pub fn invocation(agent: &AgentConfig, req: &Request<'_>) -> Invocation {
    let resume = match (agent.kind, agent.session) {
        (AgentKind::Claude, SessionMode::Resume) => req.resume,
        _ => None,
    };
    let with_history = agent.kind == AgentKind::Generic || agent.session == SessionMode::Fresh;
    let mut prompt = String::new();
    if with_history {
        push_section(&mut prompt, "Your role", req.role_context);
        push_section(&mut prompt, "Task history of this workspace", req.history);
        if !prompt.is_empty() {
            prompt.push_str("# Your task\n\n");
        }
    } else if resume.is_none() && !req.history.trim().is_empty() {
        // A session that could not be resumed: the history stands in for it.
        push_section(&mut prompt, "Task history of this workspace", req.history);
        prompt.push_str("# Your task\n\n");
    }
    prompt.push_str(req.task_prompt);

    let mut args = Vec::new();
    if agent.kind == AgentKind::Claude {
        args.extend(
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                &agent.permission_mode,
                "--allowedTools",
                &agent.allowed_tools.join(","),
            ]
            .map(String::from),
        );
        if let Some(model) = &agent.model {
            args.extend(["--model".into(), model.clone()]);
        }
        if let Some(turns) = agent.max_turns {
            args.extend(["--max-turns".into(), turns.to_string()]);
        }
        if let Some(budget) = agent.max_budget_usd {
            args.extend(["--max-budget-usd".into(), budget.to_string()]);
        }
        if !with_history && !req.role_context.is_empty() {
            args.extend([
                "--append-system-prompt".into(),
                req.role_context.to_string(),
            ]);
        }
        if let Some(id) = resume {
            // Always a fork: the resumed session stays as it was, so a retry can resume it
            // again without the failed attempt's messages (the CLI appends to a session it
            // resumes in place).
            args.extend(["--resume".into(), id.to_string(), "--fork-session".into()]);
        }
    }
    args.extend(agent.args.iter().cloned());
    Invocation {
        program: agent.program.clone(),
        args,
        prompt,
    }
}

fn push_section(prompt: &mut String, title: &str, body: &str) {
    let body = body.trim();
    if !body.is_empty() {
        prompt.push_str(&format!("# {title}\n\n{body}\n\n"));
    }
}

/// The agent's own account of the attempt: its `{"type":"result"}` line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentResult {
    pub subtype: Option<String>,
    /// `is_error` as printed; `None` when the line lacks it (which does not pass).
    pub is_error: Option<bool>,
    pub session_id: Option<String>,
    pub total_cost_usd: Option<f64>,
    pub num_turns: Option<u64>,
    pub result: Option<String>,
    /// Tools the agent asked for and was refused, by name.
    pub permission_denials: Vec<String>,
    /// Error texts the CLI listed (`errors`).
    pub errors: Vec<String>,
    /// The HTTP status of a failed API call (`api_error_status`).
    pub api_error_status: Option<u64>,
}

/// Parses a result line (see [`crate::exec::capture::ResultScanner`]).
pub fn parse_result(line: &str) -> Option<AgentResult> {
    let value: Value = serde_json::from_str(line).ok()?;
    let obj = value.as_object()?;
    if obj.get("type")?.as_str()? != "result" {
        return None;
    }
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_string);
    let denials = obj
        .get("permission_denials")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|d| {
                    d.get("tool_name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or_else(|| d.as_str().map(str::to_string))
                })
                .collect()
        })
        .unwrap_or_default();
    let errors = obj
        .get("errors")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some(AgentResult {
        subtype: text("subtype"),
        is_error: obj.get("is_error").and_then(Value::as_bool),
        session_id: text("session_id"),
        total_cost_usd: obj.get("total_cost_usd").and_then(Value::as_f64),
        num_turns: obj.get("num_turns").and_then(Value::as_u64),
        result: text("result"),
        permission_denials: denials,
        errors,
        api_error_status: obj.get("api_error_status").and_then(Value::as_u64),
    })
}

/// Why an agent that exited 0 did not pass, by the pass rule; `None` if it passed.
pub fn judge_result(kind: AgentKind, result: Option<&AgentResult>) -> Option<String> {
    match (kind, result) {
        (AgentKind::Claude, None) => Some(
            "the agent exited 0 but printed no result line (`{\"type\":\"result\"}`); \
             the prompt may have been dropped"
                .into(),
        ),
        (AgentKind::Generic, None) => None,
        (kind, Some(r)) => {
            let bad_subtype = kind == AgentKind::Claude && r.subtype.as_deref() != Some("success");
            // The pass rule wants `is_error: false` said, not implied by its absence.
            (bad_subtype || r.is_error != Some(false)).then(|| describe_failure(r))
        }
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

/// Whether a failed result is the API refusing for load (HTTP 429 rate limit or 529
/// overloaded): worth a back-off and another try, apart from `retries`.
pub fn is_rate_limited(r: &AgentResult) -> bool {
    if let Some(status) = r.api_error_status {
        return matches!(status, 429 | 529);
    }
    let mut text = r.result.clone().unwrap_or_default();
    for e in &r.errors {
        text.push(' ');
        text.push_str(e);
    }
    let text = text.to_ascii_lowercase();
    ["429", "529", "rate_limit", "rate limit", "overloaded"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// Whether the CLI's output says the session to resume is unknown to it.
pub fn is_unknown_session(output_tail: &str) -> bool {
    output_tail.contains("No conversation found with session ID")
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
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn claude() -> AgentConfig {
        AgentConfig {
            kind: AgentKind::Claude,
            command: "claude".into(),
            program: "/usr/bin/claude".into(),
            args: vec!["--extra".into()],
            model: Some("sonnet".into()),
            permission_mode: "acceptEdits".into(),
            allowed_tools: vec!["Read".into(), "Write".into()],
            max_turns: Some(7),
            max_budget_usd: Some(1.5),
            session: SessionMode::Resume,
            env: BTreeMap::new(),
        }
    }

    fn request(resume: Option<&str>) -> Request<'_> {
        Request {
            role_context: "You are a developer.",
            history: "## Task: t0\nearlier",
            task_prompt: "Do the thing.",
            resume,
        }
    }

    #[test]
    fn claude_resume_puts_context_in_the_system_prompt_and_resumes() {
        let inv = invocation(&claude(), &request(Some("sess-1")));
        assert_eq!(
            shell_line(&inv.program, &inv.args),
            "/usr/bin/claude -p --output-format stream-json --verbose --permission-mode \
             acceptEdits --allowedTools Read,Write --model sonnet --max-turns 7 \
             --max-budget-usd 1.5 --append-system-prompt 'You are a developer.' \
             --resume sess-1 --fork-session --extra"
        );
        assert_eq!(inv.prompt, "Do the thing.");
    }

    #[test]
    fn claude_without_a_session_to_resume_sends_the_history_in_the_prompt() {
        let inv = invocation(&claude(), &request(None));
        assert!(!inv.args.contains(&"--resume".to_string()));
        assert!(inv.prompt.contains("earlier"));
        assert!(inv.prompt.ends_with("Do the thing."));
    }

    #[test]
    fn generic_and_fresh_send_role_and_history_in_the_prompt() {
        let mut agent = claude();
        agent.kind = AgentKind::Generic;
        let inv = invocation(&agent, &request(Some("ignored")));
        assert_eq!(inv.args, vec!["--extra".to_string()]);
        assert!(
            inv.prompt
                .starts_with("# Your role\n\nYou are a developer.")
        );
        assert!(inv.prompt.contains("earlier"));
        assert!(inv.prompt.ends_with("# Your task\n\nDo the thing."));

        let mut fresh = claude();
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
    fn result_lines_and_the_pass_rule() {
        let ok = parse_result(
            r#"{"type":"result","subtype":"success","is_error":false,"session_id":"s","total_cost_usd":0.25,"num_turns":3,"result":"done"}"#,
        )
        .unwrap();
        assert_eq!(ok.session_id.as_deref(), Some("s"));
        assert_eq!(ok.total_cost_usd, Some(0.25));
        assert_eq!(judge_result(AgentKind::Claude, Some(&ok)), None);

        let err = parse_result(
            r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 429 rate_limit_error","permission_denials":[{"tool_name":"Bash"}]}"#,
        )
        .unwrap();
        let why = judge_result(AgentKind::Claude, Some(&err)).unwrap();
        assert!(why.contains("API Error: 429"), "{why}");
        assert!(why.contains("permission denied for: Bash"), "{why}");
        assert!(is_rate_limited(&err));

        let turns =
            parse_result(r#"{"type":"result","subtype":"error_max_turns","is_error":false}"#)
                .unwrap();
        assert!(
            judge_result(AgentKind::Claude, Some(&turns))
                .unwrap()
                .contains("error_max_turns")
        );
        assert!(
            judge_result(AgentKind::Claude, None)
                .unwrap()
                .contains("no result line")
        );
        let silent =
            parse_result(r#"{"type":"result","subtype":"success","result":"ok"}"#).unwrap();
        let why = judge_result(AgentKind::Claude, Some(&silent)).unwrap();
        assert!(why.contains("no `is_error: false`"), "{why}");
        assert_eq!(judge_result(AgentKind::Generic, None), None);
        assert!(parse_result(r#"{"type":"assistant"}"#).is_none());
    }
}

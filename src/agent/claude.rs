//! `kind: claude`: the Claude Code CLI (`claude -p --output-format stream-json`).
//!
//! Sessions: a new one gets an id chosen here (`--session-id`, recorded by the runner
//! before the spawn, so a run killed mid-task leaves a session that can be resumed); every
//! later task resumes the instance's last session as a fork (`--resume <id>
//! --fork-session`), so the session a retry resumes stays as it was.
//!
//! Isolation: parallel CLIs writing one `~/.claude.json` corrupt it, so each instance gets
//! its own `CLAUDE_CONFIG_DIR` in `state/claude/` (sessions live there too). The user's
//! login travels without copying any credential into a workspace: an API key or
//! `CLAUDE_CODE_OAUTH_TOKEN` through the inherited environment, a subscription login by
//! pointing the CLI's credential store at the user's own folder.
//!
//! A template is untrusted input: its `.claude/settings.json` (hooks run shell commands)
//! and `.mcp.json` (servers are processes) would run inside `claude -p`. By default only
//! the `user` setting source is read (the instance's own config folder, which borg-batch
//! made) and `--strict-mcp-config` loads no MCP server but those the plan names in
//! `agent.mcp_config`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wait_timeout::ChildExt;

use super::{Adapter, AgentResult, Collector, Env, JsonLines, Launch};
use crate::config::AgentConfig;
use crate::error::{Error, Result};
use crate::report::Tokens;
use crate::workspace::Workspace;

const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Claude Code CLI.
#[derive(Debug)]
pub struct Claude;

impl Adapter for Claude {
    fn keeps_sessions(&self) -> bool {
        true
    }

    fn chooses_session_id(&self) -> bool {
        true
    }

    fn takes_system_prompt(&self) -> bool {
        true
    }

    fn args(&self, agent: &AgentConfig, launch: &Launch<'_>) -> Vec<String> {
        let mut args: Vec<String> = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            &agent.permission_mode,
            "--allowedTools",
            &agent.allowed_tools.join(","),
        ]
        .map(String::from)
        .into();
        if let Some(model) = &agent.model {
            args.extend(["--model".into(), model.clone()]);
        }
        if let Some(turns) = agent.max_turns {
            args.extend(["--max-turns".into(), turns.to_string()]);
        }
        if let Some(budget) = agent.max_budget_usd {
            args.extend(["--max-budget-usd".into(), budget.to_string()]);
        }
        if let Some(role) = launch.system_prompt {
            args.extend(["--append-system-prompt".into(), role.to_string()]);
        }
        match (launch.resume, launch.new_session) {
            // Always a fork: the resumed session stays as it was, so a retry can resume it
            // again without the failed attempt's messages (the CLI appends to a session it
            // resumes in place).
            (Some(id), _) => {
                args.extend(["--resume".into(), id.to_string(), "--fork-session".into()]);
            }
            (None, Some(id)) => args.extend(["--session-id".into(), id.to_string()]),
            (None, None) => {}
        }
        args.extend(["--setting-sources".into(), agent.setting_sources.join(",")]);
        if !agent.mcp_config.is_empty() {
            // `--mcp-config` takes several values: the flag after it ends the list.
            args.push("--mcp-config".into());
            args.extend(
                agent
                    .mcp_config
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned()),
            );
        }
        args.push("--strict-mcp-config".into());
        if let Some(schema) = launch.schema {
            args.extend(["--json-schema".into(), schema.compact()]);
        }
        args
    }

    fn environment(&self, _agent: &AgentConfig, ws: &Workspace, env: &mut Env) {
        isolate(env, ws);
        // A startup failure (root refusing bypass, an invalid config) is then a result
        // line with its reason instead of a bare exit 1.
        env.entry("CLAUDE_CODE_STARTUP_FAILURE_RESULTS".into())
            .or_insert_with(|| "1".into());
    }

    fn collector(&self) -> Box<dyn Collector> {
        Box::new(ResultLine::default())
    }

    fn judge(&self, code: i32, result: Option<&AgentResult>) -> Option<String> {
        let words = result
            .filter(|r| {
                r.is_error == Some(true) || r.subtype.as_deref().is_some_and(|s| s != "success")
            })
            .map(super::describe_failure);
        match (code, result) {
            (0, None) => Some(
                "the agent exited 0 but printed no result line (`{\"type\":\"result\"}`); \
                 the prompt may have been dropped"
                    .into(),
            ),
            (0, Some(r)) => {
                // The pass rule wants `success` and `is_error: false` said, not implied.
                let ok = r.subtype.as_deref() == Some("success") && r.is_error == Some(false);
                (!ok).then(|| super::describe_failure(r))
            }
            (code, _) => Some(match words {
                Some(words) => format!("the agent exited with code {code}: {words}"),
                None => format!("the agent exited with code {code}"),
            }),
        }
    }

    fn is_unknown_session(&self, result: Option<&AgentResult>, output_tail: &str) -> bool {
        let said = |text: &str| text.contains("No conversation found with session ID");
        result
            .is_some_and(|r| said(&r.errors.join("\n")) || said(r.result.as_deref().unwrap_or("")))
            || said(output_tail)
    }

    fn cumulative_cost(&self) -> bool {
        true
    }

    fn enforces_schema(&self) -> bool {
        true
    }

    fn preflight(&self, agent: &AgentConfig) -> Result<()> {
        check_version(agent)?;
        check_login(agent)
    }
}

/// Finds the result line: the last line of stdout that is a JSON object with
/// `"type":"result"`.
#[derive(Debug, Default)]
pub(super) struct ResultLine {
    lines: JsonLines,
    last: Option<AgentResult>,
}

impl Collector for ResultLine {
    fn push(&mut self, bytes: &[u8]) {
        let last = &mut self.last;
        self.lines.push(bytes, &mut |obj| {
            if let Some(r) = parse_result(obj) {
                *last = Some(r);
            }
        });
    }

    fn finish(mut self: Box<Self>) -> Option<AgentResult> {
        let last = &mut self.last;
        self.lines.finish(&mut |obj| {
            if let Some(r) = parse_result(obj) {
                *last = Some(r);
            }
        });
        self.last
    }
}

/// Reads a `{"type":"result"}` object (`None` for any other).
pub fn parse_result(obj: &serde_json::Map<String, Value>) -> Option<AgentResult> {
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
    let mut errors: Vec<String> = obj
        .get("errors")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(reason) = text("startup_failure_reason") {
        errors.push(format!("startup failure: {reason}"));
    }
    let usage = obj.get("usage");
    let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
    let tokens = count("output_tokens").map(|output| Tokens {
        input: count("input_tokens").unwrap_or(0)
            + count("cache_creation_input_tokens").unwrap_or(0)
            + count("cache_read_input_tokens").unwrap_or(0),
        output,
    });
    Some(AgentResult {
        subtype: text("subtype"),
        is_error: obj.get("is_error").and_then(Value::as_bool),
        session_id: text("session_id"),
        total_cost_usd: obj.get("total_cost_usd").and_then(Value::as_f64),
        tokens,
        num_turns: obj.get("num_turns").and_then(Value::as_u64),
        result: text("result"),
        structured_output: obj
            .get("structured_output")
            .filter(|v| !v.is_null())
            .cloned(),
        permission_denials: denials,
        errors,
        api_error_status: obj.get("api_error_status").and_then(Value::as_u64),
    })
}

/// Sets the instance's own `CLAUDE_CONFIG_DIR` (unless `agent.env` chose one) and, when
/// no API key or token is set, lets the CLI read and refresh the user's subscription login
/// where it lives (`CLAUDE_SECURESTORAGE_CONFIG_DIR`): nothing is copied, and a token
/// refresh updates the user's own credentials.
pub fn isolate(env: &mut BTreeMap<String, OsString>, ws: &Workspace) {
    if !env.contains_key("CLAUDE_CONFIG_DIR") {
        env.insert(
            "CLAUDE_CONFIG_DIR".into(),
            ws.agent_config().into_os_string(),
        );
    }
    login(env);
}

/// Lets the subscription login travel (see [`isolate`]).
fn login(env: &mut BTreeMap<String, OsString>) {
    let has = |env: &BTreeMap<String, OsString>, name: &str| {
        env.contains_key(name) || std::env::var_os(name).is_some_and(|v| !v.is_empty())
    };
    let keyed = [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
    ]
    .iter()
    .any(|name| has(env, name));
    if keyed || has(env, "CLAUDE_SECURESTORAGE_CONFIG_DIR") {
        return;
    }
    if let Some(dir) = user_config_dir().filter(|d| d.join(".credentials.json").is_file()) {
        env.insert(
            "CLAUDE_SECURESTORAGE_CONFIG_DIR".into(),
            dir.into_os_string(),
        );
    }
}

/// The user's own Claude Code configuration folder.
fn user_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        // The agent runs elsewhere: a relative folder must be resolved here.
        return std::path::absolute(PathBuf::from(dir)).ok();
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude"))
}

/// Runs `<command> --version`; refuses to start the run when it does not answer.
pub fn check_version(agent: &AgentConfig) -> Result<()> {
    let not_working = |reason: String| Error::AgentNotFound {
        command: agent.command.clone(),
        reason,
    };
    let mut cmd = Command::new(&agent.program);
    cmd.arg("--version");
    match run_quietly(cmd, &mut Vec::new()) {
        Err(e) => Err(not_working(format!("cannot be started: {e}"))),
        Ok(Some(0)) => Ok(()),
        Ok(Some(code)) => Err(not_working(format!(
            "`--version` failed (exit code {code})"
        ))),
        Ok(None) => Err(not_working(format!(
            "`--version` did not answer within {}s",
            PREFLIGHT_TIMEOUT.as_secs()
        ))),
    }
}

/// Runs `<command> auth status` with the login the agents will get, in a throw-away config
/// folder (nothing of the user's or a workspace's is written): "not logged in" is found
/// before the first task, once, with the fix — not as every task's failure.
fn check_login(agent: &AgentConfig) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("borg-batch-auth-{}", uuid::Uuid::new_v4()));
    let _cleanup = RemoveOnDrop(scratch.clone());
    let mut env: BTreeMap<String, OsString> = agent
        .env
        .iter()
        .map(|(k, v)| (k.clone(), OsString::from(v)))
        .collect();
    env.insert("CLAUDE_CONFIG_DIR".into(), scratch.into());
    login(&mut env);
    let mut cmd = Command::new(&agent.program);
    cmd.args(["auth", "status", "--json"]).envs(&env);
    for name in super::PARENT_SESSION_VARS {
        cmd.env_remove(name);
    }
    let mut out = Vec::new();
    let code = run_quietly(cmd, &mut out).ok().flatten();
    let status: Option<Value> = serde_json::from_slice(&out).ok();
    let logged_in = status
        .as_ref()
        .and_then(|s| s.get("loggedIn"))
        .and_then(Value::as_bool);
    match (code, logged_in) {
        (_, Some(false)) => Err(Error::AgentNotLoggedIn {
            command: agent.command.clone(),
        }),
        // An older or stand-in CLI without `auth status`: the tasks will tell.
        _ => Ok(()),
    }
}

/// Removes a scratch folder when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` with no input, its stdout into `out` (at most 64 KiB), stderr dropped, in
/// its own process group, for at most [`PREFLIGHT_TIMEOUT`]. `Ok(None)`: it did not answer.
fn run_quietly(mut cmd: Command, out: &mut Vec<u8>) -> std::io::Result<Option<i32>> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout {
            let _ = s.take(64 * 1024).read_to_end(&mut buf);
        }
        buf
    });
    let code = match child.wait_timeout(PREFLIGHT_TIMEOUT) {
        Ok(Some(status)) => Some(status.code().unwrap_or(-1)),
        Ok(None) | Err(_) => None,
    };
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    if code.is_none() {
        crate::exec::groups::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    }
    if code.is_some() {
        *out = reader.join().unwrap_or_default();
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{agent, request};
    use super::super::*;
    use super::*;

    fn result(line: &str) -> AgentResult {
        let Value::Object(obj) = serde_json::from_str(line).unwrap() else {
            panic!("not an object")
        };
        parse_result(&obj).unwrap()
    }

    #[test]
    fn resume_puts_context_in_the_system_prompt_and_forks_the_session() {
        let inv = invocation(&agent(AgentKind::Claude), &request(Some("sess-1")));
        assert_eq!(
            shell_line(&inv.program, &inv.args),
            "/usr/bin/agent -p --output-format stream-json --verbose --permission-mode \
             acceptEdits --allowedTools Read,Write --model sonnet --max-turns 7 \
             --max-budget-usd 1.5 --append-system-prompt 'You are a developer.' \
             --resume sess-1 --fork-session --setting-sources user --strict-mcp-config --extra"
        );
        assert_eq!(inv.prompt, "Do the thing.");
    }

    #[test]
    fn a_new_session_gets_the_chosen_id_and_the_history_in_the_prompt() {
        let req = Request {
            new_session: Some("11111111-2222-3333-4444-555555555555"),
            ..request(None)
        };
        let inv = invocation(&agent(AgentKind::Claude), &req);
        assert!(!inv.args.contains(&"--resume".to_string()));
        let at = inv.args.iter().position(|a| a == "--session-id").unwrap();
        assert_eq!(inv.args[at + 1], "11111111-2222-3333-4444-555555555555");
        assert!(inv.prompt.contains("earlier"));
        assert!(inv.prompt.ends_with("Do the thing."));
    }

    #[test]
    fn mcp_configs_come_before_the_strict_flag() {
        let mut a = agent(AgentKind::Claude);
        a.mcp_config = vec!["/plans/mcp.json".into()];
        let inv = invocation(&a, &request(None));
        let line = shell_line(&inv.program, &inv.args);
        assert!(
            line.contains("--mcp-config /plans/mcp.json --strict-mcp-config"),
            "{line}"
        );
    }

    #[test]
    fn result_lines_and_the_pass_rule() {
        let ok = result(
            r#"{"type":"result","subtype":"success","is_error":false,"session_id":"s","total_cost_usd":0.25,"num_turns":3,"result":"done","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#,
        );
        assert_eq!(ok.session_id.as_deref(), Some("s"));
        assert_eq!(ok.total_cost_usd, Some(0.25));
        assert_eq!(
            ok.tokens,
            Some(Tokens {
                input: 15,
                output: 7
            })
        );
        assert_eq!(Claude.judge(0, Some(&ok)), None);

        let err = result(
            r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 429 rate_limit_error","permission_denials":[{"tool_name":"Bash"}]}"#,
        );
        let why = Claude.judge(0, Some(&err)).unwrap();
        assert!(why.contains("API Error: 429"), "{why}");
        assert!(why.contains("permission denied for: Bash"), "{why}");
        assert!(Claude.is_rate_limited(&err));

        let turns = result(r#"{"type":"result","subtype":"error_max_turns","is_error":false}"#);
        assert!(
            Claude
                .judge(0, Some(&turns))
                .unwrap()
                .contains("error_max_turns")
        );
        assert!(Claude.judge(0, None).unwrap().contains("no result line"));
        let silent = result(r#"{"type":"result","subtype":"success","result":"ok"}"#);
        let why = Claude.judge(0, Some(&silent)).unwrap();
        assert!(why.contains("no `is_error: false`"), "{why}");
        let startup = result(
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"startup_failure_reason":"config_file_invalid","errors":["bad settings"]}"#,
        );
        let why = Claude.judge(1, Some(&startup)).unwrap();
        assert!(
            why.contains("startup failure: config_file_invalid"),
            "{why}"
        );
    }

    #[test]
    fn the_collector_keeps_the_last_result_line_even_unterminated() {
        let mut c = Claude.collector();
        c.push(b"{\"type\":\"system\"}\nnoise\n{\"type\":\"result\",\"result\":\"one\"}\n");
        c.push(b"{\"type\":\"result\",\"res");
        c.push(b"ult\":\"two\"}");
        assert_eq!(c.finish().unwrap().result.as_deref(), Some("two"));
    }
}

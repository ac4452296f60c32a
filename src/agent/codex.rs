//! `kind: codex`: OpenAI's Codex CLI (`codex exec --json`, the prompt on standard input).
//!
//! Its output is one JSON event per line: `thread.started` names the thread (the session
//! borg-batch continues with `codex exec resume <thread id>`), `item.completed` items of
//! type `agent_message` carry the final text, `turn.completed` the token usage of the whole
//! thread (cumulative across resumes, like Claude's cost), `turn.failed` and `error` the
//! failure. An `item.completed` of type `error` is a warning (e.g. unknown model metadata)
//! and fails nothing. Codex gives no price: `cost_usd` stays null, tokens are reported.
//!
//! Verified with 0.171.0 (`.ci/install-codex`): `exec resume` has no `--sandbox` flag, so
//! the sandbox is set as `-c sandbox_mode=...` for both; approvals are `never` in `exec`.
//! A resumed thread id the CLI does not know ends with "no rollout found for thread id" on
//! stderr and exit 1.
//!
//! Isolation: each instance gets its own `CODEX_HOME` in `state/codex/` (its config, its
//! rollouts, i.e. its sessions); the login travels as `CODEX_API_KEY`/`OPENAI_API_KEY` in the
//! environment, or the plan sets `agent.env.CODEX_HOME` to a home with a saved login.

use serde_json::{Map, Value};

use super::{Adapter, AgentResult, Collector, Env, JsonLines, Launch};
use crate::config::AgentConfig;
use crate::error::Result;
use crate::report::Tokens;
use crate::workspace::Workspace;

/// The sandbox the agent's commands run in: they may write in the working directory.
pub const SANDBOX: &str = "workspace-write";

/// Where Codex keeps its config and sessions (`CODEX_HOME`), unless the plan sets it.
fn home(ws: &Workspace) -> std::path::PathBuf {
    ws.state().join("codex")
}

/// The Codex CLI.
#[derive(Debug)]
pub struct Codex;

impl Adapter for Codex {
    fn keeps_sessions(&self) -> bool {
        true
    }

    fn args(&self, agent: &AgentConfig, launch: &Launch<'_>) -> Vec<String> {
        let mut args: Vec<String> = vec!["exec".into()];
        if launch.resume.is_some() {
            args.push("resume".into());
        }
        args.extend(
            [
                "--json",
                "--skip-git-repo-check",
                "-c",
                &format!("sandbox_mode=\"{SANDBOX}\""),
            ]
            .map(String::from),
        );
        if let Some(model) = &agent.model {
            args.extend(["--model".into(), model.clone()]);
        }
        if let Some(schema) = launch.schema {
            args.extend([
                "--output-schema".into(),
                schema.path.to_string_lossy().into_owned(),
            ]);
        }
        if let Some(id) = launch.resume {
            args.push(id.to_string());
        }
        // `-`: the prompt is read from standard input.
        args.push("-".into());
        args
    }

    fn environment(&self, _agent: &AgentConfig, ws: &Workspace, env: &mut Env) {
        env.entry("CODEX_HOME".into())
            .or_insert_with(|| home(ws).into_os_string());
    }

    fn prepare(&self, agent: &AgentConfig, ws: &Workspace) -> Result<()> {
        // The CLI refuses a `CODEX_HOME` that does not exist.
        if !agent.env.contains_key("CODEX_HOME") {
            crate::fsutil::create_dir_all(&home(ws))?;
        }
        Ok(())
    }

    fn collector(&self) -> Box<dyn Collector> {
        Box::new(Events::default())
    }

    fn judge(&self, code: i32, result: Option<&AgentResult>) -> Option<String> {
        match (code, result) {
            (0, Some(r)) if r.is_error == Some(false) => None,
            (0, Some(r)) if r.is_error == Some(true) => Some(super::describe_failure(r)),
            (0, _) => Some(
                "the agent exited 0 but printed no `turn.completed` event; \
                 the prompt may have been dropped"
                    .into(),
            ),
            (code, Some(r)) if r.is_error == Some(true) => Some(format!(
                "the agent exited with code {code}: {}",
                super::describe_failure(r)
            )),
            (code, _) => Some(format!("the agent exited with code {code}")),
        }
    }

    fn is_unknown_session(&self, _result: Option<&AgentResult>, output_tail: &str) -> bool {
        output_tail.contains("no rollout found for thread id")
    }

    fn cumulative_tokens(&self) -> bool {
        true
    }

    fn preflight(&self, agent: &AgentConfig) -> Result<()> {
        super::claude::check_version(agent)
    }
}

/// Reads the event lines into one result.
#[derive(Debug, Default)]
pub(super) struct Events {
    lines: JsonLines,
    result: AgentResult,
    /// Whether any event was read (else there is no result at all).
    seen: bool,
}

impl Collector for Events {
    fn push(&mut self, bytes: &[u8]) {
        let (result, seen) = (&mut self.result, &mut self.seen);
        self.lines
            .push(bytes, &mut |obj| *seen |= event(result, obj));
    }

    fn finish(mut self: Box<Self>) -> Option<AgentResult> {
        let (result, seen) = (&mut self.result, &mut self.seen);
        self.lines.finish(&mut |obj| *seen |= event(result, obj));
        self.seen.then_some(self.result)
    }
}

/// Folds one event into `r`; whether it was one of Codex's events.
fn event(r: &mut AgentResult, obj: &Map<String, Value>) -> bool {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match obj.get("type").and_then(Value::as_str) {
        Some("thread.started") => r.session_id = text(obj.get("thread_id")),
        Some("turn.started") => {}
        Some("turn.completed") => {
            let usage = obj.get("usage");
            let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
            if let (Some(input), Some(output)) = (count("input_tokens"), count("output_tokens")) {
                r.tokens = Some(Tokens { input, output });
            }
            r.num_turns = Some(r.num_turns.unwrap_or(0) + 1);
            // A turn that completed after a failed one does not undo it.
            r.is_error.get_or_insert(false);
        }
        Some("turn.failed") => {
            r.is_error = Some(true);
            r.subtype = Some("turn.failed".into());
            if let Some(msg) = text(obj.get("error").and_then(|e| e.get("message"))) {
                push_once(&mut r.errors, msg);
            }
        }
        Some("error") => {
            r.is_error = Some(true);
            if let Some(msg) = text(obj.get("message")) {
                push_once(&mut r.errors, msg);
            }
        }
        Some("item.completed") => {
            let item = obj.get("item");
            let kind = item.and_then(|i| i.get("type")).and_then(Value::as_str);
            if kind == Some("agent_message") {
                r.result = text(item.and_then(|i| i.get("text")));
            }
        }
        Some(other) => return other.starts_with("item.") || other.starts_with("thread."),
        None => return false,
    }
    true
}

/// Codex says a failure twice (`error`, then `turn.failed`): once is enough.
fn push_once(errors: &mut Vec<String>, msg: String) {
    if !errors.contains(&msg) {
        errors.push(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{agent, request};
    use super::super::*;
    use super::*;
    use crate::plan::AgentKind;

    fn collect(output: &str) -> Option<AgentResult> {
        let mut c: Box<dyn Collector> = Box::new(Events::default());
        c.push(output.as_bytes());
        c.finish()
    }

    /// Captured from codex-cli 0.171.0 (`exec --json`) against the loopback Responses API.
    const PASSED: &str = r#"{"type":"thread.started","thread_id":"01a237d6-09df-7843-8025-371b1633350a"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `fake-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi > made.txt && pwd'","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi > made.txt && pwd'","aggregated_output":"/tmp/h11/ws\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"all done"}}
{"type":"turn.completed","usage":{"input_tokens":2000,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":200,"reasoning_output_tokens":0}}
"#;

    /// Likewise, the API answering 429 with retries off.
    const RATE_LIMITED: &str = r#"{"type":"thread.started","thread_id":"01a237d6-41c4-7c72-823d-4aae6707d77f"}
{"type":"turn.started"}
{"type":"error","message":"exceeded retry limit, last status: 429 Too Many Requests"}
{"type":"turn.failed","error":{"message":"exceeded retry limit, last status: 429 Too Many Requests"}}
"#;

    #[test]
    fn a_completed_turn_gives_thread_text_and_tokens() {
        let r = collect(PASSED).unwrap();
        assert_eq!(
            r.session_id.as_deref(),
            Some("01a237d6-09df-7843-8025-371b1633350a")
        );
        assert_eq!(r.result.as_deref(), Some("all done"));
        assert_eq!(
            r.tokens,
            Some(Tokens {
                input: 2000,
                output: 200
            })
        );
        assert_eq!(r.is_error, Some(false));
        assert_eq!(r.total_cost_usd, None);
        assert_eq!(Codex.judge(0, Some(&r)), None);
    }

    #[test]
    fn a_failed_turn_is_an_error_and_a_429_a_rate_limit() {
        let r = collect(RATE_LIMITED).unwrap();
        assert_eq!(r.is_error, Some(true));
        assert_eq!(r.errors.len(), 1);
        assert!(Codex.is_rate_limited(&r));
        let why = Codex.judge(1, Some(&r)).unwrap();
        assert!(why.contains("code 1") && why.contains("429"), "{why}");
        // Exit 0 without a completed turn does not pass.
        assert!(Codex.judge(0, None).unwrap().contains("turn.completed"));
        assert!(collect("not json\n").is_none());
        assert!(Codex.is_unknown_session(
            None,
            "Error: thread/resume: thread/resume failed: no rollout found for thread id 7f1c"
        ));
    }

    #[test]
    fn resume_names_the_thread_and_reads_the_prompt_from_stdin() {
        let mut a = agent(AgentKind::Codex);
        a.args = vec!["-c".into(), "model_provider=\"fake\"".into()];
        let inv = invocation(&a, &request(None));
        assert_eq!(
            shell_line(&inv.program, &inv.args),
            "/usr/bin/agent exec --json --skip-git-repo-check -c 'sandbox_mode=\"workspace-write\"' \
             --model sonnet - -c 'model_provider=\"fake\"'"
        );
        assert!(inv.prompt.contains("You are a developer."));
        let inv = invocation(&a, &request(Some("thread-1")));
        assert!(
            shell_line(&inv.program, &inv.args).starts_with(
                "/usr/bin/agent exec resume --json --skip-git-repo-check \
                 -c 'sandbox_mode=\"workspace-write\"' --model sonnet thread-1 -"
            ),
            "{:?}",
            inv.args
        );
        assert_eq!(inv.prompt, "Do the thing.");
    }
}

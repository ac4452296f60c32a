//! One attempt of a task: the agent's invocation, its process, its result and session,
//! rate-limit back-off and unknown-session recovery, the pass rule, then the check.
//!
//! Knows no agent by name: everything kind-specific is asked of [`agent::adapter`].

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::agent::{self, AgentResult, schema::Schema};
use crate::config::AgentConfig;
use crate::error::{Error, Result};
use crate::exec::{self, Exit, capture, signals};
use crate::plan::{Expect, Task, format_duration};
use crate::report::{AttemptReport, Status, TestCounts, Tokens};
use crate::runner::events::Event;
use crate::snapshot::{Entry, Ignore, RelPath, Snapshot, Store};
use crate::workspace::{Workspace, lock::RUNNING};

use super::RunContext;
use super::check::run_check;
use super::task::{millis, take_snapshot};

/// How often a task is tried again after the API answered "rate limited" or "overloaded"
/// (apart from the task's `retries`), and the first back-off.
const RATE_LIMIT_TRIES: u32 = 4;
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(2);
const RATE_LIMIT_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What one attempt came to.
pub(super) struct Attempt {
    pub report: AttemptReport,
    pub result: Option<AgentResult>,
    pub leaked: bool,
    pub after: Option<Snapshot>,
    pub tests: Option<TestCounts>,
    pub notes: Vec<String>,
    /// The final answer, for a task with an `output_schema` (checked against it).
    pub structured_output: Option<serde_json::Value>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run_attempt(
    ctx: &RunContext<'_>,
    task: &Task,
    agent: &AgentConfig,
    ws: &Workspace,
    attempt_no: u32,
    max_attempts: u32,
    timeout: Duration,
    start_session: &mut Option<String>,
    history: &str,
    (before, ignore, store): (&Snapshot, &Ignore, &Store),
) -> Result<Attempt> {
    let started = Instant::now();
    let adapter = agent::adapter(agent.kind);
    let log_rel = format!("logs/{}.{attempt_no}.log", task.id);
    let log_path = ctx.run_dir.join(&log_rel);
    let log =
        exec::open_log(&log_path, &ctx.secrets).map_err(|e| Error::io("create", &log_path, e))?;
    let mut notes = Vec::new();
    let mut rate_limited = 0;
    let mut session_reset = false;
    ctx.emit(&Event::AttemptStarted {
        task: &task.id,
        instance: &task.instance,
        attempt: attempt_no,
        max_attempts,
        timeout,
    })?;

    let (outcome, result) = loop {
        // A new session's id is chosen here and recorded before the spawn: a run killed
        // mid-task leaves a session the next run can resume.
        let new_session =
            (agent::resumes(agent) && adapter.chooses_session_id() && start_session.is_none())
                .then(|| uuid::Uuid::new_v4().to_string());
        if let Some(id) = &new_session {
            ws.set_session_id(id)?;
        }
        let invocation = agent::invocation(
            agent,
            &agent::Request {
                role_context: &ctx.role_context(&task.instance),
                history,
                task_prompt: &task.prompt,
                resume: start_session.as_deref(),
                new_session: new_session.as_deref(),
                schema: task.output_schema.as_ref(),
            },
        );
        let prompt_file = ws.state().join("prompt.md");
        crate::fsutil::write_atomic(&prompt_file, invocation.prompt.as_bytes())?;
        capture::lock(&log).note(&format!(
            "--- borg-batch: {} (attempt {attempt_no}/{max_attempts})",
            agent::shell_line(&invocation.program, &invocation.args)
        ));
        adapter.prepare(agent, ws)?;
        let (env, env_remove) = ctx.agent_process_env(agent, ws, task, attempt_no);
        let spec = exec::Spec {
            program: invocation.program.clone(),
            args: invocation.args.iter().map(OsString::from).collect(),
            cwd: ws.project_files(),
            env,
            env_remove,
            stdin: Some(prompt_file),
            timeout,
            grace: ctx.settings.grace,
            record: Some(ws.state().join(RUNNING)),
            idle_timeout: task.idle_timeout.or(agent.idle_timeout),
        };
        let (outcome, collector) = exec::run_with(&spec, &log, adapter.collector());
        // Its whole group has ended: undo what it did to the runner's own files before
        // the runner writes any of them.
        notes.extend(ws.repair()?);
        let mut result = collector.and_then(agent::Collector::finish);
        if let Some(r) = result.as_mut() {
            notes.extend(own_cost(
                ws,
                start_session.as_deref(),
                r,
                adapter.cumulative_cost(),
            )?);
            if adapter.cumulative_tokens() {
                own_tokens(ws, start_session.as_deref(), r)?;
            }
            if let (Some(id), true) = (r.session_id.as_deref(), agent::resumes(agent)) {
                ws.set_session_id(id)?;
            }
        }
        let failed = outcome.exit != Exit::Code(0)
            || result.as_ref().is_some_and(|r| r.is_error == Some(true));
        if failed && !outcome.timed_out && !signals::stopping() {
            let unknown = start_session.is_some() && {
                capture::lock(&log).flush();
                adapter.is_unknown_session(result.as_ref(), &output_tail(&log_path))
            };
            if !session_reset && unknown {
                notes.push(format!(
                    "session `{}` could not be resumed; started a new session with the task \
                     history in the prompt",
                    start_session.as_deref().unwrap_or_default()
                ));
                ws.forget_session();
                *start_session = None;
                session_reset = true;
                continue;
            }
            if let Some(r) = result.as_ref().filter(|r| adapter.is_rate_limited(r)) {
                rate_limited += 1;
                if rate_limited < RATE_LIMIT_TRIES {
                    let wait = backoff(rate_limited);
                    let msg = format!(
                        "rate limited or overloaded ({}); trying again in {}",
                        agent::one_line(r.result.as_deref().unwrap_or("no details"), 120),
                        format_duration(wait)
                    );
                    log::warn!("task `{}`: {msg}", task.id);
                    capture::lock(&log).note(&format!("--- borg-batch: {msg}"));
                    notes.push(msg);
                    sleep_unless_interrupted(wait);
                    if !signals::stopping() {
                        continue;
                    }
                }
            }
        }
        break (outcome, result);
    };

    let after = take_snapshot(ws, ignore, Some(before), store).ok();
    let verdict = judge(
        adapter,
        &outcome,
        result.as_ref(),
        (timeout, task.idle_timeout.or(agent.idle_timeout)),
    );
    let (mut status, mut error) = match verdict {
        Some((status, why)) => (status, Some(why)),
        None => (Status::Passed, None),
    };
    let mut structured_output = None;
    if let Some(schema) = &task.output_schema {
        let answer = result
            .as_ref()
            .and_then(|r| Schema::answer(r.structured_output.as_ref(), r.result.as_deref()));
        if status == Status::Passed
            && let Some(why) = schema_failure(schema, answer.as_ref())
        {
            (status, error) = (Status::Failed, Some(why));
        }
        structured_output = answer;
    }
    if status == Status::Passed
        && task.expect == Some(Expect::Changes)
        && after.as_ref().is_some_and(|a| !changed_files(before, a))
    {
        (status, error) = (Status::Failed, Some("the agent changed no file".into()));
    }

    let mut tests = None;
    let status = match (&task.check, status) {
        // A task passes only by its check: none is started once the run is stopping.
        (Some(_), Status::Passed) if signals::stopping() => {
            error = Some(format!("{} before the check", signals::stop_reason()));
            Status::Interrupted
        }
        (Some(check), Status::Passed) => {
            let checked = run_check(ctx, task, agent, ws, attempt_no, timeout, check, &log)?;
            error = checked.error;
            tests = checked.tests;
            notes.extend(checked.repaired);
            checked.status
        }
        (_, status) => status,
    };
    if let Err(e) = capture::lock(&log).finish() {
        return Err(Error::io("write", &log_path, e));
    }
    crate::report::transcript::write_for_log(&log_path, agent.kind.into());
    let cost = result.as_ref().and_then(|r| r.total_cost_usd);
    Ok(Attempt {
        report: AttemptReport {
            attempt: attempt_no,
            status,
            exit_code: outcome.exit_code(),
            duration_ms: millis(started.elapsed()),
            error,
            log: Some(log_rel),
            cost_usd: cost,
            session_id: result.as_ref().and_then(|r| r.session_id.clone()),
        },
        result,
        leaked: outcome.leaked,
        after,
        tests,
        notes,
        structured_output,
    })
}

/// The agent's status by the pass rule, and why it did not pass; `None` if it passed.
/// A task the runner stopped is `interrupted` whatever it printed.
fn judge(
    adapter: &dyn agent::Adapter,
    outcome: &exec::Outcome,
    result: Option<&AgentResult>,
    (timeout, idle): (Duration, Option<Duration>),
) -> Option<(Status, String)> {
    if outcome.stopped || (signals::stopping() && outcome.exit != Exit::Code(0)) {
        // Ended by the runner (a signal, or the kill after a runner error), not by itself.
        return Some((Status::Interrupted, signals::stop_reason().to_string()));
    }
    if outcome.timed_out {
        let why = match idle {
            Some(idle) if outcome.idle => format!(
                "the agent timed out: no output for {}",
                format_duration(idle)
            ),
            _ => format!("the agent timed out after {}", format_duration(timeout)),
        };
        return Some((Status::TimedOut, why));
    }
    let why = match &outcome.exit {
        Exit::NotStarted(why) => Some(why.clone()),
        Exit::Signal(sig) => Some(format!("the agent was killed by signal {sig}")),
        Exit::Code(code) => adapter.judge(*code, result),
    };
    why.map(|why| (Status::Failed, why))
}

/// Why the final answer does not satisfy `schema`, if it does not.
fn schema_failure(schema: &Schema, answer: Option<&serde_json::Value>) -> Option<String> {
    let name = schema.path.file_name().map_or_else(
        || schema.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match answer {
        None => Some(format!(
            "the agent's final answer is not JSON, so it cannot match `{name}`"
        )),
        Some(answer) => schema.check(answer).err().map(|why| {
            format!(
                "the agent's final answer does not match `{name}`: {}",
                agent::one_line(&why, 400)
            )
        }),
    }
}

/// Whether any file, symlink or executable bit differs between the snapshots (folders
/// alone are never a change).
fn changed_files(before: &Snapshot, after: &Snapshot) -> bool {
    // Compared as two lazy sequences: nothing of either tree is copied.
    type Item<'a> = (&'a RelPath, Option<(&'a str, u32)>, Option<&'a [u8]>);
    fn files(s: &Snapshot) -> impl Iterator<Item = Item<'_>> {
        s.entries.iter().filter_map(|(path, entry)| match entry {
            Entry::Dir => None,
            Entry::File(m) => Some((path, Some((m.hash.as_str(), m.mode & 0o111)), None)),
            Entry::Symlink { target } => Some((path, None, Some(target.as_slice()))),
        })
    }
    !files(before).eq(files(after))
}

/// The end of the attempt's log so far (the CLI's complaints come at the end).
fn output_tail(log: &Path) -> String {
    let text = fs::read(log).unwrap_or_default();
    let tail = &text[text.len().saturating_sub(64 * 1024)..];
    String::from_utf8_lossy(tail).into_owned()
}

/// Turns the CLI's cumulative `total_cost_usd` of a resumed session into this attempt's own
/// cost, and remembers the new cumulative figure for the session's next task. A negative or
/// non-finite figure (which would get past `--max-cost`) is unknown; the note says so.
fn own_cost(
    ws: &Workspace,
    resumed: Option<&str>,
    result: &mut AgentResult,
    cumulative: bool,
) -> Result<Option<String>> {
    let Some(total) = result.total_cost_usd else {
        return Ok(None);
    };
    if !valid_cost(total) {
        result.total_cost_usd = None;
        return Ok(Some(format!(
            "the agent reported an invalid cost (total_cost_usd {total}); counted as unknown"
        )));
    }
    if !cumulative {
        return Ok(None);
    }
    let before = resumed
        .map(|id| ws.session_cost(id))
        .filter(|c| valid_cost(*c))
        .unwrap_or(0.0);
    // A forked session may or may not carry its parent's cost: never report less than 0.
    result.total_cost_usd = Some(if total >= before {
        total - before
    } else {
        total
    });
    if let Some(id) = &result.session_id {
        ws.set_session_cost(id, total)?;
    }
    Ok(None)
}

/// Turns the CLI's cumulative token counts of a resumed session into this attempt's own,
/// and remembers the new totals for the session's next task.
fn own_tokens(ws: &Workspace, resumed: Option<&str>, result: &mut AgentResult) -> Result<()> {
    let Some(total) = result.tokens else {
        return Ok(());
    };
    if let Some(before) = resumed.map(|id| ws.session_tokens(id)) {
        // Counts that went down are a new session's: taken as they are.
        if total.input >= before.input && total.output >= before.output {
            result.tokens = Some(Tokens {
                input: total.input - before.input,
                output: total.output - before.output,
            });
        }
    }
    if let Some(id) = &result.session_id {
        ws.set_session_tokens(id, total)?;
    }
    Ok(())
}

/// Whether `cost` is a real amount of money: finite and not negative.
pub(super) fn valid_cost(cost: f64) -> bool {
    cost.is_finite() && cost >= 0.0
}

/// Exponential back-off with jitter: 2 s, 4 s, 8 s ... at most 60 s, plus up to 25 %.
fn backoff(try_no: u32) -> Duration {
    let base = RATE_LIMIT_BACKOFF
        .saturating_mul(1 << try_no.saturating_sub(1).min(10))
        .min(RATE_LIMIT_BACKOFF_MAX);
    let jitter = uuid::Uuid::new_v4().as_u128() % 250;
    base + base * u32::try_from(jitter).unwrap_or(0) / 1000
}

fn sleep_unless_interrupted(total: Duration) {
    let end = Instant::now() + total;
    while Instant::now() < end && !signals::stopping() {
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(2) && backoff(1) < Duration::from_secs(3));
        assert!(backoff(3) >= Duration::from_secs(8));
        assert!(backoff(20) <= Duration::from_secs(75));
    }
}

//! One attempt of a task: the agent's invocation, its process, its result line and
//! session, rate-limit back-off and unknown-session recovery, then the check.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::agent::{self, AgentResult};
use crate::config::AgentConfig;
use crate::error::{Error, Result};
use crate::exec::{self, Exit, capture, signals};
use crate::plan::{AgentKind, SessionMode, Task, format_duration};
use crate::report::{AttemptReport, Status, TestCounts};
use crate::runner::events::Event;
use crate::snapshot::{Ignore, Snapshot, Store};
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
        let invocation = agent::invocation(
            agent,
            &agent::Request {
                role_context: &ctx.role_context(&task.instance),
                history,
                task_prompt: &task.prompt,
                resume: start_session.as_deref(),
            },
        );
        let prompt_file = ws.state().join("prompt.md");
        crate::fsutil::write_atomic(&prompt_file, invocation.prompt.as_bytes())?;
        capture::lock(&log).note(&format!(
            "--- borg-batch: {} (attempt {attempt_no}/{max_attempts})",
            agent::shell_line(&invocation.program, &invocation.args)
        ));
        let spec = exec::Spec {
            program: invocation.program.clone(),
            args: invocation.args.iter().map(OsString::from).collect(),
            cwd: ws.project_files(),
            env: ctx.agent_env(agent, ws, task, attempt_no),
            env_remove: Vec::new(),
            stdin: Some(prompt_file),
            timeout,
            grace: ctx.settings.grace,
            record: Some(ws.state().join(RUNNING)),
            scan_result: true,
        };
        let outcome = exec::run(&spec, &log);
        // Its whole group has ended: undo what it did to the runner's own files before
        // the runner writes any of them.
        notes.extend(ws.repair()?);
        let mut result = outcome.result_line.as_deref().and_then(agent::parse_result);
        if let Some(r) = result.as_mut() {
            notes.extend(own_cost(ws, start_session.as_deref(), r)?);
            if let (Some(id), SessionMode::Resume) = (r.session_id.as_deref(), agent.session) {
                ws.set_session_id(id)?;
            }
        }
        let failed = outcome.exit != Exit::Code(0)
            || result.as_ref().is_some_and(|r| r.is_error == Some(true));
        if failed && !outcome.timed_out && !signals::stopping() {
            let unknown = result.as_ref().is_some_and(|r| {
                agent::is_unknown_session(&r.errors.join("\n"))
                    || agent::is_unknown_session(r.result.as_deref().unwrap_or_default())
            }) || {
                capture::lock(&log).flush();
                unknown_session(&log_path)
            };
            if start_session.is_some() && !session_reset && unknown {
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
            if let Some(r) = result.as_ref().filter(|r| agent::is_rate_limited(r)) {
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
    let mut error = None;
    let status = if signals::stopping() && outcome.exit != Exit::Code(0) {
        // Ended by the runner (a signal, or the kill after a runner error), not by itself.
        error = Some(signals::stop_reason().to_string());
        Status::Interrupted
    } else if outcome.timed_out {
        error = Some(format!(
            "the agent timed out after {}",
            format_duration(timeout)
        ));
        Status::TimedOut
    } else if let Some(why) = agent_failure(agent.kind, &outcome, result.as_ref()) {
        error = Some(why);
        Status::Failed
    } else {
        Status::Passed
    };

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
    })
}

/// Turns the CLI's cumulative `total_cost_usd` of a resumed session into this attempt's own
/// cost, and remembers the new cumulative figure for the session's next task. A negative or
/// non-finite figure (which would get past `--max-cost`) is unknown; the note says so.
fn own_cost(
    ws: &Workspace,
    resumed: Option<&str>,
    result: &mut AgentResult,
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

/// Whether `cost` is a real amount of money: finite and not negative.
pub(super) fn valid_cost(cost: f64) -> bool {
    cost.is_finite() && cost >= 0.0
}

/// Why the agent did not pass, by the pass rule (timeouts are handled by the caller).
fn agent_failure(
    kind: AgentKind,
    outcome: &exec::Outcome,
    result: Option<&AgentResult>,
) -> Option<String> {
    // The result line's words explain a non-zero exit only when it says something failed.
    let words = result
        .filter(|r| {
            r.is_error == Some(true) || r.subtype.as_deref().is_some_and(|s| s != "success")
        })
        .map(agent::describe_failure);
    match &outcome.exit {
        Exit::NotStarted(why) => Some(why.clone()),
        Exit::Signal(sig) => Some(format!("the agent was killed by signal {sig}")),
        Exit::Code(0) => agent::judge_result(kind, result),
        Exit::Code(code) => Some(match words {
            Some(words) => format!("the agent exited with code {code}: {words}"),
            None => format!("the agent exited with code {code}"),
        }),
    }
}

fn unknown_session(log: &Path) -> bool {
    // The CLI's complaint comes at the end of a short output; 64 KiB is plenty.
    let text = fs::read(log).unwrap_or_default();
    let tail = &text[text.len().saturating_sub(64 * 1024)..];
    agent::is_unknown_session(&String::from_utf8_lossy(tail))
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

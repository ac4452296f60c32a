//! One task, start to finish: snapshot, attempts (each from the same before-state), the
//! agent's result and session, the check, the changes and the patch.
//!
//! A task that fails is a [`TaskReport`] with a status, never an `Err`. Only the runner's
//! own I/O failures (cannot write the run directory) are returned as errors.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::agent::{self, AgentResult};
use crate::config::AgentConfig;
use crate::diff;
use crate::error::{Error, Result};
use crate::exec::{self, Exit, capture, signals};
use crate::plan::{AgentKind, SessionMode, Task, format_duration};
use crate::report::{AttemptReport, Status, TaskReport, TestCounts};
use crate::runner::events::Event;
use crate::snapshot::{self, Ignore, Snapshot, Store};
use crate::workspace::{Workspace, lock::RUNNING};

use super::RunContext;

/// How often a task is tried again after the API answered "rate limited" or "overloaded"
/// (apart from the task's `retries`), and the first back-off.
const RATE_LIMIT_TRIES: u32 = 4;
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(2);
const RATE_LIMIT_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Per-instance memory between tasks of one run: the last snapshot (the next one's cache).
#[derive(Debug, Default)]
pub struct InstanceMemory {
    pub last: Mutex<Option<Snapshot>>,
}

/// What one attempt came to.
struct Attempt {
    report: AttemptReport,
    result: Option<AgentResult>,
    leaked: bool,
    after: Option<Snapshot>,
    tests: Option<TestCounts>,
    notes: Vec<String>,
}

/// Runs `task` to its final status.
pub fn execute(ctx: &RunContext<'_>, task: &Task, memory: &InstanceMemory) -> Result<TaskReport> {
    let started = Instant::now();
    let ws = ctx.workspace(&task.instance);
    let agent = ctx.settings.agent(&task.instance);
    let store = Store::new(ws.objects());
    let ignore = Ignore::new(&ctx.settings.ignore[&task.instance]);
    let mut report = TaskReport::not_run(&task.id, &task.instance, Status::Failed, "");
    report.error = None;

    // An earlier task's agent may have redirected the runner's own files.
    report.notes.extend(ws.repair()?);
    // The task history the agent gets is that of the tasks before this one.
    let history = ws.history(agent::HISTORY_BYTES);
    ws.begin_task(&super::now_rfc3339(), &task.id, &task.prompt)?;
    // The last snapshot of this instance is the cache: from this run's previous task, else
    // saved by an earlier run (a missing or unreadable one only means re-reading files).
    let cache = memory
        .last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .or_else(|| Snapshot::load(&ws.snapshot_cache()).ok());
    let before = match take_snapshot(&ws, &ignore, cache.as_ref(), &store) {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(format!(
                "cannot snapshot the workspace before the task: {e}"
            ));
            ws.end_task(&outcome_line(&report, ctx.run_id))?;
            return Ok(report);
        }
    };
    report.notes.extend(before.skipped.iter().map(skipped_note));

    let max_attempts = 1 + task.retries.unwrap_or(ctx.settings.default_retries);
    let timeout = task.timeout.unwrap_or(ctx.settings.default_timeout);
    let resumes = agent.kind == AgentKind::Claude && agent.session == SessionMode::Resume;
    // A retry resumes the session the task started from, not the failed attempt's.
    let mut start_session = if resumes { ws.session_id() } else { None };
    let mut last_after = None;
    let mut cost = None::<f64>;

    for attempt_no in 1..=max_attempts {
        // Nothing is started once the run is stopping (a signal during the snapshot, a
        // runner error elsewhere): the task, or what is left of its retries, is cut short.
        if signals::stopping() {
            report.status = Status::Interrupted;
            report.error = Some(if attempt_no == 1 {
                format!("{} before the task started", signals::stop_reason())
            } else {
                format!("{} before attempt {attempt_no}", signals::stop_reason())
            });
            break;
        }
        if attempt_no > 1 {
            roll_back(&ws, &before, &ignore, &store, &mut report.notes);
        }
        let mut attempt = run_attempt(
            ctx,
            task,
            agent,
            &ws,
            attempt_no,
            max_attempts,
            timeout,
            &mut start_session,
            &history,
            (&before, &ignore, &store),
        )?;
        // The CLI's words can quote a secret; nothing leaves the runner unredacted.
        attempt.report.error = attempt.report.error.map(|e| ctx.redactor.redact_str(&e));
        if let Some(c) = attempt.report.cost_usd {
            cost = Some(cost.unwrap_or(0.0) + c);
        }
        report.attempts = attempt_no;
        report.status = attempt.report.status;
        report.exit_code = attempt.report.exit_code;
        report.error.clone_from(&attempt.report.error);
        report.log.clone_from(&attempt.report.log);
        report.leaked |= attempt.leaked;
        // What the final attempt said, not an earlier one's.
        report.tests = attempt.tests;
        report.result = attempt.result.as_ref().and_then(|r| r.result.clone());
        report.notes.extend(attempt.notes);
        // The newest session the task knows of (an attempt without a result line has none).
        if let Some(id) = attempt.result.as_ref().and_then(|r| r.session_id.clone()) {
            report.session_id = Some(id);
        }
        if attempt.after.is_some() {
            last_after = attempt.after;
        }
        ctx.emit(&Event::AttemptFinished {
            task: &task.id,
            instance: &task.instance,
            attempt: &attempt.report,
        })?;
        ws.log_attempt(&format!(
            "{} run={} task={} attempt={} status={} log={}",
            super::now_rfc3339(),
            ctx.run_id,
            task.id,
            attempt_no,
            attempt.report.status,
            ctx.run_dir
                .join(attempt.report.log.as_deref().unwrap_or(""))
                .display()
        ))?;
        report.history.push(attempt.report);
        // A run that is stopping is seen at the top of the loop.
        if matches!(report.status, Status::Passed | Status::Interrupted) {
            break;
        }
    }
    report.flaky = report.status == Status::Passed && report.attempts > 1;
    report.cost_usd = cost.map(|c| (c * 1e6).round() / 1e6);

    let after = match last_after {
        Some(a) => Some(a),
        None => take_snapshot(&ws, &ignore, Some(&before), &store).ok(),
    };
    if let Some(after) = &after {
        // What the agent made that could not be read (a FIFO, an unreadable file).
        let new_skips = after.skipped.iter().filter(|s| !before.skipped.contains(s));
        report.notes.extend(new_skips.map(skipped_note));
        let (changes, patch) = diff::compare(&before, after, &store);
        report.changes = changes;
        if let Some(patch) = patch {
            let rel = format!("diffs/{}.patch", task.id);
            crate::fsutil::write_atomic(
                &ctx.run_dir.join(&rel),
                ctx.redactor.redact_str(&patch).as_bytes(),
            )?;
            report.patch = Some(rel);
        }
        // Names and link targets can hold a secret as well as contents can.
        for change in &mut report.changes {
            change.path = ctx.redactor.redact_str(&change.path);
            for text in [
                &mut change.diff,
                &mut change.target_before,
                &mut change.target_after,
            ] {
                if let Some(t) = text.as_deref() {
                    *text = Some(ctx.redactor.redact_str(t));
                }
            }
        }
    }
    if let Some(after) = &after
        && let Err(e) = after.save(&ws.snapshot_cache())
    {
        log::warn!("cannot save the snapshot cache of `{}`: {e}", task.instance);
    }
    *memory.last.lock().unwrap_or_else(|e| e.into_inner()) = after;
    report.result = report.result.map(|r| ctx.redactor.redact_str(&r));
    report.error = report.error.map(|e| ctx.redactor.redact_str(&e));
    for note in &mut report.notes {
        *note = ctx.redactor.redact_str(note);
    }
    report.duration_ms = millis(started.elapsed());
    ws.end_task(&outcome_line(&report, ctx.run_id))?;
    Ok(report)
}

/// Snapshots `project-files/`. An agent may have removed the folder itself: that is every
/// file deleted (an empty snapshot), and the folder is made again for what comes next.
fn take_snapshot(
    ws: &Workspace,
    ignore: &Ignore,
    cache: Option<&Snapshot>,
    store: &Store,
) -> std::io::Result<Snapshot> {
    let root = ws.project_files();
    if !root.exists() {
        std::fs::create_dir_all(&root)?;
        return Ok(Snapshot::default());
    }
    snapshot::take(&root, ignore, cache, store)
}

fn skipped_note(s: &snapshot::Skipped) -> String {
    format!(
        "not snapshotted: `{}` ({})",
        String::from_utf8_lossy(&s.path),
        s.reason
    )
}

fn roll_back(
    ws: &Workspace,
    before: &Snapshot,
    ignore: &Ignore,
    store: &Store,
    notes: &mut Vec<String>,
) {
    let root = ws.project_files();
    let result = take_snapshot(ws, ignore, Some(before), store)
        .and_then(|current| snapshot::restore(&root, before, &current, store));
    match result {
        Ok(unrestored) if unrestored.is_empty() => {}
        Ok(unrestored) => notes.push(format!(
            "the retry could not roll back: {}",
            unrestored.join(", ")
        )),
        Err(e) => notes.push(format!("the retry could not roll back the workspace: {e}")),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_attempt(
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

/// What a check came to.
struct CheckOutcome {
    status: Status,
    error: Option<String>,
    tests: Option<TestCounts>,
    /// Notes on workspace files the check's processes had redirected.
    repaired: Vec<String>,
}

/// Runs the task's `check` in project-files/ with its own timeout; its output goes into
/// the attempt's log and its test counts into the report.
#[allow(clippy::too_many_arguments)]
fn run_check(
    ctx: &RunContext<'_>,
    task: &Task,
    agent: &AgentConfig,
    ws: &Workspace,
    attempt_no: u32,
    timeout: Duration,
    check: &str,
    log: &capture::SharedLog,
) -> Result<CheckOutcome> {
    let check_path = ctx
        .run_dir
        .join(format!("logs/{}.{attempt_no}.check.log", task.id));
    let check_log = exec::open_log(&check_path, &ctx.secrets)
        .map_err(|e| Error::io("create", &check_path, e))?;
    let spec = exec::Spec {
        program: PathBuf::from("/bin/sh"),
        args: vec!["-c".into(), check.into()],
        cwd: ws.project_files(),
        env: ctx.agent_env(agent, ws, task, attempt_no),
        env_remove: Vec::new(),
        stdin: None,
        timeout,
        grace: ctx.settings.grace,
        record: Some(ws.state().join(RUNNING)),
        scan_result: false,
    };
    let outcome = exec::run(&spec, &check_log);
    let repaired = ws.repair()?;
    capture::lock(&check_log)
        .finish()
        .map_err(|e| Error::io("write", &check_path, e))?;
    let output = fs::read(&check_path).unwrap_or_default();
    let _ = fs::remove_file(&check_path);
    {
        let mut log = capture::lock(log);
        log.note(&format!("--- borg-batch: check `{check}`"));
        log.write(&output);
    }
    let counts = agent::testcounts::parse(&String::from_utf8_lossy(&output));
    let verdict = if signals::stopping() && outcome.exit != Exit::Code(0) {
        (
            Status::Interrupted,
            Some(format!("{} during the check", signals::stop_reason())),
        )
    } else if outcome.timed_out {
        (
            Status::TimedOut,
            Some(format!(
                "the check `{check}` timed out after {}",
                format_duration(timeout)
            )),
        )
    } else {
        match outcome.exit {
            Exit::Code(0) => (Status::Passed, None),
            Exit::Code(code) => (
                Status::Failed,
                Some(format!("the check `{check}` exited with code {code}")),
            ),
            Exit::Signal(sig) => (
                Status::Failed,
                Some(format!("the check `{check}` was killed by signal {sig}")),
            ),
            Exit::NotStarted(why) => (
                Status::Failed,
                Some(format!("the check `{check}` could not start: {why}")),
            ),
        }
    };
    Ok(CheckOutcome {
        status: verdict.0,
        error: verdict.1,
        tests: counts,
        repaired,
    })
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

fn outcome_line(report: &TaskReport, run_id: &str) -> String {
    let mut line = format!(
        "{} (run {run_id}, {} attempt{}, {})",
        report.status,
        report.attempts,
        if report.attempts == 1 { "" } else { "s" },
        format_duration(Duration::from_millis(report.duration_ms))
    );
    if let Some(e) = &report.error {
        line.push_str(&format!(": {}", agent::one_line(e, 200)));
    }
    line
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

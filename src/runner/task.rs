//! One task, start to finish: snapshot, attempts (each from the same before-state), the
//! changes and the patch. One attempt is [`super::attempt`], the check [`super::check`].
//!
//! A task that fails is a [`TaskReport`] with a status, never an `Err`. Only the runner's
//! own I/O failures (cannot write the run directory) are returned as errors.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::agent;
use crate::diff;
use crate::error::Result;
use crate::exec::signals;
use crate::plan::{Task, format_duration};
use crate::report::{Status, TaskReport};
use crate::runner::events::Event;
use crate::snapshot::{self, Ignore, Snapshot, Store};
use crate::workspace::Workspace;

use super::RunContext;
use super::attempt::run_attempt;

/// Per-instance memory between tasks of one run: the last snapshot (the next one's cache).
#[derive(Debug, Default)]
pub struct InstanceMemory {
    pub last: Mutex<Option<Snapshot>>,
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
    // The before-snapshot is the cache from here on: one tree in memory, not two.
    drop(cache);
    report.notes.extend(before.skipped.iter().map(skipped_note));

    let max_attempts = 1 + task.retries.unwrap_or(ctx.settings.default_retries);
    let timeout = task.timeout.unwrap_or(ctx.settings.default_timeout);
    // A retry resumes the session the task started from, not the failed attempt's.
    let mut start_session = if agent::resumes(agent) {
        ws.session_id()
    } else {
        None
    };
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
        report.structured_output = attempt.structured_output.take();
        if let Some(t) = attempt.result.as_ref().and_then(|r| r.tokens) {
            let sum = report.tokens.get_or_insert_default();
            sum.input += t.input;
            sum.output += t.output;
        }
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
        let (changes, patch) =
            diff::compare_guarded(&before, after, &store, &|b| ctx.redactor.finds(b));
        report.notes.extend(changes.iter().filter(|c| c.diff.as_deref() == Some(diff::UNTRUSTED)).map(|c| {
            format!("`{}`: its stored copy does not match its hash (the store was tampered with); its content is not shown", c.path)
        }));
        report.changes = changes;
        if let Some(patch) = patch {
            let rel = format!("diffs/{}.patch", task.id);
            crate::fsutil::write_atomic(
                &ctx.run_dir.join(&rel),
                ctx.redactor.redact_str(&patch).as_bytes(),
            )?;
            report.patch = Some(rel);
        }
        super::whole::redact_changes(ctx, &mut report.changes);
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
pub(super) fn take_snapshot(
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

pub(super) fn skipped_note(s: &snapshot::Skipped) -> String {
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

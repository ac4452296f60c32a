//! A task's `check`: a shell command run in project-files/ after the agent, under its own
//! timeout; its output goes into the attempt's log and its test counts into the report.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::agent;
use crate::config::AgentConfig;
use crate::error::{Error, Result};
use crate::exec::{self, Exit, capture, signals};
use crate::plan::{Task, format_duration};
use crate::report::{Status, TestCounts};
use crate::workspace::{Workspace, lock::RUNNING};

use super::RunContext;

/// What a check came to.
pub(super) struct CheckOutcome {
    pub status: Status,
    pub error: Option<String>,
    pub tests: Option<TestCounts>,
    /// Notes on workspace files the check's processes had redirected.
    pub repaired: Vec<String>,
}

/// Runs the task's `check` in project-files/ with its own timeout; its output goes into
/// the attempt's log and its test counts into the report.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_check(
    ctx: &RunContext<'_>,
    task: &Task,
    agent: &AgentConfig,
    ws: &Workspace,
    attempt_no: u32,
    timeout: Duration,
    check: &str,
    log: &capture::SharedLog,
) -> Result<CheckOutcome> {
    ctx.emit(&crate::runner::events::Event::CheckStarted {
        task: &task.id,
        instance: &task.instance,
        attempt: attempt_no,
    })?;
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
        idle_timeout: None,
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

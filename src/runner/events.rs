//! Events between the runner and its reporters (progress display, journal, final reports).
//!
//! The runner never prints: it emits these, in order, from whichever worker thread the
//! event happened on; the sink serialises them. Reporters write to `impl Write` so their
//! output can be tested.

use std::path::Path;

use crate::report::{AttemptReport, Report, TaskReport};

/// Something that happened during a run.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The run directory exists and tasks are about to start.
    RunStarted {
        run_id: &'a str,
        plan_name: &'a str,
        run_dir: &'a Path,
        /// Tasks this invocation will try to run.
        to_run: usize,
        /// Tasks in the plan.
        total: usize,
    },
    /// An attempt's agent is about to be spawned.
    AttemptStarted {
        task: &'a str,
        instance: &'a str,
        attempt: u32,
        max_attempts: u32,
        /// The attempt's time limit (the agent's; the check gets the same of its own).
        timeout: std::time::Duration,
    },
    /// The attempt's agent passed and its check is about to start.
    CheckStarted {
        task: &'a str,
        instance: &'a str,
        attempt: u32,
    },
    /// An attempt finished (its log is complete).
    AttemptFinished {
        task: &'a str,
        instance: &'a str,
        attempt: &'a AttemptReport,
    },
    /// A task reached its final status (skipped tasks included).
    TaskFinished { task: &'a TaskReport },
    /// Every report has been written.
    RunFinished {
        report: &'a Report,
        run_dir: &'a Path,
    },
}

/// A consumer of events.
pub trait Reporter: Send {
    fn event(&mut self, event: &Event<'_>) -> crate::Result<()>;
}

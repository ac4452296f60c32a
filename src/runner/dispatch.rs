//! The dispatcher: starts ready tasks on a rayon pool of `--jobs` threads as slots free
//! up, records what finishes, and stops starting tasks when the run is interrupted, the
//! cost cap is reached or the runner itself fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::exec::{groups, signals};
use crate::report::{Status, TaskReport};
use crate::schedule::{Next, Scheduler};

use super::RunContext;
use super::attempt;
use super::events::{Event, Reporter};
use super::task::{self, InstanceMemory};

/// Serialises events from the worker threads to the reporters.
pub struct Sink {
    reporters: Mutex<Vec<Box<dyn Reporter>>>,
}

impl Sink {
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Sink {
        Sink {
            reporters: Mutex::new(reporters),
        }
    }

    pub fn emit(&self, event: &Event<'_>) -> Result<()> {
        let mut reporters = self.reporters.lock().unwrap_or_else(|e| e.into_inner());
        for reporter in reporters.iter_mut() {
            reporter.event(event)?;
        }
        Ok(())
    }
}

/// What the dispatcher leaves behind.
pub struct Finished {
    /// Reports of the tasks this run selected, by id.
    pub reports: BTreeMap<String, TaskReport>,
    /// The runner's own failure (exit 3), if any.
    pub runner_error: Option<Error>,
}

struct State {
    scheduler: Scheduler,
    running: usize,
    cost: f64,
    reports: BTreeMap<String, TaskReport>,
    runner_error: Option<Error>,
}

/// Runs every selected task; returns when all have a final status.
pub fn run_all(
    ctx: &RunContext<'_>,
    selected: &BTreeSet<String>,
    latest: &dyn Fn(&str) -> Option<Status>,
    max_cost: Option<f64>,
) -> Finished {
    let state = Mutex::new(State {
        scheduler: Scheduler::new(ctx.plan, selected, latest),
        running: 0,
        cost: 0.0,
        reports: BTreeMap::new(),
        runner_error: None,
    });
    let wake = Condvar::new();
    let memory: BTreeMap<&str, InstanceMemory> = ctx
        .plan
        .instances
        .iter()
        .map(|i| (i.name.as_str(), InstanceMemory::default()))
        .collect();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(ctx.settings.jobs)
        .thread_name(|i| format!("borg-task-{i}"))
        .build()
        .expect("building the task thread pool");

    pool.in_place_scope(|scope| {
        let mut st = lock();
        loop {
            let stopping = signals::interrupted() || st.runner_error.is_some();
            if stopping {
                let status = if signals::interrupted() {
                    Status::Interrupted
                } else {
                    Status::Skipped
                };
                let reason = if signals::interrupted() {
                    "the run was interrupted before the task started"
                } else {
                    "the runner failed before the task started"
                };
                for i in st.scheduler.abandon(status) {
                    finish_unstarted(ctx, &mut st, i, status, reason);
                }
            }
            let can_start = !stopping && st.running < ctx.settings.jobs;
            match st.scheduler.poll(can_start) {
                Some(Next::Skip(i, reason)) => {
                    finish_unstarted(ctx, &mut st, i, Status::Skipped, &reason);
                }
                Some(Next::Run(i)) if max_cost.is_some_and(|cap| st.cost >= cap) => {
                    st.scheduler.finish(i, Status::Skipped);
                    finish_unstarted(ctx, &mut st, i, Status::Skipped, "cost cap reached");
                }
                Some(Next::Run(i)) => {
                    st.running += 1;
                    let task = &ctx.plan.tasks[i];
                    let memory = &memory[task.instance.as_str()];
                    let (state, wake) = (&state, &wake);
                    scope.spawn(move |_| {
                        let result = task::execute(ctx, task, memory);
                        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                        let report = match result {
                            Ok(report) => report,
                            Err(err) => {
                                log::error!("task `{}`: {err}", task.id);
                                let mut r = TaskReport::not_run(
                                    &task.id,
                                    &task.instance,
                                    Status::Failed,
                                    &err.to_string(),
                                );
                                r.attempts = 1;
                                runner_failed(&mut st, err);
                                r
                            }
                        };
                        // A negative or non-finite cost never lowers the total (task.rs
                        // already drops it; a report from elsewhere might not).
                        st.cost += report
                            .cost_usd
                            .filter(|c| attempt::valid_cost(*c))
                            .unwrap_or(0.0);
                        st.scheduler.finish(i, report.status);
                        if let Err(err) = ctx.emit(&Event::TaskFinished { task: &report }) {
                            runner_failed(&mut st, err);
                        }
                        st.reports.insert(task.id.clone(), report);
                        st.running -= 1;
                        wake.notify_all();
                    });
                }
                None if st.scheduler.is_done() && st.running == 0 => break,
                None => {
                    // Woken by a finishing task; the timeout notices signals promptly.
                    st = wake
                        .wait_timeout(st, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    });
    let st = state.into_inner().unwrap_or_else(|e| e.into_inner());
    Finished {
        reports: st.reports,
        runner_error: st.runner_error,
    }
}

/// The runner itself failed (exit 3): record the first error, stop the run — no agent,
/// check or retry starts from here on (see [`signals::stopping`]) — and end every running
/// child at once: nothing more can be recorded reliably.
fn runner_failed(st: &mut State, err: Error) {
    st.runner_error.get_or_insert(err);
    signals::stop();
    groups::registry().signal_all(Signal::SIGKILL);
}

fn finish_unstarted(
    ctx: &RunContext<'_>,
    st: &mut MutexGuard<'_, State>,
    i: usize,
    status: Status,
    reason: &str,
) {
    let task = &ctx.plan.tasks[i];
    let report = TaskReport::not_run(&task.id, &task.instance, status, reason);
    if let Err(err) = ctx.emit(&Event::TaskFinished { task: &report }) {
        runner_failed(st, err);
    }
    st.reports.insert(task.id.clone(), report);
}

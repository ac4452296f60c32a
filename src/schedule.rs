//! Which tasks run, and when each may start (SPEC.md "Scheduling").
//!
//! Pure bookkeeping, no threads and no processes, so the rules are unit-tested directly:
//! tasks of one instance run one after another in file order; a task starts once each of
//! its needs has passed (in this run, or — for a need this run does not run — as its latest
//! outcome); a task whose need did not pass is `skipped`. The dispatcher in `runner` asks
//! [`Scheduler::poll`] for the next decision whenever a slot frees up.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::report::Status;

/// The tasks this invocation runs: all, `--only` ones plus their not-passed needs, or
/// `--rerun-failed`'s not-passed ones. `latest` gives each task's latest outcome.
pub fn select(
    plan: &Plan,
    only: &[String],
    rerun_failed: bool,
    latest: &dyn Fn(&str) -> Option<Status>,
) -> Result<BTreeSet<String>> {
    if rerun_failed {
        return Ok(plan
            .tasks
            .iter()
            .filter(|t| latest(&t.id) != Some(Status::Passed))
            .map(|t| t.id.clone())
            .collect());
    }
    if only.is_empty() {
        return Ok(plan.tasks.iter().map(|t| t.id.clone()).collect());
    }
    let mut selected = BTreeSet::new();
    let mut stack: Vec<&str> = Vec::new();
    for id in only {
        if plan.task(id).is_none() {
            let known: Vec<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
            return Err(Error::Usage(format!(
                "`--only {id}`: the plan has no task `{id}` (tasks: {})",
                known.join(", ")
            )));
        }
        stack.push(id);
    }
    while let Some(id) = stack.pop() {
        if !selected.insert(id.to_string()) {
            continue;
        }
        let task = plan.task(id).expect("ids were checked");
        for need in &task.needs {
            if latest(need) != Some(Status::Passed) {
                stack.push(need);
            }
        }
    }
    Ok(selected)
}

/// What the dispatcher should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start task `index` (plan order).
    Run(usize),
    /// Task `index` will not run: `reason`.
    Skip(usize, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Done(Status),
}

/// The state of every selected task during a run.
#[derive(Debug)]
pub struct Scheduler {
    ids: Vec<String>,
    instances: Vec<String>,
    needs: Vec<Vec<usize>>,
    /// `None` for tasks this run does not run.
    state: Vec<Option<State>>,
    /// Latest outcomes of tasks this run does not run.
    carried: BTreeMap<usize, Option<Status>>,
}

impl Scheduler {
    pub fn new(
        plan: &Plan,
        selected: &BTreeSet<String>,
        latest: &dyn Fn(&str) -> Option<Status>,
    ) -> Scheduler {
        let index = plan.task_indices();
        let mut carried = BTreeMap::new();
        let state = plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if selected.contains(&t.id) {
                    Some(State::Waiting)
                } else {
                    carried.insert(i, latest(&t.id));
                    None
                }
            })
            .collect();
        Scheduler {
            ids: plan.tasks.iter().map(|t| t.id.clone()).collect(),
            instances: plan.tasks.iter().map(|t| t.instance.clone()).collect(),
            needs: plan
                .tasks
                .iter()
                .map(|t| {
                    t.needs
                        .iter()
                        .filter_map(|n| index.get(n.as_str()).copied())
                        .collect()
                })
                .collect(),
            state,
            carried,
        }
    }

    /// The next decision, if one can be made now. Skips come whenever they are known;
    /// a `Run` only when `can_start` (a slot is free).
    pub fn poll(&mut self, can_start: bool) -> Option<Next> {
        let mut runnable = None;
        for i in 0..self.ids.len() {
            if self.state[i] != Some(State::Waiting) {
                continue;
            }
            match self.needs_verdict(i) {
                Verdict::Wait => {}
                Verdict::Skip(reason) => {
                    self.state[i] = Some(State::Done(Status::Skipped));
                    return Some(Next::Skip(i, reason));
                }
                Verdict::Ready => {
                    if runnable.is_none() && self.instance_free(i) {
                        runnable = Some(i);
                    }
                }
            }
        }
        let i = runnable.filter(|_| can_start)?;
        self.state[i] = Some(State::Running);
        Some(Next::Run(i))
    }

    fn needs_verdict(&self, i: usize) -> Verdict {
        let mut wait = false;
        for &n in &self.needs[i] {
            let status = match self.state[n] {
                Some(State::Done(s)) => Some(s),
                Some(_) => {
                    wait = true;
                    continue;
                }
                None => self.carried[&n],
            };
            match status {
                Some(Status::Passed) => {}
                Some(s) => {
                    return Verdict::Skip(format!("need `{}` did not pass ({s})", self.ids[n]));
                }
                None => return Verdict::Skip(format!("need `{}` has never run", self.ids[n])),
            }
        }
        if wait { Verdict::Wait } else { Verdict::Ready }
    }

    /// Every earlier selected task of the same instance has finished.
    fn instance_free(&self, i: usize) -> bool {
        (0..i).all(|j| {
            self.instances[j] != self.instances[i]
                || !matches!(self.state[j], Some(State::Waiting | State::Running))
        })
    }

    pub fn finish(&mut self, i: usize, status: Status) {
        self.state[i] = Some(State::Done(status));
    }

    /// Marks every task that has not started as `status`; returns their indices.
    pub fn abandon(&mut self, status: Status) -> Vec<usize> {
        let mut left = Vec::new();
        for (i, s) in self.state.iter_mut().enumerate() {
            if *s == Some(State::Waiting) {
                *s = Some(State::Done(status));
                left.push(i);
            }
        }
        left
    }

    /// No selected task is waiting or running.
    pub fn is_done(&self) -> bool {
        !self
            .state
            .iter()
            .any(|s| matches!(s, Some(State::Waiting | State::Running)))
    }
}

enum Verdict {
    Ready,
    Wait,
    Skip(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{AgentSpec, Task};

    fn plan(tasks: &[(&str, &str, &[&str])]) -> Plan {
        Plan {
            path: "p.yaml".into(),
            dir: ".".into(),
            name: "p".into(),
            workspaces: None,
            jobs: None,
            timeout: None,
            retries: None,
            grace: None,
            ignore: vec![],
            agent: AgentSpec::default(),
            instances: vec![],
            tasks: tasks
                .iter()
                .map(|(id, inst, needs)| Task::minimal(id, inst, needs))
                .collect(),
        }
    }

    fn all(p: &Plan) -> BTreeSet<String> {
        select(p, &[], false, &|_| None).unwrap()
    }

    #[test]
    fn one_instance_runs_in_file_order_and_instances_in_parallel() {
        let p = plan(&[("a1", "a", &[]), ("a2", "a", &[]), ("b1", "b", &[])]);
        let mut s = Scheduler::new(&p, &all(&p), &|_| None);
        assert_eq!(s.poll(true), Some(Next::Run(0)));
        assert_eq!(s.poll(true), Some(Next::Run(2)));
        assert_eq!(s.poll(true), None, "a2 waits for a1");
        s.finish(0, Status::Failed);
        assert_eq!(
            s.poll(true),
            Some(Next::Run(1)),
            "a failed task does not stop its instance"
        );
    }

    #[test]
    fn a_task_whose_need_failed_is_skipped_with_the_reason() {
        let p = plan(&[("a", "x", &[]), ("b", "y", &["a"]), ("c", "z", &["b"])]);
        let mut s = Scheduler::new(&p, &all(&p), &|_| None);
        assert_eq!(s.poll(true), Some(Next::Run(0)));
        assert_eq!(s.poll(true), None);
        s.finish(0, Status::TimedOut);
        assert_eq!(
            s.poll(true),
            Some(Next::Skip(1, "need `a` did not pass (timed_out)".into()))
        );
        assert_eq!(
            s.poll(true),
            Some(Next::Skip(2, "need `b` did not pass (skipped)".into()))
        );
        assert!(s.is_done());
    }

    #[test]
    fn only_adds_needs_that_have_not_passed() {
        let p = plan(&[("a", "x", &[]), ("b", "x", &["a"]), ("c", "y", &["b"])]);
        let latest = |id: &str| (id == "a").then_some(Status::Passed);
        let sel = select(&p, &["c".into()], false, &latest).unwrap();
        assert_eq!(sel, ["b", "c"].map(String::from).into());
        let mut s = Scheduler::new(&p, &sel, &latest);
        assert_eq!(s.poll(true), Some(Next::Run(1)), "carried `a` passed");
        assert!(select(&p, &["nope".into()], false, &latest).is_err());
    }

    #[test]
    fn rerun_failed_selects_what_did_not_pass_including_never_run() {
        let p = plan(&[("a", "x", &[]), ("b", "x", &[]), ("new", "x", &[])]);
        let latest = |id: &str| match id {
            "a" => Some(Status::Passed),
            "b" => Some(Status::Interrupted),
            _ => None,
        };
        let sel = select(&p, &[], true, &latest).unwrap();
        assert_eq!(sel, ["b", "new"].map(String::from).into());
    }
}

//! Signals to the runner: SIGINT, SIGTERM and SIGHUP interrupt the run (pending tasks never
//! start, exit 130, nothing left running), and a second signal kills at once without
//! waiting for the grace period.

use std::time::Instant;

use nix::sys::signal::Signal;

use crate::support::{Project, task, wait_for};

use super::{Reaper, SECS, assert_no_survivor, marker, one_instance_plan, spawn, survivors};

/// Starts a run whose first task sleeps (the second would start after it), sends `signal`
/// to the runner once the first has started, and checks the run ends as interrupted.
/// `stubborn`: the agent ignores every termination signal (only SIGKILL after the grace
/// period ends it).
fn interrupt(signal: Signal, base: u32, stubborn: bool) {
    let p = Project::new();
    let mark = marker(base);
    let _reaper = Reaper(mark.clone());
    let started = p.join("started");
    let trap = if stubborn {
        "trap '' INT TERM HUP; "
    } else {
        ""
    };
    one_instance_plan(
        &p,
        "sig",
        "timeout: 5m\ngrace: 1s",
        &format!(
            "{trap}touch '{}-'$BORG_TASK_ID; sleep {mark} & sleep {mark}; wait",
            started.display()
        ),
        "  - {id: long, instance: w, prompt: go}\n  - {id: later, instance: w, prompt: go}\n",
    );
    let runner = spawn(&p, &["plan.yaml"], &[]);
    let long_started = p.join("started-long");
    assert!(
        wait_for(SECS(20), || long_started.exists()),
        "the task never started\n{}",
        runner.stderr_now()
    );
    assert!(!survivors(&mark).is_empty(), "the agent is not running");
    let sent = Instant::now();
    runner.signal(signal);
    let ended = runner.wait(SECS(20));
    assert_eq!(ended.code, Some(130), "{}", ended.text());
    let after = sent.elapsed();
    assert!(after < SECS(15), "exit took {after:?} after {signal}");
    let report = p.report("sig");
    assert_eq!(task(&report, "long")["status"], "interrupted", "{report:#}");
    assert_eq!(
        task(&report, "later")["status"],
        "interrupted",
        "{report:#}"
    );
    assert_eq!(report["summary"]["interrupted"], 2);
    assert!(
        !p.join("started-later").exists(),
        "a task started after the signal"
    );
    assert_no_survivor(&mark);
}

#[test]
fn sigint_to_the_runner_interrupts_and_leaves_nothing() {
    interrupt(Signal::SIGINT, 3010, false);
}

#[test]
fn sigterm_to_the_runner_ends_even_an_agent_that_ignores_it() {
    interrupt(Signal::SIGTERM, 3011, true);
}

#[test]
fn sighup_to_the_runner_interrupts_and_leaves_nothing() {
    interrupt(Signal::SIGHUP, 3012, false);
}

#[test]
fn a_second_signal_kills_at_once_without_waiting_for_the_grace_period() {
    let p = Project::new();
    let mark = marker(3013);
    let _reaper = Reaper(mark.clone());
    let started = p.join("started");
    one_instance_plan(
        &p,
        "sig2",
        "timeout: 5m\ngrace: 1m",
        &format!(
            "trap '' INT TERM HUP; touch '{}'; sleep {mark}",
            started.display()
        ),
        "  - {id: long, instance: w, prompt: go}\n",
    );
    let runner = spawn(&p, &["plan.yaml"], &[]);
    assert!(
        wait_for(SECS(20), || started.exists()),
        "{}",
        runner.stderr_now()
    );
    runner.signal(Signal::SIGINT);
    // Two signals sent before the first is handled would be merged into one.
    assert!(
        wait_for(SECS(10), || runner.stderr_now().contains("received SIGINT")),
        "the runner did not report the first signal: {}",
        runner.stderr_now()
    );
    assert!(
        !survivors(&mark).is_empty(),
        "the agent ignores SIGINT and waits for the grace period"
    );
    let sent = Instant::now();
    runner.signal(Signal::SIGINT);
    let ended = runner.wait(SECS(30));
    assert_eq!(ended.code, Some(130), "{}", ended.text());
    assert!(
        sent.elapsed() < SECS(20),
        "the second signal did not kill at once"
    );
    assert_eq!(task(&p.report("sig2"), "long")["status"], "interrupted");
    assert_no_survivor(&mark);
}

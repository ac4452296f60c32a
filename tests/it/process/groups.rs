//! The agent's process group: a background child still holding stdout is reported as leaked
//! and killed, a silent one is killed without the report, an agent ignoring SIGTERM is
//! killed after the grace period; and the survivor check itself is shown to see a live
//! process.

use crate::support::{Project, task, wait_for};

use super::{
    Reaper, SECS, assert_no_survivor, marker, one_instance_plan, run_within, survivors, task_log,
};

#[test]
fn a_background_child_holding_stdout_is_leaked_and_killed() {
    let p = Project::new();
    let mark = marker(3001);
    let _reaper = Reaper(mark.clone());
    one_instance_plan(
        &p,
        "leak",
        "timeout: 5m\ngrace: 1s",
        &format!("sleep {mark} & echo agent done"),
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(15));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("leak");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    assert_eq!(t["leaked"], true);
    assert!(task_log(&p, "leak", t).contains("agent done"));
    assert_no_survivor(&mark);
}

#[test]
fn a_silent_grandchild_is_killed_but_not_leaked() {
    let p = Project::new();
    let mark = marker(3002);
    let _reaper = Reaper(mark.clone());
    one_instance_plan(
        &p,
        "silent",
        "timeout: 5m\ngrace: 1s",
        &format!("sleep {mark} >/dev/null 2>&1 & echo agent done"),
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(15));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("silent");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    assert_eq!(t["leaked"], false);
    assert_no_survivor(&mark);
}

#[test]
fn an_agent_ignoring_sigterm_is_killed_after_the_grace_period() {
    let p = Project::new();
    let mark = marker(3003);
    let _reaper = Reaper(mark.clone());
    // The ignored TERM is inherited by the background sleep as well.
    one_instance_plan(
        &p,
        "stubborn",
        "grace: 1s",
        &format!("trap '' TERM; sleep {mark} & sleep {mark}"),
        "  - {id: t, instance: w, prompt: go, timeout: 1s}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(20));
    assert_eq!(ended.code, Some(1), "{}", ended.text());
    let report = p.report("stubborn");
    let t = task(&report, "t");
    assert_eq!(t["status"], "timed_out");
    assert!(
        t["duration_ms"].as_u64().unwrap() >= 2000,
        "SIGKILL came before the grace period"
    );
    assert_no_survivor(&mark);
}

/// Guards against a vacuous suite: the helpers do see a live marked process.
#[test]
fn survivor_detection_sees_a_live_process() {
    let mark = marker(3099);
    let _reaper = Reaper(mark.clone());
    let mut child = std::process::Command::new("sleep")
        .arg(&mark)
        .spawn()
        .unwrap();
    assert!(wait_for(SECS(5), || !survivors(&mark).is_empty()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(survivors(&mark).is_empty());
}

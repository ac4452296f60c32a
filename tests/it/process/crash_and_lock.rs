//! The workspace lock: after `kill -9` of the runner, `--rerun-failed` takes the lock over,
//! ends what the dead run left running and runs exactly the tasks that had not passed; a
//! second run on the same workspaces is refused while the first one holds them.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{Project, task, wait_for};

use super::{
    Reaper, SECS, assert_no_survivor, inline_agent, marker, one_instance_plan, run_within, spawn,
    survivors,
};

/// The finished tasks in the latest run's journal.
fn journal_tasks(p: &Project, plan: &str) -> Vec<Value> {
    let Ok(dir) = std::fs::read_link(p.join(&format!("runs/{plan}/latest"))) else {
        return Vec::new();
    };
    let dir = p.join(&format!("runs/{plan}")).join(dir);
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "task")
        .map(|v| v["report"].clone())
        .collect()
}

#[test]
fn kill_9_of_the_runner_then_rerun_failed_runs_exactly_what_had_not_passed() {
    let p = Project::new();
    let mark = marker(3004);
    let _reaper = Reaper(mark.clone());
    let ran = p.join("ran");
    let plan = |b_script: &str, tasks: &str| {
        let script = format!(
            "echo \"$BORG_TASK_ID\" >> '{}'; case \"$BORG_TASK_ID\" in b) {b_script};; esac; echo ok",
            ran.display()
        );
        let agent = inline_agent(&script);
        p.plan(&format!(
            "name: crash\ntimeout: 5m\ngrace: 1s\ninstances:\n  \
             - {{name: one, role: developer, agent: {agent}}}\n  \
             - {{name: two, role: developer, agent: {agent}}}\ntasks:\n{tasks}"
        ));
    };
    plan(
        &format!("touch '{}'; sleep {mark}", p.join("b-started").display()),
        "  - {id: a, instance: one, prompt: a}\n  - {id: z, instance: one, prompt: z}\n  \
         - {id: b, instance: two, prompt: b}\n",
    );
    let runner = spawn(&p, &["plan.yaml"], &[]);
    let a_done = || {
        journal_tasks(&p, "crash")
            .iter()
            .any(|t| t["id"] == "a" && t["status"] == "passed")
    };
    assert!(
        wait_for(SECS(20), || a_done() && p.join("b-started").exists()),
        "a never finished or b never started\n{}",
        runner.stderr_now()
    );
    runner.signal(Signal::SIGKILL);
    let ended = runner.wait(SECS(10));
    assert_eq!(ended.signal, Some(9));
    assert!(
        !p.latest("crash").join("report.json").exists(),
        "a killed run wrote no report"
    );
    assert!(
        !survivors(&mark).is_empty(),
        "the killed runner's agent should still be running (nothing could end it)"
    );

    // The plan changes: b is fast now, z is gone, c is new.
    plan(
        "true",
        "  - {id: a, instance: one, prompt: a}\n  - {id: b, instance: two, prompt: b}\n  \
         - {id: c, instance: one, prompt: c}\n",
    );
    std::fs::write(&ran, "").unwrap();
    let ended = run_within(&p, &["plan.yaml", "--rerun-failed"], SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    // The lock takeover ended the group the killed run left behind.
    assert_no_survivor(&mark);
    let mut ran_now: Vec<String> = std::fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    ran_now.sort();
    assert_eq!(
        ran_now,
        ["b", "c"],
        "exactly the tasks that had not passed ran"
    );
    let report = p.report("crash");
    let a = task(&report, "a");
    assert_eq!(a["status"], "passed");
    assert_eq!(a["carried_over"], true);
    for id in ["b", "c"] {
        assert_eq!(task(&report, id)["status"], "passed", "{id}");
        assert_eq!(task(&report, id)["carried_over"], false, "{id}");
    }
    let ids: Vec<&str> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"z"), "a removed task is ignored: {ids:?}");
    assert_eq!(report["summary"]["total"], 3);
}

#[test]
fn a_second_run_on_the_same_workspaces_is_refused_while_the_first_runs() {
    let p = Project::new();
    let release = p.join("release");
    let started = p.join("started");
    one_instance_plan(
        &p,
        "locked",
        "timeout: 1m",
        &format!(
            "touch '{}'; n=0; while [ ! -e '{}' ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done",
            started.display(),
            release.display()
        ),
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let first = spawn(&p, &["plan.yaml"], &[]);
    assert!(
        wait_for(SECS(20), || started.exists()),
        "{}",
        first.stderr_now()
    );
    let second = run_within(&p, &["plan.yaml"], SECS(20));
    assert_eq!(second.code, Some(2), "{}", second.text());
    assert!(
        second.stderr.contains("in use by another borg-batch run"),
        "{}",
        second.text()
    );
    std::fs::write(&release, "").unwrap();
    let first = first.wait(SECS(30));
    assert_eq!(first.code, Some(0), "{}", first.text());
    assert_eq!(
        task(&p.report("locked"), "t")["status"],
        "passed",
        "the refused run touched nothing"
    );
    std::fs::remove_file(&started).unwrap();
    let third = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(third.code, Some(0), "{}", third.text());
    assert!(started.exists());
}

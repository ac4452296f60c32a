//! Which tasks a run starts: `--only` a task and the needs that have not passed,
//! `--rerun-failed` refused without an earlier run, and `--dry-run` and `validate`, which
//! start nothing and write nothing.

use crate::support::{Project, output_text, task};

use super::CHAIN;

#[test]
fn only_runs_the_task_and_its_needs_that_have_not_passed() {
    let p = Project::new();
    p.plan(CHAIN);
    // Nothing has run: --only top pulls in mid and base.
    let out = p.run(&["plan.yaml", "--only", "top"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("chain");
    for id in ["base", "mid", "top"] {
        assert_eq!(task(&r, id)["status"], "passed", "{id}");
        assert_eq!(task(&r, id)["carried_over"], false, "{id}");
    }
    let other = task(&r, "other");
    assert_eq!(other["status"], "skipped");
    assert_eq!(other["carried_over"], true);
    assert_eq!(other["error"], "not selected");
    // Now they passed: --only top runs top alone; the rest carry over.
    let out = p.run(&["plan.yaml", "--only", "top"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("chain");
    assert_eq!(task(&r, "top")["carried_over"], false);
    assert_eq!(task(&r, "mid")["carried_over"], true);
    assert_eq!(task(&r, "mid")["status"], "passed");
    assert_eq!(
        p.read("workspaces/chain/y/project-files/count.txt"),
        "mid\ntop\ntop\n"
    );
    // An unknown id is refused before anything runs.
    let out = p.run(&["plan.yaml", "--only", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task `nope`"));
}

#[test]
fn dry_run_prints_schedule_and_commands_and_spawns_nothing() {
    let p = Project::new();
    let marker = p.join("spawned.txt");
    p.plan(&CHAIN.replace(
        "@append count.txt base",
        &format!("@record {}", marker.display()),
    ));
    let out = p.run(&["plan.yaml", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("wave 1: base (x)"), "{text}");
    assert!(text.contains("wave 2: mid (y), other (x)"), "{text}");
    assert!(text.contains("wave 3: top (y)"), "{text}");
    assert!(text.contains("scripted.sh < prompt"), "{text}");
    assert!(!marker.exists(), "an agent was spawned");
    assert!(
        !p.join("runs").exists() && !p.join("workspaces").exists(),
        "dry run wrote files"
    );
}

#[test]
fn validate_prints_nothing_for_a_good_plan_and_writes_nothing() {
    let p = Project::new();
    p.plan(CHAIN);
    let out = p.run(&["validate", "plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        output_text(&out)
    );
    let entries: Vec<_> = std::fs::read_dir(p.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "only plan.yaml");
}

#[test]
fn rerun_failed_without_an_earlier_run_is_refused() {
    let p = Project::new();
    p.plan(CHAIN);
    let out = p.run(&["plan.yaml", "--rerun-failed"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no earlier run of plan `chain`"), "{err}");
    assert!(!p.join("workspaces").exists() && !p.join("runs").exists());
}

#[test]
fn a_workspace_is_created_on_first_use_only() {
    let p = Project::new();
    p.plan(CHAIN);
    let out = p.run(&["plan.yaml", "--only", "base"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(p.join("workspaces/chain/x/session.md").exists());
    assert!(
        !p.join("workspaces/chain/y").exists(),
        "instance y ran nothing"
    );
    let r = p.report("chain");
    assert_eq!(task(&r, "mid")["error"], "not selected");
}

#[test]
fn dry_run_with_fresh_shows_no_history_the_run_would_forget() {
    let p = Project::new();
    p.plan(CHAIN);
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // The scripted agent is generic: its prompt carries the task history, so the size of
    // the prompt shows whether the history is in it.
    let prompt_sizes = |args: &[&str]| -> Vec<String> {
        let out = p.run(args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split("< prompt (").nth(1).map(str::to_string))
            .collect()
    };
    let with_history = prompt_sizes(&["plan.yaml", "--dry-run"]);
    let fresh = prompt_sizes(&["plan.yaml", "--dry-run", "--fresh"]);
    assert_eq!(with_history.len(), 4);
    assert_eq!(fresh.len(), 4);
    for (h, f) in with_history.iter().zip(&fresh) {
        let size = |s: &str| s.split(' ').next().unwrap().parse::<usize>().unwrap();
        assert!(size(f) < size(h), "--fresh still sends history: {f} vs {h}");
    }
}

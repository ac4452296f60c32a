//! Retries: a flaky task passes on its second attempt, which starts from the before-state
//! (nothing of the failed attempt kept); an always-failing task makes exactly `retries + 1`
//! attempts.

use crate::support::{Project, task};

use super::{SECS, one_instance_plan, run_within};

#[test]
fn flaky_then_passing_is_passed_and_flaky_and_a_retry_starts_from_the_before_state() {
    let p = Project::new();
    let record = p.join("record");
    let script = format!(
        "if [ -e junk ]; then seen=yes; else seen=no; fi; \
         echo \"attempt $BORG_ATTEMPT junk=$seen\" >> '{}'; \
         if [ \"$BORG_ATTEMPT\" = 1 ]; then echo junk > junk; echo changed >> kept.txt; exit 1; fi; \
         echo good > good.txt",
        record.display()
    );
    p.write("tpl/kept.txt", "original\n");
    one_instance_plan(
        &p,
        "flaky",
        "timeout: 1m",
        &script,
        "  - {id: t, instance: w, prompt: go, retries: 2}\n",
    );
    // The template makes kept.txt part of the before-state.
    let plan = p
        .read("plan.yaml")
        .replace("role: developer\n", "role: developer\n    template: tpl\n");
    p.write("plan.yaml", plan);
    let ended = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("flaky");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    assert_eq!(t["flaky"], true);
    assert_eq!(t["attempts"], 2);
    let history = t["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[1]["status"], "passed");
    assert_eq!(report["summary"]["flaky"], 1);
    assert_eq!(report["summary"]["passed"], 1);
    assert_eq!(
        p.read("record"),
        "attempt 1 junk=no\nattempt 2 junk=no\n",
        "attempt 2 saw attempt 1's junk"
    );
    let files = p.join("workspaces/flaky/w/project-files");
    assert!(!files.join("junk").exists());
    assert_eq!(
        std::fs::read_to_string(files.join("kept.txt")).unwrap(),
        "original\n"
    );
    // The changes compare the before-state with the final attempt.
    let paths: Vec<&str> = t["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["good.txt"]);
    // Each attempt kept its own log.
    assert_eq!(history[0]["log"], "logs/t.1.log");
    assert!(p.latest("flaky").join("logs/t.1.log").exists());
}

#[test]
fn always_failing_with_two_retries_makes_exactly_three_attempts() {
    let p = Project::new();
    let record = p.join("record");
    one_instance_plan(
        &p,
        "failing",
        "timeout: 1m",
        &format!("echo \"$BORG_ATTEMPT\" >> '{}'; exit 3", record.display()),
        "  - {id: t, instance: w, prompt: go, retries: 2}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(ended.code, Some(1), "{}", ended.text());
    let report = p.report("failing");
    let t = task(&report, "t");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 3);
    assert_eq!(t["flaky"], false);
    assert_eq!(t["exit_code"], 3);
    assert_eq!(t["history"].as_array().unwrap().len(), 3);
    assert_eq!(p.read("record"), "1\n2\n3\n");
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["summary"]["flaky"], 0);
}

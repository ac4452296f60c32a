//! What the runner writes: a run directory that cannot be created and a log that cannot be
//! written (disk full) are clear errors that end every child, and secret values from the
//! environment never reach the logs, the reports or the runner's own output.

use crate::support::{Project, task};

use super::{
    Reaper, SECS, assert_no_survivor, assert_nowhere, inline_agent, marker, one_instance_plan,
    run_within, spawn, task_log,
};

#[test]
fn an_unwritable_run_directory_is_a_clear_error() {
    let p = Project::new();
    p.write("blocker", "a regular file\n");
    one_instance_plan(
        &p,
        "unwritable",
        "timeout: 1m",
        "echo hi",
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml", "--out", "blocker/run"], SECS(30));
    assert!(ended.code.is_some_and(|c| c != 0), "{}", ended.text());
    assert!(
        ended.stderr.contains("blocker"),
        "the error names the path: {}",
        ended.text()
    );
    assert!(!ended.stderr.contains("panicked"), "{}", ended.text());
}

#[test]
fn a_log_that_cannot_be_written_stops_the_run_and_ends_the_children() {
    // Disk full, simulated: the first task's log is a link to /dev/full (ENOSPC on write);
    // a task of another instance is still running then and must be ended.
    let p = Project::new();
    let mark = marker(3005);
    let _reaper = Reaper(mark.clone());
    std::fs::create_dir_all(p.join("out/logs")).unwrap();
    std::os::unix::fs::symlink("/dev/full", p.join("out/logs/t.1.log")).unwrap();
    let other_started = p.join("other-started");
    let full = inline_agent("sleep 1; echo some output that cannot be written");
    let long = inline_agent(&format!(
        "touch '{}'; sleep {mark}",
        other_started.display()
    ));
    p.plan(&format!(
        "name: full\ntimeout: 5m\ngrace: 1s\ninstances:\n  \
         - {{name: one, role: developer, agent: {full}}}\n  \
         - {{name: two, role: developer, agent: {long}}}\ntasks:\n  \
         - {{id: t, instance: one, prompt: go}}\n  - {{id: u, instance: two, prompt: go}}\n"
    ));
    let ended = run_within(&p, &["plan.yaml", "--out", "out"], SECS(30));
    assert!(
        other_started.exists(),
        "the other task never started: {}",
        ended.text()
    );
    assert_eq!(ended.code, Some(3), "{}", ended.text());
    assert!(
        ended.stderr.contains("t.1.log"),
        "the error names the path: {}",
        ended.text()
    );
    assert!(!ended.stderr.contains("panicked"), "{}", ended.text());
    assert_no_survivor(&mark);
}

#[test]
fn secret_values_never_reach_logs_or_reports() {
    let p = Project::new();
    let secret = "sekrit-value-123";
    one_instance_plan(
        &p,
        "secrets",
        "timeout: 1m",
        "echo \"stdout: $MY_API_KEY\"; echo \"stderr: $MY_API_KEY\" >&2; echo \"$MY_API_KEY\" > leaked.txt; \
         printf '{\"type\":\"result\",\"is_error\":false,\"result\":\"%s\"}\\n' \"$MY_API_KEY\"",
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = spawn(&p, &["plan.yaml"], &[("MY_API_KEY", secret)]).wait(SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("secrets");
    let t = task(&report, "t");
    let log = task_log(&p, "secrets", t);
    assert!(
        log.contains("stdout: [redacted]") && log.contains("stderr: [redacted]"),
        "{log}"
    );
    assert_eq!(t["result"], "[redacted]");
    // Nowhere in the run directory, nor on the runner's own output.
    assert_nowhere(&p.latest("secrets"), secret);
    assert!(!ended.stdout.contains(secret) && !ended.stderr.contains(secret));
}

#[test]
fn secrets_in_the_agents_words_and_command_line_are_redacted_everywhere() {
    let p = Project::new();
    let secret = "abcd-token-4567";
    // The secret comes from the plan's own agent env, is on the agent's command line, and in
    // the failing result line's words of both attempts (history, error, log, journal).
    p.plan(&format!(
        r#"
name: words
retries: 1
agent:
  kind: generic
  command: /bin/sh
  args: ["-c", "cat >/dev/null; echo 'uses {secret}'; printf '{{\"type\":\"result\",\"is_error\":true,\"result\":\"bad %s here\"}}\\n' \"$MY_TOKEN\""]
  env: {{MY_TOKEN: {secret}}}
instances: [{{name: w, role: developer}}]
tasks: [{{id: t, instance: w, prompt: go}}]
"#
    ));
    let ended = spawn(&p, &["plan.yaml"], &[]).wait(SECS(30));
    assert_eq!(ended.code, Some(1), "{}", ended.text());
    let report = p.report("words");
    let t = task(&report, "t");
    let said = "the agent reported an error: bad [redacted] here";
    assert_eq!(t["history"][0]["error"], said);
    assert_eq!(t["history"][1]["error"], said);
    assert!(task_log(&p, "words", t).contains("uses [redacted]"));
    assert_nowhere(&p.latest("words"), secret);
    assert_nowhere(&p.join("workspaces/words/w/session.md"), secret);
    assert_nowhere(&p.join("workspaces/words/w/logs"), secret);
    assert!(!ended.stdout.contains(secret) && !ended.stderr.contains(secret));
}

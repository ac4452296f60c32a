//! A run that stops starts nothing more: after a runner error (exit 3) no retry of a task
//! the runner killed is spawned, and that task is `interrupted`, not failed. What an agent
//! says can neither get past `--max-cost` (a negative cost) nor carry a secret into the run
//! directory (JSON-escaped in its output, in a file name or a link target).

use crate::support::{Project, task};

use super::{
    Reaper, SECS, assert_no_survivor, assert_nowhere, inline_agent, marker, one_instance_plan,
    run_within, spawn, task_log,
};

#[test]
fn a_runner_error_spawns_no_retry_and_the_killed_task_is_interrupted() {
    // Disk full, simulated: task `t`'s log is a link to /dev/full, so the runner fails
    // (exit 3) once `u`, of another instance and with retries left, is running.
    let p = Project::new();
    let mark = marker(3020);
    let _reaper = Reaper(mark.clone());
    std::fs::create_dir_all(p.join("out/logs")).unwrap();
    std::os::unix::fs::symlink("/dev/full", p.join("out/logs/t.1.log")).unwrap();
    let started = p.join("u-started");
    let attempts = p.join("u-attempts");
    let full = inline_agent(&format!(
        "i=0; while [ ! -e '{}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
         echo some output that cannot be written",
        started.display()
    ));
    let long = inline_agent(&format!(
        "echo $BORG_ATTEMPT >> '{}'; touch '{}'; sleep {mark}",
        attempts.display(),
        started.display()
    ));
    p.plan(&format!(
        "name: stop\ntimeout: 5m\ngrace: 1s\njobs: 2\ninstances:\n  \
         - {{name: one, role: developer, agent: {full}}}\n  \
         - {{name: two, role: developer, agent: {long}}}\ntasks:\n  \
         - {{id: t, instance: one, prompt: go}}\n  \
         - {{id: u, instance: two, prompt: go, retries: 2, timeout: 8s}}\n"
    ));
    let ended = run_within(&p, &["plan.yaml", "--out", "out"], SECS(90));
    assert!(started.exists(), "`u` never started: {}", ended.text());
    assert_eq!(ended.code, Some(3), "{}", ended.text());
    let spawned = std::fs::read_to_string(&attempts).unwrap_or_default();
    assert_eq!(
        spawned.lines().count(),
        1,
        "attempts of `u` spawned after the runner error: {spawned:?}\n{}",
        ended.text()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("out/report.json")).unwrap()).unwrap();
    let u = task(&report, "u");
    assert_eq!(u["status"], "interrupted", "{u:#}");
    assert_eq!(u["attempts"], 1, "{u:#}");
    assert_eq!(u["flaky"], false, "{u:#}");
    let error = u["error"].as_str().unwrap_or_default();
    assert!(error.contains("runner error"), "{u:#}");
    assert_no_survivor(&mark);
}

#[test]
fn a_negative_cost_is_unknown_and_does_not_get_past_max_cost() {
    let p = Project::new();
    one_instance_plan(
        &p,
        "cost",
        "timeout: 1m",
        "case $BORG_TASK_ID in a) c=-1000;; *) c=1;; esac; \
         printf '{\"type\":\"result\",\"is_error\":false,\"total_cost_usd\":%s}\\n' $c",
        "  - {id: a, instance: w, prompt: go}\n  \
         - {id: b, instance: w, prompt: go, needs: [a]}\n  \
         - {id: c, instance: w, prompt: go, needs: [b]}\n",
    );
    let ended = run_within(
        &p,
        &["plan.yaml", "--max-cost", "0.5", "--jobs", "1"],
        SECS(60),
    );
    let report = p.report("cost");
    let a = task(&report, "a");
    assert_eq!(a["status"], "passed", "{}\n{report:#}", ended.text());
    assert!(a["cost_usd"].is_null(), "{a:#}");
    assert!(
        a["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("invalid cost")),
        "{a:#}"
    );
    assert_eq!(task(&report, "b")["cost_usd"], 1.0, "{report:#}");
    // `b` alone reached the cap: `a`'s -1000 did not make room for `c`.
    let c = task(&report, "c");
    assert_eq!(c["status"], "skipped", "{c:#}");
    assert!(
        c["error"].as_str().unwrap_or_default().contains("cost cap"),
        "{c:#}"
    );
}

#[test]
fn a_secret_with_quotes_and_backslashes_is_redacted_as_json_escapes_it() {
    let p = Project::new();
    let secret = "pa\"ss\\word1";
    let escaped = "pa\\\"ss\\\\word1";
    one_instance_plan(
        &p,
        "jsonsecret",
        "timeout: 1m",
        // As Claude Code's stream-json prints a tool's output: inside a JSON string.
        "esc=$(printf '%s' \"$MY_PASSWORD\" | sed -e 's/\\\\/\\\\\\\\/g' -e 's/\"/\\\\\"/g'); \
         printf '{\"type\":\"user\",\"content\":\"%s\"}\\n' \"$esc\"; \
         printf '{\"type\":\"result\",\"is_error\":false,\"result\":\"said %s\"}\\n' \"$esc\"",
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = spawn(&p, &["plan.yaml"], &[("MY_PASSWORD", secret)]).wait(SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("jsonsecret");
    let t = task(&report, "t");
    assert_eq!(t["result"], "said [redacted]", "{t:#}");
    let log = task_log(&p, "jsonsecret", t);
    assert!(
        log.contains("{\"type\":\"user\",\"content\":\"[redacted]\"}"),
        "{log}"
    );
    for form in [secret, escaped] {
        assert_nowhere(&p.latest("jsonsecret"), form);
        assert!(!ended.stdout.contains(form) && !ended.stderr.contains(form));
    }
}

#[test]
fn a_secret_in_a_changed_path_or_a_link_target_is_redacted() {
    let p = Project::new();
    let secret = "sekrit-name-789";
    one_instance_plan(
        &p,
        "names",
        "timeout: 1m",
        "echo hi > \"file-$MY_API_KEY.txt\"; ln -s \"target-$MY_API_KEY\" link",
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = spawn(&p, &["plan.yaml"], &[("MY_API_KEY", secret)]).wait(SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("names");
    let changes = task(&report, "t")["changes"].as_array().unwrap().clone();
    let paths: Vec<&str> = changes
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"file-[redacted].txt"), "{changes:#?}");
    let link = changes
        .iter()
        .find(|c| c["path"] == "link")
        .expect("the link");
    assert_eq!(link["target_after"], "target-[redacted]", "{link:#}");
    assert_nowhere(&p.latest("names"), secret);
}

#[test]
fn a_runner_error_during_a_rate_limit_back_off_spawns_no_further_try() {
    // `u` is rate limited and waits (2 s and more) to try again; meanwhile `t`'s log, a
    // link to /dev/full, makes the runner fail: `u` must not be started again.
    let p = Project::new();
    std::fs::create_dir_all(p.join("out/logs")).unwrap();
    std::os::unix::fs::symlink("/dev/full", p.join("out/logs/t.1.log")).unwrap();
    let started = p.join("u-started");
    let spawns = p.join("u-spawns");
    let full = inline_agent(&format!(
        "i=0; while [ ! -e '{}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
         sleep 0.3; echo some output that cannot be written",
        started.display()
    ));
    let limited = inline_agent(&format!(
        "echo spawned >> '{}'; touch '{}'; \
         printf '{{\"type\":\"result\",\"is_error\":true,\"result\":\"rate limit exceeded (429)\"}}\\n'; \
         exit 1",
        spawns.display(),
        started.display()
    ));
    p.plan(&format!(
        "name: backoff\ntimeout: 1m\ngrace: 1s\njobs: 2\ninstances:\n  \
         - {{name: one, role: developer, agent: {full}}}\n  \
         - {{name: two, role: developer, agent: {limited}}}\ntasks:\n  \
         - {{id: t, instance: one, prompt: go}}\n  \
         - {{id: u, instance: two, prompt: go, retries: 1}}\n"
    ));
    let ended = run_within(&p, &["plan.yaml", "--out", "out"], SECS(90));
    assert_eq!(ended.code, Some(3), "{}", ended.text());
    let spawned = std::fs::read_to_string(&spawns).unwrap_or_default();
    assert_eq!(
        spawned.lines().count(),
        1,
        "`u` was started again after the runner error\n{}",
        ended.text()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("out/report.json")).unwrap()).unwrap();
    let u = task(&report, "u");
    assert_eq!(u["status"], "interrupted", "{u:#}");
    assert_eq!(u["attempts"], 1, "{u:#}");
}

//! Failures of the model's side: an API that never answers times out and leaves no process
//! of the CLI behind; an API error fails the task in the CLI's own words.

use std::time::{Duration, Instant};

use crate::support::fake_api::{FakeApi, Turn};
use crate::support::{processes_in, task, wait_for};

use super::rig;

// 4. A model that never answers: the timeout ends the CLI and everything it started.

#[test]
fn a_hanging_model_times_out_and_no_process_of_the_cli_survives() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 3s
grace: 1s
instances:
  - {name: dev, role: developer}
tasks:
  - {id: hang, instance: dev, prompt: "answer me"}
"#,
    );
    let api = FakeApi::start(vec![Turn::Hang]);
    let workspace = rig.root.join("workspaces");

    let started = Instant::now();
    let (out, seen) = std::thread::scope(|s| {
        let run = s.spawn(|| rig.borg(&api, &["plan.yaml"], &[]));
        // While the model hangs, the CLI's processes are found by their working dir: the
        // check below can see them.
        let mut seen = Vec::new();
        wait_for(Duration::from_secs(20), || {
            if api.requests().is_empty() {
                return false;
            }
            seen = processes_in(&workspace);
            !seen.is_empty()
        });
        (run.join().unwrap(), seen)
    });
    let elapsed = started.elapsed();

    assert_eq!(out.status.code(), Some(1), "{}", rig.explain(&out));
    assert!(!seen.is_empty(), "the CLI was never seen running");
    assert!(elapsed < Duration::from_secs(25), "took {elapsed:?}");
    let r = rig.report();
    let t = task(&r, "hang");
    assert_eq!(t["status"], "timed_out", "{t:#}");
    assert_eq!(t["error"], "the agent timed out after 3s");
    // Ended by borg-batch's SIGTERM: the CLI traps it and exits 143 itself.
    assert!(t["exit_code"].is_null() || t["exit_code"] == 143, "{t:#}");
    let left = processes_in(&workspace);
    assert!(left.is_empty(), "left running: {left:#?} (seen: {seen:#?})");
    // And they stay gone: nothing was merely slow to notice.
    std::thread::sleep(Duration::from_millis(500));
    let left = processes_in(&workspace);
    assert!(left.is_empty(), "left running: {left:#?}");
}

// 6. An error result: failed, in the CLI's own words.

#[test]
fn an_api_error_fails_the_task_with_the_clis_own_words() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: a, role: developer}
  - {name: b, role: developer}
tasks:
  - {id: server, instance: a, prompt: "[task:server] hi"}
  - {id: bad-request, instance: b, prompt: "[task:bad] hi"}
"#,
    );
    // A 400 reaches the user only after the CLI retried it with fewer betas (6 requests).
    let api = FakeApi::start_keyed([
        (
            "[task:server]",
            vec![Turn::status(500, "the fake broke down")],
        ),
        (
            "[task:bad]",
            vec![Turn::status(400, "messages: this request is malformed"); 8],
        ),
    ]);

    let out = rig.borg(&api, &["plan.yaml"], &[]);

    assert_eq!(out.status.code(), Some(1), "{}", rig.explain(&out));
    let r = rig.report();
    let server = task(&r, "server");
    assert_eq!(server["status"], "failed", "{server:#}");
    assert_eq!(server["exit_code"], 1);
    assert_eq!(server["attempts"], 1);
    let error = server["error"].as_str().unwrap();
    assert!(error.contains("API Error: 500"), "{error}");
    assert!(error.contains("the fake broke down"), "{error}");
    assert!(
        server["notes"].is_null(),
        "a 500 is not a rate limit: {server:#}"
    );
    assert_eq!(api.requests_for("[task:server]").len(), 1, "not retried");

    let bad = task(&r, "bad-request");
    assert_eq!(bad["status"], "failed", "{bad:#}");
    let error = bad["error"].as_str().unwrap();
    assert!(error.contains("API Error: 400"), "{error}");
    assert!(error.contains("this request is malformed"), "{error}");
    assert_eq!(r["summary"]["failed"], 2);
}

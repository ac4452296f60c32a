//! Agent output under stress: more than a pipe's worth on both streams at once must not
//! deadlock, and endless output is capped in the log (head and tail kept) until the timeout.

use serde_json::Value;

use crate::support::{Project, task};

use super::{SECS, one_instance_plan, run_file, run_within, task_log};

#[test]
fn more_than_a_pipe_on_stdout_and_stderr_does_not_deadlock() {
    let p = Project::new();
    // 16 alternations of 64 KiB on each stream: 1 MiB each, interleaved, every write a full
    // pipe buffer, so a runner that drained only one stream (or only after `wait`) hangs.
    let script = "i=0; while [ $i -lt 16 ]; do \
        head -c 65536 /dev/zero | tr '\\000' 'O'; \
        head -c 65536 /dev/zero | tr '\\000' 'E' >&2; \
        i=$((i+1)); done; echo; echo OUT-END; echo ERR-END >&2";
    one_instance_plan(
        &p,
        "flood2",
        "timeout: 60s\ngrace: 1s",
        script,
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(60));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("flood2");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    assert_eq!(t["leaked"], false);
    let log = task_log(&p, "flood2", t);
    assert!(
        log.contains("OUT-END") && log.contains("ERR-END"),
        "the log lacks an end marker"
    );
    let count = |c: char| log.chars().filter(|&x| x == c).count();
    // The log's first line (the command) holds a few of these letters too.
    assert!(
        (1 << 20..(1 << 20) + 100).contains(&count('O')),
        "stdout bytes: {}",
        count('O')
    );
    assert!(
        (1 << 20..(1 << 20) + 100).contains(&count('E')),
        "stderr bytes: {}",
        count('E')
    );
    assert!(!log.contains("[truncated"), "2 MiB is under the cap");
}

#[test]
fn endless_output_times_out_with_a_capped_log() {
    let p = Project::new();
    one_instance_plan(
        &p,
        "endless",
        "grace: 1s",
        // Long lines: a debug-build runner on a loaded machine still gets well past the
        // 8 MiB cap in 2 s (two-byte lines cost it far more per byte).
        "yes \"$(head -c 1000 /dev/zero | tr '\\000' y)\"",
        "  - {id: t, instance: w, prompt: go, timeout: 2s}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(ended.code, Some(1), "{}", ended.text());
    let report = p.report("endless");
    let t = task(&report, "t");
    assert_eq!(t["status"], "timed_out");
    assert_eq!(t["exit_code"], Value::Null, "ended by a signal");
    let log = run_file(&p, "endless", t["log"].as_str().unwrap());
    assert!(
        log.len() < 9 * 1024 * 1024,
        "the log is not capped: {} bytes",
        log.len()
    );
    let text = String::from_utf8_lossy(&log);
    let marker = text
        .find("[truncated ")
        .expect("the log has a truncation marker");
    let n: u64 = text[marker + 11..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0, "{n} bytes truncated");
    // Head and tail both hold output.
    assert!(
        text[..marker].trim_end().ends_with('y'),
        "the head holds output"
    );
    assert!(text[marker..].contains("yy\nyy"), "the tail holds output");
}

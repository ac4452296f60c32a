//! Hostile workspaces and inputs: FIFOs in a template or made by the agent, a 1 GB sparse
//! file, a prompt of megabytes to an agent that never reads it. None may block the run or
//! blow up the run directory.

use serde_json::Value;

use crate::support::{Project, task};

use super::{SECS, one_instance_plan, run_within, task_log};

#[test]
fn fifos_in_a_template_and_made_by_the_agent_do_not_block() {
    let p = Project::new();
    p.write("tpl/file.txt", "hello\n");
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
    nix::unistd::mkfifo(&p.join("tpl/pipe"), mode).unwrap();
    one_instance_plan(
        &p,
        "fifo",
        "timeout: 1m",
        "mkfifo agent-pipe; echo new > new.txt",
        "  - {id: t, instance: w, prompt: go}\n  - {id: u, instance: w, prompt: again}\n",
    );
    let plan = p
        .read("plan.yaml")
        .replace("role: developer\n", "role: developer\n    template: tpl\n");
    p.write("plan.yaml", plan);
    let ended = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("fifo");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    let notes = t["notes"].to_string();
    assert!(
        notes.contains("`pipe`"),
        "no note about the template's FIFO: {notes}"
    );
    let files = p.join("workspaces/fifo/w/project-files");
    assert!(files.join("file.txt").exists());
    assert!(!files.join("pipe").exists(), "the FIFO was copied");
    let paths: Vec<&str> = t["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["new.txt"], "the agent's FIFO is no change");
    // The next task's before-snapshot meets the FIFO too, and skips it.
    let u = task(&report, "u");
    assert_eq!(u["status"], "passed");
    let notes = u["notes"].to_string();
    assert!(
        notes.contains("agent-pipe"),
        "no note about the agent's FIFO: {notes}"
    );
}

#[test]
fn a_1_gb_sparse_file_is_sized_not_diffed() {
    let p = Project::new();
    one_instance_plan(
        &p,
        "sparse",
        "timeout: 1m",
        "truncate -s 1G big.bin",
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(60));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("sparse");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    let c = crate::support::change(t, "big.bin");
    assert_eq!(c["kind"], "added");
    assert_eq!(c["size_after"], 1_073_741_824_u64);
    // A size line, not a unified diff.
    let diff = c["diff"].as_str().unwrap_or("");
    assert!(
        !diff.contains("@@") && !diff.contains("+++"),
        "a diff of a 1 GB file: {diff:.200}"
    );
    assert_eq!(t["patch"], Value::Null);
    // Nothing near that size was copied anywhere by the runner.
    let du = std::process::Command::new("du")
        .arg("-sk")
        .arg(p.path())
        .output()
        .unwrap();
    let kib: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(kib < 100 * 1024, "the project takes {kib} KiB on disk");
}

#[test]
fn a_prompt_of_megabytes_to_an_agent_that_never_reads_it() {
    let p = Project::new();
    let line = "x".repeat(99);
    let prompt: String = (0..50_000).map(|_| format!("      {line}\n")).collect();
    one_instance_plan(
        &p,
        "bigprompt",
        "timeout: 1m",
        "sleep 0.2; echo never read stdin",
        &format!("  - id: t\n    instance: w\n    prompt: |\n{prompt}"),
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(60));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let t = task(&p.report("bigprompt"), "t").clone();
    assert_eq!(t["status"], "passed", "{t:#}");
    assert!(task_log(&p, "bigprompt", &t).contains("never read stdin"));
}

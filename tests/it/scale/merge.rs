//! `borg-batch merge`: five shards joined give the tasks, statuses and changes of one
//! unsharded run; a missing or doubled shard and runs of different plans are refused
//! (exit 2, naming them); `--rerun-failed` after a merge reruns what did not pass.

use serde_json::Value;

use crate::support::{Project, output_text, task};

use super::TEAM;

/// (id, status, changed paths with their diffs) of every task, in plan order.
fn outline(report: &Value) -> Vec<(String, String, String)> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let changes: Vec<String> = t["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| format!("{} {} {}", c["path"], c["kind"], c["diff"]))
                .collect();
            (
                t["id"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
                changes.join("\n"),
            )
        })
        .collect()
}

fn json(p: &Project, rel: &str) -> Value {
    serde_json::from_str(&p.read(rel)).unwrap()
}

#[test]
fn five_shards_merged_equal_one_unsharded_run() {
    let whole = Project::new();
    whole.plan(TEAM);
    let out = whole.run(&["plan.yaml", "--out", "whole"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let unsharded = json(&whole, "whole/report.json");

    let p = Project::new();
    p.plan(TEAM);
    let mut dirs = Vec::new();
    for k in 1..=5 {
        let dir = format!("shards/{k}");
        let out = p.run(&["plan.yaml", "--shard", &format!("{k}/5"), "--out", &dir]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            output_text(&out)
        );
        dirs.push(dir);
    }
    let mut args = vec!["merge"];
    args.extend(dirs.iter().map(String::as_str));
    args.extend(["--out", "merged"]);
    let out = p.run(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "e2 failed: {}",
        output_text(&out)
    );
    let merged = json(&p, "merged/report.json");
    assert_eq!(outline(&merged), outline(&unsharded));
    assert_eq!(merged["summary"], unsharded["summary"]);
    assert!(merged.get("shard").is_none());
    for file in [
        "report.md",
        "junit.xml",
        "report.html",
        "run.json",
        "journal.jsonl",
    ] {
        assert!(p.join("merged").join(file).is_file(), "{file}");
    }
    // Logs and patches are carried, their paths pointing inside the merged run.
    for t in merged["tasks"].as_array().unwrap() {
        for key in ["log", "patch"] {
            if let Some(rel) = t[key].as_str() {
                assert!(p.join("merged").join(rel).is_file(), "{rel}");
            }
        }
    }
    // The merged run is the plan's latest: --rerun-failed reruns just e2.
    assert!(p.latest("team").ends_with("merged"));
    let out = p.run(&["plan.yaml", "--rerun-failed"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let r = p.report("team");
    assert_eq!(task(&r, "e2")["carried_over"], false);
    for id in ["a1", "b1", "c1", "d1", "e1", "f1"] {
        assert_eq!(task(&r, id)["carried_over"], true, "{id}");
        assert_eq!(task(&r, id)["status"], "passed", "{id}");
    }
}

#[test]
fn a_missing_or_doubled_shard_and_different_plans_are_refused() {
    let p = Project::new();
    p.plan(TEAM);
    for k in 1..=3 {
        let out = p.run(&[
            "plan.yaml",
            "--shard",
            &format!("slice:{k}/3"),
            "--out",
            &format!("s{k}"),
        ]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            output_text(&out)
        );
    }
    let refused = |args: &[&str], words: &[&str]| {
        let out = p.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            output_text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        for w in words {
            assert!(err.contains(w), "{args:?}: {err}");
        }
    };
    refused(
        &["merge", "s1", "s3", "--out", "m"],
        &["slice:2/3", "missing"],
    );
    refused(
        &["merge", "s1", "s2", "s2", "s3", "--out", "m"],
        &["given twice", "s2"],
    );
    let other = p.write(
        "other.yaml",
        TEAM.replace("name: team", "name: other")
            .replace("{agent}", &crate::support::scripted_agent()),
    );
    let out = p.run(&[other.to_str().unwrap(), "--out", "o"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    refused(
        &["merge", "s1", "o", "--out", "m"],
        &["different plans", "s1", "`o`"],
    );
    assert!(!p.join("m").exists(), "a refused merge writes nothing");
}

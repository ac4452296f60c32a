//! `--shard K/N`, `slice:K/N` and `auto`: each task runs in exactly one shard, the others
//! are `skipped` "in shard M/N", the shard is recorded, and `--dry-run` shows every shard.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{Project, output_text};

use super::TEAM;

/// The tasks a shard's report says it ran (not skipped "in shard").
fn ran(report: &Value) -> Vec<String> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t.get("in_shard").is_none())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_task_runs_in_exactly_one_of_n_shards() {
    for spec in ["{k}/{n}", "slice:{k}/{n}"] {
        for n in [1, 3, 5] {
            let p = Project::new();
            p.plan(TEAM);
            let mut owner: BTreeMap<String, u32> = BTreeMap::new();
            for k in 1..=n {
                let shard = spec
                    .replace("{k}", &k.to_string())
                    .replace("{n}", &n.to_string());
                let out_dir = format!("shard-{k}");
                let out = p.run(&["plan.yaml", "--shard", &shard, "--out", &out_dir]);
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "{}",
                    output_text(&out)
                );
                let report: Value =
                    serde_json::from_str(&p.read(&format!("{out_dir}/report.json"))).unwrap();
                assert_eq!(report["shard"]["index"], k);
                assert_eq!(report["shard"]["total"], n);
                let meta: Value =
                    serde_json::from_str(&p.read(&format!("{out_dir}/run.json"))).unwrap();
                assert_eq!(meta["shard"], report["shard"]);
                for t in report["tasks"].as_array().unwrap() {
                    if let Some(m) = t.get("in_shard") {
                        assert_eq!(t["status"], "skipped");
                        let mode = if spec.starts_with("slice") {
                            "slice:"
                        } else {
                            ""
                        };
                        assert_eq!(t["error"], format!("in shard {mode}{m}/{n}"));
                    }
                }
                for id in ran(&report) {
                    assert!(owner.insert(id.clone(), k).is_none(), "{id} ran twice");
                }
            }
            assert_eq!(owner.len(), 7, "{spec} {n}: {owner:?}");
            // Groups stay whole: a1, b1, c1 together; d1, e1, e2 together.
            assert_eq!(owner["a1"], owner["b1"]);
            assert_eq!(owner["b1"], owner["c1"]);
            assert_eq!(owner["d1"], owner["e1"]);
            assert_eq!(owner["e1"], owner["e2"]);
            // Work flowed inside the shard: c1 ran after its needs passed there.
            assert!(
                p.read("workspaces/team/c/project-files/out.txt")
                    .contains("c1")
            );
        }
    }
}

#[test]
fn dry_run_shows_what_each_shard_runs() {
    let p = Project::new();
    p.plan(TEAM);
    let out = p.run(&["plan.yaml", "--dry-run", "--shard", "slice:2/3"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shard slice:1/3: instances a+b+c; tasks a1, b1, c1"),
        "{text}"
    );
    assert!(
        text.contains("* shard slice:2/3: instances d+e; tasks d1, e1, e2"),
        "{text}"
    );
    assert!(
        text.contains("shard slice:3/3: instances f; tasks f1"),
        "{text}"
    );
    assert!(text.contains("3 of 7 tasks"), "{text}");
    assert!(!p.join("runs").exists() && !p.join("workspaces").exists());
}

/// `cmd` with no CI engine's shard variables (the tests may run inside such an engine).
fn without_engines(mut cmd: std::process::Command) -> std::process::Command {
    for name in [
        "CI_NODE_INDEX",
        "CI_NODE_TOTAL",
        "CIRCLE_NODE_INDEX",
        "CIRCLE_NODE_TOTAL",
        "BUILDKITE_PARALLEL_JOB",
        "BUILDKITE_PARALLEL_JOB_COUNT",
        "JOB_COMPLETION_INDEX",
        "BORG_SHARD_TOTAL",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

#[test]
fn auto_reads_each_engine_and_refuses_bad_values() {
    let engines: [(&[(&str, &str)], &str); 4] = [
        (&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")], "2/3"),
        (
            &[("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "3")],
            "2/3",
        ),
        (
            &[
                ("BUILDKITE_PARALLEL_JOB", "1"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "3"),
            ],
            "2/3",
        ),
        (
            &[("JOB_COMPLETION_INDEX", "1"), ("BORG_SHARD_TOTAL", "3")],
            "2/3",
        ),
    ];
    let p = Project::new();
    p.plan(TEAM);
    for (vars, want) in engines {
        let mut cmd = without_engines(p.command());
        cmd.args(["plan.yaml", "--dry-run", "--shard", "auto"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("* shard {want}")),
            "{vars:?}: {text}"
        );
    }
    for vars in [
        &[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "3")][..],
        &[("CIRCLE_NODE_INDEX", "3"), ("CIRCLE_NODE_TOTAL", "3")],
        &[("JOB_COMPLETION_INDEX", "0")],
        &[],
    ] {
        let mut cmd = without_engines(p.command());
        cmd.args(["plan.yaml", "--shard", "auto"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{vars:?}: {}",
            output_text(&out)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("--shard auto"));
    }
    let out = p.run(&["plan.yaml", "--shard", "4/3"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(!p.join("runs").exists());
}

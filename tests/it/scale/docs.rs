//! docs/scale-out.md: every YAML block parses, and each engine's commands, simulated here
//! (N shard runs with its variables set, then the merge), give the tasks and statuses of one
//! unsharded run.

use serde_json::Value;

use crate::support::{Project, output_text};

use super::TEAM;

fn yaml_blocks() -> Vec<String> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scale-out.md")).unwrap();
    text.split("```yaml\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap().to_string())
        .collect()
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].to_string(), t["status"].to_string()))
        .collect()
}

#[test]
fn every_yaml_block_parses_and_names_what_its_engine_needs() {
    let blocks = yaml_blocks();
    assert_eq!(blocks.len(), 3);
    for b in &blocks {
        let _: serde_yaml::Value = serde_yaml::from_str(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
    }
    assert!(blocks[0].contains("matrix:") && blocks[0].contains("borg-shard-${{ matrix.shard }}"));
    assert!(blocks[0].contains("borg-batch merge"));
    assert!(blocks[1].contains("parallel: 3") && blocks[1].contains("--shard auto"));
    assert!(
        blocks[2].contains("completionMode: Indexed") && blocks[2].contains("JOB_COMPLETION_INDEX")
    );
}

#[test]
fn each_engines_commands_simulated_give_the_unsharded_outcome() {
    let whole = Project::new();
    whole.plan(TEAM);
    let out = whole.run(&["plan.yaml", "--out", "whole"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let want = statuses(&serde_json::from_str(&whole.read("whole/report.json")).unwrap());

    // (shard flag, the engine's variables for shard k of 3 as (name, value)).
    type Vars = fn(u32) -> Vec<(&'static str, String)>;
    let engines: [(&str, Vars); 3] = [
        ("github", |_| vec![]),
        ("gitlab", |k| {
            vec![
                ("CI_NODE_INDEX", k.to_string()),
                ("CI_NODE_TOTAL", "3".into()),
            ]
        }),
        ("kubernetes", |k| {
            vec![
                ("JOB_COMPLETION_INDEX", (k - 1).to_string()),
                ("BORG_SHARD_TOTAL", "3".into()),
            ]
        }),
    ];
    for (engine, vars) in engines {
        let p = Project::new();
        p.plan(TEAM);
        for k in 1..=3u32 {
            let shard = if engine == "github" {
                format!("{k}/3")
            } else {
                "auto".into()
            };
            let mut cmd = p.command();
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
            for (name, value) in vars(k) {
                cmd.env(name, value);
            }
            // Each machine starts from a clean checkout: its own folder for the workspaces.
            cmd.args([
                "plan.yaml",
                "--shard",
                &shard,
                "--out",
                &format!("shards/{k}"),
            ])
            .args(["--workspaces", &format!("machine-{k}")]);
            let out = cmd.output().unwrap();
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{engine}: {}",
                output_text(&out)
            );
        }
        let out = p.run(&[
            "merge", "shards/1", "shards/2", "shards/3", "--out", "merged",
        ]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{engine}: {}",
            output_text(&out)
        );
        let got = statuses(&serde_json::from_str(&p.read("merged/report.json")).unwrap());
        assert_eq!(got, want, "{engine}");
    }
}

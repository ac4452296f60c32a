//! Snapshots of the reports of a real run: the bundled demo plan with its scripted agent,
//! so every byte comes from the runner, snapshots, diffs and renderers together. Run ids,
//! times and durations are redacted; everything else must stay exactly as reviewed.

use std::process::Command;

use crate::support::{Project, output_text};

/// Runs the demo plan in a fresh project and returns its run directory.
fn demo_run(p: &Project) -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    for dir in ["plans", "fixtures"] {
        let status = Command::new("cp")
            .args(["-a", &format!("{root}/{dir}"), "."])
            .current_dir(p.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = p.run(&["plans/demo.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    p.latest("demo")
}

/// Filters for what differs between runs: ids, times, durations.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[run-id]",
        ),
        (
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
            "[time]",
        ),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[time]"),
        (r"\b\d+(\.\d+)?(ms|s)\b", "[duration]"),
        (r#"time="[\d.]+""#, r#"time="[secs]""#),
        (r#""duration_ms": \d+"#, r#""duration_ms": "[ms]""#),
    ]
}

#[test]
fn the_demo_runs_reports_match_their_snapshots() {
    let p = Project::new();
    let run = demo_run(&p);
    let read = |name: &str| std::fs::read_to_string(run.join(name)).unwrap();
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!("demo_report_json", read("report.json"));
        insta::assert_snapshot!("demo_report_md", read("report.md"));
        insta::assert_snapshot!("demo_junit", read("junit.xml"));
    });
}

//! When tasks run: instances in parallel up to `--jobs`, the tasks of one instance one at a
//! time in file order, and `--max-cost` stopping new starts once reached.

use std::time::Instant;

use crate::support::{Project, output_text, task};

fn sleepers(instances: usize, per_instance: usize, seconds: &str, record: &str) -> String {
    let mut yaml = String::from(
        "name: par\ntimeout: 1m\nagent: {kind: generic, command: \"{agent}\"}\ninstances:\n",
    );
    for i in 0..instances {
        yaml.push_str(&format!("  - {{name: i{i}, role: developer}}\n"));
    }
    yaml.push_str("tasks:\n");
    for i in 0..instances {
        for t in 0..per_instance {
            yaml.push_str(&format!(
                "  - id: t{i}-{t}\n    instance: i{i}\n    prompt: \"@record {record}\\n@sleep {seconds}\"\n"
            ));
        }
    }
    yaml
}

#[test]
fn four_instances_run_in_parallel_with_jobs_4() {
    let p = Project::new();
    let record = p.join("record.txt");
    p.plan(&sleepers(4, 1, "1", &record.to_string_lossy()));
    let timed = |jobs: &str| {
        let started = Instant::now();
        let out = p.run(&["plan.yaml", "--jobs", jobs]);
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        started.elapsed().as_secs_f64()
    };
    let serial = timed("1");
    let parallel = timed("4");
    let ratio = parallel / serial;
    eprintln!("jobs 4 / jobs 1 wall time: {parallel:.2}s / {serial:.2}s = {ratio:.2}");
    // Ideal is 0.25; anything under 0.6 shows the tasks overlapped.
    assert!(
        ratio < 0.6,
        "jobs 4 took {parallel:.2}s, jobs 1 took {serial:.2}s"
    );
}

#[test]
fn tasks_of_one_instance_never_overlap_and_keep_file_order() {
    let p = Project::new();
    let record = p.join("record.txt");
    p.plan(&sleepers(2, 3, "0.3", &record.to_string_lossy()));
    let out = p.run(&["plan.yaml", "--jobs", "4"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let lines = std::fs::read_to_string(&record).unwrap();
    for inst in ["t0-", "t1-"] {
        let events: Vec<&str> = lines.lines().filter(|l| l.starts_with(inst)).collect();
        let expected: Vec<String> = (0..3)
            .flat_map(|t| [format!("{inst}{t} start 1"), format!("{inst}{t} end 1")])
            .collect();
        assert_eq!(
            events, expected,
            "instance {inst} overlapped or reordered:\n{lines}"
        );
    }
}

#[test]
fn max_cost_stops_starting_tasks_once_reached() {
    let p = Project::new();
    p.plan(
        r#"
name: capped
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer}]
tasks:
  - {id: one, instance: dev, prompt: "@cost 0.40"}
  - {id: two, instance: dev, prompt: "@cost 0.40"}
  - {id: three, instance: dev, prompt: "@cost 0.40"}
"#,
    );
    let out = p.run(&["plan.yaml", "--max-cost", "0.75"]);
    // Every task that ran passed; the capped one never started (and --rerun-failed runs it).
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("capped");
    assert_eq!(task(&r, "one")["status"], "passed");
    assert_eq!(task(&r, "two")["status"], "passed");
    let three = task(&r, "three");
    assert_eq!(three["status"], "skipped");
    assert_eq!(three["error"], "cost cap reached");
    assert_eq!(r["summary"]["cost_usd"], 0.8);
}

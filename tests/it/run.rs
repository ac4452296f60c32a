//! A plan run end to end with the scripted agent: statuses, change kinds, patches that
//! `git apply` reproduces, parallelism, ordering within an instance, session.md, `--only`,
//! `--fresh`, `--dry-run`, and the run directory's files.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::support::{Project, change, output_text, task};

const THREE_STATUSES: &str = r#"
name: statuses
timeout: 20s
grace: 1s
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: a, role: developer}
  - {name: b, role: tester}
  - {name: c, role: reviewer}
tasks:
  - id: good
    instance: a
    prompt: "@write ok.txt\nfine\n@end"
  - id: bad
    instance: b
    prompt: "@stderr something broke\n@exit 3"
  - id: slow
    instance: c
    timeout: 1s
    prompt: "@sleep 30"
  - id: after-bad
    instance: a
    needs: [bad]
    prompt: "@write never.txt\nx\n@end"
  - id: after-good
    instance: a
    needs: [good]
    prompt: "@print hello"
"#;

#[test]
fn every_status_is_reported_and_a_failure_exits_1() {
    let p = Project::new();
    p.plan(THREE_STATUSES);
    let started = Instant::now();
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        started.elapsed().as_secs() < 20,
        "the 1s timeout ended the slow task"
    );
    let r = p.report("statuses");
    assert_eq!(task(&r, "good")["status"], "passed");
    assert_eq!(task(&r, "good")["exit_code"], 0);
    let bad = task(&r, "bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["exit_code"], 3);
    assert_eq!(bad["error"], "the agent exited with code 3");
    let slow = task(&r, "slow");
    assert_eq!(slow["status"], "timed_out");
    assert_eq!(slow["error"], "the agent timed out after 1s");
    assert!(slow["exit_code"].is_null(), "ended by a signal: {slow}");
    let skipped = task(&r, "after-bad");
    assert_eq!(skipped["status"], "skipped");
    assert_eq!(skipped["error"], "need `bad` did not pass (failed)");
    assert_eq!(skipped["attempts"], 0);
    assert_eq!(task(&r, "after-good")["status"], "passed");
    assert!(!p.join("workspaces/a/project-files/never.txt").exists());
    let s = &r["summary"];
    assert_eq!(
        (
            s["total"].as_u64(),
            s["passed"].as_u64(),
            s["failed"].as_u64()
        ),
        (Some(5), Some(2), Some(1))
    );
    assert_eq!(
        (s["timed_out"].as_u64(), s["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    // The failing agent's own words are in its log.
    let log = std::fs::read_to_string(p.latest("statuses").join("logs/bad.1.log")).unwrap();
    assert!(log.contains("something broke"), "{log}");
}

#[test]
fn report_json_has_every_field_of_the_spec() {
    let p = Project::new();
    p.plan(THREE_STATUSES);
    p.run(&["plan.yaml"]);
    let r = p.report("statuses");
    for key in [
        "run_id",
        "plan",
        "plan_name",
        "carried_from",
        "started_at",
        "finished_at",
        "summary",
        "tasks",
    ] {
        assert!(r.get(key).is_some(), "report.json lacks `{key}`");
    }
    for key in [
        "total",
        "passed",
        "failed",
        "timed_out",
        "skipped",
        "interrupted",
        "flaky",
        "cost_usd",
    ] {
        assert!(r["summary"].get(key).is_some(), "summary lacks `{key}`");
    }
    let good = task(&r, "good");
    for key in [
        "id",
        "instance",
        "status",
        "carried_over",
        "attempts",
        "flaky",
        "leaked",
        "exit_code",
        "duration_ms",
        "session_id",
        "cost_usd",
        "result",
        "error",
        "tests",
        "log",
        "patch",
        "history",
        "changes",
    ] {
        assert!(good.get(key).is_some(), "task lacks `{key}`");
    }
    assert_eq!(good["session_id"], "scripted-a");
    assert_eq!(good["cost_usd"], 0.0012);
    assert_eq!(good["result"], "done: good");
    assert_eq!(good["log"], "logs/good.1.log");
    assert_eq!(good["patch"], "diffs/good.patch");
    assert_eq!(good["history"][0]["attempt"], 1);
    assert_eq!(good["history"][0]["status"], "passed");
    let c = change(good, "ok.txt");
    for key in [
        "path",
        "kind",
        "binary",
        "symlink",
        "size_before",
        "size_after",
        "diff",
    ] {
        assert!(c.get(key).is_some(), "change lacks `{key}`");
    }
    // Every file the spec lists is in the run directory.
    let dir = p.latest("statuses");
    for file in [
        "report.json",
        "report.md",
        "junit.xml",
        "report.html",
        "journal.jsonl",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    // The journal has a line per finished attempt and per task.
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let kinds: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "attempt").count(),
        4,
        "{journal}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "task").count(),
        5,
        "{journal}"
    );
    // Two tasks printed a result line with a cost (the failed and timed-out ones did not).
    assert_eq!(r["summary"]["cost_usd"], 0.0024);
}

#[test]
fn every_change_kind_is_reported() {
    let p = Project::new();
    p.write("template/keep.txt", "one\ntwo\nthree\n");
    p.write("template/old.txt", "to be removed\n");
    p.write("template/tool.sh", "#!/bin/sh\necho hi\n");
    p.write("template/link-target.txt", "target\n");
    std::os::unix::fs::symlink("link-target.txt", p.join("template/link")).unwrap();
    p.plan(
        r#"
name: kinds
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer, template: template}]
tasks:
  - id: change
    instance: dev
    prompt: |
      @write keep.txt
      one
      TWO
      three
      @end
      @delete old.txt
      @write deep/new/file.txt
      brand new
      @end
      @binary blob.bin
      @symlink keep.txt link
      @symlink keep.txt newlink
      @chmod 755 link-target.txt
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("kinds");
    let t = task(&r, "change");
    let modified = change(t, "keep.txt");
    assert_eq!(modified["kind"], "modified");
    assert!(
        modified["diff"].as_str().unwrap().contains("-two\n+TWO"),
        "{modified}"
    );
    assert_eq!(change(t, "old.txt")["kind"], "deleted");
    let added = change(t, "deep/new/file.txt");
    assert_eq!(added["kind"], "added");
    assert_eq!(added["size_after"], 10);
    assert!(added["size_before"].is_null());
    let blob = change(t, "blob.bin");
    assert_eq!(
        (blob["kind"].as_str(), blob["binary"].as_bool()),
        (Some("added"), Some(true))
    );
    assert!(blob["diff"].is_null());
    let link = change(t, "link");
    assert_eq!(
        (link["kind"].as_str(), link["symlink"].as_bool()),
        (Some("modified"), Some(true))
    );
    let newlink = change(t, "newlink");
    assert_eq!(
        (newlink["kind"].as_str(), newlink["symlink"].as_bool()),
        (Some("added"), Some(true))
    );
    let mode = change(t, "link-target.txt");
    assert_eq!(mode["kind"], "modified");
    assert_eq!(mode["mode_before"], 0o644);
    assert_eq!(mode["mode_after"], 0o755);
    // Nothing unchanged is listed.
    assert!(
        t["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["path"] != "tool.sh")
    );
}

#[test]
fn the_patch_applied_to_the_template_reproduces_the_workspace() {
    let p = Project::new();
    p.write("template/a.txt", "alpha\nbeta\ngamma\n");
    p.write("template/no-newline.txt", "last line without newline");
    p.write("template/gone.txt", "bye\n");
    p.write("template/empty-gone.txt", "");
    p.plan(
        r#"
name: patch
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer, template: template}]
tasks:
  - id: edit
    instance: dev
    prompt: |
      @write a.txt
      alpha
      BETA
      gamma
      delta
      @end
      @append no-newline.txt (appended)
      @delete gone.txt
      @delete empty-gone.txt
      @write sub/dir/new.txt
      new file
      @end
      @write empty-new.txt
      @end
      @chmod 755 a.txt
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let patch = p.latest("patch").join("diffs/edit.patch");
    let copy = p.join("copy");
    copy_tree(&p.join("template"), &copy);
    let applied = std::process::Command::new("git")
        .args(["apply", "--whitespace=nowarn"])
        .arg(&patch)
        .current_dir(&copy)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "git apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert_eq!(tree(&copy), tree(&p.join("workspaces/dev/project-files")));
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Path → (content, executable) for every file under `root`.
fn tree(root: &std::path::Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let exec = e.metadata().unwrap().permissions().mode() & 0o111 != 0;
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, (std::fs::read(e.path()).unwrap(), exec))
        })
        .collect()
}

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
fn session_md_holds_role_context_then_a_section_per_task() {
    let p = Project::new();
    p.plan(
        r#"
name: sess
agent: {kind: generic, command: "{agent}"}
instances:
  - name: dev
    role: developer
    context: Follow the house style.
tasks:
  - {id: first, instance: dev, prompt: "@write one.txt\n1\n@end"}
  - {id: second, instance: dev, prompt: "@exit 1"}
"#,
    );
    p.run(&["plan.yaml"]);
    let text = p.read("workspaces/dev/session.md");
    assert!(
        text.starts_with("# Session: dev\n\nYou are the developer."),
        "{text}"
    );
    assert!(text.contains("Follow the house style."));
    let sections: Vec<&str> = text.split("\n## Task: ").skip(1).collect();
    assert_eq!(sections.len(), 2, "{text}");
    assert!(sections[0].contains("Task `first`:") && sections[0].contains("\nOutcome: passed"));
    assert!(sections[1].contains("Task `second`:"));
    assert!(
        sections[1].contains("\nOutcome: failed") && sections[1].contains("exited with code 1")
    );
    // The heading holds an RFC 3339 time.
    let time = sections[0].lines().next().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
}

const CHAIN: &str = r#"
name: chain
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: x, role: developer}
  - {name: y, role: tester}
tasks:
  - {id: base, instance: x, prompt: "@append count.txt base"}
  - {id: mid, instance: y, needs: [base], prompt: "@append count.txt mid"}
  - {id: top, instance: y, needs: [mid], prompt: "@append count.txt top"}
  - {id: other, instance: x, prompt: "@append count.txt other"}
"#;

#[test]
fn only_runs_the_task_and_its_needs_that_have_not_passed() {
    let p = Project::new();
    p.plan(CHAIN);
    // Nothing has run: --only top pulls in mid and base.
    let out = p.run(&["plan.yaml", "--only", "top"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("chain");
    for id in ["base", "mid", "top"] {
        assert_eq!(task(&r, id)["status"], "passed", "{id}");
        assert_eq!(task(&r, id)["carried_over"], false, "{id}");
    }
    let other = task(&r, "other");
    assert_eq!(other["status"], "skipped");
    assert_eq!(other["carried_over"], true);
    assert_eq!(other["error"], "not selected");
    // Now they passed: --only top runs top alone; the rest carry over.
    let out = p.run(&["plan.yaml", "--only", "top"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("chain");
    assert_eq!(task(&r, "top")["carried_over"], false);
    assert_eq!(task(&r, "mid")["carried_over"], true);
    assert_eq!(task(&r, "mid")["status"], "passed");
    assert_eq!(
        p.read("workspaces/y/project-files/count.txt"),
        "mid\ntop\ntop\n"
    );
    // An unknown id is refused before anything runs.
    let out = p.run(&["plan.yaml", "--only", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task `nope`"));
}

#[test]
fn fresh_recreates_only_the_plans_own_instances() {
    let p = Project::new();
    p.write("template/seed.txt", "seed\n");
    p.plan(
        r#"
name: fresh
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer, template: template}]
tasks:
  - {id: t, instance: dev, prompt: "@append seed.txt more"}
"#,
    );
    p.write(
        "workspaces/stranger/project-files/mine.txt",
        "not the plan's\n",
    );
    p.run(&["plan.yaml"]);
    p.run(&["plan.yaml"]);
    assert_eq!(
        p.read("workspaces/dev/project-files/seed.txt"),
        "seed\nmore\nmore\n"
    );
    let out = p.run(&["plan.yaml", "--fresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        p.read("workspaces/dev/project-files/seed.txt"),
        "seed\nmore\n"
    );
    assert_eq!(
        p.read("workspaces/dev/session.md")
            .matches("## Task: ")
            .count(),
        1
    );
    assert_eq!(
        p.read("workspaces/stranger/project-files/mine.txt"),
        "not the plan's\n"
    );
}

#[test]
fn dry_run_prints_schedule_and_commands_and_spawns_nothing() {
    let p = Project::new();
    let marker = p.join("spawned.txt");
    p.plan(&CHAIN.replace(
        "@append count.txt base",
        &format!("@record {}", marker.display()),
    ));
    let out = p.run(&["plan.yaml", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("wave 1: base (x)"), "{text}");
    assert!(text.contains("wave 2: mid (y), other (x)"), "{text}");
    assert!(text.contains("wave 3: top (y)"), "{text}");
    assert!(text.contains("scripted.sh < prompt"), "{text}");
    assert!(!marker.exists(), "an agent was spawned");
    assert!(
        !p.join("runs").exists() && !p.join("workspaces").exists(),
        "dry run wrote files"
    );
}

#[test]
fn validate_prints_nothing_for_a_good_plan_and_writes_nothing() {
    let p = Project::new();
    p.plan(CHAIN);
    let out = p.run(&["validate", "plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        output_text(&out)
    );
    let entries: Vec<_> = std::fs::read_dir(p.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "only plan.yaml");
}

#[test]
fn the_environment_supplies_defaults_where_the_plan_is_silent() {
    let p = Project::new();
    p.plan(
        r#"
name: envy
agent: {kind: generic}
instances: [{name: dev, role: developer}]
tasks: [{id: t, instance: dev, prompt: "@sleep 5"}]
"#,
    );
    let out = p
        .command()
        .arg("plan.yaml")
        .env("CLAUDE_CODE_PATH", crate::support::scripted_agent())
        .env("WORKSPACES_DIR", "elsewhere")
        .env("TASK_TIMEOUT", "300")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let r = p.report("envy");
    assert_eq!(task(&r, "t")["status"], "timed_out");
    assert_eq!(task(&r, "t")["error"], "the agent timed out after 300ms");
    assert!(p.join("elsewhere/dev/session.md").exists());
    // A command-line flag beats the environment.
    let out = p
        .command()
        .args(["plan.yaml", "--timeout", "20s", "--workspaces", "flagged"])
        .env("CLAUDE_CODE_PATH", crate::support::scripted_agent())
        .env("TASK_TIMEOUT", "300")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(p.join("flagged/dev/session.md").exists());
}

#[test]
fn a_missing_agent_command_is_refused_before_anything_is_created() {
    let p = Project::new();
    p.plan(
        r#"
instances: [{name: dev, role: developer}]
tasks: [{id: t, instance: dev, prompt: hi}]
"#,
    );
    let out = p
        .command()
        .arg("plan.yaml")
        .env("CLAUDE_CODE_PATH", "/nonexistent/claude")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent command `/nonexistent/claude` was not found"),
        "{err}"
    );
    assert!(err.contains("CLAUDE_CODE_PATH"), "{err}");
    assert!(!p.join("runs").exists() && !p.join("workspaces").exists());
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
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let r = p.report("capped");
    assert_eq!(task(&r, "one")["status"], "passed");
    assert_eq!(task(&r, "two")["status"], "passed");
    let three = task(&r, "three");
    assert_eq!(three["status"], "skipped");
    assert_eq!(three["error"], "cost cap reached");
    assert_eq!(r["summary"]["cost_usd"], 0.8);
}

#[test]
fn the_markdown_summary_is_appended_to_github_step_summary() {
    let p = Project::new();
    p.plan(CHAIN);
    let summary = p.write("summary.md", "existing line\n");
    let out = p
        .command()
        .arg("plan.yaml")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("existing line\n"),
        "appended, not replaced"
    );
    for id in ["base", "mid", "top", "other"] {
        assert!(text.contains(id), "summary lacks {id}:\n{text}");
    }
}

#[test]
fn report_renders_every_format_again_byte_identical() {
    let p = Project::new();
    p.plan(THREE_STATUSES);
    p.run(&["plan.yaml"]);
    let dir = p.latest("statuses");
    for (format, file) in [
        ("json", "report.json"),
        ("md", "report.md"),
        ("junit", "junit.xml"),
        ("html", "report.html"),
    ] {
        let out = p.run(&["report", dir.to_str().unwrap(), "--format", format]);
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        let original = std::fs::read(dir.join(file)).unwrap();
        assert!(!original.is_empty(), "{file} is empty");
        assert!(
            out.stdout == original,
            "{format} differs from the run's {file}"
        );
        let to = p.join(&format!("again.{format}"));
        let out = p.run(&[
            "report",
            dir.to_str().unwrap(),
            "--format",
            format,
            "-o",
            to.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        assert!(
            std::fs::read(&to).unwrap() == original,
            "{format} -o differs"
        );
    }
    let out = p.run(&["report", p.path().to_str().unwrap(), "--format", "md"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("report.json"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn a_run_refused_by_a_held_lock_destroys_nothing_even_with_fresh() {
    let p = Project::new();
    p.plan(
        r#"
name: locked
agent: {kind: generic, command: "{agent}"}
instances: [{name: a, role: developer}, {name: b, role: tester}]
tasks:
  - {id: ta, instance: a, prompt: "@write a.txt\nkeep me\n@end"}
  - {id: tb, instance: b, prompt: "@print hi"}
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // Another run holds `b`.
    let file = std::fs::File::open(p.join("workspaces/b/state/lock")).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let out = p.run(&["plan.yaml", "--fresh"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("instance `b` is in use"));
    assert_eq!(p.read("workspaces/a/project-files/a.txt"), "keep me\n");
    drop(held);
    let out = p.run(&["plan.yaml", "--fresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        p.read("workspaces/a/session.md")
            .matches("## Task: ")
            .count(),
        1
    );
}

#[test]
fn rerun_failed_without_an_earlier_run_is_refused() {
    let p = Project::new();
    p.plan(CHAIN);
    let out = p.run(&["plan.yaml", "--rerun-failed"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no earlier run of plan `chain`"), "{err}");
    assert!(!p.join("workspaces").exists() && !p.join("runs").exists());
}

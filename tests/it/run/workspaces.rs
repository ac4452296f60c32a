//! The instances' workspaces between runs: session.md with the role context and a section
//! per task, `--fresh` recreating only the plan's own instances, and a run refused by a held
//! lock destroying nothing, even with `--fresh`.

use crate::support::{Project, output_text};

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
    let text = p.read("workspaces/sess/dev/session.md");
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
        "workspaces/fresh/stranger/project-files/mine.txt",
        "not the plan's\n",
    );
    p.run(&["plan.yaml"]);
    p.run(&["plan.yaml"]);
    assert_eq!(
        p.read("workspaces/fresh/dev/project-files/seed.txt"),
        "seed\nmore\nmore\n"
    );
    let out = p.run(&["plan.yaml", "--fresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        p.read("workspaces/fresh/dev/project-files/seed.txt"),
        "seed\nmore\n"
    );
    assert_eq!(
        p.read("workspaces/fresh/dev/session.md")
            .matches("## Task: ")
            .count(),
        1
    );
    assert_eq!(
        p.read("workspaces/fresh/stranger/project-files/mine.txt"),
        "not the plan's\n"
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
    let file = std::fs::File::open(p.join("workspaces/locked/b/state/lock")).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let out = p.run(&["plan.yaml", "--fresh"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("instance `b` is in use"));
    assert_eq!(
        p.read("workspaces/locked/a/project-files/a.txt"),
        "keep me\n"
    );
    drop(held);
    let out = p.run(&["plan.yaml", "--fresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        p.read("workspaces/locked/a/session.md")
            .matches("## Task: ")
            .count(),
        1
    );
}

#[test]
fn a_template_holding_the_workspaces_and_runs_is_copied_without_them() {
    let p = Project::new();
    p.write("src/lib.txt", "library\n");
    p.plan(
        r#"
name: itself
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer, template: .}]
tasks: [{id: t, instance: dev, prompt: "@print hi"}]
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let files = p.join("workspaces/itself/dev/project-files");
    assert_eq!(
        std::fs::read_to_string(files.join("src/lib.txt")).unwrap(),
        "library\n"
    );
    assert!(files.join("plan.yaml").exists());
    assert!(
        !files.join("workspaces").exists(),
        "the workspace was copied into itself"
    );
    assert!(
        !files.join("runs").exists(),
        "the runs were copied into the workspace"
    );
}

#[test]
fn fresh_with_only_recreates_every_instance_of_the_plan_from_its_template() {
    let p = Project::new();
    p.write("template/seed.txt", "seed\n");
    p.plan(
        r#"
name: freshonly
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: a, role: developer, template: template}
  - {name: b, role: tester, template: template}
tasks:
  - {id: ta, instance: a, prompt: "@append seed.txt a"}
  - {id: tb, instance: b, prompt: "@append seed.txt b"}
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = p.run(&["plan.yaml", "--fresh", "--only", "ta"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        p.read("workspaces/freshonly/a/project-files/seed.txt"),
        "seed\na\n"
    );
    // `b` ran nothing but is recreated from its template, not left empty.
    assert_eq!(
        p.read("workspaces/freshonly/b/project-files/seed.txt"),
        "seed\n"
    );
    assert!(
        !p.read("workspaces/freshonly/b/session.md")
            .contains("## Task: ")
    );
}

#[test]
fn two_plans_with_the_same_instance_names_never_share_a_workspace() {
    let p = Project::new();
    let plan = |name: &str| {
        format!(
            "name: {name}\nagent: {{kind: generic, command: \"{{agent}}\"}}\ninstances:\n  \
             - {{name: dev, role: developer}}\ntasks:\n  \
             - {{id: t, instance: dev, prompt: \"@append who.txt {name}\"}}\n"
        )
    };
    p.plan(&plan("one"));
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    p.plan(&plan("two"));
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(p.read("workspaces/one/dev/project-files/who.txt"), "one\n");
    assert_eq!(p.read("workspaces/two/dev/project-files/who.txt"), "two\n");
    let session = p.read("workspaces/two/dev/session.md");
    assert_eq!(session.matches("## Task: ").count(), 1, "{session}");
    assert!(!session.contains("who.txt one"), "{session}");
    // Each plan keeps one content store, beside its instances.
    assert!(p.join("workspaces/one/.borg/objects").is_dir());
    assert!(p.join("workspaces/two/.borg/objects").is_dir());
    assert!(!p.join("workspaces/one/dev/state/objects").exists());
}

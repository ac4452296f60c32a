//! What a run takes from its environment: `CLAUDE_CODE_PATH`, `WORKSPACES_DIR` and
//! `TASK_TIMEOUT` as defaults (a flag beats them), a missing agent command refused before
//! anything is created, and the Markdown summary appended to `GITHUB_STEP_SUMMARY`.

use crate::support::{Project, output_text, task};

use super::CHAIN;

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
    assert!(p.join("elsewhere/envy/dev/session.md").exists());
    // A command-line flag beats the environment.
    let out = p
        .command()
        .args(["plan.yaml", "--timeout", "20s", "--workspaces", "flagged"])
        .env("CLAUDE_CODE_PATH", crate::support::scripted_agent())
        .env("TASK_TIMEOUT", "300")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(p.join("flagged/envy/dev/session.md").exists());
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

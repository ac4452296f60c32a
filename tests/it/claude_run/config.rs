//! How borg-batch sets the CLI up: three instances at once, each with its own configuration
//! and session (nothing under `HOME`); the exact command line `--dry-run` shows; the
//! preflight refusing a CLI that fails `--version`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Instant;

use serde_json::Value;

use crate::support::fake_api::{FakeApi, Turn};
use crate::support::{Project, change, output_text, task};

use super::{assert_passed, list, rig, run_bounded};

// 7. Three instances at once, each with its own configuration.

#[test]
fn three_instances_at_once_keep_their_configuration_intact() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: a, role: developer}
  - {name: b, role: tester}
  - {name: c, role: reviewer}
tasks:
  - {id: ta, instance: a, prompt: "[task:a] write"}
  - {id: tb, instance: b, prompt: "[task:b] write"}
  - {id: tc, instance: c, prompt: "[task:c] write"}
"#,
    );
    let script = |name: &str| {
        (
            format!("[task:{name}]"),
            vec![
                Turn::write(
                    &rig.files(name).join(format!("{name}.txt")),
                    &format!("{name}\n"),
                ),
                Turn::text(format!("did {name}")),
            ],
        )
    };
    let api = FakeApi::start_keyed([script("a"), script("b"), script("c")]);

    let started = Instant::now();
    let out = rig.borg(&api, &["plan.yaml", "--jobs", "3"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    assert_eq!(api.unscripted(), 0);
    let r = rig.report();
    let mut sessions = Vec::new();
    for name in ["a", "b", "c"] {
        let t = task(&r, &format!("t{name}"));
        assert_passed(t);
        assert_eq!(t["result"], format!("did {name}"));
        assert_eq!(change(t, &format!("{name}.txt"))["kind"], "added");
        sessions.push(t["session_id"].as_str().unwrap().to_owned());
        // The instance's own configuration: written by its CLI, and valid JSON.
        let config = rig
            .root
            .join(format!("workspaces/plan/{name}/state/claude"));
        let json = config.join(".claude.json");
        let text = fs::read_to_string(&json).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; config dir holds {:?}",
                json.display(),
                list(&config)
            )
        });
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", json.display()));
        // Its session is stored there, under its own project-files/.
        let project = rig
            .files(name)
            .display()
            .to_string()
            .replace(['/', '.'], "-");
        let transcript = config
            .join("projects")
            .join(project)
            .join(format!("{}.jsonl", sessions.last().unwrap()));
        assert!(transcript.is_file(), "{}", transcript.display());
    }
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), 3, "one session per instance");
    // The three ran at once: their requests overlapped in time, so the run took about one
    // task's time, not three (a loose bound: the CLI's start-up dominates).
    let max_one = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    let sum: u64 = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_ms"].as_u64().unwrap())
        .sum();
    assert!(
        started.elapsed().as_millis() < u128::from(sum),
        "not parallel: {:?} for tasks of {max_one} ms at most, {sum} ms in all",
        started.elapsed()
    );
    // Nothing of Claude Code's landed in HOME.
    let home = list(&rig.home());
    assert!(home.is_empty(), "written under HOME: {home:?}");
}
// 9. --dry-run: the exact command line, nothing started.

#[test]
fn dry_run_shows_the_claude_command_line_and_starts_nothing() {
    let Some(rig) = rig() else { return };
    rig.plan(
        r#"
agent: {command: "{claude}", model: claude-sonnet-4-5, max_turns: 5}
instances:
  - name: dev
    role: developer
    context: Follow the house style.
tasks:
  - {id: one, instance: dev, prompt: "do it"}
"#,
    );
    let api = FakeApi::start(vec![Turn::text("never asked")]);

    let out = rig.borg(&api, &["plan.yaml", "--dry-run"], &[]);

    assert_eq!(out.status.code(), Some(0), "{}", rig.explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "{} -p --output-format stream-json --verbose --permission-mode acceptEdits \
         --allowedTools Read,Edit,Write,Bash --model claude-sonnet-4-5 --max-turns 5 \
         --append-system-prompt 'You are the developer.",
        rig.claude.display()
    );
    assert!(
        stdout.contains(&expected),
        "expected {expected}\nin:\n{stdout}"
    );
    assert!(stdout.contains("Follow the house style.'"), "{stdout}");
    assert!(!stdout.contains("--resume"), "{stdout}");
    assert!(api.all_requests().is_empty(), "a process was started");
    assert!(
        !rig.p.join("workspaces").exists(),
        "a dry run writes nothing"
    );
    assert!(!rig.p.join("runs").exists(), "a dry run writes nothing");
}

// 10. Preflight: a CLI that does not answer --version.

#[test]
fn preflight_refuses_a_cli_that_fails_version_before_creating_anything() {
    let p = Project::new();
    let script = p.write(
        "bin/claude",
        "#!/bin/sh\necho 'broken install' >&2\nexit 3\n",
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    p.plan(
        r#"
instances:
  - {name: dev, role: developer}
tasks:
  - {id: one, instance: dev, prompt: "do it"}
"#,
    );

    let mut cmd = p.command();
    cmd.env("CLAUDE_CODE_PATH", &script)
        .arg("plan.yaml")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd);

    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&script.display().to_string()),
        "names the command: {stderr}"
    );
    assert!(stderr.contains("--version"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("install"),
        "how to install: {stderr}"
    );
    assert!(stderr.contains("CLAUDE_CODE_PATH"), "{stderr}");
    assert!(
        !p.join("workspaces").exists(),
        "created before the preflight"
    );
    assert!(!p.join("runs").exists(), "created before the preflight");
}

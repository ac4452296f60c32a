//! The real Claude Code CLI driven *through borg-batch*, against the loopback Messages API
//! ([`FakeApi`]): real tool calls change real files, and what borg-batch makes of them
//! (changes, patches, sessions, costs, timeouts, rate limits, errors, parallel instances,
//! checks, dry runs, preflight) is asserted on the run directory and on what the CLI sent.
//!
//! borg-batch picks each instance's `CLAUDE_CONFIG_DIR` itself; the tests only give it the
//! fake API's environment (and a temporary `HOME`, so that the user's own `~/.claude*` is
//! never touched and a leak into `HOME` is visible). Without the CLI installed
//! (`.ci/install-claude`) the tests are skipped, except under CI where they fail.
//! No traffic leaves 127.0.0.1.
//!
//! This file holds the rig (a project plus the CLI, run against a fake API) and the readers
//! of what the CLI logged and sent; the tests are grouped by theme in the files below.

mod changes;
mod config;
mod costs_and_limits;
mod failures;
mod prompts;
mod sessions;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::fake_api::{self, FakeApi};
use crate::support::{Project, output_text, output_within};

/// The longest a borg-batch run may take here before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// A temporary project for borg-batch plus the CLI to drive.
struct Rig {
    p: Project,
    claude: PathBuf,
    /// The project folder, canonical: the CLI reports and resolves paths by the real path.
    root: PathBuf,
}

/// `None` (the test returns) when the CLI is not installed; a panic under CI.
fn rig() -> Option<Rig> {
    let claude = fake_api::claude_binary()?;
    let p = Project::new();
    let root = p.path().canonicalize().unwrap();
    fs::create_dir_all(root.join("home")).unwrap();
    Some(Rig { p, claude, root })
}

impl Rig {
    /// Writes `plan.yaml`; `{claude}` becomes the CLI's absolute path.
    fn plan(&self, yaml: &str) {
        self.p.write(
            "plan.yaml",
            yaml.replace("{claude}", &self.claude.to_string_lossy()),
        );
    }

    /// The instance's `project-files/`, where its agent works.
    fn files(&self, instance: &str) -> PathBuf {
        self.root
            .join(format!("workspaces/plan/{instance}/project-files"))
    }

    /// The temporary `HOME` of every borg-batch run here.
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Runs borg-batch with `args` against `api` (its environment set, anything that could
    /// send the CLI elsewhere removed), `HOME` a temporary folder, plus `env`.
    fn borg(&self, api: &FakeApi, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.p.command();
        for name in fake_api::ENV_REMOVE {
            cmd.env_remove(name);
        }
        cmd.envs(api.api_env())
            .env("HOME", self.home())
            .envs(env.iter().copied())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run_bounded(cmd)
    }

    /// `out` and the logs of the latest run (their ends), for assertion messages.
    fn explain(&self, out: &Output) -> String {
        let mut text = output_text(out);
        let logs = self.p.join("runs/plan/latest/logs");
        for name in list(&logs) {
            let log = fs::read_to_string(logs.join(&name)).unwrap_or_default();
            let mut start = log.len().saturating_sub(3000);
            while !log.is_char_boundary(start) {
                start += 1;
            }
            text.push_str(&format!("\n--- logs/{name} (end)\n{}", &log[start..]));
        }
        text
    }

    fn report(&self) -> Value {
        self.p.report("plan")
    }

    /// A file of the latest run directory.
    fn run_file(&self, rel: &str) -> String {
        let path = self.p.latest("plan").join(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }
}

/// Runs `cmd` to completion within [`RUN_LIMIT`] (killed and a panic otherwise).
fn run_bounded(mut cmd: std::process::Command) -> Output {
    output_within(
        cmd.spawn().expect("borg-batch starts"),
        RUN_LIMIT,
        "borg-batch",
    )
}

/// The command line borg-batch logged for each agent start in an attempt's log.
fn logged_commands(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.starts_with("--- borg-batch: ") && l.contains(" -p "))
        .collect()
}

/// The latest prompt in a request: the last text block of a user message that is not one of
/// the CLI's `<system-reminder>`s (tool results left out).
fn prompt_of(body: &Value) -> String {
    let mut last = String::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        if message["role"] != "user" {
            continue;
        }
        match &message["content"] {
            Value::String(s) => last.clone_from(s),
            Value::Array(blocks) => {
                let mut texts = blocks
                    .iter()
                    .filter(|b| b["type"] == "text")
                    .filter_map(|b| b["text"].as_str())
                    .filter(|t| !t.trim_start().starts_with("<system-reminder>"));
                if let Some(text) = texts.next_back() {
                    text.clone_into(&mut last);
                }
            }
            _ => {}
        }
    }
    last
}

fn assert_passed(t: &Value) {
    assert_eq!(t["status"], "passed", "{t:#}");
    assert_eq!(t["exit_code"], 0, "{t:#}");
    assert!(t["error"].is_null(), "{t:#}");
}

fn cost(t: &Value) -> f64 {
    t["cost_usd"]
        .as_f64()
        .unwrap_or_else(|| panic!("no cost_usd in {t:#}"))
}

/// The names in a folder (empty when it does not exist).
fn list(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default()
}

/// Two tasks of one instance, the second asking about the first.
const TWO_TASKS: &str = r#"
agent: {command: "{claude}"}
timeout: 60s
grace: 1s
instances:
  - {name: dev, role: developer}
tasks:
  - {id: one, instance: dev, prompt: "first prompt: remember PELICAN"}
  - {id: two, instance: dev, prompt: "second prompt: what was the word?"}
"#;

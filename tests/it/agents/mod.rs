//! The Codex and Gemini CLIs driven for real *through borg-batch*, each against the loopback
//! server speaking its API ([`FakeApi`] in its [`Dialect`]): real tool calls write real
//! files, and sessions, tokens, failures, rate limits and unknown sessions are asserted on
//! the run directory and on what the CLI sent. Without a CLI installed
//! (`.ci/install-codex`, `.ci/install-gemini`) its tests are skipped, except under CI where
//! they fail. No traffic leaves 127.0.0.1.

mod codex;
// mod gemini;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::fake_api;
use crate::support::{Project, output_text, output_within};

/// The longest a borg-batch run may take here (the Gemini CLI starts slowly on a loaded
/// machine).
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Variables that could send a CLI elsewhere or log it in, removed from every run here.
const ENV_REMOVE: &[&str] = &[
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "CODEX_API_KEY",
    "CODEX_HOME",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_GCA",
    "GOOGLE_CLOUD_PROJECT",
    "GEMINI_CLI_HOME",
    "GEMINI_MODEL",
];

/// A project for borg-batch plus the CLI it drives.
struct Rig {
    p: Project,
    cli: PathBuf,
    root: PathBuf,
}

impl Rig {
    fn new(cli: PathBuf) -> Rig {
        let p = Project::new();
        let root = p.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("home")).unwrap();
        Rig { p, cli, root }
    }

    /// Writes `plan.yaml`; `{cli}` becomes the CLI's path, `{args}` the given arguments as
    /// a YAML flow list.
    fn plan(&self, yaml: &str, args: &[String]) {
        let args = serde_json::to_string(args).unwrap();
        self.p.write(
            "plan.yaml",
            yaml.replace("{cli}", &self.cli.to_string_lossy())
                .replace("{args}", &args),
        );
    }

    /// The instance's `project-files/`.
    fn files(&self, instance: &str) -> PathBuf {
        self.root
            .join(format!("workspaces/plan/{instance}/project-files"))
    }

    /// Runs borg-batch with `args` and `env`, `HOME` a temporary folder, nothing that could
    /// send a CLI elsewhere.
    fn borg(&self, args: &[&str], env: &[(String, String)]) -> Output {
        let mut cmd = self.p.command();
        for name in fake_api::ENV_REMOVE.iter().chain(ENV_REMOVE) {
            cmd.env_remove(name);
        }
        cmd.env("HOME", self.root.join("home"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        output_within(
            cmd.spawn().expect("borg-batch starts"),
            RUN_LIMIT,
            "borg-batch",
        )
    }

    /// `out` and the end of each log of the latest run, for assertion messages.
    fn explain(&self, out: &Output) -> String {
        let mut text = output_text(out);
        let logs = self.p.join("runs/plan/latest/logs");
        for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            text.push_str(&format!("\n--- {} (end)\n{tail}", entry.path().display()));
        }
        text
    }

    fn report(&self) -> Value {
        self.p.report("plan")
    }

    fn run_file(&self, rel: &str) -> String {
        let path = self.p.latest("plan").join(rel);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }
}

fn assert_passed(t: &Value) {
    assert_eq!(t["status"], "passed", "{t:#}");
    assert_eq!(t["exit_code"], 0, "{t:#}");
    assert!(t["error"].is_null(), "{t:#}");
}

/// The command lines borg-batch logged for each agent start in an attempt's log.
fn logged_commands(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.starts_with("--- borg-batch: /"))
        .collect()
}

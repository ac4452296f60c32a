//! Shared test support: a temporary project folder holding a plan, run with the built
//! `borg-batch` binary as the current directory, and readers for what a run leaves behind;
//! `procs` lists live processes and bounds waits, `fake_api` stands in for the Messages API.
#![allow(dead_code)]

pub mod fake_api;
mod procs;

pub use procs::{output_within, processes_in, processes_with};

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository's `fixtures/` folder.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The scripted agent (see `fixtures/agents/scripted.sh`).
pub fn scripted_agent() -> String {
    fixture("agents/scripted.sh").to_string_lossy().into_owned()
}

/// The built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_borg-batch"))
}

/// A temporary folder to run borg-batch in.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("borg-it-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating folders); returns its path.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// Writes `plan.yaml`; `{agent}` in the text becomes the scripted agent's path.
    pub fn plan(&self, yaml: &str) -> PathBuf {
        self.write("plan.yaml", yaml.replace("{agent}", &scripted_agent()))
    }

    /// A command for the binary, in this folder, with the machine-wide defaults cleared.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin());
        cmd.current_dir(self.path())
            .env_remove("CLAUDE_CODE_PATH")
            .env_remove("WORKSPACES_DIR")
            .env_remove("TASK_TIMEOUT")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Runs the binary with `args` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("borg-batch runs")
    }

    /// The `latest` run directory of plan `name`.
    pub fn latest(&self, name: &str) -> PathBuf {
        let link = self.join(&format!("runs/{name}/latest"));
        let target = std::fs::read_link(&link).expect("latest link exists");
        if target.is_absolute() {
            target
        } else {
            self.join(&format!("runs/{name}")).join(target)
        }
    }

    /// report.json of the latest run of plan `name`.
    pub fn report(&self, name: &str) -> Value {
        let path = self.latest(name).join("report.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }
}

/// The entry for task `id` in a report.
pub fn task<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {report:#}"))
}

/// The change entry for `path` in a task.
pub fn change<'a>(task: &'a Value, path: &str) -> &'a Value {
    task["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no change for {path} in {:#}", task["changes"]))
}

/// Both output streams as text, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until `cond` holds, at most `limit`; returns whether it did.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

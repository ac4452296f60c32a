//! The process layer under attack (issue 3): agents that flood their output, never stop,
//! leave processes behind or ignore SIGTERM; signals and `kill -9` to the runner; retries,
//! the workspace lock, hostile workspaces, huge prompts, an unwritable run directory and
//! secrets. Every test drives the built binary on a temporary folder with real processes,
//! and every wait is bounded: a hang fails the test instead of stalling the suite.
//!
//! Processes are recognised by a marker unique to this test process (`sleep 3001.0012345`:
//! a base number per test, the pid as the fraction), so concurrent suites cannot confuse
//! each other's leftovers, and a [`Reaper`] kills whatever a failing test left behind.
//!
//! This file holds the shared machinery: plans with an inline shell agent, markers, the
//! [`Reaper`], and a runner started in the background with bounded waits; the tests are
//! grouped by theme in the files below.

mod crash_and_lock;
mod groups;
mod output;
mod retries;
mod run_directory;
mod signals;
mod stopping;
mod workspaces;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{Project, processes_with, wait_for};

/// An agent that runs `script` with `/bin/sh -c`, as a YAML flow mapping (JSON string
/// escapes are valid YAML).
fn inline_agent(script: &str) -> String {
    format!(
        "{{kind: generic, command: /bin/sh, args: [\"-c\", {}]}}",
        serde_json::to_string(script).unwrap()
    )
}

/// A one-instance plan named `name` whose instance `w` runs `script`; `top` holds extra
/// top-level lines and `tasks` the task list (YAML lines).
fn one_instance_plan(p: &Project, name: &str, top: &str, script: &str, tasks: &str) -> PathBuf {
    p.plan(&format!(
        "name: {name}\n{top}\ninstances:\n  - name: w\n    role: developer\n    agent: {}\ntasks:\n{tasks}",
        inline_agent(script)
    ))
}

/// A number unique to this test process and `base`, usable as `sleep`'s argument: the
/// process's pid, zero-padded, is the fraction (so no marker is a prefix of another).
fn marker(base: u32) -> String {
    format!("{base}.{:07}", std::process::id())
}

/// Live processes carrying `sleep <marker>` (in their own or their shell's command line).
fn survivors(mark: &str) -> Vec<String> {
    processes_with(&format!("sleep {mark}"))
}

/// Asserts that no process with `mark` is left, allowing a generous moment for the kernel
/// to finish delivering SIGKILL.
fn assert_no_survivor(mark: &str) {
    let gone = wait_for(Duration::from_secs(5), || survivors(mark).is_empty());
    assert!(gone, "processes survived the run: {:#?}", survivors(mark));
}

/// Kills every process with the marker when dropped, so a failing test leaves nothing
/// behind.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for line in survivors(&self.0) {
            if let Some(pid) = line.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// A runner started in the background, its output going to files in the project (so an
/// unread pipe can never stall it). Killed if still running when dropped.
struct Runner {
    child: Child,
    started: Instant,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How a runner ended.
#[derive(Debug)]
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Ended {
    fn text(&self) -> String {
        format!(
            "exit: {:?} signal: {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.signal, self.elapsed, self.stdout, self.stderr
        )
    }
}

static OUTPUTS: AtomicUsize = AtomicUsize::new(0);

fn spawn(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Runner {
    let n = OUTPUTS.fetch_add(1, Ordering::SeqCst);
    let stdout = p.join(&format!("runner-{n}.out"));
    let stderr = p.join(&format!("runner-{n}.err"));
    let mut cmd = p.command();
    cmd.args(args)
        .stdout(Stdio::from(File::create(&stdout).unwrap()))
        .stderr(Stdio::from(File::create(&stderr).unwrap()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    Runner {
        child: cmd.spawn().expect("borg-batch starts"),
        started: Instant::now(),
        stdout,
        stderr,
    }
}

impl Runner {
    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signalling the runner");
    }

    fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits at most `limit` for the runner to exit; panics (after killing it) if it does
    /// not.
    fn wait(mut self, limit: Duration) -> Ended {
        use std::os::unix::process::ExitStatusExt;
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "borg-batch did not finish within {limit:?}\n--- stderr\n{}",
                    self.stderr_now()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ended {
            code: status.code(),
            signal: status.signal(),
            elapsed: self.started.elapsed(),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: self.stderr_now(),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs borg-batch to completion, at most `limit`.
fn run_within(p: &Project, args: &[&str], limit: Duration) -> Ended {
    spawn(p, args, &[]).wait(limit)
}

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The latest run's file `rel` (a log, say), as bytes.
fn run_file(p: &Project, plan: &str, rel: &str) -> Vec<u8> {
    let path = p.latest(plan).join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The log of a task's final attempt, as text.
fn task_log(p: &Project, plan: &str, t: &Value) -> String {
    let rel = t["log"].as_str().expect("the task has a log");
    String::from_utf8_lossy(&run_file(p, plan, rel)).into_owned()
}

/// Fails if any file under `root` (or `root` itself) holds `secret`.
fn assert_nowhere(root: &Path, secret: &str) {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
            continue;
        }
        seen += 1;
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds `{secret}`:\n{}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        );
    }
    assert!(seen >= 1, "nothing was checked under {}", root.display());
}

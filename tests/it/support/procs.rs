//! Processes seen from the outside: live processes listed from `/proc`, by command line or by
//! working directory, for asserting that nothing outlives a run; and a bounded wait for a
//! spawned child, so that a hang fails the test instead of stalling the suite.
//!
//! It only reads `/proc` and waits: ending leftovers is the caller's business.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Output};
use std::time::Duration;

use wait_timeout::ChildExt;

/// Live processes whose command line contains `marker` (from /proc).
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for pid in other_pids() {
        let Some(cmdline) = cmdline(pid) else {
            continue;
        };
        // Zombies have an empty command line and hold nothing.
        if cmdline.contains(marker) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Live processes whose working directory is `dir` or inside it (from `/proc/<pid>/cwd`),
/// as `"<pid>: <command line>"`. The CLI and the helpers it spawns all run in the task's
/// `project-files/`, whatever their command lines say, so this finds every one of them.
pub fn processes_in(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut found = Vec::new();
    for pid in other_pids() {
        // Unreadable (another user's) or gone: not ours.
        let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
            continue;
        };
        if cwd.starts_with(&dir) {
            let cmdline = cmdline(pid).unwrap_or_default();
            found.push(format!("{pid}: {}", cmdline.trim_end()));
        }
    }
    found
}

/// The pids in `/proc`, this process's left out.
fn other_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
}

/// A process's command line, its NULs as spaces; `None` when it is gone or unreadable.
fn cmdline(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&cmdline).replace('\0', " "))
}

/// Collects `child`'s output (stdout and stderr piped) while waiting at most `limit` for it to
/// exit; kills it and panics, naming it `what`, when it does not.
pub fn output_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let Some(status) = child.wait_timeout(limit).unwrap() else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {limit:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

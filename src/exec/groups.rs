//! The process groups this runner has started, so they can all be ended: on a signal to the
//! runner, and — through a record in the instance's `state/` — by the next run after this
//! one was killed with `kill -9`.
//!
//! A group is only ever signalled while we know it is ours: either its leader is not yet
//! reaped (so the id cannot have been reused), or, for a record left by a dead runner, a
//! live leader still has the start time we recorded, or live members still carry the group
//! id (an id cannot be handed to a new process while a group of that id exists).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A started process group, as recorded on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub pgid: i32,
    /// The leader's start time, in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// The leader's `BORG_RUN_ID` and `BORG_INSTANCE`: the record sits where the agent can
    /// rewrite it, so only processes that still carry both are ever ended through it.
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub instance: String,
}

/// The groups of this process's running children.
#[derive(Debug, Default)]
pub struct Registry {
    groups: Mutex<BTreeMap<i32, Option<PathBuf>>>,
}

/// The process-wide registry (the signal thread reads it).
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    /// Adds a just-spawned group; `record` is a file to persist it in, for a later run.
    /// `identity` is the `BORG_RUN_ID` and `BORG_INSTANCE` the runner gave the process.
    pub fn add(&self, pgid: i32, record: Option<&Path>, identity: (&str, &str)) {
        if let Some(path) = record {
            let entry = GroupRecord {
                pgid,
                start_ticks: start_ticks(pgid).unwrap_or(0),
                run_id: identity.0.to_string(),
                instance: identity.1.to_string(),
            };
            if let Err(e) = write_record(path, &entry) {
                log::warn!("cannot record process group in `{}`: {e}", path.display());
            }
        }
        self.lock().insert(pgid, record.map(Path::to_path_buf));
    }

    /// Removes a group once it has been ended and its leader reaped.
    pub fn remove(&self, pgid: i32) {
        if let Some(Some(path)) = self.lock().remove(&pgid) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Sends `signal` to every registered group.
    pub fn signal_all(&self, signal: Signal) {
        for &pgid in self.lock().keys() {
            signal_group(pgid, signal);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Option<PathBuf>>> {
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Signals a whole group; a group that is already gone is not an error.
pub fn signal_group(pgid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => log::debug!("killpg({pgid}, {signal}) failed: {e}"),
    }
}

/// A process's start time in clock ticks since boot, or `None` if it does not exist.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 22)
}

/// Field `n` (1-based, as in proc(5)) of a `/proc/<pid>/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so count from its closing `)`.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(n - 3)?.parse().ok()
}

fn write_record(path: &Path, record: &GroupRecord) -> std::io::Result<()> {
    let text = serde_json::to_string(record).map_err(std::io::Error::other)?;
    // Atomic: a link planted at the record's name is replaced, never written through.
    crate::fsutil::write_atomic_with(path, |w| std::io::Write::write_all(w, text.as_bytes()))
}

/// The `BORG_*` identity in a process's environment.
#[derive(Debug, Default, PartialEq, Eq)]
struct BorgEnv {
    run_id: Option<String>,
    instance: Option<String>,
}

fn borg_env(pid: i32) -> BorgEnv {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return BorgEnv::default();
    };
    let mut env = BorgEnv::default();
    for var in environ.split(|&b| b == 0) {
        let var = String::from_utf8_lossy(var);
        if let Some(v) = var.strip_prefix("BORG_RUN_ID=") {
            env.run_id = Some(v.to_string());
        } else if let Some(v) = var.strip_prefix("BORG_INSTANCE=") {
            env.instance = Some(v.to_string());
        }
    }
    env
}

/// Ends the group recorded at `path` by a runner that is gone, if it is still the group
/// that runner started for `instance`, and removes the record. Returns whether anything
/// was signalled.
pub fn end_recorded(path: &Path, instance: &str) -> bool {
    let Ok(text) = crate::fsutil::read_small(path, 4096) else {
        let _ = std::fs::remove_file(path);
        return false;
    };
    let _ = std::fs::remove_file(path);
    let Ok(record) = serde_json::from_str::<GroupRecord>(&text) else {
        return false;
    };
    if record.pgid <= 1 || record.run_id.is_empty() || record.instance != instance {
        return false;
    }
    // The record could have been written by the agent: a process is ours only if it still
    // carries the run id and instance the runner gave it.
    let carries_ours = |pid: i32| {
        borg_env(pid)
            == BorgEnv {
                run_id: Some(record.run_id.clone()),
                instance: Some(record.instance.clone()),
            }
    };
    let ours = match start_ticks(record.pgid) {
        // The leader lives: it is ours only if it is the very process we started.
        Some(ticks) => {
            ticks == record.start_ticks
                && pgid_of(record.pgid) == Some(record.pgid)
                && carries_ours(record.pgid)
        }
        // The leader is gone: live members still in the group are ours (the id cannot have
        // been reused while they exist), provided they started after our leader did.
        None => members(record.pgid).iter().any(|&pid| {
            start_ticks(pid).is_some_and(|t| t >= record.start_ticks) && carries_ours(pid)
        }),
    };
    if ours {
        log::warn!(
            "ending process group {} left behind by a killed borg-batch run",
            record.pgid
        );
        signal_group(record.pgid, Signal::SIGKILL);
    }
    ours
}

fn pgid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 5).and_then(|v| i32::try_from(v).ok())
}

/// Live processes whose process group is `pgid`.
pub fn members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pgid_of(pid) == Some(pgid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_command_name() {
        let stat =
            "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0";
        assert_eq!(stat_field(stat, 5), Some(1234));
        assert_eq!(stat_field(stat, 22), Some(98765));
    }

    fn sleeper(env: &[(&str, &str)]) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("300")
            .envs(env.iter().copied())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn record(
        dir: &Path,
        child: &std::process::Child,
        run_id: &str,
        instance: &str,
    ) -> std::path::PathBuf {
        let pgid = i32::try_from(child.id()).unwrap();
        let path = dir.join("running.json");
        let rec = GroupRecord {
            pgid,
            start_ticks: start_ticks(pgid).unwrap(),
            run_id: run_id.into(),
            instance: instance.into(),
        };
        std::fs::write(&path, serde_json::to_string(&rec).unwrap()).unwrap();
        path
    }

    #[test]
    fn only_a_record_whose_processes_carry_the_runs_identity_ends_a_group() {
        let dir = tempfile::tempdir().unwrap();
        // A process with the right pid and start time but no BORG_* identity.
        let mut stranger = sleeper(&[]);
        let path = record(dir.path(), &stranger, "run-1", "dev");
        assert!(!end_recorded(&path, "dev"));
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "the stranger was killed"
        );
        // The runner's own agent of another instance is not this instance's to end.
        let mut other = sleeper(&[("BORG_RUN_ID", "run-1"), ("BORG_INSTANCE", "qa")]);
        let path = record(dir.path(), &other, "run-1", "qa");
        assert!(!end_recorded(&path, "dev"));
        assert!(other.try_wait().unwrap().is_none());
        for mut child in [stranger, other] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        // The genuine case (a record of the runner's own agent) is proven end to end by
        // tests/it/process: after `kill -9` of the runner, the next run ends the orphan.
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(start_ticks(me).is_some());
        assert_eq!(start_ticks(i32::MAX), None);
    }
}

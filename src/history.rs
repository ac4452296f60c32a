//! Earlier runs of a plan: the `runs/<plan name>/` folder, its `latest` link, each run's
//! `run.json` and `journal.jsonl`, and from them every task's **latest outcome** — the
//! status of its most recent finished run — even when the newest run was killed before it
//! wrote `report.json`.
//!
//! Each run records the run it carried outcomes over from (`carried_from`), so outcomes
//! are found by following that chain: a run's `report.json` if it has one (it lists every
//! task), else its journal's finished tasks, then the run before it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::report::{AttemptReport, Report, TaskReport};

/// The folder of every plan's runs, in the current directory.
pub const RUNS: &str = "runs";

/// Where the runs of plan `name` live, relative to the current directory.
pub fn runs_root(plan_name: &str) -> PathBuf {
    Path::new(RUNS).join(plan_name)
}

/// `run.json`: what a run directory is, written when the run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_id: String,
    pub plan: String,
    pub plan_name: String,
    pub started_at: String,
    /// The run directory whose outcomes this run carried over, if any.
    pub carried_from: Option<String>,
    /// The shard this run is (`--shard`), absent for a whole-plan run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
}

impl RunMeta {
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("run meta serializes");
        fsutil::write_atomic(&run_dir.join("run.json"), text.as_bytes())
    }

    pub fn read(run_dir: &Path) -> Option<RunMeta> {
        let text = fs::read_to_string(run_dir.join("run.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The run directory `runs/<plan name>/latest` points at, if it exists.
pub fn latest_run(plan_name: &str) -> Option<PathBuf> {
    let link = runs_root(plan_name).join("latest");
    let target = fs::read_link(&link).ok()?;
    let dir = if target.is_absolute() {
        target
    } else {
        runs_root(plan_name).join(target)
    };
    dir.is_dir().then_some(dir)
}

/// Points `runs/<plan name>/latest` at `run_dir`, atomically (a new link renamed over).
pub fn point_latest(plan_name: &str, run_dir: &Path) -> Result<()> {
    let root = runs_root(plan_name);
    fsutil::create_dir_all(&root)?;
    // Relative when the run is inside the runs folder, so the tree can be moved or archived.
    let target = match run_dir.strip_prefix(&root) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => std::path::absolute(run_dir).map_err(|e| Error::io("resolve", run_dir, e))?,
    };
    let link = root.join("latest");
    let tmp = root.join(format!(".latest.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).map_err(|e| Error::io("create link", &tmp, e))?;
    fs::rename(&tmp, &link).map_err(|e| Error::io("replace link", &link, e))
}

/// Every task's latest outcome, and the run directory each came from.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// The newest run directory (the one the next run carries from).
    pub newest: Option<PathBuf>,
    pub tasks: BTreeMap<String, (TaskReport, PathBuf)>,
}

impl Outcomes {
    pub fn status(&self, task: &str) -> Option<crate::report::Status> {
        self.tasks.get(task).map(|(t, _)| t.status)
    }
}

/// Follows the chain of runs from `latest` back and collects each task's latest outcome.
pub fn latest_outcomes(plan_name: &str) -> Outcomes {
    let mut outcomes = Outcomes {
        newest: latest_run(plan_name),
        tasks: BTreeMap::new(),
    };
    let mut next = outcomes.newest.clone();
    let mut seen = Vec::new();
    while let Some(dir) = next.take() {
        let key = fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if seen.contains(&key) || seen.len() > 10_000 {
            break;
        }
        seen.push(key);
        if let Ok(report) = crate::report::read(&dir) {
            // A finished run lists every task, carried-over ones included: the chain ends
            // — unless it was a shard, whose other shards' tasks say nothing about them.
            let mut elsewhere = false;
            for task in report.tasks {
                if task.in_shard.is_some() {
                    elsewhere = true;
                    continue;
                }
                outcomes
                    .tasks
                    .entry(task.id.clone())
                    .or_insert((task, dir.clone()));
            }
            if !elsewhere {
                break;
            }
        } else {
            for task in Journal::finished_tasks(&dir) {
                outcomes
                    .tasks
                    .entry(task.id.clone())
                    .or_insert((task, dir.clone()));
            }
        }
        next = RunMeta::read(&dir)
            .and_then(|m| m.carried_from)
            .map(PathBuf::from);
    }
    outcomes
}

/// One line of `journal.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// One line is written and read at a time: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum JournalLine {
    /// An attempt finished.
    Attempt {
        run_id: String,
        task: String,
        instance: String,
        #[serde(flatten)]
        attempt: AttemptReport,
    },
    /// A task reached its final status (it is carried over from here if the run dies).
    /// (Boxed: a task report is far larger than an attempt line.)
    Task {
        run_id: String,
        report: Box<TaskReport>,
    },
}

/// `journal.jsonl`: appended as each attempt and task finishes, one `write` per line.
///
/// Crash safety needs no fsync per line: a runner killed with `kill -9` loses no completed
/// `write` (the page cache survives the process), so the next `--rerun-failed` sees every
/// line written. Only a power cut can lose lines, so the journal is fsynced once, when the
/// run finishes ([`Journal::sync`]); the tasks of lines lost to a power cut mid-run simply
/// run again, and a torn last line is ignored when read.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    pub fn create(run_dir: &Path) -> Result<Journal> {
        let path = run_dir.join("journal.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        Ok(Journal { file, path })
    }

    pub fn append(&mut self, line: &JournalLine) -> Result<()> {
        let mut text = serde_json::to_string(line).expect("journal lines serialize");
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// Flushes the journal to disk (once, at the end of the run: see [`Journal`]).
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// The tasks a run's journal says finished (the last word on each wins). A torn last
    /// line from a killed runner is ignored.
    pub fn finished_tasks(run_dir: &Path) -> Vec<TaskReport> {
        let Ok(file) = File::open(run_dir.join("journal.jsonl")) else {
            return Vec::new();
        };
        let mut tasks: BTreeMap<String, TaskReport> = BTreeMap::new();
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            if let Ok(JournalLine::Task { report, .. }) = serde_json::from_str(&line) {
                tasks.insert(report.id.clone(), *report);
            }
        }
        tasks.into_values().collect()
    }
}

/// A task report carried over from run `from` into a run at `to`: marked `carried_over`,
/// with its log and patch paths made to point into `from`.
pub fn carry(report: &TaskReport, from: &Path, to: &Path) -> TaskReport {
    let prefix = relative_dir(from, to);
    let rebase = |p: &Option<String>| p.as_ref().map(|p| format!("{prefix}/{p}"));
    let mut carried = report.clone();
    if !report.carried_over {
        carried.log = rebase(&report.log);
        carried.patch = rebase(&report.patch);
        for attempt in &mut carried.history {
            attempt.log = rebase(&attempt.log);
        }
    }
    carried.carried_over = true;
    carried
}

/// `from` as seen from `to`: `../<name>` for sibling run directories, else absolute.
fn relative_dir(from: &Path, to: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from), abs(to));
    match (from.parent(), to.parent(), from.file_name()) {
        (Some(a), Some(b), Some(name)) if a == b => format!("../{}", name.to_string_lossy()),
        _ => from.to_string_lossy().into_owned(),
    }
}

/// Reads a run's `report.json`, for callers that have a run directory.
pub fn read_report(run_dir: &Path) -> Result<Report> {
    crate::report::read(run_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn journal_survives_a_torn_last_line_and_last_word_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::create(dir.path()).unwrap();
        for status in [Status::Failed, Status::Passed] {
            let report = TaskReport::not_run("a", "dev", status, "x");
            journal
                .append(&JournalLine::Task {
                    run_id: "r".into(),
                    report: Box::new(report),
                })
                .unwrap();
        }
        let mut raw = OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal.jsonl"))
            .unwrap();
        raw.write_all(b"{\"kind\":\"task\",\"run_id\":\"r\",\"rep")
            .unwrap();
        let tasks = Journal::finished_tasks(dir.path());
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].status, Status::Passed);
    }

    #[test]
    fn carried_paths_point_into_the_sibling_run() {
        let mut t = TaskReport::not_run("a", "dev", Status::Failed, "x");
        t.log = Some("logs/a.1.log".into());
        let c = carry(&t, Path::new("runs/p/old"), Path::new("runs/p/new"));
        assert_eq!(c.log.as_deref(), Some("../old/logs/a.1.log"));
        assert!(c.carried_over);
        // Carrying again does not stack prefixes.
        let again = carry(&c, Path::new("runs/p/new"), Path::new("runs/p/newer"));
        assert_eq!(again.log.as_deref(), Some("../old/logs/a.1.log"));
    }
}

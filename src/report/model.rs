//! The report model: exactly what `report.json` holds (SPEC.md "The run directory").
//!
//! Every other report (Markdown, JUnit, HTML) is rendered from this model alone, so
//! `borg-batch report RUN_DIR` can re-render any of them from `report.json`,
//! byte-identical. Nothing here may depend on the clock, the machine or hash-map order.

use serde::{Deserialize, Serialize};

/// The outcome of a task or of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    TimedOut,
    Skipped,
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
            Status::Skipped => "skipped",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn is_pass(self) -> bool {
        self == Status::Passed
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run_id: String,
    /// The plan file as given on the command line.
    pub plan: String,
    pub plan_name: String,
    /// The run directory whose outcomes this run carried over, if any.
    pub carried_from: Option<String>,
    /// The shard this run was (`--shard`), absent for a whole-plan run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    pub started_at: String,
    pub finished_at: String,
    pub summary: Summary,
    /// Every task of the plan, in plan order.
    pub tasks: Vec<TaskReport>,
    /// Every instance's whole change, in review order (the deepest along `needs` first:
    /// the last instance of a pipeline, which holds the feature).
    #[serde(default)]
    pub instances: Vec<InstanceReport>,
}

/// One instance's whole change: its `project-files/` at the end of the run against its
/// base (the state its workspace was created with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub name: String,
    pub changes: Vec<Change>,
    /// `diffs/<instance>.patch` (see README for a task of the same id), or null when
    /// nothing changed.
    pub patch: Option<String>,
    /// Set on an instance of another shard (its changes are in that shard's report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_shard: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub skipped: usize,
    pub interrupted: usize,
    pub flaky: usize,
    pub cost_usd: f64,
}

impl Summary {
    /// Counts `tasks` (carried-over ones included: the summary is the plan's state).
    /// `cost_usd` is what this run spent: carried-over tasks' costs were paid earlier.
    pub fn of(tasks: &[TaskReport]) -> Summary {
        let mut s = Summary {
            total: tasks.len(),
            ..Summary::default()
        };
        for t in tasks {
            match t.status {
                Status::Passed => s.passed += 1,
                Status::Failed => s.failed += 1,
                Status::TimedOut => s.timed_out += 1,
                Status::Skipped => s.skipped += 1,
                Status::Interrupted => s.interrupted += 1,
            }
            if t.flaky {
                s.flaky += 1;
            }
            if !t.carried_over {
                s.cost_usd += t.cost_usd.unwrap_or(0.0);
            }
        }
        // Keep the JSON stable: no 0.30000000000000004 from float sums.
        s.cost_usd = (s.cost_usd * 1e6).round() / 1e6;
        s
    }
}

/// What an agent reported using, in tokens (input includes cached input).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
}

/// A task's test results: from the JUnit files its check wrote, else from the summary
/// lines of the runners in the check's output (SPEC.md "The run directory": `tests`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCounts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// The output told only part of the truth (go test without `-v` names failures but
    /// not passes): the counts are what is known, not the whole suite.
    #[serde(default)]
    pub partial: bool,
    /// Each failing test the runner named, in the order it named them.
    #[serde(default)]
    pub failures: Vec<TestFailure>,
}

/// One failing test: its name as the runner gives it and the first lines of its message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFailure {
    pub name: String,
    #[serde(default)]
    pub message: String,
}

/// One task's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub id: String,
    pub instance: String,
    pub status: Status,
    pub carried_over: bool,
    /// Attempts made (0 when the task never ran).
    pub attempts: u32,
    /// Passed on a retry after a failed attempt.
    pub flaky: bool,
    /// A process the agent left behind held its output open after it exited.
    pub leaked: bool,
    /// The final attempt's agent exit code; null if ended by a signal or never ran.
    pub exit_code: Option<i32>,
    /// The whole task: all attempts and the check.
    pub duration_ms: u64,
    pub session_id: Option<String>,
    pub cost_usd: Option<f64>,
    /// All attempts' tokens; null where the agent reports none.
    #[serde(default)]
    pub tokens: Option<Tokens>,
    /// The agent's final text.
    pub result: Option<String>,
    /// The final answer as JSON, for a task with an `output_schema`.
    #[serde(default)]
    pub structured_output: Option<serde_json::Value>,
    /// Why the task did not pass, in words.
    pub error: Option<String>,
    pub tests: Option<TestCounts>,
    /// The last lines of the check's output (or the agent's, where the agent failed) that
    /// show why the task did not pass; null for a task that passed or never ran.
    #[serde(default)]
    pub failure_output: Option<String>,
    /// The final attempt's log, relative to the run directory.
    pub log: Option<String>,
    /// `diffs/<task>.patch`, or null when the task made no text change.
    pub patch: Option<String>,
    pub history: Vec<AttemptReport>,
    pub changes: Vec<Change>,
    /// Things the reader should know that are not failures (a session that could not be
    /// resumed, skipped special files, rate-limit back-offs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Set on a task of another shard (skipped here): the shard that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_shard: Option<u32>,
    /// The outcome and changes came from the result cache; no agent ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// For a cached task: the run it was cached from (`<run id> (<run directory>)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<String>,
}

impl TaskReport {
    /// A task that did not run in this invocation for `reason`, with status `status`.
    pub fn not_run(id: &str, instance: &str, status: Status, reason: &str) -> TaskReport {
        TaskReport {
            id: id.to_string(),
            instance: instance.to_string(),
            status,
            carried_over: false,
            attempts: 0,
            flaky: false,
            leaked: false,
            exit_code: None,
            duration_ms: 0,
            session_id: None,
            cost_usd: None,
            tokens: None,
            result: None,
            structured_output: None,
            error: Some(reason.to_string()),
            tests: None,
            failure_output: None,
            log: None,
            patch: None,
            history: Vec::new(),
            changes: Vec::new(),
            notes: Vec::new(),
            in_shard: None,
            cached: false,
            cached_from: None,
        }
    }
}

/// One attempt of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    pub attempt: u32,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub log: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One changed path in `project-files/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Relative to `project-files/`, `/`-separated; lossy when the name is not UTF-8.
    pub path: String,
    pub kind: ChangeKind,
    pub binary: bool,
    pub symlink: bool,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
    /// A unified diff for text files up to 1 MiB; a size line for larger ones; null for
    /// binary files and symlinks.
    pub diff: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_lossy: bool,
    /// Unix permission bits (e.g. 0o644), set when the executable bit changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_before: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_after: Option<u32>,
    /// Symlink targets, for symlink changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_after: Option<String>,
}

//! The one error type for what a user can get wrong, and the exit-code table.
//!
//! A task that fails is a *result* (see `report::Status`), never an `Err`: only problems
//! with the plan, the command line, the environment or the runner itself land here. Each
//! variant names its subject (file, line, field, task id) so the message can be acted on.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Process exit codes, in one place (SPEC.md "Exit codes").
pub mod exit {
    /// Every task this invocation ran passed.
    pub const SUCCESS: i32 = 0;
    /// A task this invocation ran did not pass.
    pub const TASK_FAILED: i32 = 1;
    /// The plan, the command line or the environment is wrong; nothing ran.
    pub const USAGE: i32 = 2;
    /// The runner itself failed mid-run (disk full, I/O error).
    pub const RUNNER_FAILED: i32 = 3;
    /// Interrupted by SIGINT, SIGTERM or SIGHUP.
    pub const INTERRUPTED: i32 = 130;
}

/// One problem found in a plan file. A plan can have many; all are reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProblem {
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// 1-based column, where known.
    pub column: Option<usize>,
    /// The field the problem is about, as a path: `tasks[2].needs`, `instances[0].name`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.field, self.message)
        }
    }
}

fn render_problems(problems: &[PlanProblem]) -> String {
    let mut out = match problems.len() {
        1 => "the plan has a problem:".to_string(),
        n => format!("the plan has {n} problems:"),
    };
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

/// Everything that stops borg-batch before or outside the tasks themselves.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", render_problems(.0))]
    Plan(Vec<PlanProblem>),

    #[error("cannot read plan `{}`", path.display())]
    PlanRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "agent command `{command}` {reason}\n  \
         install Claude Code with `npm install -g @anthropic-ai/claude-code`, or point \
         borg-batch at it: set `CLAUDE_CODE_PATH=/path/to/claude`, or `agent.command` in the plan"
    )]
    AgentNotFound { command: String, reason: String },

    #[error(
        "agent command `{command}` is not logged in: nothing would run\n  \
         set `ANTHROPIC_API_KEY`, or run `claude setup-token` and set the token it prints as \
         `CLAUDE_CODE_OAUTH_TOKEN` (or log in with `claude` once)"
    )]
    AgentNotLoggedIn { command: String },

    #[error("invalid command line: {0}")]
    Usage(String),

    #[error(
        "instance `{instance}` is in use by another borg-batch run (pid {pid}); \
         wait for it to finish or stop it (lock: `{}`)", lock.display()
    )]
    LockHeld {
        instance: String,
        pid: u32,
        lock: PathBuf,
    },

    #[error("no earlier run of plan `{plan}` in `{}` to rerun; run the plan once first", dir.display())]
    NoEarlierRun { plan: String, dir: PathBuf },

    #[error("cannot merge: {0}")]
    Merge(String),

    #[error("cannot read run `{}`: {reason}", path.display())]
    BadRun { path: PathBuf, reason: String },

    /// An I/O failure before any task started: the environment is wrong, nothing ran.
    #[error("cannot {action} `{}`; nothing ran", path.display())]
    Setup {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Builds an [`Error::Io`] for `action` (a verb phrase: "write", "create folder") on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Marks an I/O failure as happening before any task started (exit 2, not 3).
    #[must_use]
    pub fn before_run(self) -> Self {
        match self {
            Error::Io {
                action,
                path,
                source,
            } => Error::Setup {
                action,
                path,
                source,
            },
            other => other,
        }
    }

    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io { .. } => exit::RUNNER_FAILED,
            _ => exit::USAGE,
        }
    }

    /// A one-problem plan error, for callers that found a single problem.
    pub fn plan(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Plan(vec![PlanProblem {
            file: file.into(),
            line: None,
            column: None,
            field: field.into(),
            message: message.into(),
        }])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders an error with its `Caused by:` chain, the way `main` prints it.
pub fn render_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("error: {err}");
    let mut source = err.source();
    if source.is_some() {
        out.push_str("\n\nCaused by:");
    }
    while let Some(cause) = source {
        out.push_str(&format!("\n    {cause}"));
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_names_file_line_column_and_field() {
        let p = PlanProblem {
            file: "plans/x.yaml".into(),
            line: Some(12),
            column: Some(5),
            field: "tasks[1].needs".into(),
            message: "unknown task `nope`".into(),
        };
        assert_eq!(
            p.to_string(),
            "plans/x.yaml:12:5: `tasks[1].needs`: unknown task `nope`"
        );
    }

    #[test]
    fn io_errors_exit_3_and_the_rest_exit_2() {
        let io = Error::io("write", "/x", io::Error::other("disk full"));
        assert_eq!(io.exit_code(), exit::RUNNER_FAILED);
        assert_eq!(Error::Usage("x".into()).exit_code(), exit::USAGE);
        assert!(render_chain(&io).contains("Caused by:\n    disk full"));
    }
}

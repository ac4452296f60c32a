//! What to do and with which settings: the command line, the environment and the plan
//! merged by SPEC.md's precedence — a task's or instance's own field > command-line flag >
//! the plan's top-level value > environment variable > built-in default.
//!
//! Plain data: `main.rs` fills [`Command`] from clap; the core never sees clap.

use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::plan::{AgentKind, AgentSpec, Plan, SessionMode};

/// The report formats `borg-batch report` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Md,
    Json,
    Junit,
    Html,
}

/// How progress is shown while a run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// A live display on a terminal, plain lines elsewhere.
    #[default]
    Auto,
    /// One plain line per event.
    Lines,
    /// Only the final summary.
    Quiet,
}

/// One invocation of borg-batch.
#[derive(Debug, Clone)]
pub enum Command {
    Run(RunOptions),
    Validate {
        plan: PathBuf,
    },
    Report {
        run_dir: PathBuf,
        /// `None`: the terminal summary.
        format: Option<Format>,
        output: Option<PathBuf>,
        color: crate::report::term::ColorChoice,
    },
    /// Remove a plan's old runs, crash leftovers and (optionally) workspaces.
    Clean(crate::clean::CleanOptions),
    /// Join the run directories of a plan's shards into one.
    Merge {
        inputs: Vec<PathBuf>,
        out: PathBuf,
    },
}

/// `borg-batch run`'s options, as given.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub plan: PathBuf,
    pub jobs: Option<usize>,
    pub out: Option<PathBuf>,
    pub workspaces: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub only: Vec<String>,
    pub rerun_failed: bool,
    pub fresh: bool,
    pub dry_run: bool,
    pub max_cost: Option<f64>,
    /// `--shard K/N|slice:K/N|auto`: run only this shard's groups of instances.
    pub shard: Option<crate::shard::ShardSpec>,
    pub progress: Progress,
    /// `-v`: every attempt, every check, failure output in full.
    pub verbose: bool,
    pub color: crate::report::term::ColorChoice,
}

/// The built-in defaults.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
pub const MAX_DEFAULT_JOBS: usize = 8;
pub const DEFAULT_PERMISSION_MODE: &str = "acceptEdits";
pub const DEFAULT_ALLOWED_TOOLS: [&str; 4] = ["Read", "Edit", "Write", "Bash"];

/// The machine-wide defaults from the environment (they apply where the plan is silent).
#[derive(Debug, Clone, Default)]
pub struct EnvDefaults {
    pub claude_code_path: Option<String>,
    pub workspaces_dir: Option<PathBuf>,
    pub task_timeout: Option<Duration>,
}

impl EnvDefaults {
    /// Reads `CLAUDE_CODE_PATH`, `WORKSPACES_DIR` and `TASK_TIMEOUT` (milliseconds).
    pub fn from_env() -> Result<EnvDefaults> {
        let non_empty = |name: &str| env::var_os(name).filter(|v| !v.is_empty());
        let task_timeout = match non_empty("TASK_TIMEOUT") {
            None => None,
            Some(v) => {
                let text = v.to_string_lossy();
                Some(task_timeout(text.trim())?)
            }
        };
        Ok(EnvDefaults {
            claude_code_path: non_empty("CLAUDE_CODE_PATH").map(|v| v.to_string_lossy().into()),
            workspaces_dir: non_empty("WORKSPACES_DIR").map(PathBuf::from),
            task_timeout,
        })
    }
}

/// `TASK_TIMEOUT`: milliseconds (`300000`, the seed's form) or a duration (`5m`).
fn task_timeout(text: &str) -> Result<Duration> {
    let bad = || {
        Error::Usage(format!(
            "`TASK_TIMEOUT` must be milliseconds (e.g. 300000) or a duration (e.g. 5m, 90s), \
             not `{text}`"
        ))
    };
    let timeout = match text.parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => crate::plan::parse_duration(text).map_err(|_| bad())?,
    };
    if timeout.is_zero() {
        return Err(Error::Usage("`TASK_TIMEOUT` must be above 0".into()));
    }
    Ok(timeout)
}

/// An instance's agent, fully resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub kind: AgentKind,
    /// The command as configured (for messages and `--dry-run`).
    pub command: String,
    /// The program that will be spawned (resolved path or bare name found on `PATH`).
    pub program: PathBuf,
    pub args: Vec<String>,
    pub model: Option<String>,
    pub permission_mode: String,
    pub allowed_tools: Vec<String>,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    pub session: SessionMode,
    pub env: BTreeMap<String, String>,
    /// Claude Code's `--setting-sources` (default: only `user`, see `agent::claude`).
    pub setting_sources: Vec<String>,
    /// MCP config files, absolute (claude `--mcp-config`, always `--strict-mcp-config`).
    pub mcp_config: Vec<PathBuf>,
    /// A task's own `idle_timeout` wins over this one.
    pub idle_timeout: Option<Duration>,
}

/// Everything a run needs besides the plan, with precedence applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub workspaces: PathBuf,
    pub jobs: usize,
    /// The timeout of a task that sets none itself.
    pub default_timeout: Duration,
    pub default_retries: u32,
    pub grace: Duration,
    /// Per instance: its resolved agent.
    pub agents: BTreeMap<String, AgentConfig>,
    /// Per instance: the plan's ignore patterns plus its own.
    pub ignore: BTreeMap<String, Vec<String>>,
}

impl Settings {
    pub fn resolve(plan: &Plan, options: &RunOptions, env: &EnvDefaults) -> Result<Settings> {
        let workspaces = options
            .workspaces
            .clone()
            .or_else(|| plan.workspaces.clone())
            .or_else(|| env.workspaces_dir.clone())
            .unwrap_or_else(|| PathBuf::from("workspaces"));
        // Agents run in `project-files/`, so every path handed to them (their config folder)
        // must not be relative to the current directory.
        let workspaces = std::path::absolute(&workspaces)
            .map_err(|e| Error::io("resolve", workspaces.clone(), e))?;
        let jobs = options
            .jobs
            .or(plan.jobs)
            .unwrap_or_else(|| plan.instances.len().clamp(1, MAX_DEFAULT_JOBS));
        if jobs == 0 {
            return Err(Error::Usage("`--jobs` must be at least 1".into()));
        }
        let default_timeout = options
            .timeout
            .or(plan.timeout)
            .or(env.task_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let mut agents = BTreeMap::new();
        let mut ignore = BTreeMap::new();
        for instance in &plan.instances {
            agents.insert(
                instance.name.clone(),
                resolve_agent(&instance.agent.over(&plan.agent), &plan.dir, env)?,
            );
            let mut patterns = plan.ignore.clone();
            patterns.extend(instance.ignore.iter().cloned());
            ignore.insert(instance.name.clone(), patterns);
        }
        Ok(Settings {
            workspaces,
            jobs,
            default_timeout,
            default_retries: plan.retries.unwrap_or(0),
            grace: plan.grace.unwrap_or(DEFAULT_GRACE),
            agents,
            ignore,
        })
    }

    pub fn agent(&self, instance: &str) -> &AgentConfig {
        &self.agents[instance]
    }
}

/// Checks what `validate` can check beyond the plan file itself: every instance's agent
/// command can be found. Writes nothing.
pub fn preflight_paths(plan: &Plan) -> Result<()> {
    let env = EnvDefaults::from_env()?;
    for instance in &plan.instances {
        resolve_agent(&instance.agent.over(&plan.agent), &plan.dir, &env)?;
    }
    Ok(())
}

fn resolve_agent(spec: &AgentSpec, plan_dir: &Path, env: &EnvDefaults) -> Result<AgentConfig> {
    // A command from the plan with a `/` is relative to the plan's folder; one from the
    // environment is relative to the current directory, like any path a shell passes.
    let kind = spec.kind.unwrap_or_default();
    let claude_path = env
        .claude_code_path
        .as_ref()
        .filter(|_| kind.default_command().is_none());
    let (command, program) = match (&spec.command, claude_path) {
        (Some(cmd), _) => {
            let program = if cmd.contains('/') {
                plan_dir.join(cmd)
            } else {
                PathBuf::from(cmd)
            };
            (cmd.clone(), program)
        }
        (None, Some(path)) => (path.clone(), PathBuf::from(path)),
        (None, None) => {
            let name = kind.default_command().unwrap_or("claude");
            (name.to_string(), PathBuf::from(name))
        }
    };
    let program = find_program(&program).map_err(|reason| Error::AgentNotFound {
        command: command.clone(),
        reason,
    })?;
    Ok(AgentConfig {
        kind,
        command,
        program,
        args: spec.args.clone().unwrap_or_default(),
        model: spec.model.clone(),
        permission_mode: spec
            .permission_mode
            .clone()
            .unwrap_or_else(|| DEFAULT_PERMISSION_MODE.to_string()),
        allowed_tools: spec.allowed_tools.clone().unwrap_or_else(|| {
            DEFAULT_ALLOWED_TOOLS
                .iter()
                .map(|s| (*s).to_string())
                .collect()
        }),
        max_turns: spec.max_turns,
        max_budget_usd: spec.max_budget_usd,
        session: spec.session.unwrap_or_default(),
        env: spec.env.clone().unwrap_or_default(),
        setting_sources: spec.setting_sources.clone().unwrap_or_else(|| {
            crate::plan::DEFAULT_SETTING_SOURCES
                .iter()
                .map(|s| (*s).to_string())
                .collect()
        }),
        mcp_config: spec
            .mcp_config
            .iter()
            .flatten()
            .map(|p| std::path::absolute(plan_dir.join(p)).unwrap_or_else(|_| plan_dir.join(p)))
            .collect(),
        idle_timeout: spec.idle_timeout,
    })
}

/// Finds `program`: a path with a separator must be an executable file; a bare name is
/// looked up on `PATH`. Returns the path to spawn, or why it cannot be.
pub fn find_program(program: &Path) -> std::result::Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return match std::fs::metadata(program) {
            Err(_) => Err(format!("was not found at `{}`", program.display())),
            Ok(_) if !is_executable(program) => Err(format!(
                "at `{}` is not an executable file",
                program.display()
            )),
            // The agent runs in project-files/, so a relative path must not stay relative.
            Ok(_) => std::path::absolute(program).map_err(|e| format!("cannot be resolved: {e}")),
        };
    }
    let path = env::var_os("PATH").unwrap_or_default();
    for dir in env::split_paths(&path) {
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err("was not found on `PATH`".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_timeout_takes_milliseconds_or_a_duration() {
        assert_eq!(task_timeout("300000").unwrap(), Duration::from_secs(300));
        assert_eq!(task_timeout("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(task_timeout("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(task_timeout("0").is_err());
        assert!(
            task_timeout("five")
                .unwrap_err()
                .to_string()
                .contains("e.g. 5m")
        );
    }

    #[test]
    fn bare_names_are_looked_up_on_path_and_paths_checked() {
        assert!(find_program(Path::new("sh")).is_ok());
        let err = find_program(Path::new("no-such-agent-xyz")).unwrap_err();
        assert!(err.contains("PATH"), "{err}");
        let err = find_program(Path::new("/nonexistent/claude")).unwrap_err();
        assert!(err.contains("/nonexistent/claude"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let err = find_program(&plain).unwrap_err();
        assert!(err.contains("not an executable"), "{err}");
    }
}

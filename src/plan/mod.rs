//! The plan: what a YAML plan file says, once loaded and validated.
//!
//! Everything after this module works on these types only, never on raw YAML, so a plan
//! that got here is known to be well-formed: names are safe folder names, needs exist and
//! form no cycle, durations parsed, templates exist. Loading never creates or deletes
//! anything (`validate` and `--dry-run` write nothing).

mod cycles;
mod duration;
mod fields;
mod load;
#[cfg(test)]
mod load_tests;
mod locate;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use duration::{format_duration, parse_duration};
pub use load::load;

/// How the agent is invoked (SPEC.md "Agent invocation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// The Claude Code CLI: `-p --output-format ...` and friends.
    #[default]
    Claude,
    /// OpenAI's Codex CLI: `exec --json`, `exec resume <thread id>`.
    Codex,
    /// Any command: `<command> <args...>`, prompt on stdin.
    Generic,
}

impl AgentKind {
    /// Every kind, as written in a plan.
    pub const NAMES: [&str; 3] = ["claude", "codex", "generic"];

    pub fn parse(name: &str) -> Option<AgentKind> {
        match name {
            "claude" => Some(AgentKind::Claude),
            "codex" => Some(AgentKind::Codex),
            "generic" => Some(AgentKind::Generic),
            _ => None,
        }
    }

    /// The command run when the plan names none (`None`: Claude Code's, which
    /// `CLAUDE_CODE_PATH` may name).
    pub fn default_command(self) -> Option<&'static str> {
        match self {
            AgentKind::Claude | AgentKind::Generic => None,
            AgentKind::Codex => Some("codex"),
        }
    }
}

/// What a task must have done besides passing its agent and check (`expect:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The agent changed at least one file.
    Changes,
}

/// The setting sources Claude Code reads by default: only the instance's own config folder
/// (`user`), never the template's `.claude/settings*.json` (see `agent::claude`).
pub const DEFAULT_SETTING_SOURCES: [&str; 1] = ["user"];

/// Whether consecutive tasks of an instance continue one agent session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    #[default]
    Resume,
    Fresh,
}

/// An `agent:` block as written, at plan or instance level. `None` = not set here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSpec {
    pub kind: Option<AgentKind>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    pub session: Option<SessionMode>,
    pub env: Option<BTreeMap<String, String>>,
    pub idle_timeout: Option<Duration>,
    /// `user`, `project`, `local` (claude `--setting-sources`).
    pub setting_sources: Option<Vec<String>>,
    /// MCP config files, as written (relative to the plan's folder).
    pub mcp_config: Option<Vec<String>>,
}

impl AgentSpec {
    /// `self` (more specific) over `base`: each field set here wins; `env` maps merge, with
    /// this level's keys winning.
    pub fn over(&self, base: &AgentSpec) -> AgentSpec {
        let env = match (&self.env, &base.env) {
            (Some(mine), Some(theirs)) => {
                let mut merged = theirs.clone();
                merged.extend(mine.iter().map(|(k, v)| (k.clone(), v.clone())));
                Some(merged)
            }
            (mine, theirs) => mine.clone().or_else(|| theirs.clone()),
        };
        AgentSpec {
            kind: self.kind.or(base.kind),
            command: self.command.clone().or_else(|| base.command.clone()),
            args: self.args.clone().or_else(|| base.args.clone()),
            model: self.model.clone().or_else(|| base.model.clone()),
            permission_mode: self
                .permission_mode
                .clone()
                .or_else(|| base.permission_mode.clone()),
            allowed_tools: self
                .allowed_tools
                .clone()
                .or_else(|| base.allowed_tools.clone()),
            max_turns: self.max_turns.or(base.max_turns),
            max_budget_usd: self.max_budget_usd.or(base.max_budget_usd),
            session: self.session.or(base.session),
            env,
            idle_timeout: self.idle_timeout.or(base.idle_timeout),
            setting_sources: self
                .setting_sources
                .clone()
                .or_else(|| base.setting_sources.clone()),
            mcp_config: self.mcp_config.clone().or_else(|| base.mcp_config.clone()),
        }
    }
}

/// One instance: a role with its own workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Safe as a folder name: `[a-z0-9][a-z0-9._-]{0,63}`, never `..`.
    pub name: String,
    pub role: String,
    pub context: Option<String>,
    /// Resolved against the plan file's folder; known to exist and be a folder.
    pub template: Option<PathBuf>,
    /// This instance's own `ignore` patterns (the plan's are added by the runner).
    pub ignore: Vec<String>,
    /// The instance's own `agent:` block (not yet merged with the plan's).
    pub agent: AgentSpec,
}

/// One task: a prompt for one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub instance: String,
    pub prompt: String,
    pub needs: Vec<String>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub check: Option<String>,
    /// No output for this long ends an attempt as timed out (over `agent.idle_timeout`).
    pub idle_timeout: Option<Duration>,
    pub expect: Option<Expect>,
    /// Loaded and compiled; its path resolved against the plan's folder.
    pub output_schema: Option<crate::agent::schema::Schema>,
}

#[cfg(test)]
impl Task {
    /// A task with only an id, an instance and needs, for the unit tests of the modules
    /// that read plans (scheduling, shards, cycles).
    pub(crate) fn minimal(id: &str, instance: &str, needs: &[&str]) -> Task {
        Task {
            id: id.into(),
            instance: instance.into(),
            prompt: "p".into(),
            needs: needs.iter().map(|n| (*n).to_string()).collect(),
            timeout: None,
            retries: None,
            check: None,
            idle_timeout: None,
            expect: None,
            output_schema: None,
        }
    }
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The plan file, as given on the command line.
    pub path: PathBuf,
    /// The folder holding the plan file: `template` and agent commands with a `/` are
    /// relative to it.
    pub dir: PathBuf,
    /// `name:` or the file's stem.
    pub name: String,
    /// `workspaces:` as written (relative to the current directory).
    pub workspaces: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub grace: Option<Duration>,
    /// The plan's `ignore` patterns (default `[.git/]`).
    pub ignore: Vec<String>,
    pub agent: AgentSpec,
    pub instances: Vec<Instance>,
    /// In file order.
    pub tasks: Vec<Task>,
}

impl Plan {
    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// Each task's position in file order, by id.
    pub fn task_indices(&self) -> std::collections::BTreeMap<&str, usize> {
        self.tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect()
    }
}

/// Checks a name for instances, tasks and plans: `[a-z0-9][a-z0-9._-]{0,63}` and not made
/// only of dots. Returns what is wrong with it, if anything.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 64 {
        return Err(format!("is {} characters long; at most 64", name.len()));
    }
    let first = name.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err("must start with a lowercase letter or a digit".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "contains `{}`; use only a-z, 0-9, `.`, `_` and `-`",
            bad.escape_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("dev").is_ok());
        assert!(check_name("a.b_c-9").is_ok());
        assert!(check_name("..").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("Dev").is_err());
        assert!(check_name("/abs").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn instance_agent_fields_win_and_env_merges() {
        let plan = AgentSpec {
            model: Some("a".into()),
            max_turns: Some(3),
            env: Some([("A".into(), "1".into()), ("B".into(), "1".into())].into()),
            ..AgentSpec::default()
        };
        let inst = AgentSpec {
            model: Some("b".into()),
            env: Some([("B".into(), "2".into())].into()),
            ..AgentSpec::default()
        };
        let m = inst.over(&plan);
        assert_eq!(m.model.as_deref(), Some("b"));
        assert_eq!(m.max_turns, Some(3));
        let env = m.env.unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "2");
    }
}

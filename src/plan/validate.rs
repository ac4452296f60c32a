//! Checks on a parsed plan: names, references, numbers, durations, templates, agents.
//!
//! Every check runs, whatever the others found, so a user fixes all of a plan's problems in
//! one go. Each problem names its field as a path (`tasks[2].needs`) and, through the
//! [`Locator`], the line and column of the offending value. Reads the file system only to
//! ask whether a template folder exists; never creates or changes anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cycles::find_cycles;
use super::duration::parse_span;
use super::locate::Locator;
use super::raw::{RawAgent, RawInstance, RawPlan, RawTask, Text, Whole};
use super::{AgentKind, AgentSpec, Expect, Instance, Plan, SessionMode, Task, check_name};
use crate::error::PlanProblem;

pub const MAX_JOBS: i128 = 256;
pub const MAX_RETRIES: i128 = 20;
pub const MAX_TURNS: i128 = 10_000;
pub const MAX_BUDGET_USD: f64 = 10_000.0;
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_GRACE: Duration = Duration::from_secs(3600);
/// Claude Code's setting sources (`--setting-sources`).
pub const SETTING_SOURCES: [&str; 3] = ["user", "project", "local"];
pub const PERMISSION_MODES: [&str; 5] = [
    "acceptEdits",
    "bypassPermissions",
    "default",
    "dontAsk",
    "plan",
];

/// Collects problems against one plan file.
pub(super) struct Checker<'a> {
    file: &'a Path,
    locator: &'a Locator,
    problems: Vec<PlanProblem>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(file: &'a Path, locator: &'a Locator) -> Self {
        Checker {
            file,
            locator,
            problems: Vec::new(),
        }
    }

    /// A problem with `field`, located at `field`'s value.
    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problem_at(field, field, message);
    }

    /// A problem with `field`, located at `at` (an item inside it, say).
    fn problem_at(&mut self, field: &str, at: &str, message: impl Into<String>) {
        let pos = self.locator.find(at);
        self.problems.push(PlanProblem {
            file: self.file.to_path_buf(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// All problems, in file order (those without a line first, as found).
    pub(super) fn into_problems(mut self) -> Vec<PlanProblem> {
        self.problems.sort_by_key(|p| (p.line, p.column));
        self.problems
    }

    fn name(&mut self, field: &str, what: &str, name: &str) {
        if let Err(why) = check_name(name) {
            self.problem(
                field,
                format!("invalid {what} `{}`: {why}", name.escape_default()),
            );
        }
    }

    /// A whole number in `lo..=hi`.
    fn whole(&mut self, field: &str, value: Option<Whole>, lo: i128, hi: i128) -> Option<i128> {
        let n = value?.0;
        let range = format!("must be from {lo} to {hi}");
        if n < 0 {
            self.problem(field, format!("`{n}` is negative; {range}"));
        } else if n < lo {
            self.problem(field, format!("`{n}` is too small; {range}"));
        } else if n > hi {
            self.problem(field, format!("`{n}` is too large; {range}"));
        } else {
            return Some(n);
        }
        None
    }

    /// A duration no longer than `max`; zero only if `zero_ok`.
    fn duration(
        &mut self,
        field: &str,
        value: Option<&Text>,
        max: Duration,
        zero_ok: bool,
    ) -> Option<Duration> {
        let text = &value?.0;
        match parse_span(text) {
            Err(why) => self.problem(field, why),
            Ok(d) if d.is_zero() && !zero_ok => self.problem(
                field,
                format!("`{}` is zero; a timeout must be above zero", text.trim()),
            ),
            Ok(d) if d > max => self.problem(
                field,
                format!(
                    "`{}` is too long; at most `{}`",
                    text.trim(),
                    super::format_duration(max)
                ),
            ),
            Ok(d) => return Some(d),
        }
        None
    }

    fn non_empty(&mut self, field: &str, value: Option<&str>, what: &str) {
        if value.is_some_and(|v| v.trim().is_empty()) {
            self.problem(field, format!("{what} must not be empty"));
        }
    }

    fn patterns(&mut self, field: &str, patterns: Option<&Vec<String>>) {
        for (i, p) in patterns.into_iter().flatten().enumerate() {
            if p.trim().is_empty() {
                self.problem(
                    &format!("{field}[{i}]"),
                    "an ignore pattern must not be empty",
                );
            }
        }
    }

    fn agent(&mut self, field: &str, raw: Option<&RawAgent>) -> AgentSpec {
        let Some(raw) = raw else {
            return AgentSpec::default();
        };
        let f = |name: &str| format!("{field}.{name}");
        let kind = raw.kind.as_deref().and_then(|k| {
            let kind = AgentKind::parse(k);
            if kind.is_none() {
                let names: Vec<String> =
                    AgentKind::NAMES.iter().map(|n| format!("`{n}`")).collect();
                let (last, rest) = names.split_last().expect("kinds are named");
                self.problem(
                    &f("kind"),
                    format!(
                        "unknown agent kind `{k}`; use {} or {last}",
                        rest.join(", ")
                    ),
                );
            }
            kind
        });
        let idle_timeout = self.duration(
            &f("idle_timeout"),
            raw.idle_timeout.as_ref(),
            MAX_TIMEOUT,
            false,
        );
        for (i, source) in raw.setting_sources.iter().flatten().enumerate() {
            if !SETTING_SOURCES.contains(&source.as_str()) {
                self.problem(
                    &format!("{field}.setting_sources[{i}]"),
                    format!(
                        "unknown setting source `{source}`; use {}",
                        SETTING_SOURCES.join(", ")
                    ),
                );
            }
        }
        for (i, path) in raw.mcp_config.iter().flatten().enumerate() {
            if path.trim().is_empty() {
                self.problem(
                    &format!("{field}.mcp_config[{i}]"),
                    "an MCP config path must not be empty",
                );
            }
        }
        let session = raw.session.as_deref().and_then(|s| match s {
            "resume" => Some(SessionMode::Resume),
            "fresh" => Some(SessionMode::Fresh),
            other => {
                self.problem(
                    &f("session"),
                    format!("unknown session mode `{other}`; use `resume` or `fresh`"),
                );
                None
            }
        });
        self.non_empty(&f("command"), raw.command.as_deref(), "the agent command");
        self.non_empty(&f("model"), raw.model.as_deref(), "the model");
        if let Some(mode) = raw.permission_mode.as_deref()
            && !PERMISSION_MODES.contains(&mode)
        {
            self.problem(
                &f("permission_mode"),
                format!(
                    "unknown permission mode `{mode}`; use one of {}",
                    PERMISSION_MODES.join(", ")
                ),
            );
        }
        for (i, tool) in raw.allowed_tools.iter().flatten().enumerate() {
            if tool.trim().is_empty() {
                self.problem(
                    &format!("{field}.allowed_tools[{i}]"),
                    "a tool name must not be empty",
                );
            }
        }
        let texts = raw.command.iter().chain(raw.args.iter().flatten());
        if texts.clone().any(|t| t.contains('\0')) {
            self.problem(
                field,
                "the agent command and args must not hold a NUL character",
            );
        }
        let max_turns = self
            .whole(&f("max_turns"), raw.max_turns, 1, MAX_TURNS)
            .and_then(|n| u32::try_from(n).ok());
        let max_budget_usd = raw.max_budget_usd.and_then(|usd| {
            if usd.is_finite() && usd > 0.0 && usd <= MAX_BUDGET_USD {
                Some(usd)
            } else {
                self.problem(
                    &f("max_budget_usd"),
                    format!(
                        "`{usd}` is out of range; must be above 0 and at most {MAX_BUDGET_USD}"
                    ),
                );
                None
            }
        });
        let env = raw.env.as_ref().map(|env| {
            for (key, value) in env {
                let at = format!("{field}.env.{key}");
                if !is_env_name(key) {
                    self.problem(
                        &at,
                        format!(
                            "`{}` is not a valid environment variable name; use letters, \
                             digits and `_`, not starting with a digit",
                            key.escape_default()
                        ),
                    );
                } else if value.0.contains('\0') {
                    self.problem(&at, "an environment value must not hold a NUL character");
                }
            }
            env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
        });
        AgentSpec {
            kind,
            command: raw.command.clone(),
            args: raw.args.clone(),
            model: raw.model.clone(),
            permission_mode: raw.permission_mode.clone(),
            allowed_tools: raw.allowed_tools.clone(),
            max_turns,
            max_budget_usd,
            session,
            idle_timeout,
            setting_sources: raw.setting_sources.clone(),
            mcp_config: raw.mcp_config.clone(),
            env,
        }
    }

    fn instance(&mut self, i: usize, raw: &RawInstance, dir: &Path) -> Instance {
        let f = |name: &str| format!("instances[{i}].{name}");
        let name = raw.name.as_ref().map_or_else(String::new, |n| n.0.clone());
        match &raw.name {
            None => self.problem(&format!("instances[{i}]"), "missing `name`"),
            Some(n) => self.name(&f("name"), "instance name", &n.0),
        }
        let role = raw.role.as_ref().map_or_else(String::new, |r| r.0.clone());
        match &raw.role {
            None => self.problem(
                &format!("instances[{i}]"),
                "missing `role` (developer, tester, reviewer, architect or any other word)",
            ),
            Some(r) if !is_role(&r.0) => self.problem(
                &f("role"),
                format!(
                    "`{}` is not a single word; use lowercase letters, digits, `_` and `-`, \
                     starting with a letter",
                    r.0.escape_default()
                ),
            ),
            Some(_) => {}
        }
        let template = raw
            .template
            .as_ref()
            .and_then(|t| self.template(&f("template"), t, dir));
        self.patterns(&f("ignore"), raw.ignore.as_ref());
        let agent = self.agent(&f("agent"), raw.agent.as_ref());
        Instance {
            name,
            role,
            context: raw.context.clone(),
            template,
            ignore: raw.ignore.clone().unwrap_or_default(),
            agent,
        }
    }

    /// Resolves a template against the plan's folder and checks it is a folder. Looks at
    /// its metadata only: never reads, follows further or creates anything.
    fn template(&mut self, field: &str, template: &str, dir: &Path) -> Option<PathBuf> {
        if template.trim().is_empty() {
            self.problem(field, "the template folder must not be empty");
            return None;
        }
        // `./x` next to a plan in the current folder reads better as `x`.
        let path: PathBuf = dir
            .join(template)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let path = if path.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            path
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => return Some(path),
            Ok(_) => self.problem(
                field,
                format!(
                    "template `{template}` is not a folder (at `{}`)",
                    path.display()
                ),
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => self.problem(
                field,
                format!(
                    "template folder `{template}` does not exist (looked at `{}`)",
                    path.display()
                ),
            ),
            Err(err) => self.problem(
                field,
                format!("cannot read template folder `{}`: {err}", path.display()),
            ),
        }
        None
    }

    fn task(&mut self, i: usize, raw: &RawTask, dir: &Path) -> Task {
        let f = |name: &str| format!("tasks[{i}].{name}");
        let id = raw.id.as_ref().map_or_else(String::new, |n| n.0.clone());
        match &raw.id {
            None => self.problem(&format!("tasks[{i}]"), "missing `id`"),
            Some(n) => self.name(&f("id"), "task id", &n.0),
        }
        if raw.instance.is_none() {
            self.problem(&format!("tasks[{i}]"), "missing `instance`");
        }
        match raw.prompt.as_deref() {
            None => self.problem(&format!("tasks[{i}]"), "missing `prompt`"),
            Some(p) if p.trim().is_empty() => self.problem(&f("prompt"), "the prompt is empty"),
            Some(_) => {}
        }
        self.non_empty(&f("check"), raw.check.as_deref(), "the check command");
        let timeout = self.duration(&f("timeout"), raw.timeout.as_ref(), MAX_TIMEOUT, false);
        let retries = self
            .whole(&f("retries"), raw.retries, 0, MAX_RETRIES)
            .and_then(|n| u32::try_from(n).ok());
        let idle_timeout = self.duration(
            &f("idle_timeout"),
            raw.idle_timeout.as_ref(),
            MAX_TIMEOUT,
            false,
        );
        let expect = raw.expect.as_deref().and_then(|e| match e {
            "changes" => Some(Expect::Changes),
            other => {
                self.problem(
                    &f("expect"),
                    format!("unknown expectation `{other}`; use `changes`"),
                );
                None
            }
        });
        let output_schema = raw.output_schema.as_deref().and_then(|p| {
            let path = dir.join(p);
            match crate::agent::schema::Schema::load(&path) {
                Ok(schema) => Some(schema),
                Err(why) => {
                    self.problem(
                        &f("output_schema"),
                        format!("the schema `{}` {why}", path.display()),
                    );
                    None
                }
            }
        });
        Task {
            id,
            instance: raw
                .instance
                .as_ref()
                .map_or_else(String::new, |n| n.0.clone()),
            prompt: raw.prompt.clone().unwrap_or_default(),
            needs: raw.needs.iter().flatten().map(|n| n.0.clone()).collect(),
            timeout,
            retries,
            check: raw.check.clone(),
            idle_timeout,
            expect,
            output_schema,
        }
    }

    /// Unique names, known instances and needs, no self-needs, no cycles.
    fn references(&mut self, instances: &[Instance], tasks: &[Task]) {
        let mut seen = BTreeMap::new();
        for (i, inst) in instances.iter().enumerate() {
            if inst.name.is_empty() {
                continue;
            }
            if let Some(first) = seen.insert(inst.name.as_str(), i) {
                seen.insert(inst.name.as_str(), first);
                self.problem(
                    &format!("instances[{i}].name"),
                    format!(
                        "duplicate instance name `{}` (also `instances[{first}]`)",
                        inst.name
                    ),
                );
            }
        }
        let known_instances = known(instances.iter().map(|i| i.name.as_str()));
        let mut ids = BTreeMap::new();
        for (i, task) in tasks.iter().enumerate() {
            if task.id.is_empty() {
                continue;
            }
            if let Some(first) = ids.insert(task.id.as_str(), i) {
                ids.insert(task.id.as_str(), first);
                self.problem(
                    &format!("tasks[{i}].id"),
                    format!("duplicate task id `{}` (also `tasks[{first}]`)", task.id),
                );
            }
        }
        let known_tasks = known(tasks.iter().map(|t| t.id.as_str()));
        for (i, task) in tasks.iter().enumerate() {
            if !task.instance.is_empty() && !seen.contains_key(task.instance.as_str()) {
                self.problem(
                    &format!("tasks[{i}].instance"),
                    format!(
                        "unknown instance `{}` (known: {known_instances})",
                        task.instance.escape_default()
                    ),
                );
            }
            for (j, need) in task.needs.iter().enumerate() {
                let field = format!("tasks[{i}].needs");
                let at = format!("{field}[{j}]");
                if *need == task.id {
                    self.problem_at(&field, &at, format!("task `{need}` cannot need itself"));
                } else if !ids.contains_key(need.as_str()) {
                    self.problem_at(
                        &field,
                        &at,
                        format!(
                            "unknown task `{}` (known: {known_tasks})",
                            need.escape_default()
                        ),
                    );
                } else if task.needs[..j].contains(need) {
                    self.problem_at(&field, &at, format!("`{need}` is listed twice"));
                }
            }
        }
        for cycle in find_cycles(tasks) {
            self.problem_at(
                &format!("tasks[{}].needs", cycle.task),
                &cycle.at,
                format!("dependency cycle: {}", cycle.text),
            );
        }
    }
}

/// `a, b, c` for a "(known: ...)" hint, capped so a huge plan gives a short message.
fn known<'n>(names: impl Iterator<Item = &'n str>) -> String {
    const SHOWN: usize = 20;
    let mut seen = std::collections::BTreeSet::new();
    // A duplicated name (reported on its own) is listed once.
    let names: Vec<&str> = names.filter(|n| !n.is_empty() && seen.insert(*n)).collect();
    if names.is_empty() {
        return "none".into();
    }
    let mut out = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_role(role: &str) -> bool {
    let mut chars = role.chars();
    role.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

/// Checks `raw` (read from `file`, which is in `dir`) and builds the plan, or returns every
/// problem found.
pub(super) fn validate(
    file: &Path,
    dir: &Path,
    locator: &Locator,
    raw: &RawPlan,
) -> Result<Plan, Vec<PlanProblem>> {
    let mut c = Checker::new(file, locator);
    if let Some(v) = raw.version
        && v.0 != 1
    {
        c.problem(
            "version",
            format!(
                "unsupported plan version `{}`; this borg-batch reads version 1",
                v.0
            ),
        );
    }
    let name = match &raw.name {
        Some(n) => {
            c.name("name", "plan name", &n.0);
            n.0.clone()
        }
        None => {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Err(why) = check_name(&stem) {
                c.problem(
                    "name",
                    format!(
                        "the plan's name defaults to the file's stem `{}`, which is not a valid \
                         name: it {why}; add a `name:` field",
                        stem.escape_default()
                    ),
                );
            }
            stem
        }
    };
    c.non_empty(
        "workspaces",
        raw.workspaces.as_deref(),
        "the workspaces folder",
    );
    let jobs = c
        .whole("jobs", raw.jobs, 1, MAX_JOBS)
        .and_then(|n| usize::try_from(n).ok());
    let timeout = c.duration("timeout", raw.timeout.as_ref(), MAX_TIMEOUT, false);
    let retries = c
        .whole("retries", raw.retries, 0, MAX_RETRIES)
        .and_then(|n| u32::try_from(n).ok());
    let grace = c.duration("grace", raw.grace.as_ref(), MAX_GRACE, true);
    c.patterns("ignore", raw.ignore.as_ref());
    let agent = c.agent("agent", raw.agent.as_ref());
    let raw_instances = raw.instances.as_deref().unwrap_or_default();
    if raw_instances.is_empty() {
        c.problem("instances", "a plan needs at least one instance");
    }
    let instances: Vec<Instance> = raw_instances
        .iter()
        .enumerate()
        .map(|(i, inst)| c.instance(i, inst, dir))
        .collect();
    let raw_tasks = raw.tasks.as_deref().unwrap_or_default();
    if raw_tasks.is_empty() {
        c.problem("tasks", "a plan needs at least one task");
    }
    let tasks: Vec<Task> = raw_tasks
        .iter()
        .enumerate()
        .map(|(i, t)| c.task(i, t, dir))
        .collect();
    c.references(&instances, &tasks);
    let problems = c.into_problems();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Plan {
        path: file.to_path_buf(),
        dir: dir.to_path_buf(),
        name,
        workspaces: raw.workspaces.as_ref().map(PathBuf::from),
        jobs,
        timeout,
        retries,
        grace,
        ignore: raw
            .ignore
            .clone()
            .unwrap_or_else(|| vec![".git/".to_string()]),
        agent,
        instances,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_env_names() {
        assert!(is_role("developer"));
        assert!(is_role("qa-lead_2"));
        assert!(!is_role("Dev"));
        assert!(!is_role("dev ops"));
        assert!(!is_role("2nd"));
        assert!(!is_role(""));
        assert!(is_env_name("RUST_LOG"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }

    #[test]
    fn known_lists_are_capped() {
        assert_eq!(known(["a", "", "b"].into_iter()), "a, b");
        assert_eq!(known(std::iter::empty()), "none");
        let many: Vec<String> = (0..25).map(|i| format!("t{i}")).collect();
        assert!(known(many.iter().map(String::as_str)).ends_with("t19 and 5 more"));
    }
}

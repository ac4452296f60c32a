//! The run: from a loaded plan to a finished run directory.
//!
//! Validate and resolve everything first (nothing is created before the plan, the command
//! line and the environment are known good), then lock the instances, create the run
//! directory and its `latest` link, dispatch the tasks on a rayon pool, and write the
//! reports. The runner never prints: it emits [`events::Event`]s to its reporters.

mod attempt;
mod check;
mod dispatch;
mod dry_run;
pub mod events;
mod journal;
mod task;
mod whole;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{AgentConfig, EnvDefaults, Format, RunOptions, Settings};
use crate::error::{Error, Result, exit};
use crate::exec::capture::Redactor;
use crate::exec::signals;
use crate::history::{self, Outcomes, RunMeta};
use crate::plan::{self, Plan, Task};
use crate::report::{self, Report, Status, Summary, TaskReport};
use crate::shard::{self, Split};
use crate::snapshot::Ignore;
use crate::workspace::{InstanceLock, Workspace, base, roles};
use crate::{fsutil, schedule};

use events::{Event, Reporter};

/// Everything the tasks of one run share.
pub struct RunContext<'a> {
    pub plan: &'a Plan,
    pub settings: &'a Settings,
    pub run_id: &'a str,
    pub run_dir: &'a Path,
    /// Values that never appear in logs or reports.
    pub secrets: Vec<String>,
    pub redactor: Redactor,
    sink: &'a dispatch::Sink,
}

impl RunContext<'_> {
    pub fn workspace(&self, instance: &str) -> Workspace {
        Workspace::new(&self.settings.workspaces, &self.plan.name, instance)
    }

    pub fn role_context(&self, instance: &str) -> String {
        let inst = self
            .plan
            .instance(instance)
            .expect("tasks name known instances");
        roles::role_context(&inst.role, &inst.name, inst.context.as_deref())
    }

    /// The agent's environment on top of the runner's: `agent.env`, the `BORG_*` variables
    /// and what its kind needs (its own configuration folder).
    pub fn agent_env(
        &self,
        agent: &AgentConfig,
        ws: &Workspace,
        task: &Task,
        attempt: u32,
    ) -> Vec<(OsString, OsString)> {
        agent_env(agent, ws, self.run_id, &task.id, attempt).0
    }

    /// [`Self::agent_env`], and the inherited variables to remove (a parent Claude Code
    /// session's).
    pub fn agent_process_env(
        &self,
        agent: &AgentConfig,
        ws: &Workspace,
        task: &Task,
        attempt: u32,
    ) -> (Vec<(OsString, OsString)>, Vec<OsString>) {
        agent_env(agent, ws, self.run_id, &task.id, attempt)
    }

    pub fn emit(&self, event: &Event<'_>) -> Result<()> {
        self.sink.emit(event)
    }
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

fn agent_env(
    agent: &AgentConfig,
    ws: &Workspace,
    run_id: &str,
    task: &str,
    attempt: u32,
) -> (Vec<(OsString, OsString)>, Vec<OsString>) {
    let mut env: BTreeMap<String, OsString> = agent
        .env
        .iter()
        .map(|(k, v)| (k.clone(), OsString::from(v)))
        .collect();
    env.insert("BORG_RUN_ID".into(), run_id.into());
    env.insert("BORG_TASK_ID".into(), task.into());
    env.insert("BORG_INSTANCE".into(), ws.name.clone().into());
    env.insert("BORG_ATTEMPT".into(), attempt.to_string().into());
    let remove = crate::agent::environment(agent, ws, &mut env);
    (
        env.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        remove,
    )
}

/// Values of environment variables whose names contain KEY, TOKEN, SECRET or PASSWORD, from
/// the runner's environment and every agent's `env`; each also as it appears inside a JSON
/// string (Claude Code's stream-json escapes `"`, `\\` and control characters).
fn secrets(settings: &Settings) -> Vec<String> {
    let secret_name = |name: &str| {
        let upper = name.to_ascii_uppercase();
        ["KEY", "TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|w| upper.contains(w))
    };
    let mut values: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .chain(settings.agents.values().flat_map(|a| a.env.clone()))
        .filter(|(k, v)| secret_name(k) && !v.is_empty())
        .map(|(_, v)| v)
        .collect();
    with_json_forms(&mut values);
    values
}

/// Adds to `values` the JSON-escaped form of each that has one of its own; sorts and
/// deduplicates.
fn with_json_forms(values: &mut Vec<String>) {
    let escaped: Vec<String> = values
        .iter()
        .filter_map(|v| {
            let quoted = serde_json::to_string(v).ok()?;
            let inner = &quoted[1..quoted.len() - 1];
            (inner != v).then(|| inner.to_string())
        })
        .collect();
    values.extend(escaped);
    values.sort();
    values.dedup();
}

/// RFC 3339 in UTC, to the millisecond (run durations are computed from it).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `borg-batch run`.
pub fn run(options: &RunOptions) -> Result<i32> {
    let env = EnvDefaults::from_env()?;
    let plan = plan::load(&options.plan)?;
    let settings = Settings::resolve(&plan, options, &env)?;
    let outcomes = history::latest_outcomes(&plan.name);
    if options.rerun_failed && outcomes.newest.is_none() {
        return Err(Error::NoEarlierRun {
            plan: plan.name.clone(),
            dir: history::runs_root(&plan.name),
        });
    }
    let latest = |id: &str| outcomes.status(id);
    let split = match options.shard {
        Some(spec) => Some(Split::new(
            &plan,
            shard::resolve(spec, &|name| std::env::var(name).ok())?,
        )),
        None => None,
    };
    let mut selected = schedule::select(&plan, &options.only, options.rerun_failed, &latest)?;
    if let Some(split) = &split {
        selected.retain(|id| split.runs(id));
    }
    if options.rerun_failed && selected.is_empty() {
        // SPEC: a message, exit 0, no new run directory.
        eprintln!(
            "nothing to rerun: every task of `{}` passed in its latest run ({})",
            plan.name,
            outcomes
                .newest
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string())
        );
        return Ok(exit::SUCCESS);
    }
    if options.dry_run {
        return dry_run::print(
            &plan,
            &settings,
            &selected,
            &latest,
            options.fresh,
            split.as_ref(),
        );
    }
    preflight(&plan, &settings, &selected)?;

    // Forwarded to agents from here on; a signal before any task starts still gets reports.
    signals::install(settings.grace)
        .map_err(|e| Error::io("install signal handlers for", &options.plan, e))?;

    // Everything is known good: from here on, things are created. Every lock is taken
    // before `--fresh` clears anything, so a refused run destroys nothing.
    // Workspaces are made on first use: only instances with a task to run are locked and
    // prepared — all of the plan's with `--fresh`, which recreates them.
    let in_use: BTreeSet<&str> = plan
        .tasks
        .iter()
        .filter(|t| selected.contains(&t.id))
        .map(|t| t.instance.as_str())
        .collect();
    let mut locks: Vec<(Workspace, InstanceLock)> = Vec::new();
    let mut repair_notes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // `--fresh` recreates every instance of the plan — of this shard's groups, if sharded.
    let fresh_here =
        |name: &str| options.fresh && split.as_ref().is_none_or(|s| s.runs_instance(name));
    for instance in plan
        .instances
        .iter()
        .filter(|i| fresh_here(&i.name) || in_use.contains(i.name.as_str()))
    {
        let ws = Workspace::new(&settings.workspaces, &plan.name, &instance.name);
        // What an earlier run's agent left in place of the runner's own files goes first:
        // the lock itself lives in state/.
        let repaired = ws.repair().map_err(Error::before_run)?;
        let lock = ws.lock().map_err(Error::before_run)?;
        repair_notes.insert(instance.name.clone(), repaired);
        locks.push((ws, lock));
    }
    if options.fresh {
        for (ws, lock) in &locks {
            ws.clear(lock).map_err(Error::before_run)?;
        }
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let started_at = now_rfc3339();
    let run_dir = match &options.out {
        Some(dir) => dir.clone(),
        None => history::runs_root(&plan.name).join(format!(
            "{}-{}",
            chrono::Local::now().format("%Y%m%d-%H%M%S"),
            &run_id[..8]
        )),
    };
    create_run_dir(&run_dir).map_err(Error::before_run)?;
    let meta = RunMeta {
        run_id: run_id.clone(),
        plan: options.plan.to_string_lossy().into_owned(),
        plan_name: plan.name.clone(),
        started_at: started_at.clone(),
        carried_from: outcomes
            .newest
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        shard: split.as_ref().map(|s| s.shard),
    };
    meta.write(&run_dir).map_err(Error::before_run)?;
    history::point_latest(&plan.name, &run_dir).map_err(Error::before_run)?;

    let mut prepare_notes = repair_notes;
    for instance in plan
        .instances
        .iter()
        .filter(|i| fresh_here(&i.name) || in_use.contains(i.name.as_str()))
    {
        let ws = Workspace::new(&settings.workspaces, &plan.name, &instance.name);
        let context =
            roles::role_context(&instance.role, &instance.name, instance.context.as_deref());
        let notes = ws
            .prepare(
                instance.template.as_deref(),
                &context,
                &[&run_dir, Path::new(history::RUNS)],
            )
            .map_err(Error::before_run)?;
        // The base the instance's whole change is measured against: taken once, when the
        // workspace is created (or first seen without one).
        base::ensure(&ws, &Ignore::new(&settings.ignore[&instance.name]))
            .map_err(Error::before_run)?;
        prepare_notes
            .entry(instance.name.clone())
            .or_default()
            .extend(notes);
    }

    let reporters: Vec<Box<dyn Reporter>> = vec![
        Box::new(
            report::progress::Progress::new(options.progress, Box::new(std::io::stderr()))
                .with_paint(options.color.for_stderr())
                .verbose(options.verbose)
                .github_actions(report::term::github_actions()),
        ),
        Box::new(journal::JournalReporter::create(&run_dir).map_err(Error::before_run)?),
    ];
    let sink = dispatch::Sink::new(reporters);
    let redactor_secrets = secrets(&settings);
    let ctx = RunContext {
        plan: &plan,
        settings: &settings,
        run_id: &run_id,
        run_dir: &run_dir,
        redactor: Redactor::new(&redactor_secrets),
        secrets: redactor_secrets,
        sink: &sink,
    };
    ctx.emit(&Event::RunStarted {
        run_id: &run_id,
        plan_name: &plan.name,
        run_dir: &run_dir,
        to_run: selected.len(),
        total: plan.tasks.len(),
    })?;
    let finished = dispatch::run_all(&ctx, &selected, &latest, options.max_cost);

    let mut tasks = Vec::with_capacity(plan.tasks.len());
    for task in &plan.tasks {
        let mut report = match (finished.reports.get(&task.id), &split) {
            (Some(r), _) => r.clone(),
            (None, Some(split)) if !split.runs(&task.id) => split.elsewhere_report(task),
            (None, _) => carried(&outcomes, task, &run_dir),
        };
        if let Some(notes) = prepare_notes
            .get_mut(&task.instance)
            .filter(|_| !report.carried_over)
        {
            report.notes.append(notes);
        }
        tasks.push(report);
    }
    let locked: BTreeSet<String> = locks.iter().map(|(ws, _)| ws.name.clone()).collect();
    let instances = whole::instances(&ctx, &locked, split.as_ref())?;
    let report = Report {
        run_id: run_id.clone(),
        plan: meta.plan,
        plan_name: plan.name.clone(),
        // Named only when a task's outcome was carried over from it.
        carried_from: meta
            .carried_from
            .filter(|_| tasks.iter().any(|t| t.carried_over)),
        shard: meta.shard,
        started_at,
        finished_at: now_rfc3339(),
        summary: Summary::of(&tasks),
        tasks,
        instances,
    };
    write_reports(&report, &run_dir)?;
    ctx.emit(&Event::RunFinished {
        report: &report,
        run_dir: &run_dir,
    })?;
    drop(locks);
    if let Some(err) = finished.runner_error {
        return Err(err);
    }
    Ok(if signals::interrupted() {
        exit::INTERRUPTED
    } else if report
        .tasks
        .iter()
        // A skipped task never started (cost cap, or a need that did not pass — which
        // counts itself): SPEC's exit 1 is for a task this invocation ran.
        .any(|t| selected.contains(&t.id) && !matches!(t.status, Status::Passed | Status::Skipped))
    {
        exit::TASK_FAILED
    } else {
        exit::SUCCESS
    })
}

/// A task this run did not run: its latest outcome, or "not selected" if it never ran.
fn carried(outcomes: &Outcomes, task: &Task, run_dir: &Path) -> TaskReport {
    match outcomes.tasks.get(&task.id) {
        Some((report, from)) => history::carry(report, from, run_dir),
        None => {
            let mut r =
                TaskReport::not_run(&task.id, &task.instance, Status::Skipped, "not selected");
            r.carried_over = true;
            r
        }
    }
}

fn create_run_dir(run_dir: &Path) -> Result<()> {
    if run_dir.join("report.json").exists() || run_dir.join("journal.jsonl").exists() {
        return Err(Error::Usage(format!(
            "`--out {}` already holds a run; choose a new folder",
            run_dir.display()
        )));
    }
    for sub in ["logs", "diffs"] {
        fsutil::create_dir_all(&run_dir.join(sub))?;
    }
    Ok(())
}

/// Writes report.json, report.md, junit.xml and report.html (each atomically), and appends
/// the Markdown summary to `$GITHUB_STEP_SUMMARY` when it is set.
pub(crate) fn write_reports(report: &Report, run_dir: &Path) -> Result<()> {
    for (name, format) in [
        ("report.json", Format::Json),
        ("report.md", Format::Md),
        ("junit.xml", Format::Junit),
        ("report.html", Format::Html),
    ] {
        fsutil::write_atomic(
            &run_dir.join(name),
            report::render_in(report, format, run_dir).as_bytes(),
        )?;
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let text = report::markdown::render_summary(report);
        let append = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")
        };
        if let Err(e) = append() {
            log::warn!(
                "cannot append to GITHUB_STEP_SUMMARY `{}`: {e}",
                path.display()
            );
        }
    }
    Ok(())
}

/// Before the first task: every agent command that will run works (its kind says how:
/// Claude Code answers `--version` and is logged in).
fn preflight(plan: &Plan, settings: &Settings, selected: &BTreeSet<String>) -> Result<()> {
    let mut checked = Vec::new();
    for task in plan.tasks.iter().filter(|t| selected.contains(&t.id)) {
        let agent = settings.agent(&task.instance);
        let key = (agent.kind, agent.program.clone(), agent.env.clone());
        if checked.contains(&key) {
            continue;
        }
        checked.push(key);
        crate::agent::adapter(agent.kind).preflight(agent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_also_redacted_as_json_escapes_them() {
        let mut values = vec!["pa\"ss\\word1".to_string(), "plain-secret".to_string()];
        with_json_forms(&mut values);
        assert_eq!(
            values,
            ["pa\"ss\\word1", "pa\\\"ss\\\\word1", "plain-secret"]
        );
        let r = Redactor::new(&values);
        assert_eq!(
            r.redact_str(r#"{"text":"pw pa\"ss\\word1 and pa"ss\word1"}"#),
            r#"{"text":"pw [redacted] and [redacted]"}"#
        );
    }
}

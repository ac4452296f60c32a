//! `--dry-run`: the schedule (which task runs after which) and the exact command line of
//! each agent invocation. Spawns nothing and writes nothing.

use std::collections::BTreeSet;
use std::io::Write;

use crate::agent;
use crate::config::Settings;
use crate::error::{Error, Result, exit};
use crate::plan::{Plan, format_duration};
use crate::report::Status;
use crate::schedule::{Next, Scheduler};
use crate::shard::{Mode, Shard, Split, groups};
use crate::workspace::{Workspace, roles};

/// Prints the dry run to standard output.
pub fn print(
    plan: &Plan,
    settings: &Settings,
    selected: &BTreeSet<String>,
    latest: &dyn Fn(&str) -> Option<Status>,
    fresh: bool,
    split: Option<&Split>,
) -> Result<i32> {
    let mut text = split.map(|s| shards(plan, s)).unwrap_or_default();
    text.push_str(&render(plan, settings, selected, latest, fresh));
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write", "standard output", e))?;
    Ok(exit::SUCCESS)
}

/// Every shard's groups and tasks, this shard's marked: what each machine of the matrix runs.
fn shards(plan: &Plan, split: &Split) -> String {
    let shard = split.shard;
    let mut out = format!(
        "shards ({} of {}, {}):\n",
        shard.index,
        shard.total,
        match shard.mode {
            Mode::Hash => "groups by blake3 of their lowest instance name",
            Mode::Slice => "groups dealt out in file order",
        }
    );
    for index in 1..=shard.total {
        let this = Shard { index, ..shard };
        let groups: Vec<String> = groups(plan)
            .into_iter()
            .filter(|g| split.instance_shard.get(&g[0]) == Some(&index))
            .map(|g| g.join("+"))
            .collect();
        let tasks: Vec<&str> = plan
            .tasks
            .iter()
            .filter(|t| split.task_shard.get(&t.id) == Some(&index))
            .map(|t| t.id.as_str())
            .collect();
        out.push_str(&format!(
            "  {}shard {this}: instances {}; tasks {}\n",
            if index == shard.index { "* " } else { "  " },
            if groups.is_empty() {
                "none".to_string()
            } else {
                groups.join(", ")
            },
            if tasks.is_empty() {
                "none".to_string()
            } else {
                tasks.join(", ")
            },
        ));
    }
    out.push('\n');
    out
}

fn render(
    plan: &Plan,
    settings: &Settings,
    selected: &BTreeSet<String>,
    latest: &dyn Fn(&str) -> Option<Status>,
    fresh: bool,
) -> String {
    let mut out = format!(
        "plan `{}`: {} of {} tasks, {} instances, {} at once, workspaces `{}`\n\nschedule \
         (if every task passes):\n",
        plan.name,
        selected.len(),
        plan.tasks.len(),
        plan.instances.len(),
        settings.jobs,
        settings.workspaces.display()
    );
    // Waves: what could start together, each after the previous wave finished.
    let mut scheduler = Scheduler::new(plan, selected, latest);
    let mut wave = 1;
    while !scheduler.is_done() {
        let mut started = Vec::new();
        let mut skipped = Vec::new();
        while let Some(next) = scheduler.poll(true) {
            match next {
                Next::Run(i) => started.push(i),
                Next::Skip(i, reason) => skipped.push((i, reason)),
            }
        }
        for (i, reason) in skipped {
            out.push_str(&format!("  skip   {}: {reason}\n", plan.tasks[i].id));
        }
        if started.is_empty() {
            break;
        }
        let names: Vec<String> = started
            .iter()
            .map(|&i| format!("{} ({})", plan.tasks[i].id, plan.tasks[i].instance))
            .collect();
        out.push_str(&format!("  wave {wave}: {}\n", names.join(", ")));
        for i in started {
            scheduler.finish(i, Status::Passed);
        }
        wave += 1;
    }

    out.push_str("\ncommands:\n");
    for task in plan.tasks.iter().filter(|t| selected.contains(&t.id)) {
        let agent = settings.agent(&task.instance);
        let ws = Workspace::new(&settings.workspaces, &plan.name, &task.instance);
        let inst = plan
            .instance(&task.instance)
            .expect("tasks name known instances");
        let context = roles::role_context(&inst.role, &inst.name, inst.context.as_deref());
        // `--fresh` would forget both before the first task.
        let history = if fresh {
            String::new()
        } else {
            ws.history(agent::HISTORY_BYTES)
        };
        let session = if fresh { None } else { ws.session_id() };
        let invocation = agent::invocation(
            agent,
            &agent::Request {
                role_context: &context,
                history: &history,
                task_prompt: &task.prompt,
                resume: session.as_deref(),
                // Chosen when the task starts (and recorded before its agent is spawned).
                new_session: Some("<new session id>"),
                schema: task.output_schema.as_ref(),
            },
        );
        let timeout = task.timeout.unwrap_or(settings.default_timeout);
        let attempts = 1 + task.retries.unwrap_or(settings.default_retries);
        out.push_str(&format!(
            "  {} on {} (timeout {}, {} attempt{}{}):\n    cd {} && {} < prompt ({} bytes)\n",
            task.id,
            task.instance,
            format_duration(timeout),
            attempts,
            if attempts == 1 { "" } else { "s" },
            task.check
                .as_ref()
                .map(|c| format!(", check `{c}`"))
                .unwrap_or_default(),
            ws.project_files().display(),
            agent::shell_line(&invocation.program, &invocation.args),
            invocation.prompt.len()
        ));
    }
    out
}

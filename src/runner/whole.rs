//! Each instance's whole change at the end of the run (SPEC.md "Work flows along `needs`"):
//! its `project-files/` now against its base (`workspace::base`), for `instances[]` of
//! report.json and `diffs/<instance>.patch` — for the last instance of a pipeline, the
//! feature a reviewer reviews.
//!
//! Instances are listed in review order: the one deepest along `needs` first (a
//! reviewer after a tester after a developer), then plan order. Every instance of the
//! plan is listed; one of another shard has no changes here and says which shard holds
//! it (`in_shard`), one never created (or made before bases were kept, and not used
//! since) has none. An instance this run did not lock (`--only`) is read, never written:
//! its snapshot cache is left alone.
//!
//! The patch is `diffs/<instance>.patch`, unless a task has the instance's name as its
//! id: then `diffs/<instance>@instance.patch` (`@` is in no id, so the two never meet).

use std::collections::{BTreeMap, BTreeSet};

use crate::diff;
use crate::error::Result;
use crate::plan::Plan;
use crate::report::{Change, InstanceReport};
use crate::shard::Split;
use crate::snapshot::{Ignore, Snapshot, Store};
use crate::workspace::base;

use super::RunContext;
use super::task::take_snapshot;

/// The whole change of every instance of the plan, in review order. `locked`: the
/// instances this run holds (their snapshot cache is refreshed).
pub(super) fn instances(
    ctx: &RunContext<'_>,
    locked: &BTreeSet<String>,
    split: Option<&Split>,
) -> Result<Vec<InstanceReport>> {
    let mut out = Vec::new();
    for name in review_order(ctx.plan) {
        let mut entry = InstanceReport {
            name: name.to_string(),
            changes: Vec::new(),
            patch: None,
            in_shard: None,
        };
        if let Some(split) = split.filter(|s| !s.runs_instance(name)) {
            entry.in_shard = split.instance_shard.get(name).copied();
        } else {
            whole_change(ctx, &mut entry, locked.contains(name))?;
        }
        out.push(entry);
    }
    Ok(out)
}

/// Fills `entry` with the instance's changes since its base and writes its patch.
fn whole_change(ctx: &RunContext<'_>, entry: &mut InstanceReport, locked: bool) -> Result<()> {
    let ws = ctx.workspace(&entry.name);
    let Some(base) = base::load(&ws).filter(|_| ws.project_files().is_dir()) else {
        return Ok(());
    };
    let store = Store::new(ws.objects());
    let ignore = Ignore::new(&ctx.settings.ignore[&entry.name]);
    let cache = Snapshot::load(&ws.snapshot_cache()).ok();
    let now = match take_snapshot(&ws, &ignore, cache.as_ref().or(Some(&base)), &store) {
        Ok(now) => now,
        Err(e) => {
            log::warn!("cannot snapshot `{}` for its whole change: {e}", entry.name);
            return Ok(());
        }
    };
    if locked && let Err(e) = now.save(&ws.snapshot_cache()) {
        log::warn!("cannot save the snapshot cache of `{}`: {e}", entry.name);
    }
    let (mut changes, patch) =
        diff::compare_guarded(&base, &now, &store, &|b| ctx.redactor.finds(b));
    redact_changes(ctx, &mut changes);
    entry.changes = changes;
    if let Some(patch) = patch {
        let rel = patch_path(ctx.plan, &entry.name);
        crate::fsutil::write_atomic(
            &ctx.run_dir.join(&rel),
            ctx.redactor.redact_str(&patch).as_bytes(),
        )?;
        entry.patch = Some(rel);
    }
    Ok(())
}

/// `diffs/<instance>.patch`, or `diffs/<instance>@instance.patch` when a task's id is the
/// instance's name.
pub(crate) fn patch_path(plan: &Plan, instance: &str) -> String {
    if plan.tasks.iter().any(|t| t.id == instance) {
        format!("diffs/{instance}@instance.patch")
    } else {
        format!("diffs/{instance}.patch")
    }
}

/// Names and link targets can hold a secret as well as contents can.
pub(super) fn redact_changes(ctx: &RunContext<'_>, changes: &mut [Change]) {
    for change in changes {
        change.path = ctx.redactor.redact_str(&change.path);
        for text in [
            &mut change.diff,
            &mut change.target_before,
            &mut change.target_after,
        ] {
            if let Some(t) = text.as_deref() {
                *text = Some(ctx.redactor.redact_str(t));
            }
        }
    }
}

/// The plan's instances, deepest along `needs` first (its longest chain of needs ending
/// in one of its tasks), ties in plan order.
pub(crate) fn review_order(plan: &Plan) -> Vec<&str> {
    let index = plan.task_indices();
    // Depth per task, iteratively (a plan is acyclic once validated; a need on an unknown
    // id, impossible here too, counts as nothing).
    let mut depth: Vec<Option<usize>> = vec![None; plan.tasks.len()];
    let mut on_stack = vec![false; plan.tasks.len()];
    for start in 0..plan.tasks.len() {
        let mut stack = vec![start];
        on_stack[start] = true;
        while let Some(&i) = stack.last() {
            let needs = plan.tasks[i]
                .needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied());
            let pending: Vec<usize> = needs
                .clone()
                .filter(|&n| depth[n].is_none() && !on_stack[n])
                .collect();
            if pending.is_empty() {
                depth[i] = Some(1 + needs.filter_map(|n| depth[n]).max().unwrap_or(0));
                on_stack[i] = false;
                stack.pop();
            } else {
                for n in pending {
                    on_stack[n] = true;
                    stack.push(n);
                }
            }
        }
    }
    let mut rank: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, d) in plan.tasks.iter().zip(&depth) {
        let r = rank.entry(t.instance.as_str()).or_default();
        *r = (*r).max(d.unwrap_or(0));
    }
    let mut names: Vec<(usize, &str)> = plan
        .instances
        .iter()
        .enumerate()
        .map(|(i, inst)| (i, inst.name.as_str()))
        .collect();
    names.sort_by_key(|&(i, name)| (std::cmp::Reverse(rank.get(name).copied().unwrap_or(0)), i));
    names.into_iter().map(|(_, name)| name).collect()
}

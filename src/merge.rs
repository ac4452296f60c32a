//! `borg-batch merge RUN_DIR... --out DIR`: the run directories of a plan's shards joined
//! into one run directory whose reports hold every task once, as an unsharded run would
//! (SPEC.md "Beyond one machine").
//!
//! Each task is taken from the one input that ran it (the others list it `in_shard`), its
//! logs and patch copied into `DIR` and its paths rewritten to them; each instance's whole
//! change likewise from the shard that holds it, with `diffs/<instance>.patch`; the summary and the
//! cost are counted again over the joined tasks. Refused (exit 2, naming them) before
//! anything is written: inputs of different plans, shards of different splits, a shard
//! missing or given twice, a task that ran in two inputs. Reads the inputs only; writes
//! only `DIR` and the plan's `runs/<plan>/latest` link (the merged run is the plan's
//! newest, so `--rerun-failed` reads it as it would an unsharded run's).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result, exit};
use crate::history::{self, Journal, JournalLine, RunMeta};
use crate::report::{self, InstanceReport, Report, Status, Summary, TaskReport};
use crate::shard::{Mode, Shard};

/// One input: its folder, its report and the shard it was (1/1 for a whole-plan run).
#[derive(Debug)]
struct Input {
    dir: PathBuf,
    report: Report,
    shard: Shard,
}

/// `borg-batch merge`. Exit 0 when every task the shards ran passed (or was skipped), 1
/// otherwise, like the unsharded run.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<i32> {
    let inputs = read_inputs(inputs)?;
    check_same_plan(&inputs)?;
    check_shards(&inputs)?;
    let owners = owners(&inputs)?;
    if out.join("report.json").exists() || out.join("journal.jsonl").exists() {
        return Err(Error::Merge(format!(
            "`--out {}` already holds a run; choose a new folder",
            out.display()
        )));
    }
    for sub in ["logs", "diffs"] {
        crate::fsutil::create_dir_all(&out.join(sub)).map_err(Error::before_run)?;
    }

    let first = &inputs[0].report;
    let mut tasks = Vec::with_capacity(first.tasks.len());
    for task in &first.tasks {
        let input = &inputs[owners[&task.id]];
        let own = input
            .report
            .tasks
            .iter()
            .find(|t| t.id == task.id)
            .expect("owners are found in their input");
        tasks.push(carry_files(own, &input.dir, out)?);
    }
    let instances = merged_instances(&inputs, out)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let started_at = inputs
        .iter()
        .map(|i| i.report.started_at.clone())
        .min()
        .unwrap_or_default();
    let finished_at = inputs
        .iter()
        .map(|i| i.report.finished_at.clone())
        .max()
        .unwrap_or_default();
    let report = Report {
        run_id: run_id.clone(),
        plan: first.plan.clone(),
        plan_name: first.plan_name.clone(),
        carried_from: None,
        shard: None,
        started_at: started_at.clone(),
        finished_at,
        summary: Summary::of(&tasks),
        tasks,
        instances,
    };
    RunMeta {
        run_id: run_id.clone(),
        plan: report.plan.clone(),
        plan_name: report.plan_name.clone(),
        started_at,
        carried_from: None,
        shard: None,
    }
    .write(out)?;
    // The journal holds what ran, as a run's own does, for readers of every run's journal.
    let mut journal = Journal::create(out)?;
    for task in report.tasks.iter().filter(|t| !t.carried_over) {
        journal.append(&JournalLine::Task {
            run_id: run_id.clone(),
            report: Box::new(task.clone()),
        })?;
    }
    crate::runner::write_reports(&report, out)?;
    history::point_latest(&report.plan_name, out)?;
    let failed = report
        .tasks
        .iter()
        .any(|t| !t.carried_over && !matches!(t.status, Status::Passed | Status::Skipped));
    Ok(if failed {
        exit::TASK_FAILED
    } else {
        exit::SUCCESS
    })
}

fn read_inputs(dirs: &[PathBuf]) -> Result<Vec<Input>> {
    if dirs.is_empty() {
        return Err(Error::Merge("name at least one run directory".into()));
    }
    dirs.iter()
        .map(|dir| {
            let report = report::read(dir)?;
            let shard = report.shard.unwrap_or(Shard {
                index: 1,
                total: 1,
                mode: Mode::Hash,
            });
            Ok(Input {
                dir: dir.clone(),
                report,
                shard,
            })
        })
        .collect()
}

/// The same plan: the same name and the same tasks on the same instances, in order.
fn check_same_plan(inputs: &[Input]) -> Result<()> {
    let shape = |r: &Report| -> Vec<(String, String)> {
        r.tasks
            .iter()
            .map(|t| (t.id.clone(), t.instance.clone()))
            .collect()
    };
    let first = &inputs[0];
    for other in &inputs[1..] {
        if other.report.plan_name != first.report.plan_name
            || shape(&other.report) != shape(&first.report)
        {
            return Err(Error::Merge(format!(
                "`{}` (plan `{}`) and `{}` (plan `{}`) are runs of different plans",
                first.dir.display(),
                first.report.plan_name,
                other.dir.display(),
                other.report.plan_name
            )));
        }
    }
    Ok(())
}

/// One split (the same N and mode), each shard 1..=N exactly once.
fn check_shards(inputs: &[Input]) -> Result<()> {
    let first = inputs[0].shard;
    let mut by_index: BTreeMap<u32, &Path> = BTreeMap::new();
    for input in inputs {
        let s = input.shard;
        if s.total != first.total || s.mode != first.mode {
            return Err(Error::Merge(format!(
                "`{}` is shard {s} and `{}` shard {first}: shards of different splits",
                input.dir.display(),
                inputs[0].dir.display()
            )));
        }
        if let Some(earlier) = by_index.insert(s.index, &input.dir) {
            return Err(Error::Merge(format!(
                "shard {s} is given twice: `{}` and `{}`",
                earlier.display(),
                input.dir.display()
            )));
        }
    }
    let missing: Vec<String> = (1..=first.total)
        .filter(|i| !by_index.contains_key(i))
        .map(|index| Shard { index, ..first }.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Merge(format!(
            "shard{} {} missing (given: {})",
            if missing.len() == 1 { " is" } else { "s are" },
            missing.join(", "),
            inputs
                .iter()
                .map(|i| format!("`{}` = {}", i.dir.display(), i.shard))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// Task id → the input that ran it. A task in two inputs, or in none, is refused.
fn owners(inputs: &[Input]) -> Result<BTreeMap<String, usize>> {
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for (i, input) in inputs.iter().enumerate() {
        for task in input.report.tasks.iter().filter(|t| t.in_shard.is_none()) {
            if let Some(j) = owners.insert(task.id.clone(), i) {
                return Err(Error::Merge(format!(
                    "task `{}` is in two inputs: `{}` and `{}`",
                    task.id,
                    inputs[j].dir.display(),
                    input.dir.display()
                )));
            }
        }
    }
    if let Some(t) = inputs[0]
        .report
        .tasks
        .iter()
        .find(|t| !owners.contains_key(&t.id))
    {
        return Err(Error::Merge(format!(
            "task `{}` is in no input: every one lists it in shard {}",
            t.id,
            t.in_shard.unwrap_or(0)
        )));
    }
    Ok(owners)
}

/// Every instance from the input whose shard holds it (the others list it `in_shard`),
/// its patch copied, in the first input's order (each shard lists every instance of the
/// plan, in review order). An instance no input holds is listed without changes.
fn merged_instances(inputs: &[Input], out: &Path) -> Result<Vec<InstanceReport>> {
    let mut merged = Vec::new();
    for listed in &inputs[0].report.instances {
        let own = inputs.iter().find_map(|input| {
            let inst = input
                .report
                .instances
                .iter()
                .find(|i| i.name == listed.name && i.in_shard.is_none())?;
            Some((input, inst))
        });
        let Some((input, own)) = own else {
            merged.push(InstanceReport {
                in_shard: None,
                changes: Vec::new(),
                patch: None,
                ..listed.clone()
            });
            continue;
        };
        let mut own = own.clone();
        // Only a file of the input's own `diffs/` is copied, whatever the report says.
        own.patch = own.patch.filter(|p| {
            p.strip_prefix("diffs/")
                .is_some_and(|n| !n.is_empty() && !n.contains('/') && !n.starts_with('.'))
        });
        if let Some(patch) = &own.patch {
            copy_regular(&input.dir.join(patch), &out.join(patch))?;
        }
        merged.push(own);
    }
    Ok(merged)
}

/// `task` of the run at `from` as part of the merged run at `to`: what it ran here (logs,
/// patch) is copied into `to`; what it carried over points at the run it came from.
fn carry_files(task: &TaskReport, from: &Path, to: &Path) -> Result<TaskReport> {
    let mut merged = task.clone();
    if task.carried_over {
        let rebase = |p: &Option<String>| p.as_ref().map(|p| relative_to(&from.join(p), to));
        merged.log = rebase(&task.log);
        merged.patch = rebase(&task.patch);
        for attempt in &mut merged.history {
            attempt.log = rebase(&attempt.log);
        }
        return Ok(merged);
    }
    // Every file of the task: `logs/<task>.<attempt>.<ext>` and `diffs/<task>.patch`.
    let logs = from.join("logs");
    if let Ok(entries) = fs::read_dir(&logs) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name
                .strip_prefix(&format!("{}.", task.id))
                .and_then(|rest| rest.split_once('.'))
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if ours {
                copy_regular(&entry.path(), &to.join("logs").join(&name))?;
            }
        }
    }
    if let Some(patch) = &task.patch {
        copy_regular(&from.join(patch), &to.join(patch))?;
    }
    Ok(merged)
}

/// Copies a regular file (a link or anything else in its place is left behind).
fn copy_regular(from: &Path, to: &Path) -> Result<()> {
    if !fs::symlink_metadata(from).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        crate::fsutil::create_dir_all(parent)?;
    }
    let mut src = crate::fsutil::open_regular(from).map_err(|e| Error::io("read", from, e))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut src, &mut bytes).map_err(|e| Error::io("read", from, e))?;
    crate::fsutil::write_atomic(to, &bytes)
}

/// `path` as seen from the folder `dir` (both made absolute and normalised lexically).
fn relative_to(path: &Path, dir: &Path) -> String {
    let norm = |p: &Path| -> Vec<std::ffi::OsString> {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut out = Vec::new();
        for c in abs.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => out.push(n.to_os_string()),
                _ => {}
            }
        }
        out
    };
    let (p, d) = (norm(path), norm(dir));
    let common = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..d.len() {
        rel.push("..");
    }
    for c in &p[common..] {
        rel.push(c);
    }
    rel.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_out_of_the_merged_run() {
        assert_eq!(
            relative_to(
                Path::new("/r/p/shard-1/../old/logs/a.1.log"),
                Path::new("/r/p/merged")
            ),
            "../old/logs/a.1.log"
        );
        assert_eq!(
            relative_to(Path::new("/x/logs/a.log"), Path::new("/x")),
            "logs/a.log"
        );
    }
}

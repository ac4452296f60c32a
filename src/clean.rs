//! `borg-batch clean PLAN`: removes a plan's old runs (`--keep N`, `--older-than DUR`),
//! the temp files killed runs left, and with `--workspaces` the plan's workspaces; prints
//! what it freed, in bytes (apparent sizes); `--dry-run` lists and frees nothing.
//!
//! It must never follow a symlink (a link is removed itself, never what it points at),
//! never touch anything outside `runs/<plan>/` and `<workspaces>/<plan>/`, never remove the
//! latest run, the runs the latest one's outcomes still come from, or a run in progress
//! (one holds an instance lock: then only finished runs are removed, nothing in the
//! workspaces). Removal is iterative, so no folder depth overflows a stack.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result, exit};
use crate::history::{self, RunMeta};
use crate::workspace::{InstanceLock, PLAN_STATE};

/// `borg-batch clean`'s options.
#[derive(Debug, Clone, Default)]
pub struct CleanOptions {
    pub plan: PathBuf,
    pub older_than: Option<Duration>,
    pub keep: Option<usize>,
    pub workspaces: bool,
    pub dry_run: bool,
}

/// `borg-batch clean`.
pub fn clean(options: &CleanOptions) -> Result<i32> {
    let plan = crate::plan::load(&options.plan)?;
    let env = crate::config::EnvDefaults::from_env()?;
    let workspaces = plan
        .workspaces
        .clone()
        .or(env.workspaces_dir)
        .unwrap_or_else(|| PathBuf::from("workspaces"));
    let plan_root = workspaces.join(&plan.name);
    // Every instance lock the plan's workspaces have: one held means a run is in progress.
    let mut locks: Vec<InstanceLock> = Vec::new();
    let mut in_progress = false;
    for inst in &plan.instances {
        let state = plan_root.join(&inst.name).join("state");
        if !is_real_dir(&state) {
            continue;
        }
        match InstanceLock::acquire(&inst.name, &state) {
            Ok(lock) => locks.push(lock),
            Err(Error::LockHeld { .. }) => in_progress = true,
            Err(e) => return Err(e),
        }
    }
    let mut doomed: Vec<PathBuf> = Vec::new();
    let runs_root = history::runs_root(&plan.name);
    if is_real_dir(Path::new(history::RUNS)) && is_real_dir(&runs_root) {
        doomed.extend(old_runs(&plan.name, &runs_root, options, in_progress));
        doomed.extend(temp_files(&runs_root));
    }
    if !in_progress && is_real_dir(&plan_root) {
        if options.workspaces {
            doomed.push(plan_root);
        } else {
            doomed.extend(temp_files(&plan_root.join(PLAN_STATE).join("objects")));
        }
    }
    let mut out = String::new();
    let mut freed = 0u64;
    let verb = if options.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for path in &doomed {
        let bytes = size(path);
        if !options.dry_run {
            remove_tree(path).map_err(|e| Error::io("remove", path.clone(), e))?;
        }
        freed += bytes;
        out.push_str(&format!("{verb} {} ({bytes} bytes)\n", path.display()));
    }
    if in_progress {
        out.push_str("a run of this plan is in progress: its run and the workspaces are kept\n");
    }
    out.push_str(&format!(
        "{} {freed} bytes\n",
        if options.dry_run {
            "would free"
        } else {
            "freed"
        }
    ));
    drop(locks);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .map_err(|e| Error::io("write", "standard output", e))?;
    Ok(exit::SUCCESS)
}

/// The run directories `--keep`/`--older-than` remove: never the latest, nor the runs the
/// latest still takes outcomes from, nor (while a run is in progress) an unfinished one.
fn old_runs(
    plan_name: &str,
    root: &Path,
    options: &CleanOptions,
    in_progress: bool,
) -> Vec<PathBuf> {
    if options.keep.is_none() && options.older_than.is_none() {
        return Vec::new();
    }
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    // The latest run and its chain back to the first one with a report.json.
    let mut protected = Vec::new();
    let mut next = history::latest_run(plan_name);
    while let Some(dir) = next.take() {
        let key = canonical(&dir);
        if protected.contains(&key) {
            break;
        }
        protected.push(key);
        if !dir.join("report.json").is_file() {
            next = RunMeta::read(&dir)
                .and_then(|m| m.carried_from)
                .map(PathBuf::from);
        }
    }
    let mut runs: Vec<(String, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let meta = RunMeta::read(&e.path())?;
            Some((meta.started_at, e.path()))
        })
        .collect();
    runs.sort();
    runs.reverse(); // newest first
    let cutoff = options.older_than.map(|d| {
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        (chrono::Utc::now() - d).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    });
    runs.into_iter()
        .enumerate()
        .filter(|(i, _)| options.keep.is_none_or(|k| *i >= k))
        .filter(|(_, (started, _))| cutoff.as_ref().is_none_or(|c| started < c))
        .map(|(_, (_, dir))| dir)
        .filter(|dir| !protected.contains(&canonical(dir)))
        .filter(|dir| !in_progress || dir.join("report.json").is_file())
        .collect()
}

/// Temp files of killed runs directly in `dir`: `.tmp-*` and `.<name>.tmp-<pid>`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with('.') && name.contains(".tmp-")
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// A folder, not a link to one.
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The apparent size of what `path` holds (links counted as themselves, never followed).
fn size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir())
        .map(|m| m.len())
        .sum()
}

/// Removes `path` and all below it without following a link and without recursion: folders
/// are listed one after another, their files and links removed, then the folders deepest
/// first.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    let mut dirs = vec![path.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for entry in fs::read_dir(&dirs[i])? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            } else {
                fs::remove_file(entry.path())?;
            }
        }
        i += 1;
    }
    for dir in dirs.iter().rev() {
        fs::remove_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_is_iterative_and_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep.txt"), "keep").unwrap();
        let tree = dir.path().join("tree");
        let mut deep = tree.clone();
        for _ in 0..1000 {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("keep.txt"), deep.join("link-file")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(
            fs::read_to_string(outside.join("keep.txt")).unwrap(),
            "keep"
        );
    }
}

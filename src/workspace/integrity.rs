//! Keeping a workspace's own files where they belong. The agent runs in `project-files/` as
//! the same user as the runner, so it can `cd ..` and put a symlink (to anywhere) or a FIFO
//! in place of `state/`, `logs/`, `session.md`, `project-files/` itself, or the plan's shared
//! `.borg/` (the content store) and the plan's folder. Before the runner touches any of
//! them — at the start of a run, of a task, and after every agent or check process has
//! exited (its whole group ended) — each is checked with `lstat`: whatever is not the
//! expected kind (a real folder, a regular file) is removed, never followed, and a folder
//! is made again. The report's notes say what was repaired.
//!
//! A process that escaped its group with `setsid` could still race this; see the README.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Workspace;
use crate::error::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Folder,
    File,
}

/// What the runner keeps in a workspace, by kind, parents before children.
fn expected(ws: &Workspace) -> Vec<(PathBuf, Kind)> {
    let state = ws.state();
    let mut list = vec![
        (ws.plan_root.clone(), Kind::Folder),
        (ws.plan_state(), Kind::Folder),
        (ws.root.clone(), Kind::Folder),
        (state.clone(), Kind::Folder),
        (ws.objects(), Kind::Folder),
        (ws.logs(), Kind::Folder),
        (ws.project_files(), Kind::Folder),
        (ws.session_md(), Kind::File),
        (ws.logs().join("history.log"), Kind::File),
        (ws.snapshot_cache(), Kind::File),
        (super::base::path(ws), Kind::File),
    ];
    for name in [
        "lock",
        "session_id",
        "session_costs.json",
        "session_tokens.json",
        "running.json",
        "prompt.md",
    ] {
        list.push((state.join(name), Kind::File));
    }
    list
}

/// Removes what stands where the runner keeps its own folders and files but is not of the
/// expected kind, and makes the folders again. Only folders that existed are remade (a
/// workspace not created yet stays uncreated). Returns a note per repair.
pub fn repair(ws: &Workspace) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for (path, kind) in expected(ws) {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let fine = match kind {
            Kind::Folder => meta.is_dir(),
            Kind::File => meta.is_file(),
        };
        if fine {
            continue;
        }
        remove_entry(&path, meta.is_dir()).map_err(|e| Error::io("remove", &path, e))?;
        if kind == Kind::Folder {
            fs::create_dir(&path).map_err(|e| Error::io("create folder", &path, e))?;
        }
        let what = if meta.is_symlink() {
            "a symlink"
        } else if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file or folder"
        };
        // Instance paths relative to the workspace, plan-level ones to the plan's folder.
        let shown = path
            .strip_prefix(&ws.root)
            .or_else(|_| path.strip_prefix(&ws.plan_root))
            .unwrap_or(&path);
        let shown = if shown.as_os_str().is_empty() {
            Path::new(".")
        } else {
            shown
        };
        notes.push(format!(
            "workspace `{}`: `{}` was {what}; removed without following it",
            ws.name,
            shown.display()
        ));
    }
    for note in &notes {
        log::warn!("{note}");
    }
    Ok(notes)
}

/// Removes `path` itself: a symlink or file is unlinked, a real folder removed with its
/// contents (`remove_dir_all` does not follow symlinks inside it).
fn remove_entry(path: &Path, is_dir: bool) -> io::Result<()> {
    if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_wrong_kinds_are_removed_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        fs::write(victim.path().join("keep.txt"), "precious").unwrap();
        let ws = Workspace::new(dir.path(), "p", "dev");
        drop(ws.lock().unwrap());
        ws.prepare(None, "ctx", &[]).unwrap();
        // The agent's handiwork: state/ and project-files/ are links out, session.md a
        // FIFO, logs a file, and a folder stands where a state file belongs.
        fs::rename(ws.state(), dir.path().join("state.old")).unwrap();
        std::os::unix::fs::symlink(victim.path(), ws.state()).unwrap();
        fs::remove_dir_all(ws.project_files()).unwrap();
        std::os::unix::fs::symlink(victim.path(), ws.project_files()).unwrap();
        fs::remove_file(ws.session_md()).unwrap();
        nix::unistd::mkfifo(&ws.session_md(), nix::sys::stat::Mode::S_IRWXU).unwrap();
        fs::remove_dir_all(ws.logs()).unwrap();
        fs::write(ws.logs(), "not a folder").unwrap();

        let notes = repair(&ws).unwrap();
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes[0].contains("`state` was a symlink"), "{notes:?}");
        assert!(ws.state().is_dir() && !ws.state().is_symlink());
        assert!(ws.project_files().is_dir() && !ws.project_files().is_symlink());
        assert!(!ws.session_md().exists());
        assert!(ws.logs().is_dir());
        assert_eq!(
            fs::read_to_string(victim.path().join("keep.txt")).unwrap(),
            "precious"
        );
        assert_eq!(fs::read_dir(victim.path()).unwrap().count(), 1);
        assert!(
            repair(&ws).unwrap().is_empty(),
            "a sound workspace needs nothing"
        );
    }

    #[test]
    fn a_workspace_not_created_yet_stays_uncreated() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path(), "p", "dev");
        assert!(repair(&ws).unwrap().is_empty());
        assert!(!ws.root.exists());
    }
}

//! An instance's base: the snapshot of its `project-files/` as its workspace was created
//! (from its template, or empty), kept in `state/base.snapshot` with its blobs in the
//! plan's store. Two things are measured against it (SPEC.md "Work flows along `needs`"):
//! the instance's whole change (`instances[]`, `diffs/<instance>.patch`), and, for the
//! hand-over, what another instance has not received from it yet at first.
//!
//! Taken when the workspace is prepared; a workspace that predates this (no base file)
//! gets its base then too, before its first task of the run. `--fresh` clears `state/`,
//! so a recreated workspace gets a new base. The agent can reach `state/` like the rest
//! of the workspace: a base that cannot be read is treated as absent (never as a wrong
//! snapshot), and its blobs are checked against their hashes when read.

use std::path::PathBuf;

use super::Workspace;
use crate::error::{Error, Result};
use crate::snapshot::{self, Ignore, Snapshot, Store};

/// Where the base is kept: `state/base.snapshot`.
pub fn path(ws: &Workspace) -> PathBuf {
    ws.state().join("base.snapshot")
}

/// Saves `snap` as the instance's base (atomically), replacing any earlier one.
pub fn record(ws: &Workspace, snap: &Snapshot) -> Result<()> {
    let path = path(ws);
    snap.save(&path).map_err(|e| Error::io("write", path, e))
}

/// The instance's base, if one was recorded and can be read.
pub fn load(ws: &Workspace) -> Option<Snapshot> {
    Snapshot::load(&path(ws)).ok()
}

/// The instance's base: the recorded one, else `project-files/` as it is now, snapshotted
/// (blobs into the plan's store), recorded, and saved as the snapshot cache too so the
/// first task does not read the files again. Call once the workspace is prepared and
/// before its first task of the run.
pub fn ensure(ws: &Workspace, ignore: &Ignore) -> Result<Snapshot> {
    if let Some(base) = load(ws) {
        return Ok(base);
    }
    let root = ws.project_files();
    let store = Store::new(ws.objects());
    let cache = Snapshot::load(&ws.snapshot_cache()).ok();
    let snap = snapshot::take(&root, ignore, cache.as_ref(), &store)
        .map_err(|e| Error::io("snapshot", root, e))?;
    record(ws, &snap)?;
    if let Err(e) = snap.save(&ws.snapshot_cache()) {
        log::warn!("cannot save the snapshot cache of `{}`: {e}", ws.name);
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn prepared(dir: &std::path::Path) -> Workspace {
        let template = dir.join("template");
        fs::create_dir_all(template.join("src")).unwrap();
        fs::write(template.join("src/a.txt"), "template\n").unwrap();
        let ws = Workspace::new(&dir.join("ws"), "p", "dev");
        let _lock = ws.lock().unwrap();
        ws.prepare(Some(&template), "ctx", &[]).unwrap();
        ws
    }

    #[test]
    fn the_base_is_the_created_state_and_survives_later_edits() {
        let dir = tempfile::tempdir().unwrap();
        let ws = prepared(dir.path());
        assert!(load(&ws).is_none(), "no base before it is taken");
        let ignore = Ignore::new(&[".git/".to_string()]);
        let base = ensure(&ws, &ignore).unwrap();
        let meta = base.file(b"src/a.txt").expect("template file in base");
        // The agent edits the file: the base still says what it was, and the store has it.
        fs::write(ws.project_files().join("src/a.txt"), "edited\n").unwrap();
        fs::write(ws.project_files().join("new.txt"), "n\n").unwrap();
        let again = ensure(&ws, &ignore).unwrap();
        assert_eq!(again.entries, base.entries);
        assert_eq!(load(&ws).unwrap().entries, base.entries);
        let store = Store::new(ws.objects());
        assert_eq!(store.read(&meta.hash).unwrap(), b"template\n");
        assert!(again.file(b"new.txt").is_none());
    }

    #[test]
    fn record_replaces_and_a_corrupt_base_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let ws = prepared(dir.path());
        record(&ws, &Snapshot::default()).unwrap();
        assert!(load(&ws).unwrap().entries.is_empty());
        fs::write(path(&ws), "not a snapshot").unwrap();
        assert!(load(&ws).is_none());
        // Fresh clears state/: the workspace gets a new base.
        let lock = ws.lock().unwrap();
        ws.clear(&lock).unwrap();
        assert!(!path(&ws).exists());
    }
}

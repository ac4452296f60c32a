//! From two snapshots to the changes a reviewer reads: added, modified, deleted entries with
//! unified diffs for text, and the task's `git diff`-style patch.
//!
//! Reads contents only from the snapshot [`Store`], never from the live workspace, so the
//! result describes exactly the two moments the snapshots were taken.

use crate::report::Change;
use crate::snapshot::{Snapshot, Store};

/// The changes from `before` to `after`, sorted by path.
pub fn changes(before: &Snapshot, after: &Snapshot, store: &Store) -> Vec<Change> {
    let _ = (before, after, store);
    Vec::new()
}

/// Every text change from `before` to `after` as `git diff` writes it, or `None` when there
/// is no text change. `git apply` of it on a copy of the before-state reproduces every
/// text file of the after-state exactly.
pub fn patch(before: &Snapshot, after: &Snapshot, store: &Store) -> Option<String> {
    let _ = (before, after, store);
    None
}

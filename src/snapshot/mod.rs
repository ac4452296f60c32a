//! Snapshots of `project-files/`: what is there, by path, type, size, mode and content hash.
//!
//! Never follows symlinks (they are recorded with their target), never opens anything but
//! regular files (FIFOs, sockets and devices are skipped and said so), survives files that
//! vanish or cannot be read mid-walk. A snapshot taken with the previous one as a cache does
//! not re-read files whose metadata did not change (with the racy-git caveat handled).
//! File contents go to a content-addressed [`Store`] so diffs and retry roll-backs can read
//! the before-state after the agent has changed it.
//!
//! Layout: `walk` takes snapshots, `ignore` matches patterns, `store` keeps blobs,
//! `restore` rolls a tree back, `cache` saves a snapshot for the next run.

mod cache;
mod ignore;
mod restore;
mod store;
mod walk;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

pub use ignore::Ignore;
pub use store::{Blob, Store, is_untrusted};
pub use walk::{WalkStats, take_with_stats};

/// A path relative to the snapshot root, `/`-separated, as raw bytes (names need not be UTF-8).
pub type RelPath = Vec<u8>;

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Entry {
    Dir,
    File(FileMeta),
    Symlink { target: Vec<u8> },
}

/// What a snapshot knows of a regular file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileMeta {
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// blake3 of the content, hex.
    pub hash: String,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
    pub dev: u64,
    /// The content is in the [`Store`] (false for files over [`STORE_LIMIT`]).
    pub stored: bool,
}

/// Files larger than this are hashed and sized but not kept in the store: no diff needs
/// them (diffs stop at 1 MiB) and a retry cannot roll them back (the report says so).
pub const STORE_LIMIT: u64 = 64 * 1024 * 1024;

/// A path that was seen but not recorded, and why ("fifo skipped", "permission denied").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub path: RelPath,
    pub reason: String,
}

/// The state of one folder tree at one moment.
///
/// Not JSON-serializable through its serde derives (its map keys are bytes): persist it
/// with [`Snapshot::save`] and [`Snapshot::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub entries: BTreeMap<RelPath, Entry>,
    /// When the walk started, as nanoseconds since the epoch (for the racy-git check).
    pub taken_at_ns: i128,
    pub skipped: Vec<Skipped>,
}

impl Snapshot {
    /// Writes the snapshot to `path` atomically (a compact binary format with a checksum,
    /// see `cache`), for use as the `previous` cache of a later [`take`] (e.g.
    /// `state/snapshot.bin`).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        cache::save(self, path)
    }

    /// Reads a snapshot written by [`Snapshot::save`]. A cache that cannot be read should
    /// be treated as absent: [`take`] without it re-reads every file, nothing worse.
    pub fn load(path: &Path) -> io::Result<Snapshot> {
        cache::load(path)
    }

    /// The regular file at `path`, if any.
    pub fn file(&self, path: &[u8]) -> Option<&FileMeta> {
        match self.entries.get(path) {
            Some(Entry::File(meta)) => Some(meta),
            _ => None,
        }
    }
}

/// Walks `root` and records it. `previous` is a cache: files whose metadata did not change
/// since it was taken keep its hash without being read. Paths matching `ignore` are left
/// out (ignored folders are not entered). Regular files up to [`STORE_LIMIT`] are put in
/// `store` (`state/objects/`, created if missing). Errors only when `root` itself cannot
/// be walked or the store cannot be written; unreadable or special files below it are
/// listed in [`Snapshot::skipped`].
pub fn take(
    root: &Path,
    ignore: &Ignore,
    previous: Option<&Snapshot>,
    store: &Store,
) -> io::Result<Snapshot> {
    take_with_stats(root, ignore, previous, store).map(|(snap, _)| snap)
}

/// Puts `root` back the way `target` recorded it: removes what `target` lacks, rewrites
/// what differs from the store, recreates symlinks and folders. `current` is a fresh
/// snapshot of `root` (taken with the same ignore patterns, so ignored paths are left
/// alone). Returns what it could not restore, one `path: reason` string each (lossy
/// UTF-8); `Err` only when `root` itself cannot be opened.
///
/// Never touches anything outside `root` and never follows a symlink: every operation
/// goes through folder descriptors opened with `O_NOFOLLOW`.
pub fn restore(
    root: &Path,
    target: &Snapshot,
    current: &Snapshot,
    store: &Store,
) -> io::Result<Vec<String>> {
    restore::restore(root, target, current, store)
}

#[cfg(test)]
mod tests;

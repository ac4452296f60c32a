//! Snapshots of `project-files/`: what is there, by path, type, size, mode and content hash.
//!
//! Never follows symlinks (they are recorded with their target), never opens anything but
//! regular files (FIFOs, sockets and devices are skipped and said so), survives files that
//! vanish or cannot be read mid-walk. A snapshot taken with the previous one as a cache does
//! not re-read files whose metadata did not change (with the racy-git caveat handled).
//! File contents go to a content-addressed [`Store`] so diffs and retry roll-backs can read
//! the before-state after the agent has changed it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub entries: BTreeMap<RelPath, Entry>,
    /// When the walk started, as nanoseconds since the epoch (for the racy-git check).
    pub taken_at_ns: i128,
    pub skipped: Vec<Skipped>,
}

/// gitignore-style patterns that leave paths out of snapshots.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<String>,
}

impl Ignore {
    pub fn new(patterns: &[String]) -> Ignore {
        Ignore {
            patterns: patterns.to_vec(),
        }
    }

    /// Whether `path` (relative, `/`-separated) is left out; `is_dir` for folders.
    pub fn is_ignored(&self, path: &[u8], is_dir: bool) -> bool {
        let _ = (path, is_dir, &self.patterns);
        false
    }
}

/// A content-addressed blob store (`state/objects/`): contents by blake3 hash.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content stored under `hash`.
    pub fn read(&self, hash: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.root.join(hash))
    }
}

/// Walks `root` and records it. `previous` is a cache: files whose metadata did not change
/// since it was taken keep its hash without being read.
pub fn take(
    root: &Path,
    ignore: &Ignore,
    previous: Option<&Snapshot>,
    store: &Store,
) -> io::Result<Snapshot> {
    let _ = (root, ignore, previous, store);
    Err(io::Error::other("snapshots are not written yet"))
}

/// Puts `root` back the way `target` recorded it: removes what `target` lacks, rewrites
/// what differs from the store, recreates symlinks and folders. `current` is a fresh
/// snapshot of `root`. Returns the paths it could not restore (not stored, unwritable).
pub fn restore(
    root: &Path,
    target: &Snapshot,
    current: &Snapshot,
    store: &Store,
) -> io::Result<Vec<String>> {
    let _ = (root, target, current, store);
    Err(io::Error::other("restore is not written yet"))
}

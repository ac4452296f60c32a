//! Taking a snapshot: one parallel walk of the tree, hashing (and storing) what changed
//! since the previous snapshot.
//!
//! The walk is a work queue of folders on rayon's pool (one job per folder, never a
//! recursion on the stack, so depth costs no stack): each job lists its folder, takes
//! each entry's metadata with one `lstat` relative to it, and queues its subfolders.
//! Entries are gathered per folder and sorted once at the end, so the snapshot is the same
//! whatever order the threads ran in.
//!
//! Never follows symlinks (a symlink's target is read with `read_link`, never opened).
//! Never opens anything but a regular file: files are opened with `O_NOFOLLOW |
//! O_NONBLOCK` and checked again through the open descriptor, so a file swapped for a
//! FIFO or a link between the listing and the open can neither block nor lead elsewhere.
//! A file that vanishes mid-walk is simply absent; one that cannot be read is listed in
//! `skipped`; neither fails the snapshot. Memory stays bounded whatever the file sizes:
//! contents are streamed through the hasher.

use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::store::{Store, TempBlob, named};
use super::{Entry, FileMeta, Ignore, RelPath, STORE_LIMIT, Skipped, Snapshot};

/// The racy-git rule: a cache entry whose mtime or ctime is at or after the previous
/// snapshot's start is re-read, since a same-size rewrite within the file system's
/// timestamp granularity would otherwise keep a stale hash. The start is read from the file
/// system's own clock (the mtime of a file made in the store as the walk begins, as git
/// compares with its index file's mtime), so whatever the granularity (nanoseconds,
/// FAT's two seconds) and however far the kernel's coarse clock lags ours, a later write
/// has a time at or after it, and a file left alone for one clock tick before a snapshot
/// is trusted by the next. When that clock cannot be read, the system clock minus this
/// margin is used instead.
pub(crate) const RACY_MARGIN_NS: i128 = 2_000_000_000;

/// Contents up to this size are hashed in memory and written to the store only when the
/// blob is new; larger ones are streamed to a temp blob while hashing.
const IN_MEMORY_LIMIT: usize = 1024 * 1024;

const CHUNK: usize = 256 * 1024;

/// What a walk did, for logs and for tests that prove the cache works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Regular files opened and hashed.
    pub files_read: u64,
    /// Regular files whose hash came from the previous snapshot.
    pub files_cached: u64,
}

/// What the walk's jobs share: the inputs, and what they found (appended once per folder).
struct Walk<'a> {
    ignore: &'a Ignore,
    previous: Option<&'a Snapshot>,
    store: &'a Store,
    /// The store's blobs, listed once when there is a cache to check against it (`None`
    /// when the listing failed: then each cache entry's blob is looked up by itself).
    present: Option<HashSet<[u8; 32]>>,
    found: Mutex<Found>,
}

#[derive(Default)]
struct Found {
    entries: Vec<(RelPath, Entry)>,
    skipped: Vec<Skipped>,
    stats: WalkStats,
    /// The root itself could not be listed.
    root_error: Option<io::Error>,
}

/// Walks `root`, see [`super::take`].
pub fn take_with_stats(
    root: &Path,
    ignore: &Ignore,
    previous: Option<&Snapshot>,
    store: &Store,
) -> io::Result<(Snapshot, WalkStats)> {
    // symlink_metadata: a root swapped for a link is refused, never snapshotted through.
    let root_meta = fs::symlink_metadata(root).map_err(|e| named(&e, "snapshot", root))?;
    if !root_meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("cannot snapshot `{}`: not a folder", root.display()),
        ));
    }
    store.ensure_root()?;
    let taken_at_ns = fs_clock(store);

    let walk = Walk {
        ignore,
        previous,
        store,
        present: previous.and_then(|_| store.present().ok()),
        found: Mutex::new(Found::default()),
    };
    rayon::scope(|scope| visit(scope, &walk, root, RelPath::new()));
    let found = walk.found.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = found.root_error {
        return Err(named(&e, "snapshot", root));
    }
    let mut skipped = found.skipped;
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let snap = Snapshot {
        // Sorted in one pass and built with full nodes.
        entries: found.entries.into_iter().collect(),
        taken_at_ns,
        skipped,
    };
    Ok((snap, found.stats))
}

/// One folder: its entries recorded, its subfolders queued as jobs of their own.
fn visit<'s>(scope: &rayon::Scope<'s>, walk: &'s Walk<'s>, dir: &Path, rel: RelPath) {
    let mut found = Found::default();
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            let mut all = walk.found.lock().unwrap_or_else(|e| e.into_inner());
            if rel.is_empty() {
                all.root_error = Some(e);
            } else if e.kind() != io::ErrorKind::NotFound {
                // (vanished mid-walk: simply absent)
                all.skipped.push(Skipped {
                    path: rel,
                    reason: reason_of(&e),
                });
            }
            return;
        }
    };
    for item in listing {
        let Ok(item) = item else { continue };
        let name = item.file_name();
        let mut path = rel.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        let Ok(ft) = item.file_type() else { continue };
        if walk.ignore.matches_self(&path, ft.is_dir()) {
            continue;
        }
        let full = dir.join(&name);
        if ft.is_dir() {
            found.entries.push((path.clone(), Entry::Dir));
            scope.spawn(move |scope| visit(scope, walk, &full, path));
        } else if ft.is_symlink() {
            match fs::read_link(&full) {
                Ok(target) => {
                    let target = target.as_os_str().as_bytes().to_vec();
                    found.entries.push((path, Entry::Symlink { target }));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => found.skipped.push(Skipped {
                    path,
                    reason: reason_of(&e),
                }),
            }
        } else if ft.is_file() {
            visit_file(walk, &mut found, &full, path, item.metadata().ok());
        } else {
            let reason = format!("{} skipped", special_kind(&ft));
            found.skipped.push(Skipped { path, reason });
        }
    }
    let mut all = walk.found.lock().unwrap_or_else(|e| e.into_inner());
    all.entries.append(&mut found.entries);
    all.skipped.append(&mut found.skipped);
    all.stats.files_read += found.stats.files_read;
    all.stats.files_cached += found.stats.files_cached;
}

/// A regular file: from the cache when provably unchanged, else read and hashed.
fn visit_file(
    walk: &Walk<'_>,
    found: &mut Found,
    full: &Path,
    path: RelPath,
    meta: Option<Metadata>,
) {
    let cached = walk
        .previous
        .and_then(|p| cached_meta(p, &path, meta, walk));
    if let Some(meta) = cached {
        found.stats.files_cached += 1;
        found.entries.push((path, Entry::File(meta)));
        return;
    }
    found.stats.files_read += 1;
    match read_file(full, walk.store) {
        Ok(Some(meta)) => found.entries.push((path, Entry::File(meta))),
        Ok(None) => {}
        Err(ReadError::NotRegular(kind)) => found.skipped.push(Skipped {
            path,
            reason: format!("{kind} skipped"),
        }),
        Err(ReadError::Io(e)) => found.skipped.push(Skipped {
            path,
            reason: reason_of(&e),
        }),
    }
}

/// The previous entry's metadata when the file provably did not change: same size, mode,
/// times, inode and device, not racy, and its blob still in the store if it was stored.
fn cached_meta(
    previous: &Snapshot,
    path: &[u8],
    meta: Option<Metadata>,
    walk: &Walk<'_>,
) -> Option<FileMeta> {
    let meta = meta?;
    let Some(Entry::File(old)) = previous.entries.get(path) else {
        return None;
    };
    let same = old.size == meta.size()
        && old.mode == meta.mode() & 0o7777
        && old.mtime_ns == mtime_ns(&meta)
        && old.ctime_ns == ctime_ns(&meta)
        && old.ino == meta.ino()
        && old.dev == meta.dev();
    let racy = old.mtime_ns >= previous.taken_at_ns || old.ctime_ns >= previous.taken_at_ns;
    let should_be_stored = old.size <= STORE_LIMIT;
    let blob_ok = if should_be_stored {
        old.stored
            && match &walk.present {
                Some(present) => {
                    blake3::Hash::from_hex(&old.hash).is_ok_and(|h| present.contains(h.as_bytes()))
                }
                None => walk.store.contains(&old.hash),
            }
    } else {
        !old.stored
    };
    (same && !racy && blob_ok).then(|| old.clone())
}

enum ReadError {
    /// The path is no longer a regular file (swapped between walk and open).
    NotRegular(&'static str),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// Opens, hashes and (up to [`STORE_LIMIT`]) stores one regular file, reading it once.
/// `Ok(None)` when it vanished.
fn read_file(path: &Path, store: &Store) -> Result<Option<FileMeta>, ReadError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a symlink: ELOOP. It was swapped after the walk saw a file.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::NotRegular("symlink"));
        }
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(special_kind(&meta.file_type())));
    }
    let (hash, size, stored) = hash_and_store(&mut file, store)?;
    Ok(Some(FileMeta {
        size,
        mode: meta.mode() & 0o7777,
        hash,
        mtime_ns: mtime_ns(&meta),
        ctime_ns: ctime_ns(&meta),
        ino: meta.ino(),
        dev: meta.dev(),
        stored,
    }))
}

/// Where the bytes read so far are kept while hashing.
enum Sink {
    Memory(Vec<u8>),
    Temp(TempBlob),
    /// Over the store limit: hashed only.
    None,
}

/// Streams `file` through blake3, keeping a copy for the store while it fits.
/// Returns (hash, bytes read, stored).
fn hash_and_store(file: &mut File, store: &Store) -> io::Result<(String, u64, bool)> {
    let mut hasher = blake3::Hasher::new();
    let mut sink = Sink::Memory(Vec::new());
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if let Sink::Temp(t) = sink {
                    t.discard();
                }
                return Err(e);
            }
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        total += n as u64;
        sink = match sink {
            _ if total > STORE_LIMIT => {
                if let Sink::Temp(t) = sink {
                    t.discard();
                }
                Sink::None
            }
            Sink::Memory(mut v) if v.len() + n <= IN_MEMORY_LIMIT => {
                v.extend_from_slice(chunk);
                Sink::Memory(v)
            }
            Sink::Memory(v) => {
                let mut t = store.temp()?;
                if let Err(e) = t.file.write_all(&v).and_then(|()| t.file.write_all(chunk)) {
                    t.discard();
                    return Err(e);
                }
                Sink::Temp(t)
            }
            Sink::Temp(mut t) => {
                if let Err(e) = t.file.write_all(chunk) {
                    t.discard();
                    return Err(e);
                }
                Sink::Temp(t)
            }
            Sink::None => Sink::None,
        };
    }
    let hash = hasher.finalize().to_hex().to_string();
    let stored = match sink {
        Sink::Memory(v) => {
            store.put_hashed(&hash, &v)?;
            true
        }
        Sink::Temp(t) => {
            store.commit(t, &hash)?;
            true
        }
        Sink::None => false,
    };
    Ok((hash, total, stored))
}

fn special_kind(ft: &fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_dir() {
        "folder"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

fn reason_of(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// Now, by the file system's clock: the mtime of a temp file made in the store (see
/// [`RACY_MARGIN_NS`]).
fn fs_clock(store: &Store) -> i128 {
    let marker = store.temp();
    let time = marker
        .as_ref()
        .ok()
        .and_then(|t| t.file.metadata().ok())
        .map(|m| mtime_ns(&m));
    if let Ok(t) = marker {
        t.discard();
    }
    time.unwrap_or_else(|| now_ns() - RACY_MARGIN_NS)
}

pub(crate) fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn mtime_ns(m: &Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

fn ctime_ns(m: &Metadata) -> i128 {
    i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path the walk saw as a regular file may be something else by the time it is
    /// opened; the open must neither block (FIFO) nor follow (symlink).
    #[test]
    fn a_file_swapped_after_the_walk_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("objects"));
        store.ensure_root().unwrap();
        let fifo = dir.path().join("was-a-file");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(
            read_file(&fifo, &store),
            Err(ReadError::NotRegular("fifo"))
        ));
        let link = dir.path().join("now-a-link");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(matches!(
            read_file(&link, &store),
            Err(ReadError::NotRegular("symlink"))
        ));
        assert!(matches!(
            read_file(&dir.path().join("gone"), &store),
            Ok(None)
        ));
    }
}

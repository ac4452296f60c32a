//! Taking a snapshot: one walk of the tree, hashing (and storing) what changed since the
//! previous snapshot.
//!
//! Never follows symlinks (walkdir with `follow_links(false)`; a symlink's target is read
//! with `read_link`, never opened). Never opens anything but a regular file: files are
//! opened with `O_NOFOLLOW | O_NONBLOCK` and checked again through the open descriptor,
//! so a file swapped for a FIFO or a link between the walk and the open can neither block
//! nor lead elsewhere. A file that vanishes mid-walk is simply absent; one that cannot be
//! read is listed in `skipped`; neither fails the snapshot. Memory stays bounded whatever
//! the file sizes: contents are streamed through the hasher.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use walkdir::WalkDir;

use super::store::{Store, TempBlob, named};
use super::{Entry, FileMeta, Ignore, RelPath, STORE_LIMIT, Skipped, Snapshot};

/// A cache entry whose mtime or ctime is this close to (or after) the previous snapshot's
/// start is re-read: a same-size rewrite within the file system's timestamp granularity
/// would otherwise keep a stale hash ("racy git"). Two seconds covers coarse (FAT-like)
/// timestamps and the lag of the kernel's coarse clock behind ours.
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

/// Walks `root`, see [`super::take`].
pub fn take_with_stats(
    root: &Path,
    ignore: &Ignore,
    previous: Option<&Snapshot>,
    store: &Store,
) -> io::Result<(Snapshot, WalkStats)> {
    let taken_at_ns = now_ns();
    // symlink_metadata: a root swapped for a link is refused, never snapshotted through.
    let root_meta = fs::symlink_metadata(root).map_err(|e| named(&e, "snapshot", root))?;
    if !root_meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("cannot snapshot `{}`: not a folder", root.display()),
        ));
    }
    store.ensure_root()?;

    let mut snap = Snapshot {
        taken_at_ns,
        ..Snapshot::default()
    };
    let mut stats = WalkStats::default();
    let walker = WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || !ignore.matches_self(&rel(root, e.path()), e.file_type().is_dir())
        });
    for item in walker {
        let entry = match item {
            Ok(entry) => entry,
            Err(err) => {
                // The root itself failing is the caller's problem; anything below is noted.
                if err.depth() == 0 {
                    return Err(named(&err.into(), "snapshot", root));
                }
                let Some(path) = err.path().map(|p| rel(root, p)) else {
                    continue;
                };
                let ioe = err.into_io_error();
                if ioe
                    .as_ref()
                    .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
                {
                    continue; // vanished mid-walk: simply absent
                }
                let reason = ioe.map_or_else(|| "unreadable".to_string(), |e| reason_of(&e));
                snap.skipped.push(Skipped { path, reason });
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let path = rel(root, entry.path());
        let ft = entry.file_type();
        if ft.is_dir() {
            snap.entries.insert(path, Entry::Dir);
        } else if ft.is_symlink() {
            match fs::read_link(entry.path()) {
                Ok(target) => {
                    let target = target.as_os_str().as_bytes().to_vec();
                    snap.entries.insert(path, Entry::Symlink { target });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => snap.skipped.push(Skipped {
                    path,
                    reason: reason_of(&e),
                }),
            }
        } else if ft.is_file() {
            let cached = previous.and_then(|p| cached_meta(p, &path, entry.metadata().ok(), store));
            if let Some(meta) = cached {
                stats.files_cached += 1;
                snap.entries.insert(path, Entry::File(meta));
                continue;
            }
            stats.files_read += 1;
            match read_file(entry.path(), store) {
                Ok(Some(meta)) => {
                    snap.entries.insert(path, Entry::File(meta));
                }
                Ok(None) => {}
                Err(ReadError::NotRegular(kind)) => snap.skipped.push(Skipped {
                    path,
                    reason: format!("{kind} skipped"),
                }),
                Err(ReadError::Io(e)) => snap.skipped.push(Skipped {
                    path,
                    reason: reason_of(&e),
                }),
            }
        } else {
            let reason = format!("{} skipped", special_kind(&ft));
            snap.skipped.push(Skipped { path, reason });
        }
    }
    Ok((snap, stats))
}

/// The previous entry's metadata when the file provably did not change: same size, mode,
/// times, inode and device, not racy, and its blob still in the store if it was stored.
fn cached_meta(
    previous: &Snapshot,
    path: &[u8],
    meta: Option<Metadata>,
    store: &Store,
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
    let horizon = previous.taken_at_ns - RACY_MARGIN_NS;
    let racy = old.mtime_ns >= horizon || old.ctime_ns >= horizon;
    let should_be_stored = old.size <= STORE_LIMIT;
    let blob_ok = if should_be_stored {
        old.stored && store.contains(&old.hash)
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

/// `p` relative to `root`, as `/`-separated bytes.
fn rel(root: &Path, p: &Path) -> RelPath {
    p.strip_prefix(root)
        .unwrap_or(p)
        .as_os_str()
        .as_bytes()
        .to_vec()
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

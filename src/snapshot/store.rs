//! The content-addressed blob store (`.borg/objects/` of a plan's workspaces, shared by
//! its instances): file contents by blake3 hex, so diffs and retry roll-backs can read the
//! before-state after the agent has changed or deleted the live files.
//!
//! Layout: fan-out folders as git's, `ab/cdef…` (the first two hex digits, then the rest),
//! so no folder holds 100,000 names; a blob of the older flat layout (`abcdef…` at the
//! top) is still read. Blobs are written atomically (a temp file at the top of the store,
//! then `renameat` into its fan-out folder, opened with `O_NOFOLLOW` so a folder the agent
//! swapped for a link is replaced, never written through), so concurrent writers (the
//! plan's instances) and a killed runner never leave half a blob under a valid name; a
//! blob is never rewritten once present and genuine (same hash, same bytes). No fsync per
//! blob: a killed runner loses no completed write, and a blob lost to a power cut only
//! makes the next snapshot re-read its file (the walk checks the blob is there). Only
//! names that look like a blake3 hex digest are ever opened, so a hash read from a
//! tampered snapshot cache cannot reach outside the store.
//!
//! The agent can reach the store (it runs as the runner's user), so a blob is never
//! trusted for its name: every read checks the content against its hash ([`Store::read`]
//! after reading, [`Blob`] at the end of a stream), and a blob that does not match is an
//! [`io::ErrorKind::InvalidData`] error ([`is_untrusted`]) — its content is never shown.
//! A put that finds a blob already present checks it too and replaces a forged one, so a
//! blob planted under the hash of the file the agent is about to write cannot hide it.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// A content-addressed blob store (`state/objects/`): contents by blake3 hash.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Distinguishes temp files of one process; the pid distinguishes processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content stored under `hash`, checked against it (an [`is_untrusted`] error
    /// when it does not match).
    pub fn read(&self, hash: &str) -> io::Result<Vec<u8>> {
        let (mut file, path) = self.open_blob(hash, "read blob")?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)
            .map_err(|e| named(&e, "read blob", &path))?;
        if blake3::hash(&bytes).to_hex().as_str() != hash {
            return Err(untrusted(&path));
        }
        Ok(bytes)
    }

    /// Opens the blob stored under `hash` for streaming reads. The content is checked as
    /// it is read: the read that reaches its end fails ([`is_untrusted`]) when it does not
    /// match, so a consumer must read to the end before it trusts what it read.
    pub fn open(&self, hash: &str) -> io::Result<Blob> {
        let (file, path) = self.open_blob(hash, "open blob")?;
        Ok(Blob {
            file,
            hasher: blake3::Hasher::new(),
            hash: hash.to_string(),
            path,
        })
    }

    /// Whether the blob under `hash` is present and its content matches it.
    fn holds_genuine(&self, hash: &str) -> bool {
        self.contains(hash)
            && self
                .open(hash)
                .and_then(|mut b| io::copy(&mut b, &mut io::sink()))
                .is_ok()
    }

    /// The blob file under `hash` (fan-out layout, else the older flat one), opened
    /// without following a link or blocking on a FIFO the agent planted there.
    fn open_blob(&self, hash: &str, action: &str) -> io::Result<(File, PathBuf)> {
        let path = self.blob_path(hash)?;
        match crate::fsutil::open_regular(&path) {
            Ok(f) => Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let flat = self.root.join(hash);
                match crate::fsutil::open_regular(&flat) {
                    Ok(f) => Ok((f, flat)),
                    Err(_) => Err(named(&e, action, &path)),
                }
            }
            Err(e) => Err(named(&e, action, &path)),
        }
    }

    /// Whether a blob for `hash` is present (in either layout).
    pub fn contains(&self, hash: &str) -> bool {
        let is_file = |p: PathBuf| fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
        self.blob_path(hash)
            .is_ok_and(|p| is_file(p) || is_file(self.root.join(hash)))
    }

    /// The hashes of every blob present (both layouts), from one listing of the store's
    /// folders: what a walk checks its cache entries against instead of a `stat` per file.
    /// Only regular files with a hash for a name count (by the listing's file type, so a
    /// FIFO or link planted under a blob's name is not a blob).
    pub(crate) fn present(&self) -> io::Result<HashSet<[u8; 32]>> {
        let mut found = HashSet::new();
        let add = |found: &mut HashSet<[u8; 32]>, name: &str| {
            if is_hash(name)
                && let Ok(h) = blake3::Hash::from_hex(name)
            {
                found.insert(*h.as_bytes());
            }
        };
        for top in fs::read_dir(&self.root)? {
            let top = top?;
            let Ok(kind) = top.file_type() else { continue };
            let name = top.file_name();
            let Some(name) = name.to_str() else { continue };
            if kind.is_file() {
                add(&mut found, name);
            } else if kind.is_dir() && name.len() == 2 {
                for blob in fs::read_dir(top.path())? {
                    let blob = blob?;
                    if blob.file_type().is_ok_and(|k| k.is_file())
                        && let Some(rest) = blob.file_name().to_str()
                    {
                        add(&mut found, &format!("{name}{rest}"));
                    }
                }
            }
        }
        Ok(found)
    }

    /// Stores `bytes` and returns their hash. An existing blob is left as it is.
    pub fn put(&self, bytes: &[u8]) -> io::Result<String> {
        let hash = blake3::hash(bytes).to_hex().to_string();
        self.put_hashed(&hash, bytes)?;
        Ok(hash)
    }

    /// Stores `bytes` whose blake3 hex is `hash` (already computed by the caller).
    pub(crate) fn put_hashed(&self, hash: &str, bytes: &[u8]) -> io::Result<()> {
        if self.holds_genuine(hash) {
            return Ok(());
        }
        let mut temp = self.temp()?;
        match temp.file.write_all(bytes) {
            Ok(()) => self.place(temp, hash),
            Err(e) => {
                let path = temp.path.clone();
                temp.discard();
                Err(named(&e, "write blob", &path))
            }
        }
    }

    /// Creates the store folder if needed.
    pub(crate) fn ensure_root(&self) -> io::Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| named(&e, "create store", &self.root))
    }

    /// A new temp file inside the store, for a blob whose hash is not known yet.
    pub(crate) fn temp(&self) -> io::Result<TempBlob> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join(format!(".tmp-{}-{n}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| named(&e, "create temp blob", &path))?;
        Ok(TempBlob { file, path })
    }

    /// Gives `temp` its final name `hash`, or drops it when that blob already exists.
    pub(crate) fn commit(&self, temp: TempBlob, hash: &str) -> io::Result<()> {
        if self.holds_genuine(hash) {
            temp.discard();
            return Ok(());
        }
        self.place(temp, hash)
    }

    /// Renames `temp` to `ab/cdef…` (replacing a forged blob there), making the fan-out
    /// folder if needed. Everything goes through folder descriptors opened with
    /// `O_NOFOLLOW`: a fan-out folder swapped for a link is removed, never followed.
    fn place(&self, temp: TempBlob, hash: &str) -> io::Result<()> {
        let target = self.blob_path(hash)?;
        let TempBlob { file, path } = temp;
        drop(file);
        let tmp_name = path.file_name().unwrap_or_default().to_owned();
        let placed = (|| {
            let root = open_dir(&self.root)?;
            let fan = fan_out_dir(&root, OsStr::new(&hash[..2]))?;
            renameat(root.as_fd(), tmp_name.as_os_str(), fan.as_fd(), &hash[2..])
                .map_err(io::Error::from)
        })();
        placed.map_err(|e| {
            let _ = fs::remove_file(&path);
            named(&e, "store blob", &target)
        })
    }

    pub(crate) fn blob_path(&self, hash: &str) -> io::Result<PathBuf> {
        if is_hash(hash) {
            Ok(self.root.join(&hash[..2]).join(&hash[2..]))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{hash}` is not a blake3 hex digest"),
            ))
        }
    }
}

/// A stored blob being read, checked against its hash at its end.
#[derive(Debug)]
pub struct Blob {
    file: File,
    hasher: blake3::Hasher,
    hash: String,
    path: PathBuf,
}

impl io::Read for Blob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 && !buf.is_empty() && self.hasher.finalize().to_hex().as_str() != self.hash {
            return Err(untrusted(&self.path));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The error of a blob whose content does not match its name.
fn untrusted(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "stored copy `{}` does not match its hash (tampered with): not trusted",
            path.display()
        ),
    )
}

/// Whether `e` says a blob did not match its hash (see [`Store::read`]).
pub fn is_untrusted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData && e.to_string().contains("does not match its hash")
}

/// A blob being written; removed again unless committed.
#[derive(Debug)]
pub(crate) struct TempBlob {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl TempBlob {
    pub(crate) fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.path);
    }
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?
        .into())
}

/// The fan-out folder `name` under `root`, made if missing; whatever else is there (a
/// link, a file, a FIFO the agent planted) is removed first.
fn fan_out_dir(root: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    for _ in 0..3 {
        match openat(root.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                match unlinkat(root.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        match mkdirat(root.as_fd(), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other("the fan-out folder keeps changing"))
}

/// 64 lowercase hex digits: the only names the store opens.
fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `e` with the action and path in its message, keeping its kind.
pub(crate) fn named(e: &io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot {action} `{}`: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_read_round_trips_and_dedups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("objects"));
        store.ensure_root().unwrap();
        let h1 = store.put(b"hello\n").unwrap();
        assert_eq!(h1, blake3::hash(b"hello\n").to_hex().to_string());
        assert_eq!(store.read(&h1).unwrap(), b"hello\n");
        let before = fs::metadata(store.blob_path(&h1).unwrap()).unwrap();
        let h2 = store.put(b"hello\n").unwrap();
        assert_eq!(h1, h2);
        let after = fs::metadata(store.blob_path(&h1).unwrap()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            before.ino(),
            after.ino(),
            "an existing blob is not rewritten"
        );
        // No temp files left behind; the blob sits in its fan-out folder.
        let names: Vec<_> = fs::read_dir(dir.path().join("objects"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [h1[..2].to_string()]);
        assert!(
            dir.path()
                .join("objects")
                .join(&h1[..2])
                .join(&h1[2..])
                .is_file()
        );
    }

    #[test]
    fn present_lists_blobs_of_both_layouts_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("objects"));
        store.ensure_root().unwrap();
        let fanned = store.put(b"new\n").unwrap();
        let flat = blake3::hash(b"old\n").to_hex().to_string();
        fs::write(dir.path().join("objects").join(&flat), b"old\n").unwrap();
        // A FIFO under a blob's name and a temp file are not blobs.
        let fifo = blake3::hash(b"fifo").to_hex().to_string();
        let fifo_path = store.blob_path(&fifo).unwrap();
        fs::create_dir_all(fifo_path.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        fs::write(dir.path().join("objects/.tmp-1-1"), b"half").unwrap();
        let present = store.present().unwrap();
        let bytes = |h: &str| *blake3::Hash::from_hex(h).unwrap().as_bytes();
        assert_eq!(present.len(), 2, "{present:?}");
        assert!(present.contains(&bytes(&fanned)) && present.contains(&bytes(&flat)));
    }

    #[test]
    fn a_blob_of_the_flat_layout_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("objects"));
        store.ensure_root().unwrap();
        let hash = blake3::hash(b"old\n").to_hex().to_string();
        fs::write(dir.path().join("objects").join(&hash), b"old\n").unwrap();
        assert!(store.contains(&hash));
        assert_eq!(store.read(&hash).unwrap(), b"old\n");
        let mut streamed = Vec::new();
        io::Read::read_to_end(&mut store.open(&hash).unwrap(), &mut streamed).unwrap();
        assert_eq!(streamed, b"old\n");
    }

    #[test]
    fn a_fan_out_folder_swapped_for_a_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let store = Store::new(dir.path().join("objects"));
        store.ensure_root().unwrap();
        let hash = blake3::hash(b"x\n").to_hex().to_string();
        std::os::unix::fs::symlink(&outside, dir.path().join("objects").join(&hash[..2])).unwrap();
        store.put(b"x\n").unwrap();
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        let fan = dir.path().join("objects").join(&hash[..2]);
        assert!(fs::symlink_metadata(&fan).unwrap().is_dir());
        assert_eq!(store.read(&hash).unwrap(), b"x\n");
    }

    #[test]
    fn concurrent_writers_of_one_blob_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("objects"));
        store.ensure_root().unwrap();
        let content = vec![7u8; 100_000];
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| store.put(&content).unwrap());
            }
        });
        let hash = blake3::hash(&content).to_hex().to_string();
        assert_eq!(store.read(&hash).unwrap(), content);
        let top: Vec<_> = fs::read_dir(dir.path().join("objects")).unwrap().collect();
        assert_eq!(top.len(), 1, "no temp file left: {top:?}");
    }

    #[test]
    fn refuses_names_that_are_not_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(dir.path().join("secret"), b"x").unwrap();
        assert!(store.read("secret").is_err());
        assert!(store.read("../etc/passwd").is_err());
        assert!(!store.contains("secret"));
        let err = store.read(&"0".repeat(64)).unwrap_err();
        // The blob's path is named: `00/` then the other 62 digits.
        assert!(
            err.to_string().contains(&format!("00/{}", "0".repeat(62))),
            "{err}"
        );
    }

    #[test]
    fn a_forged_blob_is_refused_on_read_and_replaced_by_a_put() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("objects"));
        store.ensure_root().unwrap();
        let real = b"backdoor()\n";
        let hash = blake3::hash(real).to_hex().to_string();
        // The agent plants a harmless blob under the hash of the file it is about to write.
        let planted = store.blob_path(&hash).unwrap();
        fs::create_dir_all(planted.parent().unwrap()).unwrap();
        fs::write(planted, b"harmless\n").unwrap();
        let err = store.read(&hash).unwrap_err();
        assert!(is_untrusted(&err), "{err}");
        let mut streamed = Vec::new();
        let err = io::Read::read_to_end(&mut store.open(&hash).unwrap(), &mut streamed);
        assert!(is_untrusted(&err.unwrap_err()));
        // Storing the real content heals the store.
        assert_eq!(store.put(real).unwrap(), hash);
        assert_eq!(store.read(&hash).unwrap(), real);
    }
}

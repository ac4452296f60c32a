//! The content-addressed blob store (`state/objects/` of a workspace): file contents by
//! blake3 hex, so diffs and retry roll-backs can read the before-state after the agent has
//! changed or deleted the live files.
//!
//! Blobs are written atomically (a temp file in the store, then rename) so a killed runner
//! never leaves half a blob under a valid name, and never rewritten once present (same
//! hash, same bytes). Only names that look like a blake3 hex digest are ever opened, so a
//! hash read from a tampered snapshot cache cannot reach outside the store.
//!
//! The agent can reach the store (it runs as the runner's user), so a blob is never
//! trusted for its name: every read checks the content against its hash ([`Store::read`]
//! after reading, [`Blob`] at the end of a stream), and a blob that does not match is an
//! [`io::ErrorKind::InvalidData`] error ([`is_untrusted`]) — its content is never shown.
//! A put that finds a blob already present checks it too and replaces a forged one, so a
//! blob planted under the hash of the file the agent is about to write cannot hide it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
        let path = self.blob_path(hash)?;
        // A blob the agent swapped for a link or a FIFO is refused, never followed.
        let mut bytes = Vec::new();
        crate::fsutil::open_regular(&path)
            .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut bytes))
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
        let path = self.blob_path(hash)?;
        let file = crate::fsutil::open_regular(&path).map_err(|e| named(&e, "open blob", &path))?;
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

    /// Whether a blob for `hash` is present.
    pub fn contains(&self, hash: &str) -> bool {
        self.blob_path(hash)
            .map(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .unwrap_or(false)
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
            Ok(()) => self.commit(temp, hash),
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
        let target = self.blob_path(hash)?;
        if self.holds_genuine(hash) {
            temp.discard();
            return Ok(());
        }
        // No fsync per blob: a snapshot writes thousands of them, and a blob lost in a
        // crash only makes a later cache entry re-read its file (see `walk`).
        let TempBlob { file, path } = temp;
        drop(file);
        fs::rename(&path, &target).map_err(|e| {
            let _ = fs::remove_file(&path);
            named(&e, "store blob", &target)
        })
    }

    pub(crate) fn blob_path(&self, hash: &str) -> io::Result<PathBuf> {
        if is_hash(hash) {
            Ok(self.root.join(hash))
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
        let before = fs::metadata(dir.path().join("objects").join(&h1)).unwrap();
        let h2 = store.put(b"hello\n").unwrap();
        assert_eq!(h1, h2);
        let after = fs::metadata(dir.path().join("objects").join(&h1)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            before.ino(),
            after.ino(),
            "an existing blob is not rewritten"
        );
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("objects"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
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
        assert!(err.to_string().contains(&"0".repeat(64)), "{err}");
    }

    #[test]
    fn a_forged_blob_is_refused_on_read_and_replaced_by_a_put() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("objects"));
        store.ensure_root().unwrap();
        let real = b"backdoor()\n";
        let hash = blake3::hash(real).to_hex().to_string();
        // The agent plants a harmless blob under the hash of the file it is about to write.
        fs::write(store.blob_path(&hash).unwrap(), b"harmless\n").unwrap();
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

//! Saving a snapshot between runs (`state/snapshot.bin` of a workspace), so the next
//! task's snapshot reads only files that changed.
//!
//! A compact binary format, read and written as a stream: a magic line, the snapshot's
//! time, then one record per entry in path order, each path stored as the length it
//! shares with the previous path plus the rest (a 100,000-file tree is ~6 MB instead of
//! 24 MB of JSON lines), hashes as 32 raw bytes, times as i64 nanoseconds, integers as
//! LEB128 varints; skipped paths last; a blake3 checksum of everything before it closes
//! the file. Written atomically (temp file + rename): a killed runner leaves the old cache
//! or the new one. Not fsynced: a cache torn by a power cut fails its checksum and is
//! dropped. A cache is only ever a hint: a corrupt, truncated or older-format one is an
//! error for the caller to drop, never a wrong snapshot.

use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::store::named;
use super::{Entry, FileMeta, Skipped, Snapshot};

const MAGIC: &[u8] = b"borg-batch snapshot 2\n";

const DIR: u8 = 0;
const FILE: u8 = 1;
const SYMLINK: u8 = 2;
const SKIPPED: u8 = 3;
const END: u8 = 4;

/// No path, target or reason in a cache is longer than this; a longer length is corruption.
const MAX_FIELD: u64 = 1 << 20;

pub(super) fn save(snap: &Snapshot, path: &Path) -> io::Result<()> {
    crate::fsutil::replace_with(path, false, |w| {
        let mut out = Hashing {
            inner: w,
            hasher: blake3::Hasher::new(),
        };
        out.write_all(MAGIC)?;
        out.write_all(&clamp(snap.taken_at_ns).to_le_bytes())?;
        let mut prev: &[u8] = &[];
        for (p, entry) in &snap.entries {
            let kind = match entry {
                Entry::Dir => DIR,
                Entry::File(_) => FILE,
                Entry::Symlink { .. } => SYMLINK,
            };
            out.write_all(&[kind])?;
            write_path(&mut out, prev, p)?;
            prev = p;
            match entry {
                Entry::Dir => {}
                Entry::File(m) => write_file(&mut out, m)?,
                Entry::Symlink { target } => write_bytes(&mut out, target)?,
            }
        }
        for s in &snap.skipped {
            out.write_all(&[SKIPPED])?;
            write_path(&mut out, &[], &s.path)?;
            write_bytes(&mut out, s.reason.as_bytes())?;
        }
        out.write_all(&[END])?;
        let sum = out.hasher.finalize();
        out.inner.write_all(sum.as_bytes())
    })
    .map_err(|e| named(&e, "save snapshot", path))
}

pub(super) fn load(path: &Path) -> io::Result<Snapshot> {
    let file = crate::fsutil::open_regular(path).map_err(|e| named(&e, "load snapshot", path))?;
    read(BufReader::with_capacity(256 * 1024, file)).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot load snapshot `{}`: {e}", path.display()),
        )
    })
}

fn read(reader: impl Read) -> io::Result<Snapshot> {
    let mut r = Hashing {
        inner: reader,
        hasher: blake3::Hasher::new(),
    };
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic)
        .map_err(|_| bad("not a snapshot cache"))?;
    if magic != MAGIC {
        return Err(bad("not a snapshot cache of this version"));
    }
    let mut snap = Snapshot {
        taken_at_ns: i128::from(read_i64(&mut r)?),
        ..Snapshot::default()
    };
    let mut entries = Vec::new();
    let mut prev = Vec::new();
    loop {
        let kind = read_u8(&mut r)?;
        match kind {
            DIR | FILE | SYMLINK => {
                let p = read_path(&mut r, &prev)?;
                if p <= prev && !entries.is_empty() {
                    return Err(bad("paths out of order"));
                }
                let entry = match kind {
                    DIR => Entry::Dir,
                    FILE => Entry::File(read_file(&mut r)?),
                    _ => Entry::Symlink {
                        target: read_bytes(&mut r)?,
                    },
                };
                prev.clone_from(&p);
                entries.push((p, entry));
            }
            SKIPPED => {
                let path = read_path(&mut r, &[])?;
                let reason = String::from_utf8(read_bytes(&mut r)?)
                    .map_err(|_| bad("a reason that is not UTF-8"))?;
                snap.skipped.push(Skipped { path, reason });
            }
            END => break,
            other => return Err(bad(&format!("unknown record type {other}"))),
        }
    }
    let expected = r.hasher.finalize();
    let mut sum = [0u8; 32];
    r.inner
        .read_exact(&mut sum)
        .map_err(|_| bad("truncated (no checksum)"))?;
    if sum != *expected.as_bytes() {
        return Err(bad("checksum mismatch (corrupt)"));
    }
    if r.inner.read(&mut [0u8; 1])? != 0 {
        return Err(bad("data after the checksum"));
    }
    // Sorted and unique (checked above): built in one pass, nodes full.
    snap.entries = entries.into_iter().collect();
    Ok(snap)
}

fn write_file(w: &mut impl Write, m: &FileMeta) -> io::Result<()> {
    let hash = blake3::Hash::from_hex(&m.hash)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a hash that is not hex"))?;
    write_varint(w, m.size)?;
    write_varint(w, u64::from(m.mode))?;
    w.write_all(hash.as_bytes())?;
    w.write_all(&clamp(m.mtime_ns).to_le_bytes())?;
    w.write_all(&clamp(m.ctime_ns).to_le_bytes())?;
    write_varint(w, m.ino)?;
    write_varint(w, m.dev)?;
    w.write_all(&[u8::from(m.stored)])
}

fn read_file(r: &mut impl Read) -> io::Result<FileMeta> {
    let size = read_varint(r)?;
    let mode = u32::try_from(read_varint(r)?).map_err(|_| bad("bad mode"))?;
    let mut hash = [0u8; 32];
    r.read_exact(&mut hash).map_err(truncated)?;
    let mtime_ns = i128::from(read_i64(r)?);
    let ctime_ns = i128::from(read_i64(r)?);
    let ino = read_varint(r)?;
    let dev = read_varint(r)?;
    let stored = match read_u8(r)? {
        0 => false,
        1 => true,
        _ => return Err(bad("bad stored flag")),
    };
    Ok(FileMeta {
        size,
        mode,
        hash: blake3::Hash::from_bytes(hash).to_hex().to_string(),
        mtime_ns,
        ctime_ns,
        ino,
        dev,
        stored,
    })
}

/// A path as (length shared with `prev`, rest).
fn write_path(w: &mut impl Write, prev: &[u8], p: &[u8]) -> io::Result<()> {
    let shared = prev.iter().zip(p).take_while(|(a, b)| a == b).count();
    write_varint(w, shared as u64)?;
    write_bytes(w, &p[shared..])
}

fn read_path(r: &mut impl Read, prev: &[u8]) -> io::Result<Vec<u8>> {
    let shared = read_varint(r)?;
    let shared = usize::try_from(shared)
        .ok()
        .filter(|&s| s <= prev.len())
        .ok_or_else(|| bad("a shared prefix longer than the previous path"))?;
    let mut p = prev[..shared].to_vec();
    p.extend_from_slice(&read_bytes(r)?);
    if p.is_empty() {
        return Err(bad("an empty path"));
    }
    Ok(p)
}

fn write_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    write_varint(w, b.len() as u64)?;
    w.write_all(b)
}

fn read_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let len = read_varint(r)?;
    if len > MAX_FIELD {
        return Err(bad("a field longer than any path"));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b).map_err(truncated)?;
    Ok(b)
}

fn write_varint(w: &mut impl Write, mut v: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = byte;
            n += 1;
            break;
        }
        buf[n] = byte | 0x80;
        n += 1;
    }
    w.write_all(&buf[..n])
}

fn read_varint(r: &mut impl Read) -> io::Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = read_u8(r)?;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad("a varint longer than 64 bits"))
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).map_err(truncated)?;
    Ok(b[0])
}

fn read_i64(r: &mut impl Read) -> io::Result<i64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(truncated)?;
    Ok(i64::from_le_bytes(b))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn truncated(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        bad("truncated")
    } else {
        e
    }
}

/// A reader or writer that hashes what passes through it (the checksum).
struct Hashing<T> {
    inner: T,
    hasher: blake3::Hasher,
}

impl<T: Write> Write for Hashing<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Read> Read for Hashing<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Nanosecond times fit an i64 until 2262; a value outside is clamped, which at worst
/// makes that cache entry miss.
fn clamp(ns: i128) -> i64 {
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let meta = |n: u8| FileMeta {
            size: u64::from(n) * 1000,
            mode: 0o644 | (u32::from(n % 2) * 0o111),
            hash: blake3::hash(&[n]).to_hex().to_string(),
            mtime_ns: 1_700_000_000_123_456_789 + i128::from(n),
            ctime_ns: -5,
            ino: u64::MAX - u64::from(n),
            dev: 2049,
            stored: n != 3,
        };
        let mut s = Snapshot {
            taken_at_ns: 1_700_000_001_000_000_000,
            ..Snapshot::default()
        };
        s.entries.insert(b"a".to_vec(), Entry::Dir);
        s.entries.insert(b"a/b.txt".to_vec(), Entry::File(meta(1)));
        s.entries.insert(b"a/bc.txt".to_vec(), Entry::File(meta(2)));
        s.entries.insert(b"a/b\xff".to_vec(), Entry::File(meta(3)));
        s.entries.insert(
            b"link".to_vec(),
            Entry::Symlink {
                target: b"../outside\xfe".to_vec(),
            },
        );
        s.entries.insert(b"z".to_vec(), Entry::File(meta(4)));
        s.skipped.push(Skipped {
            path: b"fifo\xff".to_vec(),
            reason: "fifo skipped".into(),
        });
        s
    }

    fn saved(s: &Snapshot) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.bin");
        save(s, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        (dir, path, bytes)
    }

    #[test]
    fn round_trips_every_kind_of_entry_and_odd_bytes() {
        let s = sample();
        let (_dir, path, bytes) = saved(&s);
        assert_eq!(load(&path).unwrap(), s);
        assert!(bytes.starts_with(MAGIC));
        // Shared prefixes: "a/bc.txt" after "a/b.txt" costs its last 4 bytes, not 8.
        assert!(!bytes.windows(8).any(|w| w == b"a/bc.txt"), "prefix shared");
        let empty = Snapshot::default();
        let (_d, p, _) = saved(&empty);
        assert_eq!(load(&p).unwrap(), empty);
    }

    #[test]
    fn a_truncated_cache_is_refused_at_every_length() {
        let (_dir, path, bytes) = saved(&sample());
        for len in 0..bytes.len() {
            std::fs::write(&path, &bytes[..len]).unwrap();
            let err = load(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{len}: {err}");
            assert!(err.to_string().contains("snapshot.bin"), "{err}");
        }
    }

    #[test]
    fn a_flipped_byte_anywhere_is_refused() {
        let (_dir, path, bytes) = saved(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            std::fs::write(&path, &b).unwrap();
            assert!(load(&path).is_err(), "byte {i} flipped was accepted");
        }
        let mut longer = bytes;
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(load(&path).is_err());
    }

    #[test]
    fn an_old_json_lines_cache_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.bin");
        std::fs::write(
            &path,
            "{\"format\":\"borg-batch snapshot 1\",\"taken_at_ns\":0}\n",
        )
        .unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("not a snapshot cache"), "{err}");
    }
}

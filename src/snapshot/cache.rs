//! Saving a snapshot between runs (`state/` of a workspace), so the next task's snapshot
//! reads only files that changed.
//!
//! JSON lines: a header line, then one line per entry and per skipped path. Paths and
//! symlink targets are strings when they are UTF-8 and hex (`px`, `tx`) when not, so no
//! name is ever mangled. Written atomically (temp file + rename): a killed runner leaves
//! the old cache or the new one, never half of one. A cache is only ever a hint: a
//! corrupt one is an error for the caller to drop, never a wrong snapshot.

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::named;
use super::{Entry, FileMeta, Skipped, Snapshot};

const FORMAT: &str = "borg-batch snapshot 1";

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    taken_at_ns: i64,
}

/// One line: an entry (`t` = `d`, `f`, `l`) or a skipped path (`t` = `s`).
#[derive(Serialize, Deserialize, Default)]
struct Line {
    t: char,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    px: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<FileLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct FileLine {
    size: u64,
    mode: u32,
    hash: String,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    stored: bool,
}

pub(super) fn save(snap: &Snapshot, path: &Path) -> io::Result<()> {
    crate::fsutil::write_atomic_with(path, |w| {
        let header = Header {
            format: FORMAT.to_string(),
            taken_at_ns: clamp(snap.taken_at_ns),
        };
        serde_json::to_writer(&mut *w, &header)?;
        w.write_all(b"\n")?;
        for (p, entry) in &snap.entries {
            let mut line = Line::default();
            (line.p, line.px) = split(p);
            match entry {
                Entry::Dir => line.t = 'd',
                Entry::File(m) => {
                    line.t = 'f';
                    line.f = Some(FileLine {
                        size: m.size,
                        mode: m.mode,
                        hash: m.hash.clone(),
                        mtime_ns: clamp(m.mtime_ns),
                        ctime_ns: clamp(m.ctime_ns),
                        ino: m.ino,
                        dev: m.dev,
                        stored: m.stored,
                    });
                }
                Entry::Symlink { target } => {
                    line.t = 'l';
                    (line.target, line.tx) = split(target);
                }
            }
            serde_json::to_writer(&mut *w, &line)?;
            w.write_all(b"\n")?;
        }
        for s in &snap.skipped {
            let mut line = Line {
                t: 's',
                reason: Some(s.reason.clone()),
                ..Line::default()
            };
            (line.p, line.px) = split(&s.path);
            serde_json::to_writer(&mut *w, &line)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
    .map_err(|e| named(&e, "save snapshot", path))
}

pub(super) fn load(path: &Path) -> io::Result<Snapshot> {
    let bad = |line_no: usize, what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "cannot load snapshot `{}`: line {line_no}: {what}",
                path.display()
            ),
        )
    };
    let file = crate::fsutil::open_regular(path).map_err(|e| named(&e, "load snapshot", path))?;
    let mut lines = BufReader::new(file).lines();
    let first = lines.next().ok_or_else(|| bad(1, "empty file"))??;
    let header: Header = serde_json::from_str(&first).map_err(|e| bad(1, &e.to_string()))?;
    if header.format != FORMAT {
        return Err(bad(1, &format!("unknown format `{}`", header.format)));
    }
    let mut snap = Snapshot {
        taken_at_ns: i128::from(header.taken_at_ns),
        ..Snapshot::default()
    };
    for (i, text) in lines.enumerate() {
        let n = i + 2;
        let line: Line = serde_json::from_str(&text?).map_err(|e| bad(n, &e.to_string()))?;
        let p = join(line.p, line.px).ok_or_else(|| bad(n, "bad path"))?;
        match line.t {
            'd' => {
                snap.entries.insert(p, Entry::Dir);
            }
            'f' => {
                let f = line.f.ok_or_else(|| bad(n, "file without metadata"))?;
                let meta = FileMeta {
                    size: f.size,
                    mode: f.mode,
                    hash: f.hash,
                    mtime_ns: i128::from(f.mtime_ns),
                    ctime_ns: i128::from(f.ctime_ns),
                    ino: f.ino,
                    dev: f.dev,
                    stored: f.stored,
                };
                snap.entries.insert(p, Entry::File(meta));
            }
            'l' => {
                let target = join(line.target, line.tx).ok_or_else(|| bad(n, "bad target"))?;
                snap.entries.insert(p, Entry::Symlink { target });
            }
            's' => snap.skipped.push(Skipped {
                path: p,
                reason: line.reason.unwrap_or_default(),
            }),
            other => return Err(bad(n, &format!("unknown entry type `{other}`"))),
        }
    }
    Ok(snap)
}

/// Bytes to (UTF-8 string, hex) with exactly one set.
fn split(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_string()), None),
        Err(_) => (
            None,
            Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    }
}

fn join(text: Option<String>, hex: Option<String>) -> Option<Vec<u8>> {
    match (text, hex) {
        (Some(s), None) => Some(s.into_bytes()),
        (None, Some(h)) if h.len() % 2 == 0 => (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
            .collect(),
        _ => None,
    }
}

/// Nanosecond times fit an i64 until 2262; a value outside is clamped, which at worst
/// makes that cache entry miss.
fn clamp(ns: i128) -> i64 {
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

//! Text contents: binary detection, loading from the store, and unified-diff hunks that
//! `git apply` accepts byte for byte.
//!
//! Lines end at `\n` only, as in git: a lone `\r` stays inside its line (similar's own
//! line splitter also breaks at `\r`, which would corrupt a patch, so lines are split
//! here and diffed as slices). A last line without `\n` gets the `\ No newline at end of
//! file` marker. Reads contents only from the store, never from the live workspace.

use std::io::{self, Read};
use std::time::Duration;

use similar::{Algorithm, ChangeTag, TextDiff, udiff::UnifiedHunkHeader};

use crate::snapshot::{FileMeta, Store};

/// Text files up to this size on both sides get a unified diff (SPEC.md).
pub const DIFF_LIMIT: u64 = 1024 * 1024;

/// A file is binary if this much of its start holds a NUL byte (or it is not UTF-8).
const SNIFF_LEN: usize = 8 * 1024;

/// Lines of context around each change, as `git diff`.
const CONTEXT: usize = 3;

/// Myers is quadratic on files that differ everywhere; past this it settles for a
/// larger (still correct) diff instead of stalling the report.
const DIFF_TIMEOUT: Duration = Duration::from_secs(5);

/// What is known of one side's content.
#[derive(Debug)]
pub(crate) enum Content {
    Text(String),
    Binary,
    /// Over [`DIFF_LIMIT`]; `binary` when it is known to be.
    Large {
        binary: bool,
    },
    /// Not in the store (over the store limit, or the blob is gone).
    Unknown,
    /// The stored copy does not match its hash: someone (the agent) wrote it, and what it
    /// holds must never be shown.
    Untrusted,
}

impl Content {
    pub(crate) fn is_binary(&self) -> bool {
        matches!(self, Content::Binary | Content::Large { binary: true })
    }
}

/// Loads a file's content from the store and classifies it. Memory is bounded by
/// [`DIFF_LIMIT`]: larger blobs are classified by streaming.
pub(crate) fn load(store: &Store, meta: &FileMeta) -> Content {
    if !meta.stored {
        return Content::Unknown;
    }
    if meta.size > DIFF_LIMIT {
        return match sniff_stream(store, &meta.hash) {
            Ok(binary) => Content::Large { binary },
            Err(e) => unavailable(&e),
        };
    }
    let bytes = match store.read(&meta.hash) {
        Ok(bytes) => bytes,
        Err(e) => return unavailable(&e),
    };
    if bytes[..bytes.len().min(SNIFF_LEN)].contains(&0) {
        return Content::Binary;
    }
    match String::from_utf8(bytes) {
        Ok(s) => Content::Text(s),
        Err(_) => Content::Binary,
    }
}

fn unavailable(e: &io::Error) -> Content {
    if crate::snapshot::is_untrusted(e) {
        Content::Untrusted
    } else {
        Content::Unknown
    }
}

/// Text files larger than this are left out of the patch (report.json has their size
/// line): diffing holds both whole texts and their lines in memory, about three times the
/// file, so the limit, not the file, bounds the runner's memory (a 30 MB file would take
/// some 100 MB; at the limit the diff takes under 50 MB).
pub const PATCH_TEXT_LIMIT: u64 = 16 * 1024 * 1024;

/// The whole text of a stored file too large for report.json's diff, for the patch (which
/// reproduces every text file up to [`PATCH_TEXT_LIMIT`]). `None` when it is not stored,
/// not text, or over that limit.
pub(crate) fn load_large_text(store: &Store, meta: &FileMeta) -> Option<String> {
    if !meta.stored || meta.size > PATCH_TEXT_LIMIT {
        return None;
    }
    String::from_utf8(store.read(&meta.hash).ok()?).ok()
}

/// Whether the blob is binary, reading it in chunks: a NUL in its first 8 KiB, or bytes
/// that are not UTF-8 anywhere. Reads to the end whatever it finds: only there is the
/// blob known to match its hash.
fn sniff_stream(store: &Store, hash: &str) -> io::Result<bool> {
    let mut file = store.open(hash)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut sniff = Sniff::default();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(sniff.finish());
        }
        sniff.feed(&buf[..n]);
    }
}

/// Binary detection over a stream of chunks (SPEC: a file is binary if its first 8 KiB
/// hold a NUL byte or it is not UTF-8), in bounded memory.
#[derive(Debug, Default)]
pub(crate) struct Sniff {
    /// Bytes of a UTF-8 sequence cut by the chunk boundary, carried to the next chunk.
    carry: Vec<u8>,
    seen: usize,
    binary: bool,
}

impl Sniff {
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.binary {
            return;
        }
        if self.seen < SNIFF_LEN && chunk[..chunk.len().min(SNIFF_LEN - self.seen)].contains(&0) {
            self.binary = true;
            return;
        }
        self.seen = self.seen.saturating_add(chunk.len());
        self.carry.extend_from_slice(chunk);
        match std::str::from_utf8(&self.carry) {
            Ok(_) => self.carry.clear(),
            // `error_len() == None`: an incomplete sequence at the end, maybe completed
            // by the next chunk.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                self.carry.drain(..valid);
            }
            Err(_) => self.binary = true,
        }
    }

    /// Whether what was fed is binary (a sequence cut at the very end is).
    pub(crate) fn finish(&self) -> bool {
        self.binary || !self.carry.is_empty()
    }
}

/// Splits after each `\n`; the last line may lack one.
fn lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// The hunks (`@@` lines and their bodies) from `old` to `new`; empty when they are equal.
pub(crate) fn hunks(old: &str, new: &str) -> String {
    let old_lines = lines(old);
    let new_lines = lines(new);
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(DIFF_TIMEOUT)
        .diff_slices(&old_lines, &new_lines);
    let mut out = String::new();
    for group in diff.grouped_ops(CONTEXT) {
        if group.is_empty() {
            continue;
        }
        out.push_str(&UnifiedHunkHeader::new(&group).to_string());
        out.push('\n');
        for op in &group {
            for change in diff.iter_changes(op) {
                out.push(match change.tag() {
                    ChangeTag::Equal => ' ',
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                });
                let line: &str = change.value();
                out.push_str(line);
                if !line.ends_with('\n') {
                    out.push_str("\n\\ No newline at end of file\n");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_match_git_format() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\n";
        assert_eq!(
            hunks(old, new),
            "@@ -1,7 +1,7 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n"
        );
    }

    #[test]
    fn missing_newline_is_marked_on_each_side() {
        assert_eq!(
            hunks("x\ny", "x\nz"),
            "@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+z\n\\ No newline at end of file\n"
        );
        assert_eq!(
            hunks("x", "x\n"),
            "@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n"
        );
    }

    #[test]
    fn added_and_deleted_text_use_empty_ranges() {
        assert_eq!(hunks("", "a\nb\n"), "@@ -0,0 +1,2 @@\n+a\n+b\n");
        assert_eq!(hunks("a\n", ""), "@@ -1 +0,0 @@\n-a\n");
        assert_eq!(hunks("same\n", "same\n"), "");
    }

    #[test]
    fn lone_carriage_return_does_not_split_a_line() {
        assert_eq!(hunks("a\rb\n", "a\rc\n"), "@@ -1 +1 @@\n-a\rb\n+a\rc\n");
        assert_eq!(hunks("a\r\n", "b\r\n"), "@@ -1 +1 @@\n-a\r\n+b\r\n");
    }

    #[test]
    fn binary_detection_nul_and_utf8_including_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let meta = |bytes: &[u8]| FileMeta {
            size: bytes.len() as u64,
            mode: 0o644,
            hash: store.put(bytes).unwrap(),
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 0,
            dev: 0,
            stored: true,
        };
        assert!(matches!(load(&store, &meta(b"hi\n")), Content::Text(_)));
        assert!(load(&store, &meta(b"a\0b")).is_binary());
        assert!(load(&store, &meta(b"caf\xe9\n")).is_binary());
        // Large: a multi-byte character straddling every 64 KiB chunk boundary is text.
        let big = "é".repeat(700_000);
        assert!(matches!(
            load(&store, &meta(big.as_bytes())),
            Content::Large { binary: false }
        ));
        let mut bad = big.clone().into_bytes();
        bad.push(0xff);
        assert!(load(&store, &meta(&bad)).is_binary());
        let mut cut = big.into_bytes();
        cut.pop();
        assert!(
            load(&store, &meta(&cut)).is_binary(),
            "truncated sequence at the end"
        );
        let mut unstored = meta(b"x");
        unstored.stored = false;
        assert!(matches!(load(&store, &unstored), Content::Unknown));
    }
}

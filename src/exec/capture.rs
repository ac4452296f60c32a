//! Capturing a child's output: drained as it comes, to disk, size-capped, secrets redacted.
//!
//! Memory stays bounded whatever the child prints: the head of the output goes straight
//! to the log file, only the last [`TAIL_BYTES`] are held in memory, and a line is kept
//! whole (for the agent's result line) only up to [`MAX_LINE`]. Never reads after `wait`:
//! the reader threads run from spawn to EOF, so a child that prints more than a pipe holds
//! cannot deadlock.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of output kept from the start of a log.
pub const HEAD_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes of output kept from the end of a log.
pub const TAIL_BYTES: usize = 4 * 1024 * 1024;
/// The longest stdout line considered as the agent's result line.
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// Replaces secret values in a byte stream with `[redacted]`, across chunk boundaries.
/// One redactor per stream: a secret split across two writes of stdout is found even when
/// stderr wrote between them.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: Vec<Vec<u8>>,
    pending: Vec<u8>,
}

/// Secrets shorter than this are not redacted: they would mangle ordinary output.
const MIN_SECRET_LEN: usize = 4;
const REDACTED: &[u8] = b"[redacted]";

impl Redactor {
    pub fn new(secrets: &[String]) -> Redactor {
        let mut secrets: Vec<Vec<u8>> = secrets
            .iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .map(|s| s.as_bytes().to_vec())
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets,
            pending: Vec::new(),
        }
    }

    /// Whether `bytes` hold a secret value (for contents that cannot be redacted in
    /// place, such as a binary file going into a patch deflated).
    pub fn finds(&self, bytes: &[u8]) -> bool {
        self.secrets
            .iter()
            .any(|s| memchr::memmem::find(bytes, s).is_some())
    }

    /// Feeds `chunk`; returns what can be emitted now (a secret may still be split).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.secrets.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        self.replace_pending();
        // Hold back only what could be the start of a secret that the next chunk completes
        // (usually nothing, so the two streams of a log stay in order).
        let emit = self.pending.len() - self.partial_suffix();
        self.pending.drain(..emit).collect()
    }

    /// The length of the longest end of `pending` that is the beginning of a secret.
    fn partial_suffix(&self) -> usize {
        self.secrets
            .iter()
            .filter_map(|secret| {
                let longest = (secret.len() - 1).min(self.pending.len());
                (1..=longest)
                    .rev()
                    .find(|&k| self.pending.ends_with(&secret[..k]))
            })
            .max()
            .unwrap_or(0)
    }

    /// Everything still held back.
    pub fn finish(&mut self) -> Vec<u8> {
        self.replace_pending();
        std::mem::take(&mut self.pending)
    }

    fn replace_pending(&mut self) {
        for secret in &self.secrets {
            if let Some(replaced) = replace_all(&self.pending, secret, REDACTED) {
                self.pending = replaced;
            }
        }
    }

    /// Redacts a whole string at once (reports, error texts).
    pub fn redact_str(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            let secret = String::from_utf8_lossy(secret);
            if out.contains(secret.as_ref()) {
                out = out.replace(secret.as_ref(), "[redacted]");
            }
        }
        out
    }
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let first = find(haystack, needle)?;
    let mut out = Vec::with_capacity(haystack.len());
    out.extend_from_slice(&haystack[..first]);
    out.extend_from_slice(with);
    let mut rest = &haystack[first + needle.len()..];
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(haystack, needle)
}

/// A log file that keeps the first [`HEAD_BYTES`] and the last [`TAIL_BYTES`] of what is
/// written to it, with a `[truncated N bytes]` marker between them.
#[derive(Debug)]
pub struct CappedLog {
    file: BufWriter<File>,
    head_written: u64,
    head_cap: u64,
    tail: Vec<u8>,
    tail_cap: usize,
    dropped: u64,
    total: u64,
    /// One per stream (see [`Stream`]); also used for the runner's own lines.
    redactors: [Redactor; 2],
    closed: bool,
    error: Option<io::Error>,
    /// When the child last wrote anything (for `idle_timeout`).
    last_output: Option<std::time::Instant>,
}

impl CappedLog {
    pub fn new(file: File, secrets: &[String]) -> CappedLog {
        CappedLog::with_caps(file, secrets, HEAD_BYTES, TAIL_BYTES)
    }

    pub fn with_caps(file: File, secrets: &[String], head: u64, tail: usize) -> CappedLog {
        CappedLog {
            file: BufWriter::new(file),
            head_written: 0,
            head_cap: head,
            tail: Vec::new(),
            tail_cap: tail,
            dropped: 0,
            total: 0,
            redactors: [Redactor::new(secrets), Redactor::new(secrets)],
            closed: false,
            error: None,
            last_output: None,
        }
    }

    /// When the child last wrote to this log, if it has.
    pub fn last_output(&self) -> Option<std::time::Instant> {
        self.last_output
    }

    /// Appends output (as standard output). Write errors are remembered and reported by
    /// [`CappedLog::finish`].
    pub fn write(&mut self, bytes: &[u8]) {
        self.write_stream(Stream::Stdout, bytes);
    }

    /// Appends output of one of the child's streams, redacted across that stream's writes.
    pub fn write_stream(&mut self, stream: Stream, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.total += bytes.len() as u64;
        self.last_output = Some(std::time::Instant::now());
        let bytes = self.redactors[stream as usize].push(bytes);
        self.store(&bytes);
    }

    /// Writes out what the redactors still hold back.
    fn flush_redactors(&mut self) {
        for i in 0..self.redactors.len() {
            let rest = self.redactors[i].finish();
            self.store(&rest);
        }
    }

    /// Writes a line of the runner's own (a section marker), outside the cap accounting.
    pub fn note(&mut self, line: &str) {
        if self.closed {
            return;
        }
        self.flush_redactors();
        self.flush_tail();
        // The runner's own lines quote command lines and the CLI's words: redacted too.
        let text = format!("{}\n", self.redactors[0].redact_str(line));
        if let Err(e) = self.file.write_all(text.as_bytes()) {
            self.error.get_or_insert(e);
        }
        // A new section gets a fresh head allowance.
        self.head_written = 0;
        self.dropped = 0;
    }

    fn store(&mut self, mut bytes: &[u8]) {
        if self.head_written < self.head_cap {
            let room = usize::try_from(self.head_cap - self.head_written).unwrap_or(usize::MAX);
            let n = room.min(bytes.len());
            if let Err(e) = self.file.write_all(&bytes[..n]) {
                self.error.get_or_insert(e);
            }
            self.head_written += n as u64;
            bytes = &bytes[n..];
        }
        if bytes.is_empty() {
            return;
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * self.tail_cap {
            let excess = self.tail.len() - self.tail_cap;
            self.dropped += excess as u64;
            self.tail.drain(..excess);
        }
    }

    fn flush_tail(&mut self) {
        if self.tail.len() > self.tail_cap {
            let excess = self.tail.len() - self.tail_cap;
            self.dropped += excess as u64;
            self.tail.drain(..excess);
        }
        if self.dropped > 0 {
            let marker = format!("\n[truncated {} bytes]\n", self.dropped);
            if let Err(e) = self.file.write_all(marker.as_bytes()) {
                self.error.get_or_insert(e);
            }
        }
        let tail = std::mem::take(&mut self.tail);
        if let Err(e) = self.file.write_all(&tail) {
            self.error.get_or_insert(e);
        }
        self.dropped = 0;
    }

    /// Flushes what has been written to the file so far (the kept tail stays in memory
    /// until [`CappedLog::finish`]).
    pub fn flush(&mut self) {
        if let Err(e) = self.file.flush() {
            self.error.get_or_insert(e);
        }
    }

    /// Bytes the child wrote in all (before capping).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Writes the kept tail and flushes; later writes are ignored.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.flush_redactors();
        self.flush_tail();
        self.closed = true;
        if let Err(e) = self.file.flush() {
            self.error.get_or_insert(e);
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reopens a finished log for a further section (the check's output).
    pub fn reopen(&mut self) {
        self.closed = false;
    }
}

/// Which of the child's output streams a write comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

/// The log shared by a child's stdout and stderr readers.
pub type SharedLog = Arc<Mutex<CappedLog>>;

pub fn lock(log: &SharedLog) -> MutexGuard<'_, CappedLog> {
    // A reader that panicked cannot leave the log in a state worse than truncated.
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a child's standard output goes besides the log: the agent's result reader
/// ([`crate::agent::Collector`]). Fed every chunk as read, before redaction (it must not
/// keep what it reads anywhere but in memory).
pub trait StdoutSink: Send {
    fn push(&mut self, bytes: &[u8]);
}

/// A sink that keeps nothing (a check's output needs no reading).
#[derive(Debug, Default)]
pub struct Discard;

impl StdoutSink for Discard {
    fn push(&mut self, _: &[u8]) {}
}

/// Splits a stream into lines, each at most [`MAX_LINE`] bytes (a longer one is skipped
/// whole, so memory stays bounded), trimmed, for line-based result readers.
#[derive(Debug, Default)]
pub struct Lines {
    line: Vec<u8>,
    overlong: bool,
}

impl Lines {
    /// Feeds `bytes`; calls `each` for every line they complete.
    pub fn push(&mut self, mut bytes: &[u8], each: &mut dyn FnMut(&str)) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.extend(&bytes[..nl]);
            self.end_line(each);
            bytes = &bytes[nl + 1..];
        }
        self.extend(bytes);
    }

    fn extend(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            self.overlong = true;
            self.line = Vec::new();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, each: &mut dyn FnMut(&str)) {
        if !self.overlong {
            let line = String::from_utf8_lossy(&self.line);
            each(line.trim());
        }
        self.line.clear();
        self.overlong = false;
    }

    /// The end of the stream: an unterminated last line counts too.
    pub fn finish(&mut self, each: &mut dyn FnMut(&str)) {
        if !self.line.is_empty() || self.overlong {
            self.end_line(each);
        }
    }
}

/// Reads `source` (the child's `stream`) to EOF into `log` (and `sink`, for stdout).
/// Runs on its own thread.
pub fn drain(
    mut source: impl Read,
    stream: Stream,
    log: &SharedLog,
    mut sink: Option<&mut dyn StdoutSink>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(sink) = sink.as_deref_mut() {
                    sink.push(&buf[..n]);
                }
                lock(log).write_stream(stream, &buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("reading child output failed: {e}");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_split_across_chunks() {
        let mut r = Redactor::new(&["sk-secret-value".to_string(), "ab".to_string()]);
        let mut out = r.push(b"key=sk-sec");
        out.extend(r.push(b"ret-value; ab ok"));
        out.extend(r.finish());
        assert_eq!(String::from_utf8(out).unwrap(), "key=[redacted]; ab ok");
    }

    #[test]
    fn a_secret_split_across_stdout_writes_is_redacted_despite_stderr_between() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = CappedLog::new(File::create(&path).unwrap(), &["sk-secret-value".into()]);
        log.write_stream(Stream::Stdout, b"key=sk-sec");
        log.write_stream(Stream::Stderr, b"a warning\n");
        log.write_stream(Stream::Stdout, b"ret-value\n");
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("sk-sec"), "{text}");
        // The stderr line lands where it came: before the rest of the secret.
        assert_eq!(text, "key=a warning\n[redacted]\n");
    }

    #[test]
    fn only_a_possible_start_of_a_secret_is_held_back() {
        let mut r = Redactor::new(&["sk-secret-value".to_string()]);
        assert_eq!(r.push(b"plain output\n"), b"plain output\n");
        assert_eq!(r.push(b"then sk-se"), b"then ");
        assert_eq!(r.push(b"x"), b"sk-sex");
        assert!(r.finish().is_empty());
    }

    #[test]
    fn capped_log_keeps_head_and_tail_with_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = CappedLog::with_caps(File::create(&path).unwrap(), &[], 10, 5);
        for chunk in [&b"0123456789"[..], b"abcdefghij", b"KLMNOPQRST", b"vwxyz"] {
            log.write(chunk);
        }
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "0123456789\n[truncated 20 bytes]\nvwxyz");
        assert_eq!(log.total(), 35);
    }

    #[test]
    fn lines_are_split_across_chunks_and_overlong_ones_skipped() {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        let mut each = |l: &str| got.push(l.to_string());
        lines.push(b"one\ntw", &mut each);
        lines.push(b"o\n", &mut each);
        lines.push(&vec![b'x'; MAX_LINE + 10], &mut each);
        lines.push(b"\nlast", &mut each);
        lines.finish(&mut each);
        assert_eq!(got, ["one", "two", "last"]);
    }
}

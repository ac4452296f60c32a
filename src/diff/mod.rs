//! From two snapshots to the changes a reviewer reads: added, modified, deleted entries with
//! unified diffs for text, and the task's `git diff`-style patch.
//!
//! Reads contents only from the snapshot [`Store`], never from the live workspace, so the
//! result describes exactly the two moments the snapshots were taken.
//!
//! Choices where SPEC.md is silent:
//! - Folders are never entries (SPEC): a file replaced by a folder is the file `deleted`
//!   and the files inside `added`; an empty folder added or removed is not reported (and
//!   a patch cannot carry one).
//! - A per-change `diff` uses `/dev/null` for the absent side, like git; it is `null` when
//!   no line changed (an empty file added or removed, a mode-only change), and for
//!   symlinks and binary files (their targets and sizes say what changed).
//! - A text file over 1 MiB gets a size line in report.json but its whole diff in the
//!   patch, so `git apply` reproduces it too, up to [`PATCH_TEXT_LIMIT`] (16 MiB); a binary file of any size up to the store's
//!   64 MiB is in the patch as a `GIT binary patch`. Files over 64 MiB are not kept, so
//!   their before-state is not known and they stay out of the patch.
//! - Left out of the patch: names that are not UTF-8 (`path_lossy`), symlink targets
//!   that are not UTF-8, contents not in the store or not trusted, and binary contents
//!   that hold a secret value (see [`compare_guarded`]: text is redacted by the caller,
//!   a deflated binary cannot be).

mod binary;
mod patch;
mod text;

use std::cmp::Ordering;
use std::iter::Peekable;

pub use text::{DIFF_LIMIT, PATCH_TEXT_LIMIT};

use crate::report::{Change, ChangeKind};
use crate::snapshot::{Entry, FileMeta, Snapshot, Store};
use patch::{Side, binary_section, git_mode, section};
use text::Content;

/// Every path of either snapshot once, in order, with its entry on each side: one merge
/// of the two sorted maps, no look-ups and no set of all paths.
fn side_by_side<'a>(
    before: &'a Snapshot,
    after: &'a Snapshot,
) -> impl Iterator<Item = (&'a Vec<u8>, Option<&'a Entry>, Option<&'a Entry>)> {
    type Entries<'a> = Peekable<std::collections::btree_map::Iter<'a, Vec<u8>, Entry>>;
    let mut a: Entries<'a> = before.entries.iter().peekable();
    let mut b: Entries<'a> = after.entries.iter().peekable();
    std::iter::from_fn(move || {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((p, _)), Some((q, _))) => p.cmp(q),
        };
        Some(match order {
            Ordering::Less => a.next().map(|(p, e)| (p, Some(e), None))?,
            Ordering::Greater => b.next().map(|(p, e)| (p, None, Some(e)))?,
            Ordering::Equal => {
                let (p, e1) = a.next()?;
                let (_, e2) = b.next()?;
                (p, Some(e1), Some(e2))
            }
        })
    })
}

/// The changes from `before` to `after`, sorted by path.
pub fn changes(before: &Snapshot, after: &Snapshot, store: &Store) -> Vec<Change> {
    compare(before, after, store).0
}

/// Every text change from `before` to `after` as `git diff` writes it, or `None` when there
/// is no text change. `git apply` of it on a copy of the before-state reproduces every
/// text file of the after-state exactly.
pub fn patch(before: &Snapshot, after: &Snapshot, store: &Store) -> Option<String> {
    compare(before, after, store).1
}

/// [`changes`] and [`patch`] at once, reading and diffing each file once.
pub fn compare(
    before: &Snapshot,
    after: &Snapshot,
    store: &Store,
) -> (Vec<Change>, Option<String>) {
    compare_guarded(before, after, store, &|_| false)
}

/// [`compare`], leaving out of the patch every binary file whose content `secret` says
/// holds a secret value (its change's `diff` says so): the caller redacts text, but a
/// secret inside a deflated binary section cannot be found there.
pub fn compare_guarded(
    before: &Snapshot,
    after: &Snapshot,
    store: &Store,
    secret: &dyn Fn(&[u8]) -> bool,
) -> (Vec<Change>, Option<String>) {
    let mut differ = Differ {
        store,
        secret,
        changes: Vec::new(),
        patch: String::new(),
    };
    for (path, old, new) in side_by_side(before, after) {
        differ.path(path, old, new);
    }
    let Differ { changes, patch, .. } = differ;
    (changes, (!patch.is_empty()).then_some(patch))
}

/// The changes and the patch being made, path by path.
struct Differ<'a> {
    store: &'a Store,
    secret: &'a dyn Fn(&[u8]) -> bool,
    changes: Vec<Change>,
    patch: String,
}

impl Differ<'_> {
    fn path(&mut self, path: &[u8], old: Option<&Entry>, new: Option<&Entry>) {
        match (old, new) {
            (Some(Entry::File(m1)), Some(Entry::File(m2))) => {
                if m1.hash != m2.hash || (m1.mode ^ m2.mode) & 0o111 != 0 {
                    self.file(path, Some(m1), Some(m2));
                }
            }
            (Some(Entry::Symlink { target: t1 }), Some(Entry::Symlink { target: t2 })) => {
                if t1 != t2 {
                    self.link(path, Some(t1), Some(t2));
                }
            }
            _ => {
                // Gone, new, or a type change: the old side's deletion, then the new
                // side's addition. Folders are never entries: their files are.
                match old {
                    Some(Entry::File(m)) => self.file(path, Some(m), None),
                    Some(Entry::Symlink { target }) => self.link(path, Some(target), None),
                    _ => {}
                }
                match new {
                    Some(Entry::File(m)) => self.file(path, None, Some(m)),
                    Some(Entry::Symlink { target }) => self.link(path, None, Some(target)),
                    _ => {}
                }
            }
        }
    }

    fn file(&mut self, path: &[u8], before: Option<&FileMeta>, after: Option<&FileMeta>) {
        let (change, section) = file_change(path, before, after, self.store, self.secret);
        self.changes.push(change);
        self.patch.push_str(&section.unwrap_or_default());
    }

    fn link(&mut self, path: &[u8], before: Option<&Vec<u8>>, after: Option<&Vec<u8>>) {
        self.changes.push(symlink_change(path, before, after));
        self.patch.push_str(&link_section(path, before, after));
    }
}

/// The path as a report string, and whether that lost bytes.
fn display(path: &[u8]) -> (String, bool) {
    match std::str::from_utf8(path) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (String::from_utf8_lossy(path).into_owned(), true),
    }
}

fn kind_of(before: bool, after: bool) -> ChangeKind {
    match (before, after) {
        (false, _) => ChangeKind::Added,
        (_, false) => ChangeKind::Deleted,
        _ => ChangeKind::Modified,
    }
}

fn blank_change(path: &[u8], kind: ChangeKind) -> Change {
    let (path, path_lossy) = display(path);
    Change {
        path,
        kind,
        binary: false,
        symlink: false,
        size_before: None,
        size_after: None,
        diff: None,
        path_lossy,
        mode_before: None,
        mode_after: None,
        target_before: None,
        target_after: None,
    }
}

fn symlink_change(path: &[u8], before: Option<&Vec<u8>>, after: Option<&Vec<u8>>) -> Change {
    let lossy = |t: &Vec<u8>| String::from_utf8_lossy(t).into_owned();
    Change {
        symlink: true,
        target_before: before.map(lossy),
        target_after: after.map(lossy),
        ..blank_change(path, kind_of(before.is_some(), after.is_some()))
    }
}

/// A regular file's change (at least one side present) and its patch section, if it
/// belongs in the patch.
fn file_change(
    path: &[u8],
    before: Option<&FileMeta>,
    after: Option<&FileMeta>,
    store: &Store,
    secret: &dyn Fn(&[u8]) -> bool,
) -> (Change, Option<String>) {
    let mut change = blank_change(path, kind_of(before.is_some(), after.is_some()));
    change.size_before = before.map(|m| m.size);
    change.size_after = after.map(|m| m.size);
    if let (Some(b), Some(a)) = (before, after)
        && (b.mode ^ a.mode) & 0o111 != 0
    {
        change.mode_before = Some(b.mode);
        change.mode_after = Some(a.mode);
    }
    let same_content = matches!((before, after), (Some(b), Some(a)) if b.hash == a.hash);
    let old = before.map(|m| text::load(store, m));
    let new = if same_content {
        None
    } else {
        after.map(|m| text::load(store, m))
    };
    if old
        .iter()
        .chain(new.iter())
        .any(|c| matches!(c, Content::Untrusted))
    {
        // A forged stored copy: neither its content nor a patch made from it.
        change.diff = Some(UNTRUSTED.to_string());
        return (change, None);
    }
    change.binary = old.iter().chain(new.iter()).any(Content::is_binary);
    let name = std::str::from_utf8(path).ok();
    let side = |m: Option<&FileMeta>| m.map_or(Side::Absent, |m| Side::File(m.mode));

    if same_content {
        // Only the mode changed: no diff; the patch carries git's mode lines.
        let (b, a) = (before.map(|m| m.mode), after.map(|m| m.mode));
        let section = match (name, b, a) {
            (Some(name), Some(b), Some(a)) if git_mode(b) != git_mode(a) => {
                let mut out = String::new();
                section(&mut out, name, Side::File(b), Side::File(a), "");
                Some(out)
            }
            _ => None,
        };
        return (change, section);
    }
    if change.binary {
        let section = name.and_then(|name| binary_patch(name, before, after, store, secret));
        if let Some(Err(Secret)) = section {
            change.diff = Some(SECRET.to_string());
            return (change, None);
        }
        return (change, section.and_then(Result::ok));
    }
    fn as_text(c: &Option<Content>) -> Option<&str> {
        match c {
            None => Some(""),
            Some(Content::Text(s)) => Some(s.as_str()),
            Some(_) => None,
        }
    }
    let (Some(old_text), Some(new_text)) = (as_text(&old), as_text(&new)) else {
        change.diff = Some(size_line(before.map(|m| m.size), after.map(|m| m.size)));
        // Too large for report.json, but `git apply` of the patch must still reproduce
        // every text file: its section is made from the whole texts.
        let full = |meta: Option<&FileMeta>| match meta {
            None => Some(String::new()),
            Some(m) => text::load_large_text(store, m),
        };
        let section = match (name, full(before), full(after)) {
            (Some(name), Some(old_text), Some(new_text)) => {
                let mut out = String::new();
                let hunks = text::hunks(&old_text, &new_text);
                section(&mut out, name, side(before), side(after), &hunks);
                Some(out)
            }
            _ => None,
        };
        return (change, section);
    };
    let label = |prefix: &str, present: bool| {
        if present {
            format!("{prefix}{}", change.path)
        } else {
            "/dev/null".to_string()
        }
    };
    let hunks = text::hunks(old_text, new_text);
    let section = name.map(|name| {
        let mut out = String::new();
        section(&mut out, name, side(before), side(after), &hunks);
        out
    });
    if !hunks.is_empty() {
        let (a, b) = (label("a/", before.is_some()), label("b/", after.is_some()));
        change.diff = Some(format!("--- {a}\n+++ {b}\n{hunks}"));
    }
    (change, section)
}

/// The `diff` of a file whose stored copy does not match its hash (the agent wrote into the
/// store): what it holds is never shown.
pub const UNTRUSTED: &str =
    "content not trusted: its stored copy does not match its hash (the store was tampered with)";

/// The `diff` of a file whose content cannot be diffed: too large, or not in the store.
fn size_line(before: Option<u64>, after: Option<u64>) -> String {
    let large = before.max(after).unwrap_or(0) > DIFF_LIMIT;
    let what = if large {
        "file too large to diff"
    } else {
        "content not available"
    };
    match (before, after) {
        (Some(b), Some(a)) => format!("{what} ({b} -> {a} bytes)"),
        (Some(n), None) | (None, Some(n)) => format!("{what} ({n} bytes)"),
        (None, None) => what.to_string(),
    }
}

/// The `diff` of a binary file left out of the patch because it holds a secret value.
pub const SECRET: &str = "binary content holds a secret value: left out of the patch";

/// A binary content that holds a secret value.
struct Secret;

/// The `GIT binary patch` section of a file one side of which is binary. `None` when a
/// side's content is not in the store (over its limit, gone, or not trusted).
fn binary_patch(
    name: &str,
    before: Option<&FileMeta>,
    after: Option<&FileMeta>,
    store: &Store,
    secret: &dyn Fn(&[u8]) -> bool,
) -> Option<std::result::Result<String, Secret>> {
    let full = |meta: Option<&FileMeta>| match meta {
        None => Some(Vec::new()),
        Some(m) if m.stored => store.read(&m.hash).ok(),
        Some(_) => None,
    };
    let (old, new) = (full(before)?, full(after)?);
    if secret(&old) || secret(&new) {
        return Some(Err(Secret));
    }
    let side = |m: Option<&FileMeta>| m.map_or(Side::Absent, |m| Side::File(m.mode));
    let mut out = String::new();
    binary_section(&mut out, name, (side(before), &old), (side(after), &new));
    Some(Ok(out))
}

/// A symlink's patch section (mode 120000, its target as its content), or nothing when
/// its name or a target is not UTF-8.
fn link_section(path: &[u8], before: Option<&Vec<u8>>, after: Option<&Vec<u8>>) -> String {
    // Per side: absent, or its target as text (an error when it is not UTF-8).
    fn target(t: Option<&Vec<u8>>) -> Result<Option<&str>, std::str::Utf8Error> {
        t.map(|t| std::str::from_utf8(t)).transpose()
    }
    let (Ok(name), Ok(old), Ok(new)) = (std::str::from_utf8(path), target(before), target(after))
    else {
        return String::new();
    };
    let mut out = String::new();
    let hunks = text::hunks(old.unwrap_or(""), new.unwrap_or(""));
    patch::link_section(&mut out, name, old, new, &hunks);
    out
}

#[cfg(test)]
mod tests;

//! One file's section of a `git diff`-style patch: the `diff --git` header, mode lines,
//! `---`/`+++` labels and hunks (or a `GIT binary patch`), written exactly as git writes them so `git apply` takes
//! the patch as it is.
//!
//! Paths are quoted the way git quotes them (C-style, in double quotes, when they hold
//! `"`, `\`, control or non-ASCII bytes; spaces are left alone but mark the `---`/`+++`
//! lines with a trailing tab). No `index` line for text (git apply does not need one);
//! symlinks and binary files get git's full one (binary patches are refused without it).
//! Never writes a name that is not UTF-8: the caller leaves those changes out.

use std::fmt::Write;

use super::binary::{self, NULL_ID, blob_id};

/// git's file mode for a regular file: only the owner's executable bit counts.
pub(crate) fn git_mode(mode: u32) -> &'static str {
    if mode & 0o100 != 0 {
        "100755"
    } else {
        "100644"
    }
}

/// One side of a file section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Absent,
    /// A regular file with its permission bits.
    File(u32),
    /// A symlink (mode 120000: its target is its content).
    Symlink,
}

impl Side {
    fn mode(self) -> Option<&'static str> {
        match self {
            Side::Absent => None,
            Side::File(m) => Some(git_mode(m)),
            Side::Symlink => Some("120000"),
        }
    }
}

/// Writes the text section for `path` from `before` to `after` with `hunks` (from
/// `text::hunks`, possibly empty) to `out`. No `index` line: git apply does not need one
/// for text.
pub(crate) fn section(out: &mut String, path: &str, before: Side, after: Side, hunks: &str) {
    header(out, path, before, after);
    hunks_with_labels(out, path, before, after, hunks);
}

/// Writes a symlink's section: its targets are its content (without a newline), and the
/// `index` line carries mode 120000 when the link stays a link.
pub(crate) fn link_section(
    out: &mut String,
    path: &str,
    before: Option<&str>,
    after: Option<&str>,
    hunks: &str,
) {
    let side = |t: Option<&str>| t.map_or(Side::Absent, |_| Side::Symlink);
    let (b, a) = (side(before), side(after));
    header(out, path, b, a);
    let id = |t: Option<&str>| t.map_or(NULL_ID.to_string(), |t| blob_id(t.as_bytes()));
    index_line(out, &id(before), &id(after), b, a);
    hunks_with_labels(out, path, b, a, hunks);
}

/// Writes the `GIT binary patch` section of a file from `old` to `new` (the contents; an
/// absent side's is empty), with the full `index` line git apply requires.
pub(crate) fn binary_section(
    out: &mut String,
    path: &str,
    (before, old): (Side, &[u8]),
    (after, new): (Side, &[u8]),
) {
    header(out, path, before, after);
    let id = |side: Side, bytes: &[u8]| match side {
        Side::Absent => NULL_ID.to_string(),
        _ => blob_id(bytes),
    };
    index_line(out, &id(before, old), &id(after, new), before, after);
    out.push_str(&binary::body(old, new));
}

/// `diff --git` and the mode lines.
fn header(out: &mut String, path: &str, before: Side, after: Side) {
    let _ = writeln!(
        out,
        "diff --git {} {}",
        quote("a/", path),
        quote("b/", path)
    );
    match (before.mode(), after.mode()) {
        (None, Some(m)) => {
            let _ = writeln!(out, "new file mode {m}");
        }
        (Some(m), None) => {
            let _ = writeln!(out, "deleted file mode {m}");
        }
        (Some(old), Some(new)) if old != new => {
            let _ = writeln!(out, "old mode {old}\nnew mode {new}");
        }
        _ => {}
    }
}

/// `index <old>..<new>`, with the mode when both sides have the same one (as git).
fn index_line(out: &mut String, old: &str, new: &str, before: Side, after: Side) {
    let _ = write!(out, "index {old}..{new}");
    match (before.mode(), after.mode()) {
        (Some(b), Some(a)) if a == b => {
            let _ = writeln!(out, " {a}");
        }
        _ => out.push('\n'),
    }
}

/// The `---`/`+++` labels and the hunks, when there are any.
fn hunks_with_labels(out: &mut String, path: &str, before: Side, after: Side, hunks: &str) {
    if hunks.is_empty() {
        return;
    }
    // git marks names with a space by a tab after them, so the label's end is certain.
    let tab = if path.contains(' ') { "\t" } else { "" };
    let label = |prefix: &str, side: Side| match side {
        Side::Absent => "/dev/null".to_string(),
        _ => format!("{}{tab}", quote(prefix, path)),
    };
    let _ = write!(
        out,
        "--- {}\n+++ {}\n{hunks}",
        label("a/", before),
        label("b/", after)
    );
}

/// `prefix` + `path`, in double quotes with C-style escapes when git would quote it.
pub(crate) fn quote(prefix: &str, path: &str) -> String {
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f;
    if !path.bytes().any(needs) {
        return format!("{prefix}{path}");
    }
    let mut out = String::from("\"");
    for &b in prefix.as_bytes().iter().chain(path.as_bytes()) {
        match b {
            b'\x07' => out.push_str("\\a"),
            b'\x08' => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\x0b' => out.push_str("\\v"),
            b'\x0c' => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b if needs(b) => {
                let _ = write!(out, "\\{b:03o}");
            }
            b => out.push(char::from(b)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_git() {
        assert_eq!(quote("a/", "plain/x.rs"), "a/plain/x.rs");
        assert_eq!(quote("a/", "sp ace"), "a/sp ace");
        assert_eq!(quote("a/", "q\"uote"), "\"a/q\\\"uote\"");
        assert_eq!(quote("b/", "ctl\tx"), "\"b/ctl\\tx\"");
        assert_eq!(quote("a/", "ünï"), "\"a/\\303\\274n\\303\\257\"");
        assert_eq!(quote("a/", "back\\slash"), "\"a/back\\\\slash\"");
    }

    #[test]
    fn headers_like_git() {
        let mut out = String::new();
        section(
            &mut out,
            "new sp",
            Side::Absent,
            Side::File(0o644),
            "@@ -0,0 +1 @@\n+n\n",
        );
        assert_eq!(
            out,
            "diff --git a/new sp b/new sp\nnew file mode 100644\n--- /dev/null\n+++ b/new sp\t\n@@ -0,0 +1 @@\n+n\n"
        );
        let mut out = String::new();
        section(&mut out, "empty", Side::File(0o600), Side::Absent, "");
        assert_eq!(
            out,
            "diff --git a/empty b/empty\ndeleted file mode 100644\n"
        );
        let mut out = String::new();
        section(&mut out, "run.sh", Side::File(0o644), Side::File(0o755), "");
        assert_eq!(
            out,
            "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
        );
    }
}

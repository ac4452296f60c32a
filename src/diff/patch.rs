//! One file's section of a `git diff`-style patch: the `diff --git` header, mode lines,
//! `---`/`+++` labels and hunks, written exactly as git writes them so `git apply` takes
//! the patch as it is.
//!
//! Paths are quoted the way git quotes them (C-style, in double quotes, when they hold
//! `"`, `\`, control or non-ASCII bytes; spaces are left alone but mark the `---`/`+++`
//! lines with a trailing tab). No `index` line: git apply does not need one for text.
//! Never writes a name that is not UTF-8: the caller leaves those changes out.

use std::fmt::Write;

/// git's file mode for a regular file: only the owner's executable bit counts.
pub(crate) fn git_mode(mode: u32) -> &'static str {
    if mode & 0o100 != 0 {
        "100755"
    } else {
        "100644"
    }
}

/// One side of a file section.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    Absent,
    /// A regular file with its permission bits.
    File(u32),
    /// A symlink (only ever written for its deletion, see `diff::compare`).
    Symlink,
}

/// Writes the section for `path` from `before` to `after` with `hunks` (from
/// `text::hunks`, possibly empty) to `out`.
pub(crate) fn section(out: &mut String, path: &str, before: Side, after: Side, hunks: &str) {
    let a = quote("a/", path);
    let b = quote("b/", path);
    let _ = writeln!(out, "diff --git {a} {b}");
    match (before, after) {
        (Side::Absent, Side::File(m)) => {
            let _ = writeln!(out, "new file mode {}", git_mode(m));
        }
        (Side::File(m), Side::Absent) => {
            let _ = writeln!(out, "deleted file mode {}", git_mode(m));
        }
        (Side::Symlink, Side::Absent) => out.push_str("deleted file mode 120000\n"),
        (Side::File(old), Side::File(new)) if git_mode(old) != git_mode(new) => {
            let _ = writeln!(
                out,
                "old mode {}\nnew mode {}",
                git_mode(old),
                git_mode(new)
            );
        }
        _ => {}
    }
    if hunks.is_empty() {
        return;
    }
    // git marks names with a space by a tab after them, so the label's end is certain.
    let tab = if path.contains(' ') { "\t" } else { "" };
    let old_label = match before {
        Side::Absent => "/dev/null".to_string(),
        _ => format!("{a}{tab}"),
    };
    let new_label = match after {
        Side::Absent => "/dev/null".to_string(),
        _ => format!("{b}{tab}"),
    };
    let _ = write!(out, "--- {old_label}\n+++ {new_label}\n{hunks}");
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

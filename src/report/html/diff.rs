//! One changed file as HTML: a unified diff becomes a table with old and new line numbers,
//! added lines green, removed lines red, hunk headers between; binary and symlink changes
//! are said in words. Every byte of file content goes through [`escape`].
//!
//! The side-by-side view is built from this table by the page's script, so the page holds
//! each diff once.

use std::fmt::Write as _;

use super::escape;
use crate::report::summary::diff_stat;
use crate::report::{Change, ChangeKind};

/// Diffs longer than this start folded.
const FOLD_LINES: usize = 400;

/// The `<details>` block of one change: a header with the path and its counts, then the
/// diff table or a sentence.
pub fn change(c: &Change) -> String {
    let mut out = String::new();
    let lines = c.diff.as_deref().map_or(0, |d| d.lines().count());
    let open = if lines > FOLD_LINES { "" } else { " open" };
    let _ = write!(
        out,
        "<details class=\"file\"{open}><summary><span class=\"kind {kind}\">{kind}</span>\
         <span class=\"path\">{}</span>",
        escape(&c.path),
        kind = c.kind.as_str()
    );
    if c.path_lossy {
        out.push_str("<span class=\"tag\">name not UTF-8</span>");
    }
    if c.binary {
        out.push_str("<span class=\"tag\">binary</span>");
    }
    if c.symlink {
        out.push_str("<span class=\"tag\">symlink</span>");
    }
    if let Some(diff) = c.diff.as_deref().filter(|d| is_unified(d)) {
        let (a, r) = diff_stat(diff);
        let _ = write!(
            out,
            "<span class=\"stat\"><span class=\"plus\">+{a}</span> \
             <span class=\"minus\">−{r}</span></span>"
        );
        if lines > FOLD_LINES {
            let _ = write!(out, "<span class=\"tag\">{lines} lines, folded</span>");
        }
    }
    out.push_str("</summary>\n");
    if let Some(words) = in_words(c) {
        let _ = writeln!(out, "<p class=\"words\">{words}</p>");
    }
    match c.diff.as_deref() {
        Some(diff) if is_unified(diff) => out.push_str(&table(diff)),
        Some(other) => {
            let _ = writeln!(out, "<pre class=\"words\">{}</pre>", escape(other));
        }
        None => {}
    }
    out.push_str("</details>\n");
    out
}

/// What a diff table cannot show: symlink targets, binary sizes, mode changes, empty files.
fn in_words(c: &Change) -> Option<String> {
    let mut parts = Vec::new();
    let target = |t: &Option<String>| {
        t.as_deref()
            .map_or("?".to_string(), |t| format!("<code>{}</code>", escape(t)))
    };
    if c.symlink {
        parts.push(match c.kind {
            ChangeKind::Added => format!("Symlink added, pointing to {}.", target(&c.target_after)),
            ChangeKind::Deleted => {
                format!(
                    "Symlink deleted; it pointed to {}.",
                    target(&c.target_before)
                )
            }
            ChangeKind::Modified => format!(
                "Symlink changed from {} to {}.",
                target(&c.target_before),
                target(&c.target_after)
            ),
        });
    } else if c.binary {
        parts.push(match c.kind {
            ChangeKind::Added => format!("Binary file added ({}).", size(c.size_after)),
            ChangeKind::Deleted => format!("Binary file deleted (was {}).", size(c.size_before)),
            ChangeKind::Modified => format!(
                "Binary file changed: {} → {}.",
                size(c.size_before),
                size(c.size_after)
            ),
        });
    } else if c.diff.is_none() {
        parts.push(match c.kind {
            ChangeKind::Added => format!("File added ({}), no text to show.", size(c.size_after)),
            ChangeKind::Deleted => format!("File deleted (was {}).", size(c.size_before)),
            ChangeKind::Modified => "Contents unchanged.".to_string(),
        });
    }
    if let (Some(before), Some(after)) = (c.mode_before, c.mode_after) {
        parts.push(format!(
            "Mode changed: <code>{before:o}</code> → <code>{after:o}</code>."
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn size(n: Option<u64>) -> String {
    match n {
        None => "size unknown".to_string(),
        Some(n) if n < 1024 => format!("{n} bytes"),
        Some(n) if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        Some(n) => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

/// A unified diff has hunks; anything else (a size line for huge files) is shown as text.
fn is_unified(diff: &str) -> bool {
    diff.lines().any(|l| l.starts_with("@@ "))
}

/// The diff as `<table class="diff">`: one row per line, numbers in `data-n` attributes
/// (drawn by CSS, so copying code does not copy them), the sign drawn by CSS too.
fn table(diff: &str) -> String {
    let mut out = String::from(
        "<table class=\"diff unified-view\"><colgroup><col class=\"ln\"><col class=\"ln\">\
         <col></colgroup><tbody>\n",
    );
    let (mut old, mut new) = (0u64, 0u64);
    let mut in_hunk = false;
    for line in diff.lines() {
        if let Some((o, n)) = hunk_start(line) {
            (old, new, in_hunk) = (o, n, true);
            let _ = writeln!(
                out,
                "<tr class=\"hunk\"><td class=\"ln\"></td><td class=\"ln\"></td>\
                 <td class=\"code\">{}</td></tr>",
                escape(line)
            );
            continue;
        }
        if !in_hunk {
            // `---`/`+++` and `diff --git` headers: the file header already says it.
            continue;
        }
        let (class, old_n, new_n, body) = match line.as_bytes().first() {
            Some(b'+') => {
                new += 1;
                ("add", None, Some(new), &line[1..])
            }
            Some(b'-') => {
                old += 1;
                ("del", Some(old), None, &line[1..])
            }
            Some(b'\\') => ("meta", None, None, line),
            _ => {
                old += 1;
                new += 1;
                (
                    "ctx",
                    Some(old),
                    Some(new),
                    line.strip_prefix(' ').unwrap_or(line),
                )
            }
        };
        let num = |n: Option<u64>| n.map_or(String::new(), |n| format!(" data-n=\"{n}\""));
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td class=\"ln\"{}></td><td class=\"ln\"{}></td>\
             <td class=\"code\">{}</td></tr>",
            num(old_n),
            num(new_n),
            escape(body)
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

/// `@@ -12,3 +14,5 @@` → the line numbers before the hunk's first line (11, 13).
fn hunk_start(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(" +")?;
    let (new, _) = rest.split_once(" @@")?;
    let first = |s: &str| s.split(',').next()?.parse::<u64>().ok();
    Some((first(old)?.saturating_sub(1), first(new)?.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunk_headers_give_line_numbers() {
        assert_eq!(hunk_start("@@ -12,3 +14,5 @@ fn x()"), Some((11, 13)));
        assert_eq!(hunk_start("@@ -0,0 +1 @@"), Some((0, 0)));
        assert_eq!(hunk_start("@@ nonsense"), None);
    }

    #[test]
    fn rows_are_numbered_and_escaped() {
        let t = table("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n-<b>\n+&c\n");
        assert!(t.contains("<tr class=\"del\"><td class=\"ln\" data-n=\"2\"></td>"));
        assert!(t.contains("&lt;b&gt;"));
        assert!(t.contains("&amp;c"));
        assert!(!t.contains("+++"));
    }
}

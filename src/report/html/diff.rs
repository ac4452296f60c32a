//! Changed files on the page: the jump list (a file tree per instance's whole change and
//! per task), each file's header
//! (sticky, with its anchor, counts and a "viewed" box) and, for its body, rows in the
//! page's JSON data that the script turns into a unified or split table when the file is
//! scrolled near. Word-level highlights are computed here (`similar`'s inline diff over
//! each removed/added pair of lines), as UTF-16 ranges the script can apply.
//!
//! Every byte of file content is either escaped ([`escape`]) or JSON inside the data
//! script with `<` escaped; the script builds the tables with `textContent` only.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::escape;
use crate::report::summary::diff_stat;
use crate::report::{Change, ChangeKind, InstanceReport, TaskReport};

/// Diffs longer than this start folded.
const FOLD_LINES: usize = 400;
/// A task with more files than this has its jump list folded.
const TREE_OPEN_FILES: usize = 40;
/// Lines longer than this get no word highlights (they would cost more than they show).
const WORD_DIFF_CHARS: usize = 2_000;

/// Row kinds in the JSON data (see `script.js`).
const CTX: u8 = 0;
const ADD: u8 = 1;
const DEL: u8 = 2;
const HUNK: u8 = 3;
const META: u8 = 4;

/// The page's file bodies, in page order: `[[kind, old, new, text, ranges?], …]` per file.
#[derive(Debug, Default)]
pub struct Files {
    bodies: Vec<Value>,
}

impl Files {
    /// The JSON for the data script, with `<`, `>` and `&` escaped so nothing in it can
    /// close the script or open a comment.
    pub fn json(&self) -> String {
        let text = serde_json::to_string(&self.bodies).expect("rows serialize");
        text.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    }

    /// One change: its header and an empty body the script fills from `bodies[i]`.
    pub fn change(&mut self, task: &str, n: usize, c: &Change) -> String {
        let index = self.bodies.len();
        let lines = c.diff.as_deref().map_or(0, |d| d.lines().count());
        let unified = c.diff.as_deref().filter(|d| is_unified(d));
        self.bodies.push(unified.map_or(Value::Null, rows));
        let folded = lines > FOLD_LINES;
        let id = file_id(task, n);
        let mut out = String::new();
        let _ = write!(
            out,
            "<section class=\"file{}\" id=\"{id}\" data-i=\"{index}\"{}>\
             <div class=\"fhead\"><button type=\"button\" class=\"fold\" aria-label=\"Fold\">\
             </button><span class=\"kind {kind}\">{kind}</span>\
             <a class=\"path\" href=\"#{id}\">{}</a>",
            if folded { " collapsed" } else { "" },
            if unified.is_some() {
                " data-rows=\"1\""
            } else {
                ""
            },
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
        if let Some(diff) = unified {
            let (a, r) = diff_stat(diff);
            let _ = write!(
                out,
                "<span class=\"stat\"><span class=\"plus\">+{a}</span> \
                 <span class=\"minus\">−{r}</span></span>"
            );
            if folded {
                let _ = write!(out, "<span class=\"tag\">{lines} lines, folded</span>");
            }
        } else {
            out.push_str("<span class=\"stat\"></span>");
        }
        out.push_str(
            "<label class=\"viewed\"><input type=\"checkbox\"> Viewed</label></div>\
             <div class=\"fbody\">",
        );
        if let Some(words) = in_words(c) {
            let _ = write!(out, "<p class=\"words\">{words}</p>");
        }
        if let Some(other) = c.diff.as_deref().filter(|d| !is_unified(d)) {
            let _ = write!(out, "<pre class=\"words\">{}</pre>", escape(other));
        }
        out.push_str("</div></section>\n");
        out
    }
}

/// `f-<task>-<n>` (or `f-@<instance>-<n>`): names are `[a-z0-9._-]`, so the id needs no
/// escaping beyond HTML's.
fn file_id(task: &str, n: usize) -> String {
    format!("f-{}-{n}", escape(task))
}

/// The jump list: each instance's whole change (review order), then per task (in page
/// order) its files, each linking to its header.
pub fn tree(instances: &[&InstanceReport], tasks: &[&TaskReport]) -> String {
    let mut out = String::from(
        "<nav class=\"tree\" aria-label=\"Files\"><div class=\"tree-head\">Files</div>\n",
    );
    if !instances.is_empty() {
        out.push_str("<div class=\"tree-sub\">Whole change</div>\n");
    }
    for inst in instances {
        let key = instance_key(&inst.name);
        group(
            &mut out,
            &key,
            &format!("instance-{}", escape(&inst.name)),
            "whole",
            &inst.name,
            &inst.changes,
        );
    }
    if !instances.is_empty() {
        out.push_str("<div class=\"tree-sub\">Per task</div>\n");
    }
    for t in tasks {
        group(
            &mut out,
            &t.id,
            &format!("task-{}", escape(&t.id)),
            t.status.as_str(),
            &t.id,
            &t.changes,
        );
    }
    out.push_str("</nav>\n");
    out
}

/// The key of an instance's files in [`Files::change`] and the jump list: `@<name>`, as
/// no task id holds an `@`.
pub fn instance_key(name: &str) -> String {
    format!("@{name}")
}

/// One entry of the jump list: a summary linking to `anchor`, then its files.
fn group(out: &mut String, key: &str, anchor: &str, status: &str, label: &str, changes: &[Change]) {
    let _ = write!(
        out,
        "<details class=\"tree-task\" data-status=\"{status}\"{open}><summary>\
         <span class=\"dot {status}\"></span><a href=\"#{anchor}\">{label}</a>\
         <span class=\"count\">{n}</span></summary>",
        open = if changes.len() <= TREE_OPEN_FILES && !changes.is_empty() {
            " open"
        } else {
            ""
        },
        label = escape(label),
        n = changes.len()
    );
    if !changes.is_empty() {
        out.push_str("<ul>");
        for (n, c) in changes.iter().enumerate() {
            let (dir, name) = c.path.rsplit_once('/').unwrap_or(("", &c.path));
            let _ = write!(
                out,
                "<li><a href=\"#{}\" title=\"{}\"><span class=\"kind-mark {kind}\"></span>\
                 {}<span class=\"dir\">{}</span></a></li>",
                file_id(key, n),
                escape(&c.path),
                escape(name),
                escape(dir),
                kind = c.kind.as_str()
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</details>\n");
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

/// The diff as rows `[kind, old number, new number, text]`, plus the changed words'
/// UTF-16 ranges `[[start, end], …]` for removed and added lines that pair up.
fn rows(diff: &str) -> Value {
    let mut rows: Vec<Value> = Vec::new();
    let (mut old, mut new) = (0u64, 0u64);
    let mut in_hunk = false;
    // Removed then added lines of the current change block, as indexes into `rows`.
    let (mut dels, mut adds): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    let mut texts: Vec<&str> = Vec::new();
    for line in diff.lines() {
        let kind_of = line.as_bytes().first().copied();
        if !matches!(kind_of, Some(b'+' | b'-')) || (kind_of == Some(b'-') && !adds.is_empty()) {
            pair_words(&mut rows, &texts, &dels, &adds);
            dels.clear();
            adds.clear();
        }
        if let Some((o, n)) = hunk_start(line) {
            (old, new, in_hunk) = (o, n, true);
            rows.push(json!([HUNK, null, null, line]));
            texts.push(line);
            continue;
        }
        if !in_hunk {
            // `---`/`+++` and `diff --git` headers: the file header already says it.
            continue;
        }
        let row = match kind_of {
            Some(b'+') => {
                new += 1;
                adds.push(rows.len());
                json!([ADD, null, new, &line[1..]])
            }
            Some(b'-') => {
                old += 1;
                dels.push(rows.len());
                json!([DEL, old, null, &line[1..]])
            }
            Some(b'\\') => json!([META, null, null, line]),
            _ => {
                old += 1;
                new += 1;
                json!([CTX, old, new, line.strip_prefix(' ').unwrap_or(line)])
            }
        };
        texts.push(match kind_of {
            Some(b'+' | b'-') => &line[1..],
            _ => line,
        });
        rows.push(row);
    }
    pair_words(&mut rows, &texts, &dels, &adds);
    Value::Array(rows)
}

/// Marks the changed words of each removed line and the added line it pairs with.
fn pair_words(rows: &mut [Value], texts: &[&str], dels: &[usize], adds: &[usize]) {
    for (&d, &a) in dels.iter().zip(adds) {
        let (before, after) = (texts[d], texts[a]);
        if before.len() > WORD_DIFF_CHARS || after.len() > WORD_DIFF_CHARS {
            continue;
        }
        let (old_ranges, new_ranges) = word_ranges(before, after);
        // A line changed all over is clearer without highlights.
        if old_ranges.is_empty() && new_ranges.is_empty() {
            continue;
        }
        if let Some(row) = rows[d].as_array_mut() {
            row.push(json!(old_ranges));
        }
        if let Some(row) = rows[a].as_array_mut() {
            row.push(json!(new_ranges));
        }
    }
}

/// The UTF-16 ranges of `before` and `after` that a word diff marks as removed and added;
/// both empty when the lines share too little for highlights to help.
pub fn word_ranges(before: &str, after: &str) -> (Vec<[usize; 2]>, Vec<[usize; 2]>) {
    let diff = similar::TextDiff::from_words(before, after);
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let (mut o, mut n) = (0usize, 0usize);
    let mut same = 0usize;
    for change in diff.iter_all_changes() {
        let len = change.value().encode_utf16().count();
        match change.tag() {
            similar::ChangeTag::Equal => {
                o += len;
                n += len;
                if !change.value().trim().is_empty() {
                    same += len;
                }
            }
            similar::ChangeTag::Delete => {
                push_range(&mut old, o, o + len);
                o += len;
            }
            similar::ChangeTag::Insert => {
                push_range(&mut new, n, n + len);
                n += len;
            }
        }
    }
    if same * 4 < o.max(n) {
        return (Vec::new(), Vec::new());
    }
    (old, new)
}

/// Adds `[start, end]`, merged with the previous range when they touch.
fn push_range(ranges: &mut Vec<[usize; 2]>, start: usize, end: usize) {
    match ranges.last_mut() {
        Some(last) if last[1] == start => last[1] = end,
        _ => ranges.push([start, end]),
    }
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
    fn rows_are_numbered_and_words_marked() {
        let r = rows("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n-let x = 1;\n+let x = 2;\n");
        assert_eq!(
            r,
            json!([
                [HUNK, null, null, "@@ -1,2 +1,2 @@"],
                [CTX, 1, 1, "a"],
                [DEL, 2, null, "let x = 1;", [[8, 10]]],
                [ADD, null, 2, "let x = 2;", [[8, 10]]]
            ])
        );
    }

    #[test]
    fn word_ranges_count_utf16_and_skip_lines_changed_all_over() {
        assert_eq!(
            word_ranges("é 😀 a", "é 😀 b"),
            (vec![[5, 6]], vec![[5, 6]])
        );
        assert_eq!(word_ranges("alpha beta", "gamma delta"), (vec![], vec![]));
    }

    #[test]
    fn the_data_cannot_close_its_script() {
        let mut f = Files::default();
        let c = Change {
            path: "a</script>.html".into(),
            kind: ChangeKind::Added,
            binary: false,
            symlink: false,
            size_before: None,
            size_after: Some(1),
            diff: Some("@@ -0,0 +1 @@\n+</script><!--&\n".into()),
            path_lossy: false,
            mode_before: None,
            mode_after: None,
            target_before: None,
            target_after: None,
        };
        let head = f.change("t", 0, &c);
        assert!(head.contains("a&lt;/script&gt;.html"));
        let json = f.json();
        assert!(
            !json.contains('<') && !json.contains('>') && !json.contains('&'),
            "{json}"
        );
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0][1][3], "</script><!--&");
    }
}

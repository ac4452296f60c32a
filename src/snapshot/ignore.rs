//! gitignore-style patterns that leave paths out of snapshots (`ignore:` in the plan).
//!
//! The rules follow gitignore: a pattern without a slash (other than a trailing one)
//! matches a name at any depth; a pattern with a leading or inner slash is anchored at the
//! snapshot root; a trailing slash matches folders only; `*` never crosses a `/`, `**`
//! does; `!pattern` re-includes (the last matching pattern wins), but nothing below an
//! ignored folder comes back, as in git. Matching works on raw bytes, so names need not
//! be UTF-8. Never touches the file system.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

/// gitignore-style patterns that leave paths out of snapshots.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<String>,
    /// One rule per usable pattern, in the order given.
    rules: Vec<Rule>,
    /// All rules' globs; a match index is an index into `rules`.
    set: GlobSet,
}

#[derive(Debug, Clone)]
struct Rule {
    negated: bool,
    dir_only: bool,
}

impl Ignore {
    /// Compiles `patterns`. A pattern that is not a valid glob is logged and left out (the
    /// plan validator is the place to refuse it with a line number).
    pub fn new(patterns: &[String]) -> Ignore {
        let mut rules = Vec::new();
        let mut builder = GlobSetBuilder::new();
        for raw in patterns {
            let Some((rule, glob)) = parse(raw) else {
                continue;
            };
            match GlobBuilder::new(&glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
            {
                Ok(g) => {
                    builder.add(g);
                    rules.push(rule);
                }
                Err(e) => log::warn!("ignore pattern `{raw}` left out: {e}"),
            }
        }
        let set = builder.build().unwrap_or_else(|e| {
            log::warn!("ignore patterns left out: {e}");
            rules.clear();
            GlobSet::empty()
        });
        Ignore {
            patterns: patterns.to_vec(),
            rules,
            set,
        }
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `path` (relative, `/`-separated) is left out; `is_dir` for folders. A path
    /// below an ignored folder is ignored too.
    pub fn is_ignored(&self, path: &[u8], is_dir: bool) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        for (i, b) in path.iter().enumerate() {
            if *b == b'/' && i > 0 && self.matches_self(&path[..i], true) {
                return true;
            }
        }
        self.matches_self(path, is_dir)
    }

    /// Whether `path` itself matches, ancestors not considered: what a walk that does not
    /// descend into ignored folders needs.
    pub(crate) fn matches_self(&self, path: &[u8], is_dir: bool) -> bool {
        if self.rules.is_empty() || path.is_empty() {
            return false;
        }
        let candidate = Candidate::new(Path::new(OsStr::from_bytes(path)));
        let mut ignored = false;
        // Indices come back in ascending order: the last applicable rule decides.
        for i in self.set.matches_candidate(&candidate) {
            let rule = &self.rules[i];
            if rule.dir_only && !is_dir {
                continue;
            }
            ignored = !rule.negated;
        }
        ignored
    }
}

/// One gitignore line to a rule and a glob over the whole relative path; `None` for blank
/// lines and comments.
fn parse(raw: &str) -> Option<(Rule, String)> {
    let mut p = raw.trim_end_matches([' ', '\t', '\r', '\n']);
    if p.is_empty() || p.starts_with('#') {
        return None;
    }
    let negated = p.starts_with('!');
    if negated {
        p = &p[1..];
    }
    let dir_only = p.ends_with('/');
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        return None;
    }
    // A slash at the start or in the middle anchors the pattern at the root.
    let anchored = p.contains('/');
    let p = p.trim_start_matches('/');
    if p.is_empty() {
        return None;
    }
    let glob = if anchored || p.starts_with("**/") {
        p.to_string()
    } else {
        format!("**/{p}")
    };
    Some((Rule { negated, dir_only }, glob))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(patterns: &[&str]) -> Ignore {
        Ignore::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn folder_pattern_matches_folders_at_any_depth_only() {
        let i = ig(&[".git/", "target/"]);
        assert!(i.is_ignored(b".git", true));
        assert!(i.is_ignored(b"sub/.git", true));
        assert!(
            i.is_ignored(b"sub/.git/HEAD", false),
            "below an ignored folder"
        );
        assert!(!i.is_ignored(b".git", false), "a file named .git is kept");
        assert!(i.is_ignored(b"a/b/target", true));
        assert!(!i.is_ignored(b"targets", true));
        assert!(!i.is_ignored(b"src/main.rs", false));
    }

    #[test]
    fn star_matches_names_anywhere_but_never_crosses_a_slash() {
        let i = ig(&["*.log", "/docs/*.md"]);
        assert!(i.is_ignored(b"a.log", false));
        assert!(i.is_ignored(b"deep/er/a.log", false));
        assert!(!i.is_ignored(b"a.log.txt", false));
        assert!(i.is_ignored(b"docs/x.md", false));
        assert!(!i.is_ignored(b"docs/sub/x.md", false));
        assert!(!i.is_ignored(b"other/docs/x.md", false));
    }

    #[test]
    fn leading_slash_anchors_at_the_root() {
        let i = ig(&["/build"]);
        assert!(i.is_ignored(b"build", true));
        assert!(i.is_ignored(b"build", false));
        assert!(i.is_ignored(b"build/out.o", false));
        assert!(!i.is_ignored(b"src/build", true));
    }

    #[test]
    fn double_star_and_inner_slash() {
        let i = ig(&["**/node_modules", "a/**/z", "x/y"]);
        assert!(i.is_ignored(b"node_modules", true));
        assert!(i.is_ignored(b"web/node_modules", true));
        assert!(i.is_ignored(b"a/z", false));
        assert!(i.is_ignored(b"a/b/c/z", false));
        assert!(i.is_ignored(b"x/y", false));
        assert!(!i.is_ignored(b"q/x/y", false), "an inner slash anchors");
    }

    #[test]
    fn negation_re_includes_but_not_below_an_ignored_folder() {
        let i = ig(&["*.log", "!keep.log", "out/", "!out/keep.txt"]);
        assert!(i.is_ignored(b"a.log", false));
        assert!(!i.is_ignored(b"keep.log", false));
        assert!(!i.is_ignored(b"sub/keep.log", false));
        assert!(i.is_ignored(b"out/keep.txt", false));
    }

    #[test]
    fn comments_blank_lines_and_non_utf8_names() {
        let i = ig(&["# comment", "", "  ", "*.bin"]);
        assert!(!i.is_ignored(b"# comment", false));
        assert!(i.is_ignored(b"caf\xe9.bin", false));
        assert!(!i.is_ignored(b"caf\xe9.txt", false));
        assert!(!Ignore::default().is_ignored(b"anything", false));
    }
}

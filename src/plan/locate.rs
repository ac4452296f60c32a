//! Where a value sits in the plan's text, so a semantic problem (an unknown need, a cycle,
//! a bad name) can name its line and column like a syntax error does.
//!
//! serde throws positions away once a value is parsed, so this re-reads the text with a
//! small, forgiving scanner for the YAML that plans are written in: block mappings and
//! sequences (also `- ` at the parent key's indent), scalars, and one-line flow
//! collections (`needs: [a, b]`, `agent: {kind: generic}`). It only ever *adds* locations:
//! whatever it cannot follow (aliases, multi-line flow collections, odd layouts) is skipped,
//! and [`Locator::find`] falls back to the nearest enclosing value it did see, so a wrong
//! guess never hides a problem — at worst it points at the parent.

/// A 1-based line and column (in characters, as libyaml counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Every value path the scanner recognised, in file order, with where its value starts.
/// Paths look like serde_yaml's: `tasks[1].needs[0]`, `agent.env.HOME`.
#[derive(Debug, Default)]
pub struct Locator {
    entries: Vec<(String, Pos)>,
    /// Where each mapping key itself starts, for problems about the key (duplicates).
    keys: Vec<(String, Pos)>,
}

impl Locator {
    pub fn new(text: &str) -> Locator {
        let mut scanner = Scanner::default();
        for (i, line) in text.lines().enumerate() {
            scanner.line(i + 1, line);
        }
        Locator {
            entries: scanner.entries,
            keys: scanner.keys,
        }
    }

    /// Where `path`'s value starts, or the nearest enclosing value's, or nothing.
    pub fn find(&self, path: &str) -> Option<Pos> {
        let mut path = path;
        loop {
            if let Some(pos) = self.exact(path) {
                return Some(pos);
            }
            path = parent(path)?;
        }
    }

    /// Where `path`'s value starts, if the scanner saw it (the first one, if repeated).
    pub fn exact(&self, path: &str) -> Option<Pos> {
        self.all(path).next()
    }

    /// Every place `path`'s value was seen: more than one for a duplicated key.
    pub fn all<'a>(&'a self, path: &'a str) -> impl Iterator<Item = Pos> + 'a {
        self.entries
            .iter()
            .filter(move |(p, _)| p == path)
            .map(|(_, pos)| *pos)
    }

    /// Every place the key ending `path` was seen, in file order.
    pub fn keys<'a>(&'a self, path: &'a str) -> impl Iterator<Item = Pos> + 'a {
        self.keys
            .iter()
            .filter(move |(p, _)| p == path)
            .map(|(_, pos)| *pos)
    }
}

/// `tasks[1].needs[0]` → `tasks[1].needs` → `tasks[1]` → `tasks` → none.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']')
        && let Some(open) = path.rfind('[')
    {
        return Some(&path[..open]);
    }
    Some(path.rfind('.').map_or("", |dot| &path[..dot]))
}

fn join_key(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Seq,
}

/// An open block collection: its items start at `indent` (a 0-based character column).
#[derive(Debug)]
struct Frame {
    indent: usize,
    kind: Kind,
    path: String,
    next_index: usize,
}

#[derive(Debug, Default)]
struct Scanner {
    entries: Vec<(String, Pos)>,
    keys: Vec<(String, Pos)>,
    stack: Vec<Frame>,
    /// A key or `-` whose value is on the following lines: its path and column.
    /// `Some((path, None))` at the very start, when the root may begin at any column.
    pending: Option<(String, Option<usize>)>,
    started: bool,
    /// Lines indented deeper than this belong to the previous value (a block scalar, a
    /// multi-line plain scalar): skip them.
    skip_deeper_than: Option<usize>,
}

impl Scanner {
    fn line(&mut self, number: usize, line: &str) {
        if !self.started {
            self.started = true;
            self.pending = Some((String::new(), None));
        }
        let chars: Vec<char> = line.chars().collect();
        let Some(col) = chars.iter().position(|c| *c != ' ') else {
            return; // blank lines never end anything
        };
        if let Some(limit) = self.skip_deeper_than {
            if col > limit {
                return;
            }
            self.skip_deeper_than = None;
        }
        let content: String = chars[col..].iter().collect();
        if content.starts_with('#') || content.starts_with('\t') {
            return;
        }
        if col == 0 && (content.starts_with("---") || content.starts_with("...")) {
            return;
        }
        self.content(number, col, &content);
    }

    /// Handles `content`, which starts at 0-based column `col` of line `number`.
    fn content(&mut self, number: usize, col: usize, content: &str) {
        let is_item = content == "-" || content.starts_with("- ");
        let kind = if is_item { Kind::Seq } else { Kind::Map };
        let Some(path) = self.container(col, kind) else {
            self.pending = None;
            return;
        };
        self.pending = None;
        if is_item {
            let index = self.bump();
            let item = format!("{path}[{index}]");
            let rest = content[1..].trim_start_matches(' ');
            let rest_col = col + (content.chars().count() - rest.chars().count());
            self.entries.push((
                item.clone(),
                Pos {
                    line: number,
                    column: if rest.is_empty() {
                        col + 1
                    } else {
                        rest_col + 1
                    },
                },
            ));
            if rest.starts_with('[') || rest.starts_with('{') {
                let mut found = Found {
                    values: &mut self.entries,
                    keys: &mut self.keys,
                };
                flow(rest, rest_col, number, &item, &mut found);
                self.skip_deeper_than = Some(col);
                return;
            }
            // `- key: value` opens a mapping at the key's column; `-` alone, at the next line.
            self.pending = Some((item, Some(col)));
            if !rest.is_empty() && !rest.starts_with('#') {
                self.content(number, rest_col, rest);
            }
            return;
        }
        let Some((key, after_key)) = split_key(content) else {
            return; // a plain scalar line: nothing to record
        };
        let key_path = join_key(&path, &key);
        let value = after_key.trim_start_matches(' ');
        let value_col = col + (content.chars().count() - value.chars().count());
        let value = strip_comment(value);
        let pos = |column: usize| Pos {
            line: number,
            column: column + 1,
        };
        self.keys.push((key_path.clone(), pos(col)));
        if value.is_empty() || is_props_only(value) {
            self.entries.push((key_path.clone(), pos(col)));
            self.pending = Some((key_path, Some(col)));
            return;
        }
        self.entries.push((key_path.clone(), pos(value_col)));
        if value.starts_with('[') || value.starts_with('{') {
            let mut found = Found {
                values: &mut self.entries,
                keys: &mut self.keys,
            };
            flow(value, value_col, number, &key_path, &mut found);
        }
        self.skip_deeper_than = Some(col);
    }

    /// The path of the collection a `kind` item at `col` belongs to, opening it if needed.
    fn container(&mut self, col: usize, kind: Kind) -> Option<String> {
        while let Some(top) = self.stack.last() {
            let compact_seq_ends = top.indent == col && top.kind == Kind::Seq && kind == Kind::Map;
            if top.indent > col || compact_seq_ends {
                self.stack.pop();
            } else {
                break;
            }
        }
        let opens = match &self.pending {
            Some((_, None)) => true,
            Some((_, Some(owner))) => col > *owner || (col == *owner && kind == Kind::Seq),
            None => false,
        };
        if opens && let Some((path, _)) = self.pending.take() {
            self.stack.push(Frame {
                indent: col,
                kind,
                path: path.clone(),
                next_index: 0,
            });
            return Some(path);
        }
        match self.stack.last() {
            Some(top) if top.indent == col && top.kind == kind => Some(top.path.clone()),
            _ => None,
        }
    }

    fn bump(&mut self) -> usize {
        self.stack.last_mut().map_or(0, |top| {
            top.next_index += 1;
            top.next_index - 1
        })
    }
}

/// Splits `key: rest` (plain, `"quoted"` or `'quoted'` key). None if this is no key.
fn split_key(content: &str) -> Option<(String, &str)> {
    let first = content.chars().next()?;
    if first == '"' || first == '\'' {
        let close = content[1..].find(first)? + 1;
        let after = &content[close + 1..];
        let after = after.strip_prefix(':')?;
        if !(after.is_empty() || after.starts_with(' ')) {
            return None;
        }
        return Some((content[1..close].to_string(), after));
    }
    if matches!(first, '[' | '{' | '&' | '*' | '!' | '|' | '>' | '#') {
        return None;
    }
    let mut search = 0;
    while let Some(i) = content[search..].find(':') {
        let at = search + i;
        let after = &content[at + 1..];
        if after.is_empty() || after.starts_with(' ') {
            let key = content[..at].trim_end();
            if key.contains(" #") {
                return None;
            }
            return Some((key.to_string(), after));
        }
        search = at + 1;
    }
    None
}

/// Drops a trailing ` # comment` from a value that is not quoted.
fn strip_comment(value: &str) -> &str {
    if value.starts_with('#') {
        return "";
    }
    if value.starts_with('"') || value.starts_with('\'') {
        return value.trim_end();
    }
    value.find(" #").map_or(value, |i| &value[..i]).trim_end()
}

/// `&anchor` or `!tag` with nothing after: the value follows on the next lines.
fn is_props_only(value: &str) -> bool {
    value
        .split(' ')
        .all(|word| word.starts_with('&') || word.starts_with('!'))
}

/// Where a flow collection's items and keys go.
struct Found<'a> {
    values: &'a mut Vec<(String, Pos)>,
    keys: &'a mut Vec<(String, Pos)>,
}

/// Records the items of a one-line flow collection starting at `value` (a `[` or `{` at
/// 0-based column `col`). Stops quietly at anything it does not understand.
fn flow(value: &str, col: usize, line: usize, path: &str, out: &mut Found<'_>) {
    let chars: Vec<char> = value.chars().collect();
    let mut at = 0;
    flow_collection(&chars, &mut at, col, line, path, out);
}

fn flow_collection(
    chars: &[char],
    at: &mut usize,
    col: usize,
    line: usize,
    path: &str,
    out: &mut Found<'_>,
) -> Option<()> {
    let close = match chars.get(*at)? {
        '[' => ']',
        '{' => '}',
        _ => return None,
    };
    *at += 1;
    let mut index = 0;
    loop {
        skip_spaces(chars, at);
        if *chars.get(*at)? == close {
            *at += 1;
            return Some(());
        }
        let start = *at;
        let scalar = flow_scalar(chars, at)?;
        skip_spaces(chars, at);
        let item_path = if close == '}' && chars.get(*at) == Some(&':') {
            *at += 1;
            skip_spaces(chars, at);
            let key_path = join_key(path, &scalar.unwrap_or_default());
            out.keys.push((
                key_path.clone(),
                Pos {
                    line,
                    column: col + start + 1,
                },
            ));
            key_path
        } else if close == ']' {
            *at = start; // not a key: re-read it as the item itself
            let p = format!("{path}[{index}]");
            index += 1;
            p
        } else {
            return None;
        };
        let value_start = *at;
        out.values.push((
            item_path.clone(),
            Pos {
                line,
                column: col + value_start + 1,
            },
        ));
        if matches!(chars.get(*at)?, '[' | '{') {
            flow_collection(chars, at, col, line, &item_path, out)?;
        } else {
            flow_scalar(chars, at)?;
        }
        skip_spaces(chars, at);
        match chars.get(*at)? {
            ',' => *at += 1,
            c if *c == close => {}
            _ => return None,
        }
    }
}

fn skip_spaces(chars: &[char], at: &mut usize) {
    while chars.get(*at) == Some(&' ') {
        *at += 1;
    }
}

/// Reads a flow scalar (plain or quoted) and returns its text; `Some(None)` for a nested
/// collection, which the caller reads itself.
fn flow_scalar(chars: &[char], at: &mut usize) -> Option<Option<String>> {
    let first = *chars.get(*at)?;
    if first == '[' || first == '{' {
        return Some(None);
    }
    let mut text = String::new();
    if first == '"' || first == '\'' {
        *at += 1;
        while let Some(&c) = chars.get(*at) {
            *at += 1;
            if c == first {
                return Some(Some(text));
            }
            if c == '\\' && first == '"' {
                text.push(*chars.get(*at)?);
                *at += 1;
            } else {
                text.push(c);
            }
        }
        return None;
    }
    while let Some(&c) = chars.get(*at) {
        let ends_key = c == ':' && matches!(chars.get(*at + 1), None | Some(' ' | ',' | ']' | '}'));
        if matches!(c, ',' | ']' | '}') || ends_key {
            break;
        }
        text.push(c);
        *at += 1;
    }
    Some(Some(text.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(loc: &Locator, path: &str) -> (usize, usize) {
        let pos = loc
            .exact(path)
            .unwrap_or_else(|| panic!("`{path}` not found in {:?}", loc.entries));
        (pos.line, pos.column)
    }

    const PLAN: &str = "\
# a comment
name: demo
agent: {kind: generic, command: /bin/true, env: {A: \"1\"}}
instances:
  - name: dev
    role: developer
    context: |
      name: not a key
      - not an item
  - name: test   # trailing comment
    role: tester
    agent:
      env:
        HOME: /x
tasks:
- id: schema
  instance: dev
  prompt: >
    do it
- id: auth
  instance: dev
  needs: [schema, 'sh ema']
  prompt: a plain
    multi-line scalar: with colon
  timeout: 5m
-
  id: last
  needs:
    - auth
    - schema
";

    #[test]
    fn finds_block_keys_items_and_flow_values() {
        let loc = Locator::new(PLAN);
        assert_eq!(at(&loc, "name"), (2, 7));
        assert_eq!(at(&loc, "agent.kind"), (3, 15));
        assert_eq!(at(&loc, "agent.command"), (3, 33));
        assert_eq!(at(&loc, "agent.env.A"), (3, 53));
        assert_eq!(at(&loc, "instances[0]"), (5, 5));
        assert_eq!(at(&loc, "instances[0].name"), (5, 11));
        assert_eq!(at(&loc, "instances[1].name"), (10, 11));
        assert_eq!(at(&loc, "instances[1].agent.env.HOME"), (14, 15));
        assert_eq!(at(&loc, "tasks[0].id"), (16, 7));
        assert_eq!(at(&loc, "tasks[1].id"), (20, 7));
        assert_eq!(at(&loc, "tasks[1].needs[0]"), (22, 11));
        assert_eq!(at(&loc, "tasks[1].needs[1]"), (22, 19));
        assert_eq!(at(&loc, "tasks[1].timeout"), (25, 12));
        assert_eq!(at(&loc, "tasks[2].id"), (27, 7));
        assert_eq!(at(&loc, "tasks[2].needs[1]"), (30, 7));
        let flow = Locator::new("tasks:\n  - {id: a, needs: [b]}\n  - [x]\n");
        assert_eq!(at(&flow, "tasks[0].needs[0]"), (2, 21));
        assert_eq!(at(&flow, "tasks[1][0]"), (3, 6));
    }

    #[test]
    fn block_scalars_and_continuations_are_not_read_as_keys() {
        let loc = Locator::new(PLAN);
        assert_eq!(loc.exact("instances[0].context.name"), None);
        assert_eq!(loc.exact("tasks[1].multi-line scalar"), None);
        assert_eq!(loc.exact("instances[2]"), None);
        assert_eq!(loc.exact("tasks[3]"), None);
    }

    #[test]
    fn falls_back_to_the_nearest_parent() {
        let loc = Locator::new(PLAN);
        let pos = loc.find("tasks[1].needs[7]").map(|p| (p.line, p.column));
        assert_eq!(pos, Some((22, 10)));
        assert_eq!(loc.find("nothing.here"), None);
    }

    #[test]
    fn repeated_keys_are_all_kept() {
        let loc = Locator::new("agent:\n  env:\n    A: 1\n    A: 2\n");
        let lines: Vec<usize> = loc.all("agent.env.A").map(|p| p.line).collect();
        assert_eq!(lines, [3, 4]);
        let keys: Vec<(usize, usize)> = loc
            .keys("agent.env.A")
            .map(|p| (p.line, p.column))
            .collect();
        assert_eq!(keys, [(3, 5), (4, 5)]);
        let flow = Locator::new("tasks: [{id: a, id: b}]\n");
        let keys: Vec<usize> = flow.keys("tasks[0].id").map(|p| p.column).collect();
        assert_eq!(keys, [10, 17]);
    }

    #[test]
    fn survives_odd_input() {
        for text in [
            "",
            ":",
            "- - -",
            "[a, {b: [c",
            "a: [\n",
            "\"x",
            "  - a: b\nc",
            "{: }",
        ] {
            let _ = Locator::new(text).find("tasks[0].id");
        }
    }

    #[test]
    fn parents() {
        assert_eq!(parent("tasks[1].needs[0]"), Some("tasks[1].needs"));
        assert_eq!(parent("tasks[1].needs"), Some("tasks[1]"));
        assert_eq!(parent("tasks[1]"), Some("tasks"));
        assert_eq!(parent("tasks"), Some(""));
        assert_eq!(parent(""), None);
    }
}

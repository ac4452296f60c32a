//! `logs/<task>.<attempt>.txt`: an attempt's log as a person reads it.
//!
//! For stream-json agents (Claude Code) each JSON line becomes words: the assistant's
//! text, each tool call with its input (the Bash command, the file edited, written or
//! read), the tool results cut short, the permission denials the CLI reports, and the
//! final cost and turns. Lines that are not JSON (the runner's `--- borg-batch:` notes,
//! the agent's standard error, the check's output) are kept as they are. Other agents'
//! logs are kept as they are.
//!
//! A pure function of the log's lines ([`render`]); [`write_for_log`] is the one call the
//! runner makes, once an attempt's log is finished. It never reads anything but the log it
//! is given (already redacted), and never fails the run: a transcript is a convenience.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// How an agent's output is turned into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Claude Code's `--output-format stream-json`.
    StreamJson,
    /// Anything else: the output as it is.
    Plain,
}

impl From<crate::plan::AgentKind> for Kind {
    /// Per agent kind, how its log reads (the agent seam adds its kinds here).
    fn from(kind: crate::plan::AgentKind) -> Kind {
        match kind {
            crate::plan::AgentKind::Claude => Kind::StreamJson,
            _ => Kind::Plain,
        }
    }
}

/// Lines of a tool result kept in the transcript; the rest is counted.
const RESULT_LINES: usize = 8;
/// Characters of one shown line (of a result or an input) before it is cut.
const LINE_CHARS: usize = 240;

/// The transcript of a whole log.
pub fn render(log: &str, kind: Kind) -> String {
    if kind == Kind::Plain {
        return log.to_string();
    }
    let mut out = String::with_capacity(log.len() / 2);
    for line in log.lines() {
        let value = line
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str::<Value>(line).ok())
            .flatten();
        match value {
            Some(v) if v.get("type").is_some() => event(&mut out, &v),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Writes `logs/<task>.<attempt>.txt` beside the finished `log` (`….log`), returning its
/// path. A log that cannot be read or a transcript that cannot be written is logged and
/// skipped.
pub fn write_for_log(log: &Path, kind: Kind) -> Option<PathBuf> {
    let target = log.with_extension("txt");
    let text = match std::fs::read(log) {
        Ok(bytes) => render(&String::from_utf8_lossy(&bytes), kind),
        Err(e) => {
            log::warn!("cannot read `{}` for its transcript: {e}", log.display());
            return None;
        }
    };
    match crate::fsutil::write_atomic(&target, text.as_bytes()) {
        Ok(()) => Some(target),
        Err(e) => {
            log::warn!("cannot write transcript `{}`: {e}", target.display());
            None
        }
    }
}

/// One stream-json event.
fn event(out: &mut String, v: &Value) {
    let str_of = |key: &str| v.get(key).and_then(Value::as_str);
    match str_of("type").unwrap_or_default() {
        "system" if str_of("subtype") == Some("init") => {
            let model = str_of("model").unwrap_or("?");
            let session = str_of("session_id").unwrap_or("?");
            let _ = writeln!(out, "[session {session} · model {model}]");
        }
        "assistant" => {
            for block in content(v) {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.trim().is_empty() {
                            let _ = writeln!(out, "\nAssistant:\n{}", indent(text.trim_end()));
                        }
                    }
                    Some("tool_use") => tool_use(out, block),
                    Some("thinking") => out.push_str("(thinking)\n"),
                    _ => {}
                }
            }
        }
        "user" => {
            for block in content(v) {
                if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                    tool_result(out, block);
                }
            }
        }
        "result" => result(out, v),
        // Rate-limit notices, stream events and the like: nothing a reader needs.
        _ => {}
    }
}

fn content(v: &Value) -> &[Value] {
    v.pointer("/message/content")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `→ Bash: cargo test`, `→ Edit src/a.rs`, …: the input that says what the call does.
fn tool_use(out: &mut String, block: &Value) {
    let name = block.get("name").and_then(Value::as_str).unwrap_or("tool");
    let input = block.get("input").unwrap_or(&Value::Null);
    let field = |key: &str| input.get(key).and_then(Value::as_str);
    let what = match name {
        "Bash" => field("command").map(|c| format!(": {}", cut(c))),
        "Edit" | "MultiEdit" | "Write" | "Read" | "NotebookEdit" => field("file_path")
            .or_else(|| field("notebook_path"))
            .map(|p| format!(" {p}")),
        "Glob" | "Grep" => field("pattern").map(|p| format!(" {}", cut(p))),
        "WebFetch" => field("url").map(|u| format!(" {u}")),
        "Task" | "Agent" => field("description").map(|d| format!(": {}", cut(d))),
        _ => None,
    };
    let what = what.unwrap_or_else(|| format!(" {}", cut(&input.to_string())));
    let _ = writeln!(out, "→ {name}{what}");
    if let ("Edit", Some(old), Some(new)) = (name, field("old_string"), field("new_string")) {
        let _ = writeln!(
            out,
            "    ({} line{} replaced by {})",
            old.lines().count(),
            if old.lines().count() == 1 { "" } else { "s" },
            new.lines().count()
        );
    }
}

/// `← …` the first lines of a tool's result, the rest counted.
fn tool_result(out: &mut String, block: &Value) {
    let text = match block.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let error = block.get("is_error").and_then(Value::as_bool) == Some(true);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mark = if error { "← error:" } else { "←" };
    if lines.is_empty() {
        let _ = writeln!(out, "  {mark} (no output)");
        return;
    }
    for (i, line) in lines.iter().take(RESULT_LINES).enumerate() {
        let lead = if i == 0 { mark } else { " " };
        let _ = writeln!(out, "  {lead} {}", cut(line));
    }
    if lines.len() > RESULT_LINES {
        let _ = writeln!(out, "    … {} more lines", lines.len() - RESULT_LINES);
    }
}

/// The result line: outcome, turns, cost, duration, permission denials, the final text.
fn result(out: &mut String, v: &Value) {
    let mut facts = vec![
        v.get("subtype")
            .and_then(Value::as_str)
            .unwrap_or("result")
            .to_string(),
    ];
    if v.get("is_error").and_then(Value::as_bool) == Some(true) {
        facts.push("error".into());
    }
    if let Some(n) = v.get("num_turns").and_then(Value::as_u64) {
        facts.push(format!("{n} turn{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(c) = v.get("total_cost_usd").and_then(Value::as_f64) {
        facts.push(format!("${c:.4}"));
    }
    if let Some(ms) = v.get("duration_ms").and_then(Value::as_u64) {
        facts.push(super::summary::duration(ms));
    }
    let _ = writeln!(out, "\nResult: {}", facts.join(" · "));
    for denial in v
        .get("permission_denials")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let tool = denial
            .get("tool_name")
            .and_then(Value::as_str)
            .unwrap_or("tool");
        let input = denial.get("tool_input").unwrap_or(&Value::Null);
        let what = input
            .get("command")
            .or_else(|| input.get("file_path"))
            .and_then(Value::as_str)
            .map_or_else(|| cut(&input.to_string()), cut);
        let _ = writeln!(out, "Permission denied: {tool} {what}");
    }
    if let Some(text) = v
        .get("result")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    {
        let _ = writeln!(out, "{}", indent(text.trim_end()));
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first line of `text`, at most [`LINE_CHARS`] characters, `…` where cut.
fn cut(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut out: String = first.chars().take(LINE_CHARS).collect();
    if first.chars().count() > LINE_CHARS || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = r#"--- borg-batch: claude -p --output-format stream-json (attempt 1/1)
{"type":"system","subtype":"init","session_id":"s-1","model":"claude-sonnet","tools":["Bash"]}
{"type":"assistant","message":{"content":[{"type":"text","text":"I will run the tests."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"cargo test\necho done"}}]}}
{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10","is_error":false}]}}
{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t2","name":"Edit","input":{"file_path":"src/a.rs","old_string":"a\nb","new_string":"c"}},{"type":"tool_use","id":"t3","name":"Read","input":{"file_path":"src/b.rs"}}]}}
{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"denied"}],"is_error":true}]}}
{"type":"result","subtype":"success","is_error":false,"num_turns":3,"total_cost_usd":0.0123,"duration_ms":6900,"result":"Done.","permission_denials":[{"tool_name":"Bash","tool_input":{"command":"rm -rf /"}}]}
stderr line that is not JSON
"#;

    #[test]
    fn stream_json_becomes_words() {
        let t = render(STREAM, Kind::StreamJson);
        assert_eq!(
            t,
            "--- borg-batch: claude -p --output-format stream-json (attempt 1/1)\n\
             [session s-1 · model claude-sonnet]\n\
             \nAssistant:\n  I will run the tests.\n\
             → Bash: cargo test…\n\
             \x20 ← l1\n    l2\n    l3\n    l4\n    l5\n    l6\n    l7\n    l8\n    … 2 more lines\n\
             → Edit src/a.rs\n    (2 lines replaced by 1)\n\
             → Read src/b.rs\n\
             \x20 ← error: denied\n\
             \nResult: success · 3 turns · $0.0123 · 6.9s\n\
             Permission denied: Bash rm -rf /\n  Done.\n\
             stderr line that is not JSON\n"
        );
    }

    #[test]
    fn plain_agents_keep_their_output() {
        assert_eq!(
            render("{\"type\":\"x\"}\nhi\n", Kind::Plain),
            "{\"type\":\"x\"}\nhi\n"
        );
    }

    #[test]
    fn broken_json_is_kept_as_text() {
        assert_eq!(
            render("{\"type\": oops\n", Kind::StreamJson),
            "{\"type\": oops\n"
        );
    }
}

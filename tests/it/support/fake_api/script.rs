//! Which turn answers a request: side requests (count_tokens, tool-less helper calls) get a
//! canned answer; a main-conversation request takes the next turn of its script, found by
//! key on a keyed server. Also the readers of a request's conversation text.

use serde_json::{Value, json};

use super::http::Answer;
use super::sse::message_answer;
use super::{Dialect, EXHAUSTED, INPUT_TOKENS, Request, Shared, Turn, UNMATCHED, lock};

/// The Anthropic error type for an HTTP status, as the real API names them.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

pub(super) fn route(request: Request, shared: &Shared) -> Answer {
    match shared.dialect {
        Dialect::Anthropic => route_messages(request, shared),
        Dialect::OpenAi => super::openai::route(request, shared),
        Dialect::Gemini => super::gemini::route(request, shared),
    }
}

/// A request that is no main-conversation turn: recorded, then answered with `answer`.
pub(super) fn side(request: Request, shared: &Shared, answer: Answer) -> Answer {
    lock(shared).requests.push(request);
    answer
}

fn route_messages(mut request: Request, shared: &Shared) -> Answer {
    let path = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let answer = if request.method == "POST" && path == "/v1/messages/count_tokens" {
        Answer::Json(200, json!({"input_tokens": INPUT_TOKENS}))
    } else if request.method == "POST" && path == "/v1/messages" {
        let has_tools = request.body["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty());
        if has_tools {
            // Recorded by next_turn, before the answer, so a hanging turn is visible too.
            return match next_turn(&mut request, shared) {
                Turn::Status(status, message) => Answer::Json(status, error_body(status, &message)),
                Turn::Hang => Answer::Hang,
                turn => message_answer(&request.body, &turn, shared),
            };
        }
        // A helper call of the CLI (title, quota, ...): answer without consuming a script.
        message_answer(&request.body, &Turn::text("ok"), shared)
    } else {
        Answer::Json(
            404,
            error_body(404, &format!("fake_api: no route for {path}")),
        )
    };
    lock(shared).requests.push(request);
    answer
}

/// Takes the turn for a main-conversation request and records the request.
pub(super) fn next_turn(request: &mut Request, shared: &Shared) -> Turn {
    request.main = true;
    let mut state = lock(shared);
    let key = if state.keyed {
        let keys: Vec<&str> = state.scripts.keys().map(String::as_str).collect();
        find_key(&user_messages(&request.body, shared.dialect), &keys).map(str::to_owned)
    } else {
        Some(String::new())
    };
    request.key.clone_from(&key);
    let turn = match key.and_then(|k| state.scripts.get_mut(&k)) {
        None => {
            state.unmatched += 1;
            Turn::text(UNMATCHED)
        }
        Some(script) => script.pop_front().unwrap_or_else(|| {
            state.exhausted += 1;
            Turn::text(EXHAUSTED)
        }),
    };
    state.requests.push(request.clone());
    turn
}

/// The text typed by the user in each user message of a request, in order (tool results
/// left out: a file's content must not select a script).
fn user_messages(body: &Value, dialect: Dialect) -> Vec<String> {
    let (list, content) = match dialect {
        Dialect::Anthropic => ("messages", "content"),
        Dialect::OpenAi => ("input", "content"),
        Dialect::Gemini => ("contents", "parts"),
    };
    body[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .map(|m| user_text(&m[content]))
        .collect()
}

/// The key occurring last in the latest user message text that holds any key.
fn find_key<'k>(messages: &[String], keys: &[&'k str]) -> Option<&'k str> {
    for text in messages.iter().rev() {
        let best = keys
            .iter()
            .filter(|k| !k.is_empty())
            .filter_map(|k| text.rfind(*k).map(|at| (at, *k)))
            .max();
        if let Some((_, key)) = best {
            return Some(key);
        }
    }
    None
}

/// The text typed by the user in one message: a string, or the text blocks of an array
/// (`text`, OpenAI's `input_text`, Gemini's untyped `{text}` parts).
fn user_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| matches!(b["type"].as_str(), Some("text" | "input_text") | None))
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Every text in a request's messages (user and assistant text, tool inputs and tool results),
/// one per line: for asserting what a conversation carried, e.g. after `--resume`. Reads
/// each dialect's list (`messages`, `input`, `contents`).
pub fn conversation_text(body: &Value) -> String {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    match k.as_str() {
                        "text" | "content" | "input" | "parts" | "output" => walk(v, out),
                        _ if v.is_object() || v.is_array() => walk(v, out),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for list in ["messages", "input", "contents"] {
        walk(&body[list], &mut out);
    }
    out.join("\n")
}

//! A text or tool-use turn written as a Messages API answer: one JSON message, or, when the
//! request asked to stream, the SSE event sequence the real API sends (`message_start` ...
//! `message_stop`, deltas split in two to exercise the CLI's reassembly).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::http::Answer;
use super::{INPUT_TOKENS, OUTPUT_TOKENS, Shared, Turn};

/// A text or tool-use message, streamed when the request asked for it.
pub(super) fn message_answer(body: &Value, turn: &Turn, shared: &Shared) -> Answer {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let model = body["model"].as_str().unwrap_or("claude-fake").to_owned();
    let (block, stop_reason) = match turn {
        Turn::ToolUse { name, input } => (
            json!({"type": "tool_use", "id": format!("toolu_fake_{id}"), "name": name, "input": input}),
            "tool_use",
        ),
        Turn::Text(text) => (json!({"type": "text", "text": text}), "end_turn"),
        Turn::Status(..) | Turn::Hang => unreachable!("answered without a message"),
    };
    // Message ids must be unique: the CLI merges streamed messages that share one.
    let message_id = format!("msg_fake_{id}");
    if body["stream"].as_bool() != Some(true) {
        return Answer::Json(
            200,
            json!({
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
                "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            }),
        );
    }
    let mut events = vec![
        json!({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        json!({"type": "ping"}),
    ];
    // Deltas come in two pieces, as the real API splits them, to exercise reassembly.
    match turn {
        Turn::ToolUse { input, .. } => {
            let mut start = block;
            start["input"] = json!({});
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": start}));
            let input = input.to_string();
            for part in split_in_two(&input) {
                events.push(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": part}}));
            }
        }
        _ => {
            let text = block["text"].as_str().unwrap_or_default();
            events.push(json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}));
            for part in split_in_two(text) {
                events.push(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": part}}));
            }
        }
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS}}));
    events.push(json!({"type": "message_stop"}));
    Answer::Stream(events)
}

fn split_in_two(s: &str) -> Vec<&str> {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    let (a, b) = s.split_at(mid);
    [a, b].into_iter().filter(|p| !p.is_empty()).collect()
}

//! The OpenAI Responses API, as the Codex CLI uses it (`POST /v1/responses`, always
//! streamed): a turn becomes `response.created`, one `response.output_item.done` (an
//! assistant message or a `function_call`) and `response.completed` with the usage; an error
//! turn an HTTP status with an OpenAI error body. Anything else is a 404.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::http::Answer;
use super::script::{next_turn, side};
use super::{INPUT_TOKENS, OUTPUT_TOKENS, Request, Shared, Turn};

pub(super) fn route(mut request: Request, shared: &Shared) -> Answer {
    let path = request.path.split('?').next().unwrap_or_default();
    if !(request.method == "POST" && path == "/v1/responses") {
        let body = error_body(404, &format!("fake_api: no route for {path}"));
        return side(request, shared, Answer::Json(404, body));
    }
    match next_turn(&mut request, shared) {
        Turn::Status(status, message) => Answer::Json(status, error_body(status, &message)),
        Turn::Hang => Answer::Hang,
        turn => stream(&turn, shared),
    }
}

fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        429 => "rate_limit_exceeded",
        401 => "invalid_api_key",
        400 => "invalid_request_error",
        _ => "server_error",
    };
    json!({"error": {"message": message, "type": kind, "code": kind}})
}

fn stream(turn: &Turn, shared: &Shared) -> Answer {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let item = match turn {
        Turn::ToolUse { name, input } => json!({
            "type": "function_call", "id": format!("fc_fake_{id}"), "call_id": format!("call_fake_{id}"),
            "name": name, "arguments": input.to_string(),
        }),
        Turn::Text(text) => json!({
            "type": "message", "id": format!("msg_fake_{id}"), "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }),
        Turn::Status(..) | Turn::Hang => unreachable!("answered without a response"),
    };
    let response_id = format!("resp_fake_{id}");
    Answer::Stream(vec![
        json!({"type": "response.created", "response": {"id": response_id}}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        json!({"type": "response.completed", "response": {"id": response_id, "usage": {
            "input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}}}),
    ])
}

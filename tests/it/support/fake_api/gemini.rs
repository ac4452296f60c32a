//! The Gemini API, as the Gemini CLI uses it: `POST /v1beta/models/<model>:streamGenerateContent
//! ?alt=sse` (or `:generateContent`) with `tools` is a main-conversation turn, answered with
//! one candidate (a `text` or a `functionCall` part) and `usageMetadata`; a request without
//! tools is the CLI's own helper call (the model router) and gets a canned answer;
//! `:countTokens` a count. Error turns are HTTP statuses with a Google error body.

use serde_json::{Value, json};

use super::http::Answer;
use super::script::{next_turn, side};
use super::{INPUT_TOKENS, OUTPUT_TOKENS, Request, Shared, Turn};

pub(super) fn route(mut request: Request, shared: &Shared) -> Answer {
    let path = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let method = path.rsplit(':').next().unwrap_or_default();
    let model_call = request.method == "POST" && path.starts_with("/v1beta/models/");
    let streamed = method == "streamGenerateContent";
    match method {
        "countTokens" if model_call => side(
            request,
            shared,
            Answer::Json(200, json!({"totalTokens": INPUT_TOKENS})),
        ),
        "generateContent" | "streamGenerateContent" if model_call => {
            let has_tools = request.body["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty());
            if !has_tools {
                // The router asks which model to use, as JSON.
                let text = r#"{"reasoning": "fake", "model_choice": "flash"}"#;
                let answer = candidate(&Turn::text(text), streamed);
                return side(request, shared, answer);
            }
            match next_turn(&mut request, shared) {
                Turn::Status(status, message) => Answer::Json(status, error_body(status, &message)),
                Turn::Hang => Answer::Hang,
                turn => candidate(&turn, streamed),
            }
        }
        _ => {
            let body = error_body(404, &format!("fake_api: no route for {path}"));
            side(request, shared, Answer::Json(404, body))
        }
    }
}

fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        429 => "RESOURCE_EXHAUSTED",
        400 => "INVALID_ARGUMENT",
        401 | 403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status, "message": message, "status": kind}})
}

fn candidate(turn: &Turn, streamed: bool) -> Answer {
    let part = match turn {
        Turn::ToolUse { name, input } => json!({"functionCall": {"name": name, "args": input}}),
        Turn::Text(text) => json!({"text": text}),
        Turn::Status(..) | Turn::Hang => unreachable!("answered without a candidate"),
    };
    let body = json!({
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP",
                        "index": 0}],
        "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
                          "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS},
        "modelVersion": "gemini-fake",
    });
    if streamed {
        Answer::Data(vec![body])
    } else {
        Answer::Json(200, body)
    }
}

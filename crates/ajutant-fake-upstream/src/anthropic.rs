//! Anthropic's Messages API: answers, tool use and the event stream, in its own shapes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{
    ANSWER, ANSWER_PIECES, CHAT_USAGE, Ending, FakeState, Vendor, offers_tools, refusal, sse,
    stalled_sse,
};

pub(crate) async fn messages(
    State(state): State<FakeState>,
    uri: Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (model, count) = state.note(&uri, &headers, &body);
    if let Some(refused) = refusal(Vendor::Anthropic, &model, count) {
        return refused;
    }
    let tool = offers_tools(&body);
    let (input, output) = CHAT_USAGE;
    let stop_reason = if tool { "tool_use" } else { "end_turn" };
    if body["stream"] != json!(true) {
        let content = if tool {
            json!([{ "type": "tool_use", "id": "call_1", "name": "get_weather", "input": { "city": "Oslo" } }])
        } else {
            json!([{ "type": "text", "text": ANSWER }])
        };
        return Json(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-fake",
            "content": content, "stop_reason": stop_reason,
            "usage": { "input_tokens": input, "output_tokens": output },
        }))
        .into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![event(
        "message_start",
        json!({ "type": "message_start", "message": { "id": "msg_fake", "type": "message",
            "role": "assistant", "model": "claude-fake", "content": [],
            "usage": { "input_tokens": input, "output_tokens": 1 } } }),
    )];
    if tool {
        events.push(event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block":
                { "type": "tool_use", "id": "call_1", "name": "get_weather", "input": {} } }),
        ));
        for piece in ["{\"ci", "ty\":\"Os", "lo\"}"] {
            events.push(event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0,
                        "delta": { "type": "input_json_delta", "partial_json": piece } }),
            ));
        }
    } else {
        events.push(event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0,
                    "content_block": { "type": "text", "text": "" } }),
        ));
        events.push(event("ping", json!({ "type": "ping" })));
        for piece in ANSWER_PIECES {
            events.push(event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0,
                        "delta": { "type": "text_delta", "text": piece } }),
            ));
        }
    }
    match Ending::of(&model) {
        Ending::CutShort => {
            events.truncate(5);
            return sse(events);
        }
        Ending::Stall => return stalled_sse(events),
        Ending::Finish => {}
    }
    events.push(event(
        "content_block_stop",
        json!({ "type": "content_block_stop", "index": 0 }),
    ));
    events.push(event(
        "message_delta",
        json!({ "type": "message_delta", "delta": { "stop_reason": stop_reason },
                "usage": { "output_tokens": output } }),
    ));
    events.push(event("message_stop", json!({ "type": "message_stop" })));
    sse(events)
}

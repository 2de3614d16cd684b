//! What an escalation notification looks like on the wire for each kind of webhook (a signed
//! JSON event, a Teams Adaptive Card, Slack blocks), and the Standard Webhooks signature that
//! lets a generic receiver trust it.
//!
//! Text a user chose (assistant names, reporter names, comments) is escaped for the receiver's
//! markup so that it shows literally: it cannot ping a channel, hide a link or fake a heading.

use std::fmt;

use ajutant_core::config::{WEBHOOK_KEY_BYTES, WEBHOOK_SECRET_PREFIX};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The generic event's `type`.
const EVENT_TYPE: &str = "incident.opened";

/// The most of a comment a chat message shows: enough to triage, and a flood cannot bury the
/// facts above it.
const COMMENT_SHOWN: usize = 1_000;
/// The most of a name or other short value a chat message shows.
const VALUE_SHOWN: usize = 200;

/// Slack's own limits, in characters; a block over them makes Slack refuse the whole message.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_FIELD_MAX: usize = 2_000;
const SLACK_TEXT_MAX: usize = 3_000;
/// Room kept in a Slack field or section for the bold label written before the value.
const SLACK_LABEL_ROOM: usize = 64;

/// What a notification says about one escalation. Built by the outbox writer from the incident.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct EscalationNotice {
    pub incident_id: String,
    pub assistant_id: String,
    pub assistant_name: String,
    pub assistant_version: i64,
    pub deployment: Option<String>,
    /// e.g. `["harmful_content", "privacy"]`.
    pub categories: Vec<String>,
    /// The reporter ticked "serious".
    pub serious: bool,
    pub helpful: Option<bool>,
    /// The reporter's free text.
    pub comment: Option<String>,
    /// The reporter's display name.
    pub reported_by: String,
    pub message_id: String,
    pub conversation_id: String,
    pub trace_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// A link to the incident in the console or API.
    pub incident_url: Option<String>,
}

/// The generic event: `{"type", "timestamp", "data"}` as Standard Webhooks recommends. The
/// timestamp is when the incident was opened, so every retry sends the same bytes.
pub(crate) fn generic_body(notice: &EscalationNotice, include_comment: bool) -> Value {
    let mut data = json!({
        "incident_id": notice.incident_id,
        "assistant_id": notice.assistant_id,
        "assistant_name": notice.assistant_name,
        "assistant_version": notice.assistant_version,
        "deployment": notice.deployment,
        "categories": notice.categories,
        "serious": notice.serious,
        "helpful": notice.helpful,
        "reported_by": notice.reported_by,
        "message_id": notice.message_id,
        "conversation_id": notice.conversation_id,
        "trace_id": notice.trace_id,
        "opened_at": rfc3339(notice.opened_at),
        "incident_url": notice.incident_url,
    });
    if include_comment && let Some(object) = data.as_object_mut() {
        object.insert("comment".to_owned(), json!(notice.comment));
    }
    json!({
        "type": EVENT_TYPE,
        "timestamp": rfc3339(notice.opened_at),
        "data": data,
    })
}

/// A message with one Adaptive Card, which both Teams incoming webhooks and Workflows' "When a
/// Teams webhook request is received" trigger accept.
pub(crate) fn teams_body(notice: &EscalationNotice, include_comment: bool) -> Value {
    let value = |text: &str| escape(text, Limit::chars(VALUE_SHOWN), teams_char);
    let mut facts = vec![
        fact("Assistant", value(&notice.assistant_name)),
        fact("Version", notice.assistant_version.to_string()),
        fact("Categories", value(&categories(notice))),
        fact("Reported by", value(&notice.reported_by)),
    ];
    if let Some(trace_id) = &notice.trace_id {
        facts.push(fact("Trace id", value(trace_id)));
    }
    facts.push(fact("Incident", value(&notice.incident_id)));
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": value(&title(notice)),
            "size": "Large",
            "weight": "Bolder",
            "color": if notice.serious { "Attention" } else { "Default" },
            "wrap": true,
        }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    if include_comment && let Some(comment) = &notice.comment {
        body.push(json!({
            "type": "TextBlock",
            "text": escape(comment, Limit::chars(COMMENT_SHOWN), teams_char),
            "wrap": true,
        }));
    }
    let actions: Vec<Value> = notice
        .incident_url
        .iter()
        .map(|url| json!({ "type": "Action.OpenUrl", "title": "Open incident", "url": url }))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
}

/// A Slack incoming-webhook message: Block Kit, with `text` as the fallback that notifications
/// and screen readers use.
pub(crate) fn slack_body(notice: &EscalationNotice, include_comment: bool) -> Value {
    let field_limit = Limit {
        shown: VALUE_SHOWN,
        written: SLACK_FIELD_MAX - SLACK_LABEL_ROOM,
    };
    let value = |text: &str| escape(text, field_limit, slack_char);
    let mut fields = vec![
        field(
            "Assistant",
            format!(
                "{} (version {})",
                value(&notice.assistant_name),
                notice.assistant_version
            ),
        ),
        field("Categories", value(&categories(notice))),
        field("Reported by", value(&notice.reported_by)),
        field("Incident", value(&notice.incident_id)),
    ];
    if let Some(trace_id) = &notice.trace_id {
        fields.push(field("Trace id", value(trace_id)));
    }
    let header_limit = Limit {
        shown: SLACK_HEADER_MAX,
        written: SLACK_HEADER_MAX,
    };
    let mut blocks = vec![
        // plain_text is not parsed for mentions or links, so the title needs no escaping.
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": escape(&title(notice), header_limit, plain_char) },
        }),
        json!({ "type": "section", "fields": fields }),
    ];
    if include_comment && let Some(comment) = &notice.comment {
        let limit = Limit {
            shown: COMMENT_SHOWN,
            written: SLACK_TEXT_MAX - SLACK_LABEL_ROOM,
        };
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": format!("*Comment*\n{}", escape(comment, limit, slack_char)) },
        }));
    }
    if let Some(url) = &notice.incident_url {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": { "type": "plain_text", "text": "Open incident" },
                "url": url,
            }],
        }));
    }
    let fallback = format!(
        "{} ({}), incident {}",
        value(&title(notice)),
        value(&categories(notice)),
        value(&notice.incident_id)
    );
    json!({ "text": fallback, "blocks": blocks })
}

fn title(notice: &EscalationNotice) -> String {
    let kind = if notice.serious {
        "Serious escalation"
    } else {
        "Escalation"
    };
    format!("{kind}: {}", notice.assistant_name)
}

fn categories(notice: &EscalationNotice) -> String {
    if notice.categories.is_empty() {
        "none given".to_owned()
    } else {
        notice.categories.join(", ")
    }
}

fn fact(title: &str, value: String) -> Value {
    json!({ "title": title, "value": value })
}

fn field(label: &str, value: String) -> Value {
    json!({ "type": "mrkdwn", "text": format!("*{label}*\n{value}") })
}

/// RFC 3339 with the offset the time carries. Only years outside 0..=9999 cannot be written,
/// and then Unix seconds are better than nothing.
fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// How much of a text a message may carry: `shown` of its characters, and `written` characters
/// once escaped (escapes lengthen text, and receivers count what they are sent).
#[derive(Clone, Copy)]
struct Limit {
    shown: usize,
    written: usize,
}

impl Limit {
    /// Only the characters shown are limited (Teams counts the whole message, not a block).
    fn chars(shown: usize) -> Self {
        Self {
            shown,
            written: usize::MAX,
        }
    }
}

/// Writes one character escaped; the flag says whether only whitespace precedes it on its line.
type EscapeChar = fn(char, bool, &mut String);

/// `text` escaped within `limit`, ending in an ellipsis when it had to be cut.
fn escape(text: &str, limit: Limit, escape_char: EscapeChar) -> String {
    let (whole, complete) = escape_within(text, limit, escape_char);
    if complete {
        return whole;
    }
    // Room for the ellipsis, which is one character shown and written.
    let room = Limit {
        shown: limit.shown.saturating_sub(1),
        written: limit.written.saturating_sub(1),
    };
    let (mut cut, _) = escape_within(text, room, escape_char);
    cut.push('…');
    cut
}

/// As much of `text` as fits in `limit`, escaped, and whether that was all of it.
fn escape_within(text: &str, limit: Limit, escape_char: EscapeChar) -> (String, bool) {
    let mut out = String::new();
    let mut piece = String::new();
    let mut written = 0;
    let mut line_blank = true;
    for (shown, c) in text.chars().enumerate() {
        piece.clear();
        escape_char(c, line_blank, &mut piece);
        let length = piece.chars().count();
        if shown >= limit.shown || written + length > limit.written {
            return (out, false);
        }
        out.push_str(&piece);
        written += length;
        line_blank = c == '\n' || (line_blank && c.is_whitespace());
    }
    (out, true)
}

fn plain_char(c: char, _line_blank: bool, out: &mut String) {
    out.push(c);
}

/// Slack's mrkdwn reads `<...>` as a mention or link (`<!channel>`, `<https://x|label>`) and
/// wants `&` escaped too; these three are all it needs.
fn slack_char(c: char, _line_blank: bool, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        _ => out.push(c),
    }
}

/// Adaptive Card text is a Markdown subset (emphasis, lists, links) and Teams renders more;
/// a backslash before each marker makes it literal, so `[x](https://evil)` cannot become a link.
/// A single newline would be joined into the paragraph, so it becomes a paragraph break.
fn teams_char(c: char, line_blank: bool, out: &mut String) {
    match c {
        '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '>' | '<' | '~' | '!' | '|' => {
            out.push('\\');
            out.push(c);
        }
        // List markers only count at the start of a line.
        '-' | '+' if line_blank => {
            out.push('\\');
            out.push(c);
        }
        '\r' => {}
        '\n' => out.push_str("\n\n"),
        _ => out.push(c),
    }
}

/// A Standard Webhooks signing key: the bytes after `whsec_`, base64-decoded, already keyed
/// into HMAC-SHA256 so that signing cannot fail.
#[derive(Clone)]
pub(crate) struct WebhookSecret {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// Why a webhook secret was refused. None of them quotes the secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretFormatError {
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    #[error("a webhook secret is whsec_ followed by standard base64")]
    Base64,
    #[error("a webhook secret's key must be 24 to 64 bytes, not {0}")]
    Length(usize),
}

impl WebhookSecret {
    /// Reads `whsec_<base64>`. The configuration check in `ajutant_core::config` accepts exactly
    /// the same texts (a test below holds the two together).
    pub(crate) fn parse(text: &str) -> Result<Self, SecretFormatError> {
        let encoded = text
            .strip_prefix(WEBHOOK_SECRET_PREFIX)
            .ok_or(SecretFormatError::Prefix)?;
        // The decode error is dropped: it names the offending character, part of the secret.
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretFormatError::Base64)?;
        if !WEBHOOK_KEY_BYTES.contains(&key.len()) {
            return Err(SecretFormatError::Length(key.len()));
        }
        // HMAC takes a key of any length, so this cannot fail; a panic would still be wrong.
        let mac = Hmac::<Sha256>::new_from_slice(&key)
            .map_err(|_| SecretFormatError::Length(key.len()))?;
        Ok(Self { mac })
    }
}

/// The `webhook-signature` header value: `v1,` and the base64 of HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, where `body` is exactly the bytes sent.
pub(crate) fn signature(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac.clone();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ajutant_core::config::is_standard_webhook_secret;
    use time::macros::datetime;

    fn notice() -> EscalationNotice {
        EscalationNotice {
            incident_id: "inc_01".to_owned(),
            assistant_id: "asst_01".to_owned(),
            assistant_name: "HR helper".to_owned(),
            assistant_version: 3,
            deployment: Some("gpt-4o-prod".to_owned()),
            categories: vec!["harmful_content".to_owned(), "privacy".to_owned()],
            serious: true,
            helpful: Some(false),
            comment: Some("It told me a colleague's salary.".to_owned()),
            reported_by: "Alice Employee".to_owned(),
            message_id: "msg_01".to_owned(),
            conversation_id: "conv_01".to_owned(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
            opened_at: datetime!(2025-03-01 09:30:00 UTC),
            incident_url: Some("https://ajutant.example/api/v1/ops/incidents/inc_01".to_owned()),
        }
    }

    fn hostile() -> EscalationNotice {
        EscalationNotice {
            assistant_name: "<!channel> [click](https://evil.example) **now**".to_owned(),
            reported_by: "Mallory <https://evil.example|IT> & co".to_owned(),
            comment: Some("![img](https://evil.example/x.png)\n# Heading\n- item".to_owned()),
            ..notice()
        }
    }

    /// Every string anywhere in a JSON value.
    fn strings(value: &Value) -> Vec<String> {
        match value {
            Value::String(text) => vec![text.clone()],
            Value::Array(items) => items.iter().flat_map(strings).collect(),
            Value::Object(map) => map.values().flat_map(strings).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn the_generic_body_carries_every_field_and_the_comment_only_when_asked() {
        let body = generic_body(&notice(), true);
        assert_eq!(body["type"], "incident.opened");
        assert_eq!(body["timestamp"], "2025-03-01T09:30:00Z");
        let data = &body["data"];
        for key in [
            "incident_id",
            "assistant_id",
            "assistant_name",
            "assistant_version",
            "deployment",
            "categories",
            "serious",
            "helpful",
            "reported_by",
            "message_id",
            "conversation_id",
            "trace_id",
            "opened_at",
            "incident_url",
            "comment",
        ] {
            assert!(data.get(key).is_some(), "data lacks {key}: {data}");
        }
        assert_eq!(data["comment"], "It told me a colleague's salary.");
        assert_eq!(data["categories"], json!(["harmful_content", "privacy"]));
        let without = generic_body(&notice(), false);
        assert!(without["data"].get("comment").is_none(), "{without}");
    }

    #[test]
    fn the_notice_round_trips_through_json() {
        let text = serde_json::to_string(&notice()).unwrap();
        assert!(
            text.contains("\"opened_at\":\"2025-03-01T09:30:00Z\""),
            "{text}"
        );
        let back: EscalationNotice = serde_json::from_str(&text).unwrap();
        assert_eq!(back, notice());
    }

    #[test]
    fn the_teams_body_is_one_adaptive_card_with_facts_and_a_link() {
        let body = teams_body(&notice(), true);
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert!(attachment["contentUrl"].is_null());
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(
            card["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        assert_eq!(card["body"][0]["type"], "TextBlock");
        assert_eq!(card["body"][0]["text"], "Serious escalation: HR helper");
        let facts = card["body"][1]["facts"].as_array().unwrap();
        let titles: Vec<&str> = facts.iter().filter_map(|f| f["title"].as_str()).collect();
        assert_eq!(
            titles,
            [
                "Assistant",
                "Version",
                "Categories",
                "Reported by",
                "Trace id",
                "Incident"
            ]
        );
        assert_eq!(card["body"][2]["wrap"], true);
        assert!(card["body"][2]["text"].as_str().unwrap().contains("salary"));
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(
            card["actions"][0]["url"],
            "https://ajutant.example/api/v1/ops/incidents/inc_01"
        );

        let quiet = teams_body(
            &EscalationNotice {
                incident_url: None,
                trace_id: None,
                ..notice()
            },
            false,
        );
        let card = &quiet["attachments"][0]["content"];
        assert_eq!(card["body"].as_array().unwrap().len(), 2, "{card}");
        assert_eq!(card["actions"], json!([]));
        assert!(!quiet.to_string().contains("salary"));
    }

    #[test]
    fn the_slack_body_has_a_fallback_header_fields_comment_and_button() {
        let body = slack_body(&notice(), true);
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("Serious escalation: HR helper"), "{text}");
        assert!(text.contains("inc_01"), "{text}");
        let blocks = body["blocks"].as_array().unwrap();
        let kinds: Vec<&str> = blocks.iter().filter_map(|b| b["type"].as_str()).collect();
        assert_eq!(kinds, ["header", "section", "section", "actions"]);
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert!(fields.iter().all(|f| f["type"] == "mrkdwn"));
        assert!(
            fields[0]["text"]
                .as_str()
                .unwrap()
                .contains("HR helper (version 3)")
        );
        assert!(
            blocks[2]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("salary")
        );
        assert_eq!(
            blocks[3]["elements"][0]["url"],
            "https://ajutant.example/api/v1/ops/incidents/inc_01"
        );

        let quiet = slack_body(
            &EscalationNotice {
                incident_url: None,
                ..notice()
            },
            false,
        );
        let kinds: Vec<&str> = quiet["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["type"].as_str())
            .collect();
        assert_eq!(kinds, ["header", "section"]);
        assert!(!quiet.to_string().contains("salary"));
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        assert_eq!(
            escape("<!channel> & <https://e|x>", Limit::chars(100), slack_char),
            "&lt;!channel&gt; &amp; &lt;https://e|x&gt;"
        );
        let mut body = slack_body(&hostile(), true);
        // The header is plain text, which Slack shows as written; everything else is mrkdwn.
        let header = body["blocks"][0]["text"].take();
        assert_eq!(header["type"], "plain_text");
        for text in strings(&body) {
            assert!(!text.contains("<!"), "{text}");
            assert!(!text.contains("<http"), "{text}");
        }
        assert!(body["text"].as_str().unwrap().contains("&lt;!channel&gt;"));
    }

    #[test]
    fn teams_text_cannot_link_or_format() {
        assert_eq!(
            escape(
                "[x](https://e) **b** _i_ `c` ![p](q) # h > q \\",
                Limit::chars(100),
                teams_char
            ),
            r"\[x\]\(https://e\) \*\*b\*\* \_i\_ \`c\` \!\[p\]\(q\) \# h \> q \\"
        );
        assert_eq!(
            escape(" - a-b\n+ c\r\nd", Limit::chars(100), teams_char),
            " \\- a-b\n\n\\+ c\n\nd"
        );
        let body = teams_body(&hostile(), true);
        for text in strings(&body) {
            assert!(!text.contains("](http"), "{text}");
            assert!(!text.contains("![img]"), "{text}");
            assert!(!text.contains("**now**"), "{text}");
        }
    }

    #[test]
    fn a_long_comment_is_cut_with_an_ellipsis() {
        let long = "a".repeat(5_000);
        let cut = escape(&long, Limit::chars(COMMENT_SHOWN), teams_char);
        assert_eq!(cut.chars().count(), COMMENT_SHOWN);
        assert!(cut.ends_with("a…"));
        assert_eq!(escape("short", Limit::chars(5), teams_char), "short");

        // Escapes lengthen text: Slack's limit holds even for a comment of ampersands.
        let notice = EscalationNotice {
            comment: Some("&".repeat(COMMENT_SHOWN)),
            ..notice()
        };
        let body = slack_body(&notice, true);
        let comment = body["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(
            comment.chars().count() <= SLACK_TEXT_MAX,
            "{}",
            comment.len()
        );
        assert!(comment.ends_with("&amp;…"), "{comment}");
        let card = teams_body(&notice, true);
        let text = card["attachments"][0]["content"]["body"][2]["text"]
            .as_str()
            .unwrap();
        assert_eq!(text, "&".repeat(COMMENT_SHOWN));
    }

    /// The Standard Webhooks specification's published example.
    #[test]
    fn the_signature_matches_the_specification_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
    }

    #[test]
    fn the_secret_parser_and_the_configuration_check_agree() {
        let cases = [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            "whsec_".to_owned(),
            "whsec_c2hvcnQ=".to_owned(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS".to_owned(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w".to_owned(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=".to_owned(),
            format!("whsec_{}=", "A".repeat(43)),
            format!("whsec_{}B=", "A".repeat(42)),
            format!("whsec_{}", "A".repeat(31)),
            format!("whsec_{}==", "A".repeat(86)),
            format!("whsec_{}=", "A".repeat(87)),
            format!("whsec_{}", "A".repeat(44)),
            format!("whsec_{}===", "A".repeat(41)),
        ];
        for case in &cases {
            assert_eq!(
                WebhookSecret::parse(case).is_ok(),
                is_standard_webhook_secret(case),
                "{case}"
            );
        }
        assert!(matches!(
            WebhookSecret::parse("secret"),
            Err(SecretFormatError::Prefix)
        ));
        assert!(matches!(
            WebhookSecret::parse("whsec_c2hvcnQ="),
            Err(SecretFormatError::Length(5))
        ));
    }
}

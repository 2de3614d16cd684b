//! HTML: html5ever's tokenizer only (no DOM is built). It decodes entities and reads
//! script/style contents as raw text; this sink drops those and navigation, makes sections at
//! `h1`..`h6`, and breaks paragraphs at block elements. Whitespace collapses as a browser
//! shows it, except inside `pre`.

use std::borrow::Cow;
use std::cell::RefCell;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use html5ever::TokenizerResult;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

use super::sections::{SectionBuilder, collapse_whitespace};
use super::{DocumentKind, ExtractError, Extracted};

pub(crate) fn extract(bytes: &[u8], limit: u64) -> Result<Extracted, ExtractError> {
    let text = decode(bytes);
    let sink = Sink {
        state: RefCell::new(State::new(limit)),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(&text));
    // The sink never asks to pause for a script, so one feed consumes everything; the loop
    // only guards against a future tokenizer that returns early.
    while let TokenizerResult::Script(()) = tokenizer.feed(&input) {}
    tokenizer.end();
    let state = tokenizer.sink.state.into_inner();
    state.finish()
}

/// HTML may be in a legacy encoding: a BOM wins, then UTF-8 if the bytes are valid, then a
/// `<meta charset>` near the top, then windows-1252 (what browsers assume).
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        return encoding
            .decode_without_bom_handling(bytes.get(bom..).unwrap_or_default())
            .0;
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let encoding = declared_charset(bytes).unwrap_or(WINDOWS_1252);
    let encoding = if encoding == UTF_8 {
        WINDOWS_1252
    } else {
        encoding
    };
    encoding.decode_without_bom_handling(bytes).0
}

/// The `charset=` label in the first 1024 bytes, as the HTML prescan looks for it.
pub(crate) fn declared_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes.get(..bytes.len().min(1024))?;
    let lower = head.to_ascii_lowercase();
    let at = find(&lower, b"charset=")? + b"charset=".len();
    let rest = lower.get(at..)?;
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let end = rest
        .iter()
        .position(|b| matches!(b, b'"' | b'\'' | b';' | b'>' | b'/' | b' ' | b'\t' | b'\n'))
        .unwrap_or(rest.len());
    Encoding::for_label(rest.get(..end)?)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Sink {
    state: RefCell<State>,
}

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        self.state.borrow_mut().token(token)
    }
}

struct State {
    sections: SectionBuilder,
    /// The first error; later tokens are ignored once it is set.
    error: Option<ExtractError>,
    title: Option<String>,
    first_h1: Option<String>,
    in_title: bool,
    title_text: String,
    /// Inside an element read as raw text that is not content (script, style, ...).
    in_raw: bool,
    /// Inside skipped markup (nav, template, ...): the element's name and nesting depth.
    skipping: Option<(String, usize)>,
    heading: Option<(u8, String)>,
    pre_depth: usize,
    paragraph: String,
    pending_space: bool,
    limit: u64,
}

/// Read as raw text and dropped: never content a reader sees as text.
const RAW_SKIPPED: &[&str] = &[
    "script", "style", "noscript", "xmp", "iframe", "noembed", "noframes", "textarea",
];

/// Dropped with everything inside: navigation and markup that is not the page's text.
const SKIPPED: &[&str] = &["nav", "template", "svg", "math", "select", "object"];

/// Elements that start and end a paragraph.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "center",
    "details",
    "dialog",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hgroup",
    "hr",
    "legend",
    "main",
    "menu",
    "ol",
    "p",
    "section",
    "summary",
    "table",
    "ul",
];

/// Elements that start a new line within a paragraph.
const LINES: &[&str] = &["br", "li", "dt", "dd", "tr", "option"];

impl State {
    fn new(limit: u64) -> Self {
        Self {
            sections: SectionBuilder::new(limit),
            error: None,
            title: None,
            first_h1: None,
            in_title: false,
            title_text: String::new(),
            in_raw: false,
            skipping: None,
            heading: None,
            pre_depth: 0,
            paragraph: String::new(),
            pending_space: false,
            limit,
        }
    }

    fn token(&mut self, token: Token) -> TokenSinkResult<()> {
        if self.error.is_some() {
            return TokenSinkResult::Continue;
        }
        let result = match token {
            Token::TagToken(tag) => {
                let name: &str = &tag.name;
                match tag.kind {
                    TagKind::StartTag => self.start(name, tag.self_closing),
                    TagKind::EndTag => self.end(name).map(|()| TokenSinkResult::Continue),
                }
            }
            Token::CharacterTokens(text) => self.text(&text).map(|()| TokenSinkResult::Continue),
            Token::EOFToken => self.end_paragraph().map(|()| TokenSinkResult::Continue),
            _ => Ok(TokenSinkResult::Continue),
        };
        result.unwrap_or_else(|error| {
            self.error = Some(error);
            TokenSinkResult::Continue
        })
    }

    fn start(
        &mut self,
        name: &str,
        self_closing: bool,
    ) -> Result<TokenSinkResult<()>, ExtractError> {
        // The tokenizer must switch to raw text for these even inside skipped markup, or a
        // `<` in a script would be read as a tag.
        if RAW_SKIPPED.contains(&name) {
            self.in_raw = true;
            let kind = match name {
                "script" => RawKind::ScriptData,
                "textarea" => RawKind::Rcdata,
                _ => RawKind::Rawtext,
            };
            return Ok(TokenSinkResult::RawData(kind));
        }
        if name == "title" && self.skipping.is_none() && self.title.is_none() {
            self.in_title = true;
            return Ok(TokenSinkResult::RawData(RawKind::Rcdata));
        }
        if let Some((skipped, depth)) = &mut self.skipping {
            if skipped == name && !self_closing {
                *depth += 1;
            }
            return Ok(TokenSinkResult::Continue);
        }
        if SKIPPED.contains(&name) {
            if !self_closing {
                self.skipping = Some((name.to_owned(), 1));
            }
            return Ok(TokenSinkResult::Continue);
        }
        if name == "plaintext" {
            self.end_paragraph()?;
            return Ok(TokenSinkResult::Plaintext);
        }
        if let Some(level) = heading_level(name) {
            self.end_paragraph()?;
            self.heading = Some((level, String::new()));
        } else if name == "pre" {
            self.end_paragraph()?;
            self.pre_depth += 1;
        } else if BLOCKS.contains(&name) {
            self.end_paragraph()?;
        } else if LINES.contains(&name) {
            self.new_line();
        } else if matches!(name, "td" | "th") {
            let line = self.paragraph.rsplit('\n').next().unwrap_or_default();
            if !line.trim().is_empty() {
                self.paragraph.push_str(" | ");
            }
            self.pending_space = false;
        }
        Ok(TokenSinkResult::Continue)
    }

    fn end(&mut self, name: &str) -> Result<(), ExtractError> {
        if self.in_raw {
            // In raw text the tokenizer only emits the end tag that closes the element.
            self.in_raw = false;
            return Ok(());
        }
        if self.in_title {
            self.in_title = false;
            let title = collapse_whitespace(&self.title_text);
            self.title = Some(title).filter(|t| !t.is_empty());
            return Ok(());
        }
        if let Some((skipped, depth)) = &mut self.skipping {
            if skipped == name {
                *depth -= 1;
            }
            // An unclosed `<nav>` must not swallow the rest of the page.
            if *depth == 0 || matches!(name, "body" | "html") {
                self.skipping = None;
            }
            return Ok(());
        }
        if heading_level(name).is_some() {
            if let Some((level, text)) = self.heading.take() {
                if level == 1 && self.first_h1.is_none() {
                    self.first_h1 = Some(collapse_whitespace(&text)).filter(|t| !t.is_empty());
                }
                self.sections.heading(level, &text)?;
            }
        } else if name == "pre" {
            self.end_paragraph()?;
            self.pre_depth = self.pre_depth.saturating_sub(1);
        } else if BLOCKS.contains(&name) {
            self.end_paragraph()?;
        } else if name == "br" {
            // `</br>` is treated as `<br>` by browsers.
            self.new_line();
        }
        Ok(())
    }

    fn text(&mut self, text: &str) -> Result<(), ExtractError> {
        if self.in_title {
            if self.title_text.len() < 4096 {
                self.title_text.push_str(text);
            }
            return Ok(());
        }
        if self.in_raw || self.skipping.is_some() {
            return Ok(());
        }
        let target = match &mut self.heading {
            Some((_, heading)) => heading,
            None => &mut self.paragraph,
        };
        if self.pre_depth > 0 {
            target.push_str(text);
        } else {
            for c in text.chars() {
                if c.is_whitespace() {
                    self.pending_space = true;
                    continue;
                }
                if self.pending_space && !target.is_empty() && !target.ends_with('\n') {
                    target.push(' ');
                }
                self.pending_space = false;
                target.push(c);
            }
        }
        if target.len() as u64 > self.limit {
            return Err(ExtractError::TextTooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn new_line(&mut self) {
        if self.heading.is_none() && !self.paragraph.is_empty() && !self.paragraph.ends_with('\n') {
            self.paragraph.push('\n');
        }
        self.pending_space = false;
    }

    fn end_paragraph(&mut self) -> Result<(), ExtractError> {
        self.pending_space = false;
        if self.heading.is_some() {
            // A block inside a heading (`<h2><div>..`) does not end the heading.
            return Ok(());
        }
        let paragraph = std::mem::take(&mut self.paragraph);
        let trimmed: String = paragraph
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n");
        self.sections.paragraph(&trimmed)
    }

    fn finish(mut self) -> Result<Extracted, ExtractError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        // An unclosed heading at the end of the page is still a heading.
        if let Some((level, text)) = self.heading.take() {
            self.sections.heading(level, &text)?;
        }
        self.end_paragraph()?;
        Ok(Extracted {
            kind: DocumentKind::Html,
            title: self.title.or(self.first_h1),
            sections: self.sections.finish(),
        })
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(source: &str) -> Extracted {
        extract(source.as_bytes(), 1 << 20).unwrap()
    }

    #[test]
    fn scripts_styles_and_navigation_are_dropped() {
        let doc = html(
            r#"<!doctype html><html><head><title>Leave &amp; absence</title>
            <style>h1 { color: red }</style><script>if (a < b) { document.write("<h1>x</h1>") }</script></head>
            <body><nav><ul><li><a href="/">Home</a></li></ul></nav>
            <noscript>Enable JavaScript</noscript><template><p>hidden</p></template>
            <h1>Leave policy</h1><p>Everyone gets   25&nbsp;days.</p></body></html>"#,
        );
        assert_eq!(doc.title.as_deref(), Some("Leave & absence"));
        assert_eq!(doc.sections.len(), 1);
        assert_eq!(doc.sections[0].headings, ["Leave policy"]);
        assert_eq!(doc.sections[0].text, "Everyone gets 25 days.");
    }

    #[test]
    fn headings_make_sections_and_blocks_make_paragraphs() {
        let doc = html(
            "<h1>Handbook</h1><p>Intro <b>bold</b> text.</p><div>Second</div>\
             <h2>Leave</h2><h3>Parental <em>leave</em></h3><ul><li>one</li><li>two</li></ul>\
             <h2>Travel</h2><p>a<br>b</p><table><tr><th>Grade</th><th>Limit</th></tr>\
             <tr><td>A</td><td>&euro;100</td></tr></table>",
        );
        assert_eq!(doc.title.as_deref(), Some("Handbook"));
        assert_eq!(doc.sections[0].text, "Intro bold text.\n\nSecond");
        assert_eq!(
            doc.sections[1].headings,
            ["Handbook", "Leave", "Parental leave"]
        );
        assert_eq!(doc.sections[1].text, "one\ntwo");
        assert_eq!(doc.sections[2].headings, ["Handbook", "Travel"]);
        assert_eq!(doc.sections[2].text, "a\nb\n\nGrade | Limit\nA | €100");
    }

    #[test]
    fn pre_keeps_its_whitespace() {
        let doc = html("<p>x</p><pre>fn main() {\n    run();\n}</pre>");
        assert_eq!(doc.sections[0].text, "x\n\nfn main() {\n    run();\n}");
    }

    #[test]
    fn an_unclosed_nav_does_not_swallow_the_page() {
        let doc = html("<body><nav>menu<p>x</body><p>after</p>");
        assert_eq!(doc.sections[0].text, "after");
    }

    #[test]
    fn a_legacy_charset_is_honoured() {
        let doc = extract(
            b"<html><head><meta charset=\"iso-8859-1\"></head><body><p>Gr\xFC\xDFe</p></body></html>",
            1 << 20,
        )
        .unwrap();
        assert_eq!(doc.sections[0].text, "Grüße");
    }
}

//! Markdown: sections at ATX (`## Title`) and setext (`Title` over `===`/`---`) headings, the
//! body kept as written. A `#` inside a fenced code block is code, not a heading. YAML front
//! matter is dropped, and its `title:` is used when there is no level-1 heading.

use super::sections::{SectionBuilder, collapse_whitespace};
use super::{DocumentKind, ExtractError, Extracted, text};

pub(crate) fn extract(bytes: &[u8], limit: u64) -> Result<Extracted, ExtractError> {
    let text = text::decode(bytes, DocumentKind::Markdown)?;
    let (front_title, body) = split_front_matter(&text);
    let lines: Vec<&str> = body.lines().collect();
    let mut sections = SectionBuilder::new(limit);
    let mut title: Option<String> = None;
    let mut fence: Option<Fence> = None;
    // Whether the previous line ended a block, so the next line may be a setext heading.
    let mut at_block_start = true;
    let mut i = 0;
    while let Some(&line) = lines.get(i) {
        i += 1;
        if let Some(open) = &fence {
            if open.is_closed_by(line) {
                fence = None;
            }
            sections.line(line)?;
            continue;
        }
        if let Some(open) = Fence::opened_by(line) {
            fence = Some(open);
            sections.line(line)?;
            at_block_start = false;
            continue;
        }
        if let Some((level, heading)) = atx_heading(line) {
            if level == 1 && title.is_none() {
                title = Some(collapse_whitespace(heading)).filter(|t| !t.is_empty());
            }
            sections.heading(level, heading)?;
            at_block_start = true;
            continue;
        }
        if at_block_start
            && could_be_setext_text(line)
            && let Some(level) = lines.get(i).and_then(|next| setext_underline(next))
        {
            if level == 1 && title.is_none() {
                title = Some(collapse_whitespace(line));
            }
            sections.heading(level, line)?;
            i += 1;
            at_block_start = true;
            continue;
        }
        sections.line(line)?;
        at_block_start = line.trim().is_empty();
    }
    Ok(Extracted {
        kind: DocumentKind::Markdown,
        title: title.or(front_title),
        sections: sections.finish(),
    })
}

struct Fence {
    marker: char,
    len: usize,
}

impl Fence {
    fn opened_by(line: &str) -> Option<Fence> {
        let rest = strip_indent(line)?;
        let marker = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let len = rest.chars().take_while(|c| *c == marker).count();
        // A backtick fence's info string cannot hold a backtick (CommonMark), which keeps
        // inline code such as ```x``` from opening a block.
        if len < 3 || (marker == '`' && rest[len..].contains('`')) {
            return None;
        }
        Some(Fence { marker, len })
    }

    fn is_closed_by(&self, line: &str) -> bool {
        let Some(rest) = strip_indent(line) else {
            return false;
        };
        let len = rest.chars().take_while(|c| *c == self.marker).count();
        len >= self.len && rest[len * self.marker.len_utf8()..].trim().is_empty()
    }
}

/// The line without up to three spaces of indentation; `None` when indented further (an
/// indented code block, never a heading or fence).
fn strip_indent(line: &str) -> Option<&str> {
    let spaces = line.bytes().take_while(|b| *b == b' ').count();
    (spaces <= 3).then(|| &line[spaces..])
}

fn atx_heading(line: &str) -> Option<(u8, &str)> {
    let rest = strip_indent(line)?;
    let level = rest.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let after = &rest[level..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let mut heading = after.trim();
    // An optional closing run of `#`, when separated by a space, is not part of the heading.
    let without_hashes = heading.trim_end_matches('#');
    if without_hashes.is_empty() || without_hashes.ends_with([' ', '\t']) {
        heading = without_hashes.trim_end();
    }
    Some((level as u8, heading))
}

fn setext_underline(line: &str) -> Option<u8> {
    let rest = strip_indent(line)?.trim_end();
    let marker = rest.chars().next()?;
    let level = match marker {
        '=' => 1,
        '-' => 2,
        _ => return None,
    };
    rest.chars().all(|c| c == marker).then_some(level)
}

/// A line that can sit above a setext underline: not blank, and not a list item, quote,
/// table row or thematic break (above which `---` is a rule, not an underline).
fn could_be_setext_text(line: &str) -> bool {
    let Some(rest) = strip_indent(line) else {
        return false;
    };
    let rest = rest.trim_end();
    if rest.is_empty() || rest.starts_with(['>', '|', '-', '*', '+', '=']) {
        return false;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let numbered = digits > 0 && rest[digits..].starts_with(['.', ')']);
    !numbered
}

/// YAML front matter (`---` on the first line up to the next `---` or `...`), if any, and
/// the text after it. Only `title:` is read; the rest is metadata, not content.
fn split_front_matter(text: &str) -> (Option<String>, &str) {
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return (None, text);
    }
    let mut offset = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut title = None;
    for line in lines {
        offset += line.len();
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed == "..." {
            return (title, &text[offset..]);
        }
        if let Some(value) = trimmed.strip_prefix("title:") {
            let value = value.trim().trim_matches(['"', '\'']).trim();
            if !value.is_empty() {
                title = Some(value.to_owned());
            }
        }
    }
    // No closing line: it was a thematic break, not front matter.
    (None, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(md: &str) -> Extracted {
        extract(md.as_bytes(), 1 << 20).unwrap()
    }

    #[test]
    fn atx_headings_make_a_heading_path_and_the_first_h1_is_the_title() {
        let doc = sections(
            "# Handbook\n\nWelcome.\n\n## Leave ##\n\n### Parental leave\n\nTwelve weeks.\n\n## Travel\nBook early.\n",
        );
        assert_eq!(doc.title.as_deref(), Some("Handbook"));
        let paths: Vec<_> = doc
            .sections
            .iter()
            .map(|s| s.headings.join(" > "))
            .collect();
        assert_eq!(
            paths,
            [
                "Handbook",
                "Handbook > Leave > Parental leave",
                "Handbook > Travel"
            ]
        );
        assert_eq!(doc.sections[1].text, "Twelve weeks.");
    }

    #[test]
    fn a_hash_inside_a_code_fence_is_not_a_heading() {
        let doc = sections(
            "# Setup\n\n```bash\n# install\napt-get install x\n```\n\n~~~~\n# still code\n~~~\n~~~~\nafter\n",
        );
        assert_eq!(doc.sections.len(), 1);
        let text = &doc.sections[0].text;
        assert!(text.contains("# install"));
        assert!(text.contains("# still code"));
        assert!(text.ends_with("after"));
    }

    #[test]
    fn setext_headings_are_recognised_but_a_rule_under_a_list_is_not() {
        let doc =
            sections("Guide\n=====\n\nIntro.\n\nDetails\n-------\ntext\n\n- item\n---\nend\n");
        assert_eq!(doc.title.as_deref(), Some("Guide"));
        assert_eq!(doc.sections[1].headings, ["Guide", "Details"]);
        assert!(doc.sections[1].text.contains("- item\n---\nend"));
    }

    #[test]
    fn hashes_without_a_space_or_indented_four_spaces_are_text() {
        let doc = sections("#hashtag\n    # code\n####### seven\n");
        assert_eq!(doc.sections.len(), 1);
        assert!(doc.sections[0].headings.is_empty());
    }

    #[test]
    fn front_matter_is_dropped_and_gives_a_title() {
        let doc =
            sections("---\ntitle: \"Expenses\"\nowner: finance\n---\nClaim within 30 days.\n");
        assert_eq!(doc.title.as_deref(), Some("Expenses"));
        assert_eq!(doc.sections[0].text, "Claim within 30 days.");
    }
}

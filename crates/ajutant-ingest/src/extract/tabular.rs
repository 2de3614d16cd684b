//! CSV and JSON, rendered as self-describing lines: a CSV row becomes
//! `header: value; header: value`, a JSON leaf becomes `path.to.key: value`, so a passage cut
//! from the middle of a file still says what each value is.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::sections::SectionBuilder;
use super::{DocumentKind, ExtractError, Extracted, text};

/// CSV rows per section. Sections carry no headings, so this only bounds how much the chunker
/// sees at once and keeps neighbouring rows together.
const ROWS_PER_SECTION: usize = 50;

pub(crate) fn extract_csv(bytes: &[u8], limit: u64) -> Result<Extracted, ExtractError> {
    let text = text::decode(bytes, DocumentKind::Csv)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(guess_delimiter(&text))
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let headers: Vec<String> = match records.next() {
        Some(row) => row
            .map_err(csv_error)?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect(),
        None => Vec::new(),
    };
    let mut sections = SectionBuilder::new(limit);
    let mut block = String::new();
    let mut rows_in_block = 0;
    for row in records {
        let row = row.map_err(csv_error)?;
        let mut line = String::new();
        for (i, value) in row.iter().enumerate() {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if !line.is_empty() {
                line.push_str("; ");
            }
            match headers.get(i).filter(|h| !h.is_empty()) {
                Some(header) => line.push_str(header),
                None => line.push_str(&format!("column {}", i + 1)),
            }
            line.push_str(": ");
            // A value with line breaks would otherwise break the one-row-per-line shape.
            line.extend(
                value
                    .chars()
                    .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
            );
        }
        if line.is_empty() {
            continue;
        }
        // Checked per row: repeating the headers can make the text far larger than the file.
        sections.check(block.len() + line.len() + 1)?;
        block.push_str(&line);
        block.push('\n');
        rows_in_block += 1;
        if rows_in_block == ROWS_PER_SECTION {
            flush_block(&mut sections, &mut block)?;
            rows_in_block = 0;
        }
    }
    flush_block(&mut sections, &mut block)?;
    Ok(Extracted {
        kind: DocumentKind::Csv,
        title: None,
        sections: sections.finish(),
    })
}

fn flush_block(sections: &mut SectionBuilder, block: &mut String) -> Result<(), ExtractError> {
    if !block.is_empty() {
        sections.paragraph(block)?;
        sections.split();
        block.clear();
    }
    Ok(())
}

fn csv_error(error: csv::Error) -> ExtractError {
    let reason = match error.position() {
        Some(position) => format!("line {} cannot be read", position.line()),
        None => "a row cannot be read".to_owned(),
    };
    ExtractError::Corrupt {
        kind: DocumentKind::Csv,
        reason,
    }
}

/// Comma unless the header line clearly uses semicolons (common where the decimal separator
/// is a comma), tabs or pipes.
fn guess_delimiter(text: &str) -> u8 {
    let first_line = text.lines().next().unwrap_or_default();
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0), (b'|', 0)];
    let mut quoted = false;
    for byte in first_line.bytes() {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(entry) = counts.iter_mut().find(|(d, _)| *d == byte) {
            entry.1 += 1;
        }
    }
    counts
        .iter()
        .copied()
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .map_or(b',', |(d, _)| d)
}

pub(crate) fn extract_json(bytes: &[u8], limit: u64) -> Result<Extracted, ExtractError> {
    let text = text::decode(bytes, DocumentKind::Json)?;
    let value: Node = serde_json::from_str(&text).map_err(|e| ExtractError::Corrupt {
        kind: DocumentKind::Json,
        reason: format!(
            "it is not valid JSON ({} at line {}, column {})",
            json_problem(&e),
            e.line(),
            e.column()
        ),
    })?;
    let mut sections = SectionBuilder::new(limit);
    // Each top-level entry is a paragraph, so a passage boundary falls between records rather
    // than inside one when it can.
    let mut paragraph = String::new();
    match &value {
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("[{i}]"), item, &mut paragraph, &mut sections)?;
                sections.paragraph(&paragraph)?;
                paragraph.clear();
            }
        }
        Node::Object(fields) => {
            for (key, item) in fields {
                flatten(key, item, &mut paragraph, &mut sections)?;
                sections.paragraph(&paragraph)?;
                paragraph.clear();
            }
        }
        scalar => {
            flatten("value", scalar, &mut paragraph, &mut sections)?;
            sections.paragraph(&paragraph)?;
        }
    }
    Ok(Extracted {
        kind: DocumentKind::Json,
        title: None,
        sections: sections.finish(),
    })
}

fn json_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Eof => "it ends too early",
        serde_json::error::Category::Syntax => "a syntax error",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "unreadable data",
    }
}

/// Writes one `path: value` line per leaf. Recursion depth is bounded by serde_json's own
/// nesting limit (128), so it cannot exhaust the stack.
fn flatten(
    path: &str,
    value: &Node,
    out: &mut String,
    sections: &mut SectionBuilder,
) -> Result<(), ExtractError> {
    let rendered = match value {
        Node::Null => return Ok(()),
        Node::Object(fields) => {
            for (key, item) in fields {
                flatten(&format!("{path}.{key}"), item, out, sections)?;
            }
            return Ok(());
        }
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), item, out, sections)?;
            }
            return Ok(());
        }
        Node::String(s) if s.trim().is_empty() => return Ok(()),
        Node::String(s) => s.replace(['\n', '\r'], " "),
        Node::Bool(b) => b.to_string(),
        Node::Number(n) => n.to_string(),
    };
    // Checked per leaf, not only per paragraph: repeated paths can make the text far larger
    // than the file, and one huge object should stop early.
    sections.check(out.len() + path.len() + rendered.len() + 3)?;
    out.push_str(path);
    out.push_str(": ");
    out.push_str(&rendered);
    out.push('\n');
    Ok(())
}

/// A JSON value that keeps object keys in document order (serde_json's own `Value` sorts
/// them unless a workspace-wide feature is turned on), so lines read in the author's order.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            fields.push((key, value));
        }
        Ok(Node::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_self_describing_lines() {
        let doc = extract_csv(
            b"name,office,phone\nAda,London,\nGrace,\"New York, NY\",555\n\n",
            1 << 20,
        )
        .unwrap();
        assert_eq!(doc.sections.len(), 1);
        assert!(doc.sections[0].headings.is_empty());
        assert_eq!(
            doc.sections[0].text,
            "name: Ada; office: London\nname: Grace; office: New York, NY; phone: 555"
        );
    }

    #[test]
    fn csv_sections_hold_fifty_rows_and_semicolons_are_detected() {
        let mut csv = String::from("id;wert\n");
        for i in 0..120 {
            csv.push_str(&format!("{i};{},5\n", i * 2));
        }
        let doc = extract_csv(csv.as_bytes(), 1 << 20).unwrap();
        assert_eq!(doc.sections.len(), 3);
        assert_eq!(doc.sections[0].text.lines().count(), 50);
        assert_eq!(doc.sections[2].text.lines().count(), 20);
        assert!(doc.sections[0].text.starts_with("id: 0; wert: 0,5\n"));
    }

    #[test]
    fn extra_csv_fields_are_named_by_column() {
        let doc = extract_csv(b"a\n1,2\n", 1 << 20).unwrap();
        assert_eq!(doc.sections[0].text, "a: 1; column 2: 2");
    }

    #[test]
    fn json_is_flattened_to_paths() {
        let doc = extract_json(
            br#"{"policy": {"name": "Travel", "limits": [100, 250.5]}, "active": true, "note": null}"#,
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            doc.sections[0].text,
            "policy.name: Travel\npolicy.limits[0]: 100\npolicy.limits[1]: 250.5\n\nactive: true"
        );
    }

    #[test]
    fn invalid_json_is_corrupt_with_its_position() {
        let err = extract_json(b"{\n  \"a\": 1,\n  \"b\": }", 1 << 20).unwrap_err();
        assert_eq!(err.code(), "corrupt");
        let message = err.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(message.starts_with("the JSON file is damaged"), "{message}");
    }

    #[test]
    fn json_over_the_text_limit_is_refused() {
        let big = format!("[\"{}\"]", "x".repeat(5000));
        assert_eq!(
            extract_json(big.as_bytes(), 1000).unwrap_err().code(),
            "too_large"
        );
    }
}

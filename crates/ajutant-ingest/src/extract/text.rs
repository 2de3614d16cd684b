//! Bytes to `str` for the text formats, and plain text itself. Text must be UTF-8 (a BOM is
//! dropped); UTF-16 is accepted when a BOM says so, because Windows tools still write it.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

use super::sections::SectionBuilder;
use super::{DocumentKind, ExtractError, Extracted};

/// The text of a text-format file, or where it stops being UTF-8.
pub(crate) fn decode(bytes: &[u8], kind: DocumentKind) -> Result<Cow<'_, str>, ExtractError> {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        let body = bytes.get(bom..).unwrap_or_default();
        if encoding == UTF_8 {
            return utf8(body).map(Cow::Borrowed).map_err(|e| shift(e, bom));
        }
        return encoding
            .decode_without_bom_handling_and_without_replacement(body)
            .ok_or_else(|| ExtractError::Corrupt {
                kind,
                reason: format!("it is marked as {} but is not valid", encoding.name()),
            });
    }
    utf8(bytes).map(Cow::Borrowed)
}

fn utf8(bytes: &[u8]) -> Result<&str, ExtractError> {
    std::str::from_utf8(bytes).map_err(|e| ExtractError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })
}

fn shift(error: ExtractError, by: usize) -> ExtractError {
    match error {
        ExtractError::InvalidUtf8 { offset } => ExtractError::InvalidUtf8 {
            offset: offset + by,
        },
        other => other,
    }
}

/// Plain text is one section; the chunker finds its paragraphs.
pub(crate) fn extract(bytes: &[u8], limit: u64) -> Result<Extracted, ExtractError> {
    let text = decode(bytes, DocumentKind::Text)?;
    let mut sections = SectionBuilder::new(limit);
    // Normalised line ends keep blank-line detection simple downstream.
    sections.paragraph(&text.replace("\r\n", "\n"))?;
    Ok(Extracted {
        kind: DocumentKind::Text,
        title: None,
        sections: sections.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utf8_bom_is_dropped() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFhello", DocumentKind::Text).unwrap(),
            "hello"
        );
    }

    #[test]
    fn utf16_with_a_bom_is_decoded() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "Grüße".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(decode(&bytes, DocumentKind::Text).unwrap(), "Grüße");
    }

    #[test]
    fn invalid_utf8_reports_the_offset_in_the_file() {
        assert_eq!(
            decode(b"abc\xFFdef", DocumentKind::Text),
            Err(ExtractError::InvalidUtf8 { offset: 3 })
        );
        assert_eq!(
            decode(b"\xEF\xBB\xBFab\xC3", DocumentKind::Text),
            Err(ExtractError::InvalidUtf8 { offset: 5 })
        );
    }
}

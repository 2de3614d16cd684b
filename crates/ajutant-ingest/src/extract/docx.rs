//! DOCX: a zip holding WordprocessingML. Only `word/document.xml` (the body), `word/styles.xml`
//! (which styles are headings) and `docProps/core.xml` (the title) are opened.
//!
//! A zip can claim small sizes and inflate to gigabytes, so before anything is inflated the
//! entry count, each part's declared size and its compression ratio are checked, and while
//! inflating the size is enforced again (`take`), because the declared size is only a claim
//! the decompressor does not hold the data to.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use zip::ZipArchive;
use zip::result::ZipError;

use super::sections::{SectionBuilder, collapse_whitespace};
use super::zipdir::CentralDirectory;
use super::{DocumentKind, ExtractError, Extracted, Limits};

const DOCUMENT: &str = "word/document.xml";
const STYLES: &str = "word/styles.xml";
const CORE: &str = "docProps/core.xml";

/// Inflated size a part may reach per byte of extracted-text limit: WordprocessingML wraps
/// every run of text in several elements, so the XML is several times the text.
const XML_PER_TEXT_BYTE: u64 = 4;

/// Deflate rarely packs real XML better than about 20:1; zeros and other bomb fillers pack
/// about 1000:1.
const MAX_RATIO: u64 = 100;

/// Below this a high ratio is harmless (a short, repetitive part).
const RATIO_CHECK_FROM: u64 = 1 << 20;

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let directory = CentralDirectory::read(bytes).map_err(corrupt)?;
    if directory.entries > limits.max_docx_entries as u64 {
        return Err(ExtractError::Bomb(format!(
            "the archive lists {} entries, over the limit of {}",
            directory.entries, limits.max_docx_entries
        )));
    }
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|error| {
        tracing::info!(%error, "DOCX zip could not be opened");
        corrupt("its zip structure is broken")
    })?;
    let part_limit = limits.max_text_bytes.saturating_mul(XML_PER_TEXT_BYTE);
    let document = read_part(&mut archive, DOCUMENT, part_limit)?
        .ok_or_else(|| corrupt("it has no main document part (word/document.xml)"))?;
    // Styles and properties are optional: without them headings fall back to style ids and
    // there is no title, which is still a readable document.
    let styles = match read_part(&mut archive, STYLES, part_limit) {
        Ok(Some(xml)) => heading_styles(&xml),
        Ok(None) | Err(ExtractError::Corrupt { .. }) => HashMap::new(),
        Err(error) => return Err(error),
    };
    let core_title = match read_part(&mut archive, CORE, 1 << 20) {
        Ok(Some(xml)) => core_title(&xml),
        Ok(None) | Err(ExtractError::Corrupt { .. }) => None,
        Err(error) => return Err(error),
    };
    let mut body = Body::new(&styles, limits.max_text_bytes);
    body.read(&document)?;
    let heading_title = body.title.take();
    Ok(Extracted {
        kind: DocumentKind::Docx,
        title: core_title.or(heading_title),
        sections: body.sections.finish(),
    })
}

fn corrupt(reason: &str) -> ExtractError {
    ExtractError::Corrupt {
        kind: DocumentKind::Docx,
        reason: reason.to_owned(),
    }
}

/// One part's inflated bytes as UTF-8, `None` if the archive does not have it.
fn read_part(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: u64,
) -> Result<Option<String>, ExtractError> {
    let file = match archive.by_name(name) {
        Ok(file) => file,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(ZipError::UnsupportedArchive(what)) => {
            tracing::info!(
                part = name,
                what,
                "DOCX part uses an unsupported zip feature"
            );
            return Err(corrupt(
                "it uses a zip feature that is not supported (encryption or an unusual compression method)",
            ));
        }
        Err(error) => {
            tracing::info!(part = name, %error, "DOCX part could not be opened");
            return Err(corrupt("its zip structure is broken"));
        }
    };
    let declared = file.size();
    if declared > limit {
        return Err(ExtractError::Bomb(format!(
            "{name} would unpack to {declared} bytes, over the limit of {limit}"
        )));
    }
    let ratio = declared / file.compressed_size().max(1);
    if declared >= RATIO_CHECK_FROM && ratio > MAX_RATIO {
        return Err(ExtractError::Bomb(format!(
            "{name} is compressed {ratio}:1, far more than a real document"
        )));
    }
    // The declared size sizes the buffer only up to a modest amount: it is a claim.
    let mut xml = Vec::with_capacity(declared.min(16 << 20) as usize);
    file.take(limit + 1)
        .read_to_end(&mut xml)
        .map_err(|error| {
            tracing::info!(part = name, %error, "DOCX part could not be inflated");
            corrupt("its compressed data is damaged")
        })?;
    if xml.len() as u64 > limit {
        return Err(ExtractError::Bomb(format!(
            "{name} unpacks to more than {limit} bytes although it declares {declared}"
        )));
    }
    String::from_utf8(xml)
        .map(Some)
        .map_err(|_| corrupt("its XML is not UTF-8"))
}

/// Heading level of each paragraph style that is a heading: `Title` is 0, `heading N` is N.
/// Style ids are localised (`berschrift1` in German Word), names of built-in styles are not,
/// so the name decides; the outline level covers custom heading styles.
fn heading_styles(xml: &str) -> HashMap<String, u8> {
    let mut levels = HashMap::new();
    let mut reader = Reader::from_str(xml);
    let mut style: Option<(String, Option<u8>)> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == "style" => {
                style = attr(&e, "styleId").map(|id| (id, None));
            }
            Ok(Event::Empty(e)) => {
                let Some((_, level)) = &mut style else {
                    continue;
                };
                match e.local_name().as_ref() {
                    "name" => {
                        if let Some(name) = attr(&e, "val") {
                            *level = level.or(level_from_name(&name));
                        }
                    }
                    "outlineLvl" => {
                        if let Some(outline) = attr(&e, "val").and_then(|v| v.parse::<u8>().ok()) {
                            *level = level.or(outline_level(outline));
                        }
                    }
                    _ => {}
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == "style" => {
                if let Some((id, Some(level))) = style.take() {
                    levels.insert(id, level);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    levels
}

fn level_from_name(name: &str) -> Option<u8> {
    let name = name.trim().to_ascii_lowercase();
    if name == "title" {
        return Some(0);
    }
    let digits = name.strip_prefix("heading").map(|rest| rest.trim_start())?;
    digits.parse::<u8>().ok().filter(|n| (1..=6).contains(n))
}

/// `w:outlineLvl` counts from 0 (level 1); 9 means body text.
fn outline_level(outline: u8) -> Option<u8> {
    (outline < 6).then_some(outline + 1)
}

fn attr(element: &BytesStart<'_>, local: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

fn core_title(xml: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == "title" => in_title = true,
            Ok(Event::End(e)) if e.local_name().as_ref() == "title" => break,
            Ok(Event::Text(t)) if in_title => title.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) if in_title => push_reference(&mut title, &r),
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Some(collapse_whitespace(&title)).filter(|t| !t.is_empty())
}

/// `&amp;`, `&#233;`: quick-xml reports entity references apart from the text around them,
/// so dropping them would silently lose characters.
fn push_reference(out: &mut String, reference: &quick_xml::events::BytesRef<'_>) {
    match reference.resolve_char_ref() {
        Ok(Some(c)) => out.push(c),
        Ok(None) => {
            if let Some(text) = quick_xml::escape::resolve_xml_entity(reference) {
                out.push_str(text);
            }
        }
        Err(_) => {}
    }
}

/// Walks `word/document.xml`, turning paragraphs into section text and heading paragraphs
/// into headings.
struct Body<'s> {
    styles: &'s HashMap<String, u8>,
    sections: SectionBuilder,
    title: Option<String>,
    limit: u64,
    paragraph: String,
    level: Option<u8>,
    /// Paragraphs interrupted by a nested one (a text box inside a run), to resume after it.
    outer_paragraphs: Vec<(String, Option<u8>)>,
    paragraph_depth: usize,
    run_depth: usize,
    in_text: bool,
    /// Inside `w:pPr`, where `w:tab` defines tab stops rather than being a tab.
    in_properties: bool,
    /// Inside `mc:Fallback`: the same content again for older readers.
    fallback_depth: usize,
    table_depth: usize,
    cell: String,
    row: Vec<String>,
    rows: Vec<String>,
}

impl<'s> Body<'s> {
    fn new(styles: &'s HashMap<String, u8>, limit: u64) -> Self {
        Self {
            styles,
            sections: SectionBuilder::new(limit),
            title: None,
            limit,
            paragraph: String::new(),
            level: None,
            outer_paragraphs: Vec::new(),
            paragraph_depth: 0,
            run_depth: 0,
            in_text: false,
            in_properties: false,
            fallback_depth: 0,
            table_depth: 0,
            cell: String::new(),
            row: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn read(&mut self, xml: &str) -> Result<(), ExtractError> {
        let mut reader = Reader::from_str(xml);
        loop {
            let event = reader.read_event().map_err(|error| {
                tracing::info!(%error, position = reader.error_position(), "DOCX body XML");
                corrupt("its text part is not well-formed XML")
            })?;
            match event {
                Event::Eof => return Ok(()),
                Event::Start(e) => self.start(&e, false)?,
                Event::Empty(e) => self.start(&e, true)?,
                Event::End(e) => self.end(e.local_name().as_ref())?,
                Event::Text(t) if self.in_text && self.fallback_depth == 0 => {
                    self.paragraph.push_str(&t.xml10_content());
                }
                Event::CData(t) if self.in_text && self.fallback_depth == 0 => {
                    self.paragraph.push_str(&t.xml10_content());
                }
                Event::GeneralRef(r) if self.in_text && self.fallback_depth == 0 => {
                    push_reference(&mut self.paragraph, &r);
                }
                _ => {}
            }
            if self.paragraph.len() as u64 > self.limit {
                return Err(ExtractError::TextTooLarge { limit: self.limit });
            }
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, empty: bool) -> Result<(), ExtractError> {
        let name = e.local_name();
        let name = name.as_ref();
        if name == "Fallback" {
            if !empty {
                self.fallback_depth += 1;
            }
            return Ok(());
        }
        if self.fallback_depth > 0 {
            return Ok(());
        }
        match name {
            "p" if !empty => {
                if self.paragraph_depth > 0 {
                    let outer = std::mem::take(&mut self.paragraph);
                    self.outer_paragraphs.push((outer, self.level.take()));
                }
                self.paragraph_depth += 1;
                self.paragraph.clear();
                self.level = None;
            }
            "pPr" if !empty => self.in_properties = true,
            "pStyle" if self.in_properties => {
                if let Some(id) = attr(e, "val") {
                    self.level = self.level.or_else(|| self.style_level(&id));
                }
            }
            "outlineLvl" if self.in_properties => {
                if let Some(outline) = attr(e, "val").and_then(|v| v.parse::<u8>().ok()) {
                    self.level = outline_level(outline);
                }
            }
            "r" if !empty => self.run_depth += 1,
            "t" if !empty => self.in_text = true,
            "tab" | "ptab" if self.run_depth > 0 => self.paragraph.push('\t'),
            "br" | "cr" if self.run_depth > 0 => self.paragraph.push('\n'),
            "noBreakHyphen" if self.run_depth > 0 => self.paragraph.push('-'),
            "tbl" if !empty => self.table_depth += 1,
            _ => {}
        }
        Ok(())
    }

    fn style_level(&self, id: &str) -> Option<u8> {
        self.styles.get(id).copied().or_else(|| {
            // No styles.xml: the ids of Word's built-in styles in an English install.
            let lower = id.to_ascii_lowercase();
            if lower == "title" {
                Some(0)
            } else {
                lower
                    .strip_prefix("heading")
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| (1..=6).contains(n))
            }
        })
    }

    fn end(&mut self, name: &str) -> Result<(), ExtractError> {
        if name == "Fallback" {
            self.fallback_depth = self.fallback_depth.saturating_sub(1);
            return Ok(());
        }
        if self.fallback_depth > 0 {
            return Ok(());
        }
        match name {
            "t" => self.in_text = false,
            "r" => self.run_depth = self.run_depth.saturating_sub(1),
            "pPr" => self.in_properties = false,
            "p" => {
                self.end_paragraph()?;
                self.paragraph_depth = self.paragraph_depth.saturating_sub(1);
                if let Some((outer, level)) = self.outer_paragraphs.pop() {
                    self.paragraph = outer;
                    self.level = level;
                }
            }
            "tc" => {
                let cell = collapse_whitespace(&std::mem::take(&mut self.cell));
                self.row.push(cell);
            }
            "tr" => {
                let row = std::mem::take(&mut self.row);
                if row.iter().any(|c| !c.is_empty()) {
                    let line = row.join(" | ");
                    if self.table_depth > 1 {
                        // A nested table's rows become text of the outer cell.
                        push_spaced(&mut self.cell, &line);
                    } else {
                        self.rows.push(line);
                    }
                }
            }
            "tbl" => {
                self.table_depth = self.table_depth.saturating_sub(1);
                if self.table_depth == 0 {
                    let rows = std::mem::take(&mut self.rows);
                    self.sections.paragraph(&rows.join("\n"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end_paragraph(&mut self) -> Result<(), ExtractError> {
        let paragraph = std::mem::take(&mut self.paragraph);
        let level = self.level.take();
        if self.table_depth > 0 {
            push_spaced(&mut self.cell, &paragraph);
            return Ok(());
        }
        match level {
            Some(level) if !paragraph.trim().is_empty() => {
                if self.title.is_none() && level <= 1 {
                    self.title = Some(collapse_whitespace(&paragraph));
                }
                self.sections.heading(level, &paragraph)
            }
            _ => self.sections.paragraph(&paragraph),
        }
    }
}

fn push_spaced(out: &mut String, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    const STYLES_XML: &str = r#"<w:styles xmlns:w="w">
        <w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
        <w:style w:type="paragraph" w:styleId="Custom"><w:name w:val="My Head"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
        <w:style w:type="paragraph" w:styleId="Normal"><w:name w:val="Normal"/></w:style>
    </w:styles>"#;

    fn body(xml: &str) -> (Option<String>, Vec<super::super::Section>) {
        let styles = heading_styles(STYLES_XML);
        let mut body = Body::new(&styles, 1 << 20);
        body.read(xml).unwrap();
        let title = body.title.take();
        (title, body.sections.finish())
    }

    #[test]
    fn styles_map_localised_ids_and_outline_levels() {
        let styles = heading_styles(STYLES_XML);
        assert_eq!(styles.get("berschrift1"), Some(&1));
        assert_eq!(styles.get("Custom"), Some(&2));
        assert_eq!(styles.get("Normal"), None);
    }

    #[test]
    fn runs_tabs_breaks_entities_and_tables_are_read() {
        let (title, sections) = body(
            r#"<w:document xmlns:w="w" xmlns:mc="mc"><w:body>
            <w:p><w:pPr><w:pStyle w:val="berschrift1"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>Leave</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Salt &amp; pepper &#233;</w:t><w:tab/><w:t>x</w:t><w:br/><w:t>y</w:t></w:r></w:p>
            <w:p><w:pPr><w:pStyle w:val="Custom"/></w:pPr><w:r><w:t>Parental</w:t></w:r></w:p>
            <w:tbl><w:tr><w:tc><w:p><w:r><w:t>A</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>1</w:t></w:r></w:p></w:tc></w:tr>
            <w:tr><w:tc><w:p><w:r><w:t>B</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>2</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
            <w:p><w:r><mc:AlternateContent><mc:Choice><w:t>shown</w:t></mc:Choice><mc:Fallback><w:t>twice</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p>
            <w:p><w:r><w:instrText>PAGE</w:instrText><w:delText>deleted</w:delText></w:r></w:p>
            <w:p><w:r><w:t>before box</w:t><w:drawing><w:txbxContent><w:p><w:r><w:t>in box</w:t></w:r></w:p></w:txbxContent></w:drawing><w:t> after box</w:t></w:r></w:p>
            </w:body></w:document>"#,
        );
        assert_eq!(title.as_deref(), Some("Leave"));
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].headings, ["Leave"]);
        assert_eq!(sections[0].text, "Salt & pepper é\tx\ny");
        assert_eq!(sections[1].headings, ["Leave", "Parental"]);
        assert_eq!(
            sections[1].text,
            "A | 1\nB | 2\n\nshown\n\nin box\n\nbefore box after box"
        );
    }

    #[test]
    fn core_properties_give_the_title() {
        assert_eq!(
            core_title(
                r#"<cp:coreProperties xmlns:cp="c" xmlns:dc="d"><dc:title>Travel &amp; expenses</dc:title></cp:coreProperties>"#
            )
            .as_deref(),
            Some("Travel & expenses")
        );
    }
}

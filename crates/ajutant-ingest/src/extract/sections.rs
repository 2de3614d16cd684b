//! The one place a document's structure becomes [`Section`]s: every format feeds headings,
//! paragraphs and pages in reading order, and this keeps the heading path, drops blank
//! sections and enforces the extracted-text limit.

use super::{ExtractError, Section};

/// Headings longer than this are cut in the heading path. A "heading" that long is usually a
/// paragraph styled as a heading, and repeating it on every passage would crowd out the text;
/// the full wording still goes into the section's text.
const MAX_HEADING_CHARS: usize = 200;

#[derive(Debug)]
pub(crate) struct SectionBuilder {
    /// Open headings, outermost first, each with its level (0 = document title, 1..=6).
    path: Vec<(u8, String)>,
    text: String,
    page: Option<u32>,
    sections: Vec<Section>,
    /// Bytes of text accepted so far, including the current section's.
    total: u64,
    limit: u64,
}

impl SectionBuilder {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            path: Vec::new(),
            text: String::new(),
            page: None,
            sections: Vec::new(),
            total: 0,
            limit,
        }
    }

    /// Fails if `pending` more bytes would pass the limit, so a format can stop reading early
    /// before it hands the text over.
    pub(crate) fn check(&self, pending: usize) -> Result<(), ExtractError> {
        if self.total.saturating_add(pending as u64) > self.limit {
            return Err(ExtractError::TextTooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn reserve(&mut self, bytes: usize) -> Result<(), ExtractError> {
        self.total = self.total.saturating_add(bytes as u64);
        if self.total > self.limit {
            return Err(ExtractError::TextTooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Starts a new section under `heading`, closing headings at the same or a deeper level.
    pub(crate) fn heading(&mut self, level: u8, heading: &str) -> Result<(), ExtractError> {
        let heading = collapse_whitespace(heading);
        if heading.is_empty() {
            return Ok(());
        }
        self.flush();
        while self.path.last().is_some_and(|(open, _)| *open >= level) {
            self.path.pop();
        }
        let short = if heading.chars().count() > MAX_HEADING_CHARS {
            // Keep the words: the cut heading labels the passages, the full one is body text.
            self.paragraph(&heading)?;
            let mut cut: String = heading.chars().take(MAX_HEADING_CHARS).collect();
            cut.push('…');
            cut
        } else {
            heading
        };
        self.reserve(short.len())?;
        self.path.push((level, short));
        Ok(())
    }

    /// Appends a paragraph to the current section, separated from the previous one by a blank
    /// line (the chunker's paragraph boundary).
    pub(crate) fn paragraph(&mut self, paragraph: &str) -> Result<(), ExtractError> {
        let paragraph = paragraph.trim();
        if paragraph.is_empty() {
            return Ok(());
        }
        self.reserve(paragraph.len() + 2)?;
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(paragraph);
        Ok(())
    }

    /// Appends a line as it is (Markdown keeps its own blank lines and indentation).
    pub(crate) fn line(&mut self, line: &str) -> Result<(), ExtractError> {
        self.reserve(line.len() + 1)?;
        self.text.push_str(line);
        self.text.push('\n');
        Ok(())
    }

    /// Closes the current section and starts the next one on `page`, under the same headings.
    pub(crate) fn start_page(&mut self, page: u32) {
        self.flush();
        self.page = Some(page);
    }

    /// Closes the current section without changing the headings (CSV row blocks).
    pub(crate) fn split(&mut self) {
        self.flush();
    }

    pub(crate) fn finish(mut self) -> Vec<Section> {
        self.flush();
        self.sections
    }

    fn flush(&mut self) {
        let text = self.text.trim();
        if !text.is_empty() {
            self.sections.push(Section {
                headings: self.path.iter().map(|(_, h)| h.clone()).collect(),
                text: text.to_owned(),
                page: self.page,
            });
        }
        self.text.clear();
    }
}

/// Runs of whitespace (including line breaks and no-break spaces) become one space.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_form_a_path_by_level() {
        let mut b = SectionBuilder::new(1 << 20);
        b.heading(1, "Handbook").unwrap();
        b.paragraph("intro").unwrap();
        b.heading(2, "Leave").unwrap();
        b.heading(3, "Parental  leave").unwrap();
        b.paragraph("twelve weeks").unwrap();
        b.heading(2, "Travel").unwrap();
        b.paragraph("book early").unwrap();
        let s = b.finish();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].headings, ["Handbook"]);
        assert_eq!(s[1].headings, ["Handbook", "Leave", "Parental leave"]);
        assert_eq!(s[2].headings, ["Handbook", "Travel"]);
        assert_eq!(s[2].text, "book early");
    }

    #[test]
    fn text_over_the_limit_is_refused() {
        let mut b = SectionBuilder::new(10);
        b.paragraph("short").unwrap();
        assert_eq!(
            b.paragraph("much too long"),
            Err(ExtractError::TextTooLarge { limit: 10 })
        );
    }

    #[test]
    fn an_overlong_heading_is_cut_but_its_words_are_kept() {
        let long = "word ".repeat(100);
        let mut b = SectionBuilder::new(1 << 20);
        b.heading(1, &long).unwrap();
        b.paragraph("body").unwrap();
        let s = b.finish();
        assert_eq!(s[0].headings[0].chars().count(), MAX_HEADING_CHARS + 1);
        assert!(s[0].text.starts_with("word word"));
        assert!(s[0].text.ends_with("body"));
    }
}

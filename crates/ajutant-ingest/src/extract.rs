//! What a file really is, and its text with the structure retrieval needs: headings for
//! Markdown, HTML and Word, pages for PDF, self-describing rows for CSV and JSON.
//!
//! [`sniff`] decides the kind from the bytes; a file name or declared content type only
//! chooses between the text formats, which all look alike. [`extract`] then reads the file
//! under [`Limits`], so a hostile upload (a zip bomb, a PDF that hangs or panics the parser, a
//! gigabyte of text) ends in an [`ExtractError`] whose message an end user can act on, with a
//! stable [`ExtractError::code`] for machines.

mod docx;
mod html;
mod markdown;
mod pdf;
mod sections;
mod tabular;
mod text;
mod zipdir;

use std::time::Duration;

pub use pdf::MAX_CONCURRENT as MAX_CONCURRENT_PDF;

/// The formats that can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Csv,
    Json,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Html => "text/html",
            Self::Pdf => "application/pdf",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Csv => "text/csv",
            Self::Json => "application/json",
        }
    }

    /// How error messages name a file of this kind.
    fn noun(self) -> &'static str {
        match self {
            Self::Text => "text file",
            Self::Markdown => "Markdown file",
            Self::Html => "HTML page",
            Self::Pdf => "PDF",
            Self::Docx => "Word document",
            Self::Csv => "CSV file",
            Self::Json => "JSON file",
        }
    }

    fn is_text(self) -> bool {
        !matches!(self, Self::Pdf | Self::Docx)
    }

    fn from_extension(name: &str) -> Option<Self> {
        let (_, extension) = name.rsplit_once('.')?;
        Some(match extension.to_ascii_lowercase().as_str() {
            "txt" | "text" | "log" => Self::Text,
            "md" | "markdown" | "mdown" | "mkd" => Self::Markdown,
            "html" | "htm" | "xhtml" => Self::Html,
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
            "csv" => Self::Csv,
            "json" => Self::Json,
            _ => return None,
        })
    }

    fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "text/plain" => Self::Text,
            "text/markdown" | "text/x-markdown" => Self::Markdown,
            "text/html" | "application/xhtml+xml" => Self::Html,
            "application/pdf" => Self::Pdf,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Self::Docx,
            "text/csv" | "application/csv" | "text/comma-separated-values" => Self::Csv,
            "application/json" | "text/json" => Self::Json,
            other if other.ends_with("+json") => Self::Json,
            _ => return None,
        })
    }
}

/// Bounds on what one file may cost to read.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest input, in bytes. Default 50 MiB.
    pub max_bytes: u64,
    /// Largest extracted text, in bytes. Default 20 MiB. A DOCX part may also unpack to at
    /// most four times this, since its XML wraps the text several times over.
    pub max_text_bytes: u64,
    /// Most entries a DOCX archive may list. Default 10,000 (a real document has tens).
    pub max_docx_entries: usize,
    /// Longest a PDF may take to read, including any wait for a free PDF thread. Default 30 s.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: crate::connector::DEFAULT_MAX_BYTES,
            max_text_bytes: 20 * 1024 * 1024,
            max_docx_entries: 10_000,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A run of text under one heading path (or on one PDF page).
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The headings above this text, outermost first; may be empty.
    pub headings: Vec<String>,
    /// Paragraphs separated by a blank line; never blank.
    pub text: String,
    /// 1-based page number, for PDF only.
    pub page: Option<u32>,
}

/// A document's text in reading order.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub kind: DocumentKind,
    pub title: Option<String>,
    /// Never empty: a file with no text is [`ExtractError::NoText`].
    pub sections: Vec<Section>,
}

/// Why a file could not be read. The `Display` text is written for the person who uploaded
/// the file; [`ExtractError::code`] is for machines.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ExtractError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("the file holds more than {limit} bytes of text, over the limit")]
    TextTooLarge { limit: u64 },
    /// The message says what the file seems to be, and what is supported.
    #[error("{0}")]
    Unsupported(String),
    #[error("the file is not UTF-8 text: byte {offset} is not valid (save it as UTF-8)")]
    InvalidUtf8 { offset: usize },
    #[error("the {} is damaged: {reason}", kind.noun())]
    Corrupt { kind: DocumentKind, reason: String },
    #[error("the {} is password-protected; upload it without a password", .0.noun())]
    Encrypted(DocumentKind),
    #[error("the file was refused as a possible zip bomb: {0}")]
    Bomb(String),
    #[error("reading the file took longer than {} seconds; it may be malformed or very large", .0.as_secs_f32())]
    Timeout(Duration),
    #[error("the {} contains no text{}", .0.noun(), no_text_hint(*.0))]
    NoText(DocumentKind),
}

fn no_text_hint(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Pdf => " (a scanned PDF needs text recognition, which is not supported)",
        _ => "",
    }
}

impl ExtractError {
    /// A stable machine-readable code: `empty`, `too_large`, `unsupported_type`,
    /// `invalid_utf8`, `corrupt`, `encrypted`, `zip_bomb`, `timeout` or `no_text`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } | Self::TextTooLarge { .. } => "too_large",
            Self::Unsupported(_) => "unsupported_type",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::Corrupt { .. } => "corrupt",
            Self::Encrypted(_) => "encrypted",
            Self::Bomb(_) => "zip_bomb",
            Self::Timeout(_) => "timeout",
            Self::NoText(_) => "no_text",
        }
    }
}

const SUPPORTED: &str = "PDF, Word (.docx), HTML, Markdown, CSV, JSON or UTF-8 text";

fn unsupported(what: &str) -> ExtractError {
    ExtractError::Unsupported(format!(
        "{what}, which cannot be read; supported are {SUPPORTED}"
    ))
}

/// How much of the start of a file is looked at for NUL bytes and for a PDF header.
const BINARY_PROBE: usize = 8 * 1024;
const PDF_HEADER_PROBE: usize = 1024;

/// What the bytes really are, from their content; the file name (extension) and declared
/// content type only break ties between text formats (text/markdown/csv/json/html all look
/// like text). A `.pdf` name on a file that is not a PDF is not trusted.
pub fn sniff(
    bytes: &[u8],
    file_name: Option<&str>,
    declared_type: Option<&str>,
) -> Result<DocumentKind, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    // The extension is the more specific hint: browsers send text/plain for .md and .csv.
    let hint = file_name
        .and_then(DocumentKind::from_extension)
        .or_else(|| declared_type.and_then(DocumentKind::from_content_type));
    if is_pdf(bytes, hint == Some(DocumentKind::Pdf)) {
        return Ok(DocumentKind::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return sniff_zip(bytes, hint);
    }
    if let Some(what) = known_binary(bytes) {
        return Err(unsupported(what));
    }
    let text_hint = hint.filter(|k| k.is_text());
    let probe = &bytes[..bytes.len().min(BINARY_PROBE)];
    let decoded = match text::decode(bytes, text_hint.unwrap_or(DocumentKind::Text)) {
        Ok(text) if !probe.contains(&0) || has_bom(bytes) => text,
        // HTML alone may be in a legacy encoding, which its extractor decodes.
        Err(ExtractError::InvalidUtf8 { .. })
            if !probe.contains(&0)
                && (text_hint == Some(DocumentKind::Html) || starts_like_html(bytes)) =>
        {
            return Ok(DocumentKind::Html);
        }
        Ok(_) | Err(ExtractError::InvalidUtf8 { .. }) => {
            return Err(not_text(bytes, hint));
        }
        Err(other) => return Err(other),
    };
    if let Some(kind) = text_hint {
        return Ok(kind);
    }
    Ok(sniff_text(&decoded))
}

fn has_bom(bytes: &[u8]) -> bool {
    encoding_rs::Encoding::for_bom(bytes).is_some()
}

/// `%PDF-` at the start, after any BOM or whitespace. Readers accept junk before the header
/// too, but so would a text file that mentions "%PDF-", so that is only believed when the
/// name or declared type also says PDF.
fn is_pdf(bytes: &[u8], named_pdf: bool) -> bool {
    let probe = &bytes[..bytes.len().min(PDF_HEADER_PROBE)];
    let start = probe.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(probe);
    let start = start.trim_ascii_start();
    start.starts_with(b"%PDF-") || (named_pdf && probe.windows(5).any(|w| w == b"%PDF-"))
}

fn sniff_zip(bytes: &[u8], hint: Option<DocumentKind>) -> Result<DocumentKind, ExtractError> {
    let directory = match zipdir::CentralDirectory::read(bytes) {
        Ok(directory) => directory,
        Err(reason) if hint == Some(DocumentKind::Docx) => {
            return Err(ExtractError::Corrupt {
                kind: DocumentKind::Docx,
                reason: reason.to_owned(),
            });
        }
        Err(_) => return Err(unsupported("a damaged zip archive")),
    };
    let found = directory.find_any(&[
        "word/document.xml",
        "xl/workbook.xml",
        "ppt/presentation.xml",
        "mimetype",
    ]);
    match found {
        Some(0) => Ok(DocumentKind::Docx),
        Some(1) => Err(unsupported("an Excel workbook (.xlsx)")),
        Some(2) => Err(unsupported("a PowerPoint presentation (.pptx)")),
        Some(_) => Err(unsupported("an OpenDocument or other packaged file")),
        None => Err(unsupported("a zip archive that is not a Word document")),
    }
}

/// Common binary formats, named so the message says what the file is.
fn known_binary(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
            "a legacy Office file (.doc, .xls, .ppt) or a password-protected Office document",
        ),
        (b"{\\rtf", "an RTF document (save it as .docx or PDF)"),
        (b"\x89PNG", "a PNG image (images are not read)"),
        (b"\xFF\xD8\xFF", "a JPEG image (images are not read)"),
        (b"GIF8", "a GIF image (images are not read)"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"7z\xBC\xAF", "a 7-Zip archive"),
        (b"Rar!", "a RAR archive"),
        (b"\x7FELF", "a program"),
        (b"MZ", "a Windows program"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, what)| *what)
}

/// Neither UTF-8 nor a known format. A name that promises text gets the encoding problem
/// (the likely fix is re-saving as UTF-8); anything else is unsupported.
fn not_text(bytes: &[u8], hint: Option<DocumentKind>) -> ExtractError {
    match hint {
        Some(kind) if kind.is_text() => {
            let nul = bytes.iter().take(BINARY_PROBE).position(|b| *b == 0);
            let invalid = std::str::from_utf8(bytes).err().map(|e| e.valid_up_to());
            let offset = match (nul, invalid) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => 0,
            };
            ExtractError::InvalidUtf8 { offset }
        }
        Some(DocumentKind::Pdf) => unsupported("a file named as a PDF that is not a PDF"),
        Some(DocumentKind::Docx) => unsupported("a file named as a Word document that is not one"),
        _ => unsupported("binary data of an unknown type"),
    }
}

fn starts_like_html(bytes: &[u8]) -> bool {
    let start = bytes.trim_ascii_start();
    let head = start[..start.len().min(14)].to_ascii_lowercase();
    head.starts_with(b"<!doctype html") || head.starts_with(b"<html")
}

/// A text file with no helpful name: HTML and JSON announce themselves, the rest is text.
fn sniff_text(text: &str) -> DocumentKind {
    let start = text.trim_start();
    if starts_like_html(start.as_bytes()) {
        return DocumentKind::Html;
    }
    if (start.starts_with('{') || start.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    {
        return DocumentKind::Json;
    }
    DocumentKind::Text
}

/// Sniffs then extracts. Async because PDF extraction runs on a blocking thread under
/// `limits.timeout` with `catch_unwind` (pdf-extract panics on malformed files) and a global
/// semaphore capping concurrent PDF extractions at 2 (a timed-out thread keeps running).
/// The other formats are parsed on a blocking thread as well when the file is large enough to
/// hold up other tasks.
pub async fn extract(
    bytes: &[u8],
    file_name: Option<&str>,
    declared_type: Option<&str>,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    let size = bytes.len() as u64;
    if size > limits.max_bytes {
        return Err(ExtractError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let kind = sniff(bytes, file_name, declared_type)?;
    let extracted = match kind {
        DocumentKind::Pdf => {
            pdf::extract(bytes.to_vec(), limits.max_text_bytes, limits.timeout).await
        }
        _ if bytes.len() <= INLINE_BYTES => extract_blocking(bytes, kind, limits),
        _ => {
            let owned = bytes.to_vec();
            let limits = limits.clone();
            tokio::task::spawn_blocking(move || extract_blocking(&owned, kind, &limits))
                .await
                .unwrap_or_else(|error| {
                    tracing::error!(%error, kind = kind.as_str(), "extraction thread failed");
                    Err(ExtractError::Corrupt {
                        kind,
                        reason: "it could not be read".to_owned(),
                    })
                })
        }
    }?;
    if extracted.sections.is_empty() {
        return Err(ExtractError::NoText(kind));
    }
    Ok(extracted)
}

/// Below this, parsing takes well under a millisecond, less than moving it to a thread.
const INLINE_BYTES: usize = 64 * 1024;

/// Every format but PDF, synchronously: they are bounded by the input size and the text limit,
/// and none can hang or panic on hostile input.
fn extract_blocking(
    bytes: &[u8],
    kind: DocumentKind,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    let text_limit = limits.max_text_bytes;
    match kind {
        DocumentKind::Text => text::extract(bytes, text_limit),
        DocumentKind::Markdown => markdown::extract(bytes, text_limit),
        DocumentKind::Html => html::extract(bytes, text_limit),
        DocumentKind::Docx => docx::extract(bytes, limits),
        DocumentKind::Csv => tabular::extract_csv(bytes, text_limit),
        DocumentKind::Json => tabular::extract_json(bytes, text_limit),
        DocumentKind::Pdf => Err(ExtractError::Corrupt {
            kind,
            reason: "PDF must be read through extract".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(
        bytes: &[u8],
        name: Option<&str>,
        declared: Option<&str>,
    ) -> Result<&'static str, String> {
        sniff(bytes, name, declared)
            .map(DocumentKind::as_str)
            .map_err(|e| e.code().to_owned())
    }

    #[test]
    fn sniffing_decides_by_content_and_uses_names_only_between_text_formats() {
        type Case<'a> = (
            &'a [u8],
            Option<&'a str>,
            Option<&'a str>,
            Result<&'a str, &'a str>,
        );
        let cases: &[Case] = &[
            (b"%PDF-1.7\n...", None, None, Ok("pdf")),
            (b"\xEF\xBB\xBF \n%PDF-1.4", Some("x.bin"), None, Ok("pdf")),
            (b"junk\n%PDF-1.4", Some("x.pdf"), None, Ok("pdf")),
            (b"see %PDF-1.4 in the spec", None, None, Ok("text")),
            (b"hello", Some("notes.pdf"), None, Ok("text")),
            (
                b"\x00\x01\x02garbage",
                Some("notes.pdf"),
                None,
                Err("unsupported_type"),
            ),
            (
                b"# Title",
                Some("README.md"),
                Some("text/plain"),
                Ok("markdown"),
            ),
            (
                b"# Title",
                None,
                Some("text/markdown; charset=utf-8"),
                Ok("markdown"),
            ),
            (b"a,b\n1,2", Some("data.CSV"), None, Ok("csv")),
            (b"{\"a\": 1}", None, None, Ok("json")),
            (b"{not json", None, None, Ok("text")),
            (b"{\"a\": 1}", Some("a.txt"), None, Ok("text")),
            (b"  <!DOCTYPE html><p>x", None, None, Ok("html")),
            (b"<HTML><body>x", None, None, Ok("html")),
            (
                b"plain words",
                None,
                Some("application/octet-stream"),
                Ok("text"),
            ),
            (b"caf\xE9", Some("menu.txt"), None, Err("invalid_utf8")),
            (b"caf\xE9", None, None, Err("unsupported_type")),
            (b"<p>caf\xE9</p>", Some("menu.html"), None, Ok("html")),
            (b"<html><p>caf\xE9</p>", None, None, Ok("html")),
            (b"ab\x00cd", Some("x.csv"), None, Err("invalid_utf8")),
            (
                b"\x89PNG\r\n\x1a\n",
                Some("scan.pdf"),
                None,
                Err("unsupported_type"),
            ),
            (
                b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest",
                Some("old.doc"),
                None,
                Err("unsupported_type"),
            ),
            (b"", Some("empty.pdf"), None, Err("empty")),
        ];
        for (bytes, name, declared, expected) in cases {
            let expected = expected.map_err(str::to_owned);
            assert_eq!(
                kind(bytes, *name, *declared),
                expected,
                "{:?} named {name:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn invalid_utf8_reports_where() {
        assert_eq!(
            sniff(b"abc\xFF", Some("a.txt"), None),
            Err(ExtractError::InvalidUtf8 { offset: 3 })
        );
    }

    #[test]
    fn error_messages_are_for_people() {
        let corrupt = ExtractError::Corrupt {
            kind: DocumentKind::Pdf,
            reason: "broken cross-reference table".into(),
        };
        assert_eq!(
            corrupt.to_string(),
            "the PDF is damaged: broken cross-reference table"
        );
        assert_eq!(
            ExtractError::NoText(DocumentKind::Pdf).to_string(),
            "the PDF contains no text (a scanned PDF needs text recognition, which is not supported)"
        );
        assert_eq!(
            ExtractError::Timeout(Duration::from_secs(30)).to_string(),
            "reading the file took longer than 30 seconds; it may be malformed or very large"
        );
        assert!(
            sniff(b"\x00\x01", None, None)
                .unwrap_err()
                .to_string()
                .contains("supported are PDF")
        );
    }

    #[test]
    fn kinds_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&DocumentKind::Docx).unwrap(),
            "\"docx\""
        );
        for kind in [
            DocumentKind::Text,
            DocumentKind::Markdown,
            DocumentKind::Json,
        ] {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
    }

    #[tokio::test]
    async fn whitespace_only_text_has_no_text_and_oversize_input_is_refused() {
        let limits = Limits::default();
        assert_eq!(
            extract(b" \n\t\n", Some("a.txt"), None, &limits).await,
            Err(ExtractError::NoText(DocumentKind::Text))
        );
        let small = Limits {
            max_bytes: 4,
            ..Limits::default()
        };
        assert_eq!(
            extract(b"hello", None, None, &small).await,
            Err(ExtractError::TooLarge { size: 5, limit: 4 })
        );
    }

    #[tokio::test]
    async fn large_text_is_read_on_a_blocking_thread() {
        let text = "Paragraph one.\n\n".repeat(10_000);
        let doc = extract(text.as_bytes(), Some("big.txt"), None, &Limits::default())
            .await
            .unwrap();
        assert_eq!(doc.kind, DocumentKind::Text);
        assert!(doc.sections[0].text.ends_with("Paragraph one."));
        let tight = Limits {
            max_text_bytes: 1000,
            ..Limits::default()
        };
        assert_eq!(
            extract(text.as_bytes(), Some("big.txt"), None, &tight)
                .await
                .unwrap_err()
                .code(),
            "too_large"
        );
    }
}

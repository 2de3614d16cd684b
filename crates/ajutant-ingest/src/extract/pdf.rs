//! PDF through pdf-extract (pure Rust, on lopdf), one section per page.
//!
//! pdf-extract panics on many malformed files (its maintainer prefers a panic to a silent
//! wrong answer) and can run for minutes on odd ones, so every call runs on a blocking thread,
//! inside `catch_unwind`, under `Limits::timeout`. A thread that times out cannot be killed and
//! keeps running, so a global semaphore caps PDF threads at [`MAX_CONCURRENT`]: runaway files
//! can slow PDF ingestion down but not exhaust the machine. The thread also checks the
//! deadline between pages and gives up on its own. A caught panic's message still reaches the
//! process's panic hook (stderr); no hook is installed here, as that is global state.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use pdf_extract::{Document, Object, PlainTextOutput};
use tokio::sync::Semaphore;

use super::sections::SectionBuilder;
use super::{DocumentKind, ExtractError, Extracted};

/// PDF extractions running at once, counting timed-out ones whose thread has not finished.
pub const MAX_CONCURRENT: usize = 2;

static PDF_THREADS: Semaphore = Semaphore::const_new(MAX_CONCURRENT);

pub(crate) async fn extract(
    bytes: Vec<u8>,
    limit: u64,
    timeout: Duration,
) -> Result<Extracted, ExtractError> {
    let deadline = Instant::now() + timeout;
    // The timeout covers the wait for a thread too: if both are stuck on runaway files, a
    // caller gets an answer instead of waiting for ever.
    let work = async move {
        let permit = PDF_THREADS
            .acquire()
            .await
            .map_err(|_| corrupt("the PDF reader is shutting down"))?;
        let thread = tokio::task::spawn_blocking(move || {
            // Held until the thread really ends, not just until the caller stops waiting.
            let _permit = permit;
            read(&bytes, limit, deadline, timeout)
        });
        thread.await.map_err(|error| {
            tracing::error!(%error, "PDF extraction thread failed");
            corrupt("it could not be read")
        })?
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(ExtractError::Timeout(timeout)),
    }
}

fn read(
    bytes: &[u8],
    limit: u64,
    deadline: Instant,
    timeout: Duration,
) -> Result<Extracted, ExtractError> {
    let mut document = match catch_unwind(AssertUnwindSafe(|| Document::load_mem(bytes))) {
        Ok(Ok(document)) => document,
        Ok(Err(_)) if is_cut_short(bytes) => return Err(corrupt("the file is cut short")),
        Ok(Err(error)) => return Err(load_error(&error)),
        Err(panic) => return Err(panicked(&panic)),
    };
    if document.is_encrypted() {
        // Many PDFs are "encrypted" only against editing, with an empty user password.
        let decrypted = catch_unwind(AssertUnwindSafe(|| document.decrypt("")));
        if !matches!(decrypted, Ok(Ok(()))) {
            return Err(ExtractError::Encrypted(DocumentKind::Pdf));
        }
    }
    let pages = match catch_unwind(AssertUnwindSafe(|| document.get_pages())) {
        Ok(pages) => pages,
        Err(panic) => return Err(panicked(&panic)),
    };
    if pages.is_empty() {
        return Err(corrupt(
            "no pages could be found (the cross-reference table may be broken)",
        ));
    }
    let title = catch_unwind(AssertUnwindSafe(|| info_title(&document)))
        .ok()
        .flatten();
    let mut sections = SectionBuilder::new(limit);
    let mut first_failure = None;
    let mut read_pages = 0;
    for &number in pages.keys() {
        if Instant::now() >= deadline {
            return Err(ExtractError::Timeout(timeout));
        }
        let page = catch_unwind(AssertUnwindSafe(|| {
            let mut text = String::new();
            pdf_extract::output_doc_page(&document, &mut PlainTextOutput::new(&mut text), number)
                .map(|()| text)
        }));
        let failure = match page {
            Ok(Ok(text)) => {
                read_pages += 1;
                sections.start_page(number);
                sections.paragraph(&tidy(&text))?;
                continue;
            }
            Ok(Err(error)) => format!("page {number}: {error}"),
            Err(panic) => format!("page {number}: {}", panic_message(&panic)),
        };
        tracing::warn!(%failure, "a PDF page could not be read; skipping it");
        first_failure.get_or_insert(failure);
    }
    if read_pages == 0 {
        tracing::warn!(failure = ?first_failure, "no PDF page could be read");
        return Err(corrupt("none of its pages could be read"));
    }
    Ok(Extracted {
        kind: DocumentKind::Pdf,
        title,
        sections: sections.finish(),
    })
}

/// A complete PDF ends with `%%EOF` (give or take trailing whitespace); an interrupted
/// download or copy does not, and saying so is more useful than the parser's complaint.
fn is_cut_short(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    !tail.windows(5).any(|w| w == b"%%EOF")
}

fn corrupt(reason: &str) -> ExtractError {
    ExtractError::Corrupt {
        kind: DocumentKind::Pdf,
        reason: reason.to_owned(),
    }
}

/// A reason a reader can act on; lopdf's own wording goes to the log.
fn load_error(error: &pdf_extract::Error) -> ExtractError {
    use pdf_extract::Error;
    tracing::info!(%error, "PDF could not be loaded");
    let reason = match error {
        Error::Decryption(_) | Error::InvalidPassword | Error::UnsupportedSecurityHandler(_) => {
            return ExtractError::Encrypted(DocumentKind::Pdf);
        }
        // lopdf does not export its parse error type, only its wording.
        Error::Parse(parse) => match parse.to_string().as_str() {
            "invalid file header" => "it does not start with a PDF header",
            "unexpected end of input" => "the file is cut short",
            // The trailer is where the cross-reference table is found; to a reader it is one
            // thing.
            "invalid file trailer" | "invalid cross reference table" => {
                "broken cross-reference table"
            }
            _ => "its internal structure cannot be read",
        },
        Error::Xref(_) | Error::MissingXrefEntry | Error::InvalidOffset(_) => {
            "broken cross-reference table"
        }
        Error::ReferenceCycle(_) | Error::ReferenceLimit => {
            "its objects refer to each other in a loop"
        }
        _ => "its internal structure cannot be read",
    };
    corrupt(reason)
}

fn panicked(panic: &(dyn std::any::Any + Send)) -> ExtractError {
    tracing::warn!(panic = %panic_message(panic), "the PDF reader panicked");
    corrupt("it uses a structure the PDF reader cannot handle")
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// pdf-extract pads lines with spaces and separates text runs with many blank lines; keep at
/// most one blank line so the chunker's paragraph boundaries mean something.
fn tidy(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut blank_lines = 0;
    for line in page.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_lines += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_lines > 0 { "\n\n" } else { "\n" });
        }
        blank_lines = 0;
        out.push_str(line);
    }
    out
}

/// The `/Title` of the document information dictionary, when it has a useful one.
fn info_title(document: &Document) -> Option<String> {
    let info = match document.trailer.get(b"Info").ok()? {
        Object::Reference(id) => document.get_dictionary(*id).ok()?,
        Object::Dictionary(dictionary) => dictionary,
        _ => return None,
    };
    let title = match info.get(b"Title").ok()? {
        Object::String(bytes, _) => decode_text_string(bytes),
        _ => return None,
    };
    let title = super::sections::collapse_whitespace(&title);
    // Generators often write the source file name ("Microsoft Word - x.docx") or nothing.
    (!title.is_empty() && !title.starts_with("Microsoft Word - ")).then_some(title)
}

/// PDF text strings are UTF-16BE with a BOM, UTF-8 with a BOM (PDF 2.0), or
/// PDFDocEncoding, which matches Latin-1 for printable characters.
fn decode_text_string(bytes: &[u8]) -> String {
    if let Some(utf16) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = utf16
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(utf8) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(utf8).into_owned();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_keeps_at_most_one_blank_line() {
        assert_eq!(tidy("\n\n  a  \nb\n\n\n\nc\n   \n"), "  a\nb\n\nc");
    }

    #[test]
    fn text_strings_decode_utf16_and_latin1() {
        assert_eq!(decode_text_string(b"\xFE\xFF\x00H\x00i"), "Hi");
        assert_eq!(decode_text_string(b"Caf\xE9"), "Café");
    }
}

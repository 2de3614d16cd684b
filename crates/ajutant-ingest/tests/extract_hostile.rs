//! Extraction against real files and hostile ones, all built here in code: hand-written PDFs
//! (and damaged copies), DOCX archives from the zip writer, a zip bomb streamed through the
//! compressor, an archive of 100,000 entries. Every hostile file must end in a clear error,
//! quickly, without a panic escaping.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use ajutant_ingest::chunk::{ChunkSettings, chunk};
use ajutant_ingest::extract::{DocumentKind, ExtractError, Extracted, Limits, extract};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

async fn read(bytes: &[u8], name: &str) -> Result<Extracted, ExtractError> {
    extract(bytes, Some(name), None, &Limits::default()).await
}

// ---- PDF ----

/// A PDF with one page per entry, each line of a page a text line in Helvetica, and a correct
/// cross-reference table (offsets computed as the file is written).
fn pdf(pages: &[&[&str]], title: Option<&str>) -> Vec<u8> {
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            (0..pages.len())
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    ];
    for (i, lines) in pages.iter().enumerate() {
        let shown: Vec<String> = lines
            .iter()
            .map(|line| format!("({}) Tj T*", line.replace('(', "\\(").replace(')', "\\)")))
            .collect();
        let content = format!("BT /F1 12 Tf 16 TL 72 720 Td {} ET", shown.join(" "));
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let info = title.map(|title| {
        objects.push(format!("<< /Title ({title}) /Producer (test) >>"));
        format!(" /Info {} 0 R", objects.len())
    });
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {}{} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1,
            info.unwrap_or_default()
        )
        .bytes(),
    );
    out
}

fn handbook_pdf() -> Vec<u8> {
    pdf(
        &[
            &["Annual leave is 25 days.", "Carry over up to 5 days."],
            &["Parental leave is twelve weeks."],
        ],
        Some("Staff handbook"),
    )
}

#[tokio::test]
async fn a_hand_written_pdf_is_read_page_by_page() {
    let doc = read(&handbook_pdf(), "handbook.pdf").await.unwrap();
    assert_eq!(doc.kind, DocumentKind::Pdf);
    assert_eq!(doc.title.as_deref(), Some("Staff handbook"));
    assert_eq!(doc.sections.len(), 2);
    assert_eq!(doc.sections[0].page, Some(1));
    assert_eq!(doc.sections[1].page, Some(2));
    let first = &doc.sections[0].text;
    assert!(first.contains("Annual leave is 25 days."), "{first:?}");
    assert!(first.contains("Carry over up to 5 days."), "{first:?}");
    assert!(
        doc.sections[1]
            .text
            .contains("Parental leave is twelve weeks.")
    );

    let chunks = chunk(&doc, &ChunkSettings::default());
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1].location().as_deref(), Some("page 2"));
}

#[tokio::test]
async fn a_pdf_is_known_by_its_content_not_its_name() {
    let doc = read(&handbook_pdf(), "download.bin").await.unwrap();
    assert_eq!(doc.kind, DocumentKind::Pdf);
}

#[tokio::test]
async fn garbled_cross_reference_offsets_are_reported_as_damage() {
    let good = handbook_pdf();
    let text = String::from_utf8_lossy(&good).into_owned();
    let xref = text.find("xref\n").unwrap();
    // Every object offset now points a few bytes into the wrong place.
    let mut garbled = good[..xref].to_vec();
    for line in text[xref..].split_inclusive('\n') {
        match line.strip_suffix(" 00000 n \n") {
            Some(offset) => {
                let moved: usize = offset.parse::<usize>().unwrap() + 7;
                garbled.extend(format!("{moved:010} 00000 n \n").bytes());
            }
            None => garbled.extend(line.bytes()),
        }
    }
    let err = read(&garbled, "handbook.pdf").await.unwrap_err();
    assert_eq!(err.code(), "corrupt", "{err}");
    assert!(err.to_string().starts_with("the PDF is damaged: "), "{err}");

    // A startxref that points at nothing.
    let pointless = String::from_utf8_lossy(&good).replace(
        &format!("startxref\n{xref}"),
        &format!("startxref\n{}", xref + 100_000),
    );
    let err = read(pointless.as_bytes(), "handbook.pdf")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the PDF is damaged: broken cross-reference table"
    );
}

#[tokio::test]
async fn a_truncated_pdf_is_reported_as_cut_short() {
    let good = handbook_pdf();
    for keep in [good.len() / 3, good.len() / 2, good.len() - 30] {
        let err = read(&good[..keep], "handbook.pdf").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the PDF is damaged: the file is cut short",
            "cut at {keep}"
        );
    }
}

#[tokio::test]
async fn an_empty_file_named_pdf_is_empty() {
    assert_eq!(read(b"", "report.pdf").await, Err(ExtractError::Empty));
}

#[tokio::test]
async fn a_pdf_without_text_asks_for_text_recognition() {
    let blank = pdf(&[&[]], None);
    let err = read(&blank, "scan.pdf").await.unwrap_err();
    assert_eq!(err, ExtractError::NoText(DocumentKind::Pdf));
}

#[tokio::test]
async fn damaged_pdfs_never_panic_or_hang() {
    let good = handbook_pdf();
    let limits = Limits {
        timeout: Duration::from_secs(20),
        ..Limits::default()
    };
    // A fixed xorshift sequence: the same damaged files on every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let started = Instant::now();
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for round in 0..150 {
        let mut bytes = good.clone();
        if round % 3 == 0 {
            bytes.truncate(next() as usize % bytes.len());
        } else {
            for _ in 0..(1 + next() % 8) {
                let at = next() as usize % bytes.len();
                bytes[at] = next() as u8;
            }
        }
        let outcome = match extract(&bytes, Some("fuzz.pdf"), None, &limits).await {
            Ok(_) => "ok",
            Err(error) => error.code(),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("damaged PDF outcomes: {outcomes:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(!outcomes.contains_key("timeout"));
}

#[tokio::test]
async fn a_pdf_over_its_time_limit_times_out_and_frees_its_thread() {
    let zero = Limits {
        timeout: Duration::ZERO,
        ..Limits::default()
    };
    for _ in 0..3 {
        let err = extract(&handbook_pdf(), None, None, &zero)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "timeout");
    }
    // The timed-out threads end on their own and give their slots back.
    let started = Instant::now();
    let doc = loop {
        let limits = Limits {
            timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        match extract(&handbook_pdf(), None, None, &limits).await {
            Ok(doc) => break doc,
            Err(error) => assert!(started.elapsed() < Duration::from_secs(30), "{error}"),
        }
    };
    assert_eq!(doc.sections.len(), 2);
}

// ---- DOCX ----

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#;

fn paragraph(style: Option<&str>, text: &str) -> String {
    let style = style
        .map(|s| format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#))
        .unwrap_or_default();
    format!(r#"<w:p>{style}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>"#)
}

fn document_xml(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    )
}

fn docx(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, content) in parts {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[tokio::test]
async fn a_docx_keeps_headings_paragraphs_and_entities() {
    let body = [
        paragraph(Some("Title"), "Staff handbook"),
        paragraph(None, "Read this first."),
        paragraph(Some("Heading1"), "Leave &amp; absence"),
        paragraph(None, "Annual leave is 25 days."),
        paragraph(Some("Heading2"), "Parental leave"),
        paragraph(None, "Twelve weeks &lt;paid&gt; &#8212; ask HR."),
        paragraph(Some("Heading1"), "Travel"),
        paragraph(None, "Book early."),
    ]
    .concat();
    let bytes = docx(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("word/document.xml", &document_xml(&body)),
    ]);
    let doc = read(&bytes, "handbook.docx").await.unwrap();
    assert_eq!(doc.kind, DocumentKind::Docx);
    assert_eq!(doc.title.as_deref(), Some("Staff handbook"));
    let got: Vec<(String, &str)> = doc
        .sections
        .iter()
        .map(|s| (s.headings.join(" > "), s.text.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("Staff handbook".to_owned(), "Read this first."),
            (
                "Staff handbook > Leave & absence".to_owned(),
                "Annual leave is 25 days."
            ),
            (
                "Staff handbook > Leave & absence > Parental leave".to_owned(),
                "Twelve weeks <paid> — ask HR."
            ),
            ("Staff handbook > Travel".to_owned(), "Book early."),
        ]
    );
}

#[tokio::test]
async fn a_docx_title_comes_from_its_properties() {
    let core = r#"<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Expenses policy</dc:title></cp:coreProperties>"#;
    let bytes = docx(&[
        (
            "word/document.xml",
            &document_xml(&paragraph(None, "Claim within 30 days.")),
        ),
        ("docProps/core.xml", core),
    ]);
    let doc = read(&bytes, "x.docx").await.unwrap();
    assert_eq!(doc.title.as_deref(), Some("Expenses policy"));
}

#[tokio::test]
async fn a_zip_that_is_not_a_word_document_is_refused() {
    let bytes = docx(&[("readme.txt", "hello")]);
    let err = read(&bytes, "archive.docx").await.unwrap_err();
    assert_eq!(err.code(), "unsupported_type");
    assert!(
        err.to_string()
            .starts_with("a zip archive that is not a Word document"),
        "{err}"
    );
    let workbook = docx(&[("xl/workbook.xml", "<workbook/>")]);
    let err = read(&workbook, "book.xlsx").await.unwrap_err();
    assert!(err.to_string().contains("Excel"), "{err}");
}

#[tokio::test]
async fn a_docx_with_broken_xml_is_damaged() {
    let bytes = docx(&[("word/document.xml", "<w:document><w:body><w:p>")]);
    let doc = read(&bytes, "x.docx").await;
    // An unclosed body is tolerated as far as it goes: it has no text, so it is "no text".
    assert_eq!(doc.unwrap_err().code(), "no_text");
    let bytes = docx(&[("word/document.xml", "<w:document><w:t>a</w:x></w:document>")]);
    let err = read(&bytes, "x.docx").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the Word document is damaged: its text part is not well-formed XML"
    );
}

/// A DOCX whose `word/document.xml` is `size` bytes of zeros, streamed through the compressor
/// so the test never holds the inflated data.
fn zero_bomb(size: usize) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(false);
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(CONTENT_TYPES.as_bytes()).unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..size / block.len() {
        zip.write_all(&block).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Rewrites the uncompressed size `word/document.xml` declares, in both headers.
fn lie_about_size(archive: &mut [u8], declared: u32) {
    let name = b"word/document.xml";
    let mut at = 0;
    while let Some(found) = archive[at..]
        .windows(4)
        .position(|w| w == b"PK\x03\x04" || w == b"PK\x01\x02")
    {
        let header = at + found;
        let (name_at, size_at) = if &archive[header..header + 4] == b"PK\x03\x04" {
            (header + 30, header + 22)
        } else {
            (header + 46, header + 24)
        };
        if archive.get(name_at..name_at + name.len()) == Some(&name[..]) {
            archive[size_at..size_at + 4].copy_from_slice(&declared.to_le_bytes());
        }
        at = header + 4;
    }
}

#[tokio::test]
async fn a_zip_bomb_disguised_as_a_docx_is_refused_quickly() {
    let bomb = zero_bomb(200 << 20);
    assert!(
        bomb.len() < 2 << 20,
        "the bomb itself is small: {}",
        bomb.len()
    );

    // Honest headers: refused from the declared size, before inflating anything.
    let started = Instant::now();
    let err = read(&bomb, "report.docx").await.unwrap_err();
    assert_eq!(err.code(), "zip_bomb", "{err}");
    assert!(
        err.to_string()
            .starts_with("the file was refused as a possible zip bomb")
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // Lying headers (a small declared size): caught while inflating, at the limit.
    let mut liar = bomb;
    lie_about_size(&mut liar, 1000);
    let limits = Limits {
        max_text_bytes: 1 << 20,
        ..Limits::default()
    };
    let started = Instant::now();
    let err = extract(&liar, Some("report.docx"), None, &limits)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "zip_bomb", "{err}");
    assert!(
        err.to_string().contains("although it declares 1000"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_highly_compressed_part_under_the_size_limit_is_refused_by_its_ratio() {
    let bomb = zero_bomb(20 << 20);
    let err = read(&bomb, "report.docx").await.unwrap_err();
    assert_eq!(err.code(), "zip_bomb");
    assert!(err.to_string().contains("compressed"), "{err}");
}

#[tokio::test]
async fn an_archive_of_a_hundred_thousand_entries_is_refused() {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    zip.start_file("word/document.xml", stored).unwrap();
    zip.write_all(document_xml(&paragraph(None, "x")).as_bytes())
        .unwrap();
    for i in 0..100_000 {
        zip.start_file(format!("f/{i}"), stored).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let started = Instant::now();
    let err = read(&bytes, "many.docx").await.unwrap_err();
    assert_eq!(
        err,
        ExtractError::Bomb("the archive lists 100001 entries, over the limit of 10000".into())
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

// ---- text formats ----

#[tokio::test]
async fn invalid_utf8_text_says_where() {
    let err = read(b"Gr\xFC\xDFe aus Wien", "letter.txt")
        .await
        .unwrap_err();
    assert_eq!(err, ExtractError::InvalidUtf8 { offset: 2 });
    assert_eq!(
        err.to_string(),
        "the file is not UTF-8 text: byte 2 is not valid (save it as UTF-8)"
    );
}

#[tokio::test]
async fn oversize_input_is_refused_before_reading() {
    let limits = Limits {
        max_bytes: 1024,
        ..Limits::default()
    };
    let err = extract(&handbook_pdf(), Some("big.pdf"), None, &limits)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "too_large");
    assert!(err.to_string().ends_with("over the limit of 1024 bytes"));
}

#[tokio::test]
async fn binary_garbage_is_unsupported() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let err = read(&garbage, "upload").await.unwrap_err();
    assert_eq!(err.code(), "unsupported_type");
}

#[tokio::test]
async fn every_text_format_reads_end_to_end() {
    let html = br#"<!doctype html><title>Guide</title><script>var x = "<h1>no</h1>";</script>
        <h1>Guide</h1><p>Intro.</p><h2>Setup</h2><p>Run it.</p>"#;
    let doc = read(html, "guide").await.unwrap();
    assert_eq!(doc.kind, DocumentKind::Html);
    assert_eq!(doc.sections[1].headings, ["Guide", "Setup"]);

    let md = b"# Guide\n\n```sh\n# not a heading\n```\n\n## Setup\nRun it.\n";
    let doc = read(md, "guide.md").await.unwrap();
    assert_eq!(doc.sections.len(), 2);
    assert!(doc.sections[0].text.contains("# not a heading"));

    let csv = b"name,role\nAda,engineer\n";
    let doc = read(csv, "people.csv").await.unwrap();
    assert_eq!(doc.sections[0].text, "name: Ada; role: engineer");

    let json = br#"[{"name": "Ada", "skills": ["maths"]}]"#;
    let doc = read(json, "people.json").await.unwrap();
    assert_eq!(doc.sections[0].text, "[0].name: Ada\n[0].skills[0]: maths");

    let err = read(b"{\"name\": }", "people.json").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the JSON file is damaged: it is not valid JSON (a syntax error at line 1, column 10)"
    );
}

#[tokio::test]
async fn html_in_a_legacy_encoding_is_decoded() {
    let page =
        b"<html><head><meta charset=windows-1252></head><body><p>Caf\xE9 \x80 5</p></body></html>";
    let doc = read(page, "menu.html").await.unwrap();
    assert_eq!(doc.sections[0].text, "Café € 5");
}

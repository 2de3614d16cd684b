//! List Blobs' XML response read into blob names, sizes and etags and the next page's marker,
//! ignoring elements it does not know.

use quick_xml::events::Event;

use crate::connector::ConnectorError;

/// One blob as List Blobs describes it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ListedBlob {
    pub(super) name: String,
    pub(super) size: Option<u64>,
    pub(super) etag: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ListPage {
    pub(super) blobs: Vec<ListedBlob>,
    /// `None` on the last page.
    pub(super) next_marker: Option<String>,
}

/// Parses one List Blobs response: `EnumerationResults/Blobs/Blob/{Name, Properties/
/// {Content-Length, Etag}}` and `EnumerationResults/NextMarker`. Anything else is ignored, so
/// new elements in later API versions do no harm.
pub(super) fn parse_list_page(xml: &str) -> Result<ListPage, ConnectorError> {
    let bad = |e: &dyn std::fmt::Display| {
        ConnectorError::Protocol(format!("List Blobs answered malformed XML: {e}"))
    };
    let mut reader = quick_xml::Reader::from_str(xml.trim_start_matches('\u{feff}'));
    let mut page = ListPage::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut blob = ListedBlob::default();
    let mut name_encoded = false;
    let mut seen_root = false;
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(start) => {
                let local = start.local_name();
                let local: &str = local.as_ref();
                if path.is_empty() {
                    if local != "EnumerationResults" {
                        return Err(bad(&format!("root element {local}")));
                    }
                    seen_root = true;
                }
                if local == "Name" {
                    // Names holding characters XML 1.0 cannot carry come percent-encoded.
                    name_encoded = start
                        .try_get_attribute("Encoded")
                        .map_err(|e| bad(&e))?
                        .is_some_and(|a| a.value == "true");
                }
                path.push(local.to_owned());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| bad(&e))? {
                Some(c) => text.push(c),
                None => {
                    let entity = r.xml10_content();
                    let resolved = quick_xml::escape::resolve_predefined_entity(&entity)
                        .ok_or_else(|| bad(&format!("unknown entity &{entity};")))?;
                    text.push_str(resolved);
                }
            },
            Event::End(_) => {
                let joined = path.join("/");
                match joined.as_str() {
                    "EnumerationResults/Blobs/Blob/Name" => {
                        blob.name = if name_encoded {
                            percent_decode(&text).map_err(|e| bad(&e))?
                        } else {
                            std::mem::take(&mut text)
                        };
                    }
                    "EnumerationResults/Blobs/Blob/Properties/Content-Length" => {
                        blob.size = Some(
                            text.trim()
                                .parse()
                                .map_err(|_| bad(&format!("Content-Length {text:?}")))?,
                        );
                    }
                    "EnumerationResults/Blobs/Blob/Properties/Etag" => {
                        blob.etag = Some(std::mem::take(&mut text));
                    }
                    "EnumerationResults/Blobs/Blob" => {
                        if blob.name.is_empty() {
                            return Err(bad(&"a Blob without a Name"));
                        }
                        page.blobs.push(std::mem::take(&mut blob));
                    }
                    "EnumerationResults/NextMarker" => {
                        let marker = text.trim();
                        page.next_marker = (!marker.is_empty()).then(|| marker.to_owned());
                    }
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            // A cut-off listing must fail: read as complete, it would remove documents.
            Event::Eof if !path.is_empty() => return Err(bad(&"the listing is cut off")),
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(bad(&"no EnumerationResults element"));
    }
    Ok(page)
}

fn percent_decode(encoded: &str) -> Result<String, String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {encoded:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{encoded:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_yields_names_sizes_etags_and_the_next_marker() {
        let xml = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\
            <EnumerationResults ServiceEndpoint=\"http://x/\" ContainerName=\"docs\">\
            <MaxResults>2</MaxResults><Blobs>\
            <Blob><Name>hr/a &amp; b.txt</Name><Properties><Content-Length>12</Content-Length>\
            <Etag>0x8D1</Etag></Properties></Blob>\
            <Blob><Name Encoded=\"true\">odd%01name</Name><Properties>\
            <Content-Length>0</Content-Length><Etag>\"0x8D2\"</Etag></Properties>\
            <Metadata><Name>not the blob name</Name></Metadata></Blob>\
            </Blobs><NextMarker>2!64!abc</NextMarker></EnumerationResults>";
        let page = parse_list_page(xml).expect("parses");
        assert_eq!(
            page,
            ListPage {
                blobs: vec![
                    ListedBlob {
                        name: "hr/a & b.txt".into(),
                        size: Some(12),
                        etag: Some("0x8D1".into()),
                    },
                    ListedBlob {
                        name: "odd\u{1}name".into(),
                        size: Some(0),
                        etag: Some("\"0x8D2\"".into()),
                    },
                ],
                next_marker: Some("2!64!abc".into()),
            }
        );
        let last =
            parse_list_page("<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>")
                .expect("parses");
        assert_eq!(last, ListPage::default());
    }

    #[test]
    fn something_other_than_a_listing_is_a_protocol_error() {
        for body in [
            "<html><body>hello</body></html>",
            "",
            "<EnumerationResults><Blobs><Blob>",
        ] {
            let error = parse_list_page(body).expect_err(body);
            assert!(
                matches!(error, ConnectorError::Protocol(_)),
                "{body}: {error}"
            );
        }
    }
}

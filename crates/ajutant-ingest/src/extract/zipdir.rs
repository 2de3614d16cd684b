//! Just enough of the zip format to ask two questions before a zip library parses the archive:
//! how many entries it claims, and what it holds. Sniffing must tell a Word document from any
//! other zip, and a zip library builds an index of every entry up front, so an archive
//! claiming millions of entries is refused before that.

/// The central directory: the archive's table of contents at its end.
#[derive(Debug)]
pub(crate) struct CentralDirectory<'a> {
    /// What the end record claims, before anything is read.
    pub(crate) entries: u64,
    records: &'a [u8],
}

const END: &[u8; 4] = b"PK\x05\x06";
const END64_LOCATOR: &[u8; 4] = b"PK\x06\x07";
const END64: &[u8; 4] = b"PK\x06\x06";
const ENTRY: &[u8; 4] = b"PK\x01\x02";
/// The end record is 22 bytes plus a comment of at most 65,535.
const END_SEARCH: usize = 22 + 65_535;

impl<'a> CentralDirectory<'a> {
    pub(crate) fn read(bytes: &'a [u8]) -> Result<Self, &'static str> {
        let search_from = bytes.len().saturating_sub(END_SEARCH);
        let end = bytes
            .get(search_from..)
            .and_then(|tail| tail.windows(4).rposition(|w| w == END))
            .map(|i| i + search_from)
            .ok_or("its table of contents is missing (the file may be cut short)")?;
        let mut entries = u64::from(u16_at(bytes, end + 10).ok_or("its end record is cut short")?);
        let mut size = u64::from(u32_at(bytes, end + 12).ok_or("its end record is cut short")?);
        // The directory sits right before the end record (or before the zip64 end record), which
        // stays right even when something was prepended to the archive and offsets are off.
        let mut directory_end = end;
        let zip64 = entries == 0xFFFF || size == 0xFFFF_FFFF;
        if zip64
            && let Some(locator) = end.checked_sub(20)
            && bytes.get(locator..locator + 4) == Some(END64_LOCATOR)
        {
            let record = u64_at(bytes, locator + 8)
                .and_then(|offset| usize::try_from(offset).ok())
                .filter(|offset| bytes.get(*offset..*offset + 4) == Some(END64))
                .ok_or("its zip64 end record is broken")?;
            entries = u64_at(bytes, record + 32).ok_or("its zip64 end record is cut short")?;
            size = u64_at(bytes, record + 40).ok_or("its zip64 end record is cut short")?;
            directory_end = record;
        }
        let start = usize::try_from(size)
            .ok()
            .and_then(|size| directory_end.checked_sub(size))
            .ok_or("its table of contents is broken")?;
        Ok(Self {
            entries,
            records: bytes.get(start..directory_end).unwrap_or_default(),
        })
    }

    /// The first of `names` the directory lists, in the order of `names`.
    pub(crate) fn find_any(&self, names: &[&str]) -> Option<usize> {
        let mut found: Option<usize> = None;
        for name in self.names() {
            if let Some(i) = names.iter().position(|n| n.as_bytes() == name) {
                found = Some(found.map_or(i, |f| f.min(i)));
                if i == 0 {
                    break;
                }
            }
        }
        found
    }

    fn names(&self) -> impl Iterator<Item = &'a [u8]> {
        let records = self.records;
        let mut at = 0usize;
        std::iter::from_fn(move || {
            if records.get(at..at + 4)? != ENTRY {
                return None;
            }
            let name_len = usize::from(u16_at(records, at + 28)?);
            let extra_len = usize::from(u16_at(records, at + 30)?);
            let comment_len = usize::from(u16_at(records, at + 32)?);
            let name = records.get(at + 46..at + 46 + name_len)?;
            at += 46 + name_len + extra_len + comment_len;
            Some(name)
        })
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn archive(names: &[&str]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for name in names {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"x").unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn lists_entries_and_finds_names() {
        let bytes = archive(&[
            "[Content_Types].xml",
            "word/document.xml",
            "xl/workbook.xml",
        ]);
        let directory = CentralDirectory::read(&bytes).unwrap();
        assert_eq!(directory.entries, 3);
        assert_eq!(directory.find_any(&["word/document.xml"]), Some(0));
        assert_eq!(directory.find_any(&["nope", "xl/workbook.xml"]), Some(1));
        assert_eq!(directory.find_any(&["nope"]), None);
    }

    #[test]
    fn prepended_bytes_do_not_hide_the_directory() {
        let mut bytes = b"junk before the archive".to_vec();
        bytes.extend(archive(&["word/document.xml"]));
        let directory = CentralDirectory::read(&bytes).unwrap();
        assert_eq!(directory.find_any(&["word/document.xml"]), Some(0));
    }

    #[test]
    fn a_cut_archive_is_reported_not_panicked_on() {
        let bytes = archive(&["word/document.xml"]);
        for cut in 0..bytes.len() {
            let _ = CentralDirectory::read(&bytes[..cut]).map(|d| d.find_any(&["a"]));
        }
        assert!(CentralDirectory::read(&bytes[..bytes.len() / 2]).is_err());
    }
}

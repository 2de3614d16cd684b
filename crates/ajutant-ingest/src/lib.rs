//! What happens to a document before it is stored. A [`connector::Connector`] lists and fetches
//! a source's documents; [`extract`] sniffs what a file really is and turns it into text with
//! its structure (headings, pages); [`chunk`] cuts that text into token-counted passages that
//! keep their headings. Nothing here touches the database or the web server: the server's
//! ingestion worker drives these pieces and stores what they produce.

pub mod chunk;
pub mod connector;
pub mod extract;

use sha2::{Digest, Sha256};

/// The content hash that incremental sync compares: SHA-256 of the raw bytes, lower-case hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

//! Shared Key authorization for the Blob service: the string-to-sign built from a request's
//! method, headers and resource, signed with HMAC-SHA256 under the account key.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use url::Url;

use super::API_VERSION;
use crate::connector::ConnectorError;

/// A storage account name and its decoded access key. `Debug` shows the account only.
#[derive(Clone)]
pub struct SharedKey {
    account: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKey")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SharedKey {
    /// `key` is the access key as the portal shows it (base64).
    pub fn new(account: impl Into<String>, key: &str) -> Result<Self, ConnectorError> {
        let account = account.into();
        if account.is_empty() {
            return Err(ConnectorError::Config(
                "the storage account name is empty".into(),
            ));
        }
        let key = BASE64.decode(key.trim()).map_err(|_| {
            ConnectorError::Config(format!(
                "the access key of storage account {account} is not base64"
            ))
        })?;
        Ok(Self { account, key })
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Signs `request` in place: sets `x-ms-date` and `x-ms-version` when missing, then
    /// `Authorization: SharedKey account:signature`. Sign last: a header added afterwards is
    /// not covered. A body of known bytes counts as Content-Length when that header is unset,
    /// since the HTTP client only adds it on the way out.
    pub fn sign(&self, request: &mut reqwest::Request) -> Result<(), ConnectorError> {
        let headers = request.headers_mut();
        if !headers.contains_key("x-ms-date") {
            headers.insert("x-ms-date", header_value(&http_date_now()?)?);
        }
        if !headers.contains_key("x-ms-version") {
            headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        }
        let body_length = request
            .body()
            .and_then(|body| body.as_bytes())
            .map_or(0, <[u8]>::len);
        let to_sign = string_to_sign(&SignedParts {
            method: request.method(),
            url: request.url(),
            headers: request.headers(),
            body_length,
            account: &self.account,
        });
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .map_err(|_| ConnectorError::Config("the access key cannot key HMAC".into()))?;
        mac.update(to_sign.as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        let authorization = header_value(&format!("SharedKey {}:{signature}", self.account))?;
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, authorization);
        Ok(())
    }
}

/// What Shared Key signs, gathered from a request.
struct SignedParts<'a> {
    method: &'a Method,
    url: &'a Url,
    headers: &'a HeaderMap,
    /// Length of the body when its bytes are known, used when Content-Length is unset.
    body_length: usize,
    account: &'a str,
}

/// The Shared Key string-to-sign for the Blob service (version 2009-09-19 and later), as in
/// "Authorize with Shared Key" in the Azure Storage REST docs.
fn string_to_sign(parts: &SignedParts<'_>) -> String {
    let header = |name: &str| -> String {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    // Since 2015-02-21 a zero Content-Length is signed as the empty string.
    let content_length = match header("content-length") {
        length if !length.is_empty() => length,
        _ if parts.body_length > 0 => parts.body_length.to_string(),
        _ => String::new(),
    };
    let content_length = if content_length == "0" {
        String::new()
    } else {
        content_length
    };
    let mut out = String::new();
    out.push_str(parts.method.as_str());
    out.push('\n');
    for value in [
        header("content-encoding"),
        header("content-language"),
        content_length,
        header("content-md5"),
        header("content-type"),
        // Empty when x-ms-date is sent, which `sign` makes sure of.
        if parts.headers.contains_key("x-ms-date") {
            String::new()
        } else {
            header("date")
        },
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ] {
        out.push_str(&value);
        out.push('\n');
    }
    out.push_str(&canonicalized_headers(parts.headers));
    out.push_str(&canonicalized_resource(parts.account, parts.url));
    out
}

/// Every `x-ms-*` header as `name:value\n`, names lower-case and sorted, values trimmed with
/// inner runs of whitespace folded to one space.
fn canonicalized_headers(headers: &HeaderMap) -> String {
    let mut ms: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let name: &HeaderName = name;
        if name.as_str().starts_with("x-ms-") {
            let value = String::from_utf8_lossy(value.as_bytes());
            ms.entry(name.as_str())
                .or_default()
                .push(value.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    ms.into_iter()
        .map(|(name, values)| format!("{name}:{}\n", values.join(",")))
        .collect()
}

/// `/{account}{path}` with the path exactly as sent (percent-encoded), then one
/// `\nname:value` line per query parameter: names lower-case and sorted, values decoded, a
/// repeated parameter's values sorted and comma-joined. On a path-style URL (Azurite) the path
/// starts with the account again, so it appears twice, as the service expects.
fn canonicalized_resource(account: &str, url: &Url) -> String {
    let mut out = format!("/{account}{}", url.path());
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        params
            .entry(name.to_lowercase())
            .or_default()
            .push(value.into_owned());
    }
    for (name, mut values) in params {
        values.sort();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

/// Now in the RFC 1123 form HTTP dates use: `Mon, 05 Jan 2026 10:00:00 GMT`.
fn http_date_now() -> Result<String, ConnectorError> {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::now_utc()
        .format(FORMAT)
        .map_err(|e| ConnectorError::Protocol(format!("formatting the date: {e}")))
}

fn header_value(value: &str) -> Result<HeaderValue, ConnectorError> {
    HeaderValue::from_str(value)
        .map_err(|_| ConnectorError::Config(format!("{value:?} cannot be sent as a header")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the research notes (docs/research/retrieval-stack.md, section 7).
    #[test]
    fn list_blobs_string_to_sign_names_the_account_twice_on_a_path_style_url() {
        let url = Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/docs?restype=container&comp=list&prefix=tenant1%2F&maxresults=500",
        )
        .expect("url");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ms-date",
            HeaderValue::from_static("Mon, 05 Jan 2026 10:00:00 GMT"),
        );
        headers.insert("x-ms-version", HeaderValue::from_static("2021-08-06"));
        let signed = string_to_sign(&SignedParts {
            method: &Method::GET,
            url: &url,
            headers: &headers,
            body_length: 0,
            account: "devstoreaccount1",
        });
        let expected = format!(
            "GET{}x-ms-date:Mon, 05 Jan 2026 10:00:00 GMT\nx-ms-version:2021-08-06\n\
             /devstoreaccount1/devstoreaccount1/docs\ncomp:list\nmaxresults:500\nprefix:tenant1/\nrestype:container",
            "\n".repeat(12)
        );
        assert_eq!(signed, expected);
    }

    #[test]
    fn a_put_signs_the_body_length_type_and_every_ms_header() {
        let url =
            Url::parse("http://127.0.0.1:10000/devstoreaccount1/c1/b%201?z=2&comp=metadata&a=1")
                .expect("url");
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
        headers.insert("x-ms-date", HeaderValue::from_static("D"));
        headers.insert("x-ms-version", HeaderValue::from_static("2021-08-06"));
        let signed = string_to_sign(&SignedParts {
            method: &Method::PUT,
            url: &url,
            headers: &headers,
            body_length: 5,
            account: "devstoreaccount1",
        });
        assert_eq!(
            signed,
            "PUT\n\n\n5\n\ntext/plain\n\n\n\n\n\n\n\
             x-ms-blob-type:BlockBlob\nx-ms-date:D\nx-ms-version:2021-08-06\n\
             /devstoreaccount1/devstoreaccount1/c1/b%201\na:1\ncomp:metadata\nz:2"
        );
    }
}

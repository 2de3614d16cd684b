//! Azure Blob Storage: the blobs of one container, optionally only those under a name prefix,
//! over the plain REST API (List Blobs, Get Blob). Keys are full blob names, so a blob keeps its
//! key when the prefix changes. Blob Storage has no per-blob ACL we could map to groups, so
//! every item takes the collection's access scope.
//!
//! Plain REST rather than an Azure SDK crate: the maintained `azure_storage_blob` accepts only
//! Entra ID tokens (no Shared Key, so no Azurite), and the older SDK is unmaintained. What we
//! need is two GET calls, Shared Key signing (HMAC-SHA256) and a small XML listing.
//!
//! Credentials are a Shared Key (account name and key) or a SAS token. Managed identity (an
//! Entra token for `https://storage.azure.com/` sent as `Authorization: Bearer`, with
//! `x-ms-version` 2017-11-09 or later) is not done yet: it would be a third
//! [`AzureBlobCredential`] variant fetching its token like `ajutant-providers`' `azure_token.rs`.

//!
//! `shared_key.rs` signs requests with a Shared Key; `listing.rs` reads List Blobs' XML.

mod listing;
mod shared_key;

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use url::Url;

use super::{Connector, ConnectorError, SourceItem};
use listing::parse_list_page;

pub use shared_key::SharedKey;

/// The Blob service REST version we speak. 2021-08-06 has everything used here (List Blobs
/// with `Encoded` names, Shared Key with an empty Content-Length for 0) and Azurite accepts it.
pub const API_VERSION: &str = "2021-08-06";

/// List Blobs' own maximum page size; fewer round trips for large containers.
const MAX_PAGE_SIZE: u32 = 5000;

/// A connection that cannot be made in this time is a down or unreachable account.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// No total timeout, since a 50 MB blob on a slow link legitimately takes long; a peer that
/// sends nothing for this long is stuck.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How the connector proves it may read the container.
#[derive(Clone)]
pub enum AzureBlobCredential {
    /// The storage account's name and one of its access keys (Shared Key authorization).
    SharedKey(SharedKey),
    /// A SAS token (account or container SAS allowing list and read), appended to every URL.
    Sas(SasToken),
}

impl std::fmt::Debug for AzureBlobCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SharedKey(key) => f.debug_tuple("SharedKey").field(key).finish(),
            Self::Sas(_) => f.write_str("Sas(<redacted>)"),
        }
    }
}

/// A SAS token's query string (with or without the leading `?`). `Debug` redacts it.
#[derive(Clone)]
pub struct SasToken(String);

impl SasToken {
    pub fn new(token: &str) -> Result<Self, ConnectorError> {
        let token = token.trim().trim_start_matches('?');
        if !token.split('&').any(|pair| pair.starts_with("sig=")) {
            return Err(ConnectorError::Config(
                "the SAS token has no signature (sig=...)".into(),
            ));
        }
        Ok(Self(token.to_owned()))
    }

    fn apply(&self, url: &mut Url) {
        let query = match url.query() {
            Some(query) if !query.is_empty() => format!("{query}&{}", self.0),
            _ => self.0.clone(),
        };
        url.set_query(Some(&query));
    }
}

impl std::fmt::Debug for SasToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SasToken(<redacted>)")
    }
}

/// Where the blobs are and how to read them.
#[derive(Debug, Clone)]
pub struct AzureBlobConfig {
    /// The Blob endpoint: `https://{account}.blob.core.windows.net`, or path-style such as
    /// Azurite's `http://127.0.0.1:10000/devstoreaccount1`. Plain http only on loopback.
    pub account_url: String,
    pub container: String,
    /// Only blobs whose names start with this (a "folder" is a prefix ending in `/`).
    pub prefix: Option<String>,
    pub credential: AzureBlobCredential,
    /// Where the connector may connect: the account URL is checked when connecting.
    pub egress: ajutant_egress::Egress,
}

#[derive(Debug, Clone)]
pub struct AzureBlobConnector {
    /// `{account_url}/{container}`, without credentials.
    container_url: Url,
    container: String,
    prefix: Option<String>,
    credential: AzureBlobCredential,
    page_size: u32,
    http: ajutant_egress::Client,
}

impl AzureBlobConnector {
    pub fn new(config: AzureBlobConfig) -> Result<Self, ConnectorError> {
        let mut account_url = Url::parse(config.account_url.trim()).map_err(|e| {
            ConnectorError::Config(format!("account URL {}: {e}", config.account_url))
        })?;
        check_account_url(&account_url)?;
        check_container_name(&config.container)?;
        let shown = account_url.to_string();
        account_url
            .path_segments_mut()
            .map_err(|()| ConnectorError::Config(format!("{shown} cannot be a base")))?
            .pop_if_empty()
            .push(&config.container);
        let http = config
            .egress
            .client(
                reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT),
                // A redirect could carry a SAS token to another host; the Blob service never
                // redirects.
                ajutant_egress::Redirects::Refuse,
            )
            .map_err(|e| ConnectorError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            container_url: account_url,
            container: config.container,
            prefix: config.prefix.filter(|prefix| !prefix.is_empty()),
            credential: config.credential,
            page_size: MAX_PAGE_SIZE,
            http,
        })
    }

    /// Blobs per List Blobs call (1 to 5000; 5000 by default). Smaller only to test paging.
    #[must_use]
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// The blob's URL as a reader would open it: no SAS token or other credential in it.
    pub fn blob_url(&self, name: &str) -> Result<Url, ConnectorError> {
        if !addressable(name) {
            return Err(ConnectorError::Protocol(format!(
                "blob name {name:?} cannot be addressed by URL"
            )));
        }
        let mut url = self.container_url.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ConnectorError::Config(format!("{} cannot be a base", self.container_url))
            })?
            .extend(name.split('/'));
        Ok(url)
    }

    async fn list_all(&self) -> Result<Vec<SourceItem>, ConnectorError> {
        let mut items = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = self.container_url.clone();
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("restype", "container");
                query.append_pair("comp", "list");
                query.append_pair("maxresults", &self.page_size.to_string());
                if let Some(prefix) = &self.prefix {
                    query.append_pair("prefix", prefix);
                }
                if let Some(marker) = &marker {
                    query.append_pair("marker", marker);
                }
            }
            let response = self.send(url).await?;
            if !response.status().is_success() {
                return Err(self.failure(response, None).await);
            }
            let body = response.text().await.map_err(|e| {
                ConnectorError::Unreachable(format!("{}: {}", self.container_url, e.without_url()))
            })?;
            let page = parse_list_page(&body)?;
            for blob in page.blobs {
                if !addressable(&blob.name) {
                    // Dot segments are removed from URLs on the way, so such a blob cannot be
                    // fetched; listing it would fail every sync.
                    tracing::warn!(blob = %blob.name, "skipping a blob whose name cannot be addressed by URL");
                    continue;
                }
                let url = self.blob_url(&blob.name)?;
                items.push(SourceItem {
                    name: blob
                        .name
                        .rsplit('/')
                        .next()
                        .unwrap_or(&blob.name)
                        .to_owned(),
                    key: blob.name,
                    size: blob.size,
                    version: blob.etag,
                    url: Some(url.to_string()),
                    acl: None,
                });
            }
            match page.next_marker {
                Some(next) if marker.as_deref() == Some(next.as_str()) => {
                    return Err(ConnectorError::Protocol(format!(
                        "listing {} repeats the continuation marker {next:?}",
                        self.container_url
                    )));
                }
                Some(next) => marker = Some(next),
                None => break,
            }
        }
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    async fn get(&self, item: &SourceItem, max_bytes: u64) -> Result<Vec<u8>, ConnectorError> {
        let url = self.blob_url(&item.key)?;
        let mut response = self.send(url.clone()).await?;
        if !response.status().is_success() {
            return Err(self.failure(response, Some(&item.key)).await);
        }
        let too_large = |size: u64| ConnectorError::TooLarge {
            key: item.key.clone(),
            size,
            limit: max_bytes,
        };
        let announced = response.content_length();
        if let Some(length) = announced.filter(|length| *length > max_bytes) {
            return Err(too_large(length));
        }
        let capacity = announced.unwrap_or(0).min(max_bytes);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        // Stop at the first chunk past the limit, so an over-limit body that announced no
        // length (or a wrong one) is never read whole.
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ConnectorError::Unreachable(format!("{url}: {}", e.without_url())))?
        {
            let total = bytes.len() as u64 + chunk.len() as u64;
            if total > max_bytes {
                return Err(too_large(announced.or(item.size).unwrap_or(total)));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// A GET of `url` (credential-free) with this connector's credential applied.
    async fn send(&self, url: Url) -> Result<reqwest::Response, ConnectorError> {
        let shown = url.clone();
        let mut url = url;
        if let AzureBlobCredential::Sas(sas) = &self.credential {
            sas.apply(&mut url);
        }
        let mut request = reqwest::Request::new(Method::GET, url);
        request.headers_mut().insert(
            "x-ms-version",
            reqwest::header::HeaderValue::from_static(API_VERSION),
        );
        if let AzureBlobCredential::SharedKey(key) = &self.credential {
            key.sign(&mut request)?;
        }
        // Egress errors leave the URL out: with a SAS it carries the token.
        self.http.execute(request).await.map_err(|e| match e {
            ajutant_egress::Error::Refused(why) => {
                ConnectorError::Refused(format!("{shown}: {why}"))
            }
            other => ConnectorError::Unreachable(format!("{shown}: {other}")),
        })
    }

    /// The error for a refused request; `blob` is the key when fetching one blob.
    async fn failure(&self, response: reqwest::Response, blob: Option<&str>) -> ConnectorError {
        let status = response.status();
        let code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let what = match blob {
            Some(name) => format!("blob {name} in container {}", self.container),
            None => format!("container {}", self.container),
        };
        let detail = if code.is_empty() {
            status.to_string()
        } else {
            format!("{status} {code}")
        };
        match (status, blob) {
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => {
                ConnectorError::Denied(format!("{what}: {detail}"))
            }
            (StatusCode::NOT_FOUND, _) if code == "ContainerNotFound" => {
                ConnectorError::Config(format!(
                    "container {} does not exist at {}",
                    self.container, self.container_url
                ))
            }
            // ResourceNotFound is a wrong account URL, not a missing blob.
            (StatusCode::NOT_FOUND, Some(name)) if code != "ResourceNotFound" => {
                ConnectorError::Gone(name.to_owned())
            }
            (StatusCode::NOT_FOUND, _) => ConnectorError::Config(format!(
                "nothing answers for {what} at {} ({detail}): check the account URL",
                self.container_url
            )),
            (s, _) if s.is_server_error() => {
                ConnectorError::Unreachable(format!("{what}: {detail}"))
            }
            _ => ConnectorError::Protocol(format!("{what}: {detail}")),
        }
    }
}

impl Connector for AzureBlobConnector {
    fn kind(&self) -> &'static str {
        "azure_blob"
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<SourceItem>, ConnectorError>> {
        Box::pin(self.list_all())
    }

    fn fetch<'a>(
        &'a self,
        item: &'a SourceItem,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, ConnectorError>> {
        Box::pin(self.get(item, max_bytes))
    }
}

fn check_account_url(url: &Url) -> Result<(), ConnectorError> {
    let refuse = |why: &str| Err(ConnectorError::Config(format!("account URL {url}: {why}")));
    if url.query().is_some() || url.fragment().is_some() {
        return refuse("put a SAS token in the credential, not in the URL");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("it must not carry a user name or password");
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        // Documents, and a SAS token in every URL, would cross the network in clear; the
        // emulator on this machine is the one plain-http endpoint worth allowing.
        "http" if loopback => Ok(()),
        "http" => refuse("plain http is accepted only on loopback (Azurite)"),
        _ => refuse("it must be an https URL"),
    }
}

/// Azure's container naming rules: 3-63 lower-case letters, digits and single hyphens, starting
/// and ending with a letter or digit; `$root`, `$web` and `$logs` are the special ones.
fn check_container_name(name: &str) -> Result<(), ConnectorError> {
    let special = matches!(name, "$root" | "$web" | "$logs");
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if special || valid {
        Ok(())
    } else {
        Err(ConnectorError::Config(format!(
            "{name:?} is not a valid container name (3-63 lower-case letters, digits, hyphens)"
        )))
    }
}

/// False for names with `.` or `..` segments, which URL normalisation would rewrite.
fn addressable(name: &str) -> bool {
    !name.is_empty() && !name.split('/').any(|segment| matches!(segment, "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_mistakes_are_refused_up_front() {
        let key =
            || AzureBlobCredential::SharedKey(SharedKey::new("acct", "a2V5").expect("base64"));
        let config = |url: &str, container: &str| AzureBlobConfig {
            account_url: url.into(),
            container: container.into(),
            prefix: None,
            credential: key(),
            egress: ajutant_egress::Egress::default(),
        };
        for (url, container) in [
            ("http://acct.blob.core.windows.net", "docs"),
            ("https://acct.blob.core.windows.net?sv=1&sig=x", "docs"),
            ("https://acct.blob.core.windows.net", "Docs"),
            ("https://acct.blob.core.windows.net", "a/b"),
            ("ftp://acct", "docs"),
        ] {
            let error = AzureBlobConnector::new(config(url, container)).expect_err(url);
            assert!(
                matches!(error, ConnectorError::Config(_)),
                "{url} {container}: {error}"
            );
        }
        assert!(SharedKey::new("acct", "not base64!").is_err());
        assert!(SasToken::new("sv=2021&sp=rl").is_err());
        let connector =
            AzureBlobConnector::new(config("http://127.0.0.1:10000/devstoreaccount1/", "docs"))
                .expect("loopback http is fine");
        assert_eq!(
            connector.blob_url("hr/a b#1.pdf").expect("url").as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/docs/hr/a%20b%231.pdf"
        );
        assert!(connector.blob_url("a/../b").is_err());
    }

    /// A body without Content-Length (chunked) is cut off at the limit, not read whole.
    #[tokio::test]
    async fn a_blob_without_a_length_is_refused_once_it_passes_the_limit() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        #[allow(
            clippy::disallowed_methods,
            reason = "a test peer that ends with the test"
        )]
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let mut response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..10 {
                response.extend_from_slice(b"64\r\n");
                response.extend_from_slice(&[b'x'; 100]);
                response.extend_from_slice(b"\r\n");
            }
            response.extend_from_slice(b"0\r\n\r\n");
            let _ = socket.write_all(&response).await;
        });
        let connector = AzureBlobConnector::new(AzureBlobConfig {
            account_url: format!("http://{address}/acct"),
            container: "docs".into(),
            prefix: None,
            credential: AzureBlobCredential::Sas(SasToken::new("sv=1&sig=x").expect("sas")),
            egress: ajutant_egress::Egress::new(&["127.0.0.1".to_owned()]),
        })
        .expect("configuration");
        let item = SourceItem {
            key: "a.bin".into(),
            name: "a.bin".into(),
            size: None,
            version: None,
            url: None,
            acl: None,
        };
        let error = connector
            .fetch(&item, 250)
            .await
            .expect_err("over the limit");
        assert!(
            matches!(error, ConnectorError::TooLarge { limit: 250, size, .. } if size <= 1000),
            "{error}"
        );
        server.abort();
    }

    #[test]
    fn debug_output_hides_keys_and_sas_tokens() {
        let key = SharedKey::new("acct", "c2VjcmV0LWtleQ==").expect("base64");
        let sas = SasToken::new("?sv=2021&sig=c2VjcmV0").expect("sas");
        let shown = format!(
            "{:?} {:?}",
            AzureBlobCredential::SharedKey(key),
            AzureBlobCredential::Sas(sas)
        );
        assert!(shown.contains("acct"), "{shown}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("secret"),
            "{shown}"
        );
    }
}

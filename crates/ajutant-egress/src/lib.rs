//! The one check every outbound call made on a user's or an owner's behalf goes through:
//! connectors, webhooks, and later tools and workflow deliveries.
//!
//! An owner chooses *what* is fetched (a path within a connection, a tool's arguments), so an
//! address they influence must never reach the server's own network: loopback, private,
//! link-local (the cloud metadata endpoints), unique-local and the other non-public ranges are
//! refused unless an admin allowed that host by name in `egress.allow_hosts`.
//!
//! The check is made where the connection is made: a host name is resolved by [`Egress`]'s
//! resolver, which keeps only permitted addresses, so a name that resolves to a public address
//! when checked and a private one when connecting (DNS rebinding) cannot slip through. Address
//! literals never reach a resolver, so [`Client::execute`] checks the URL first; the `url` crate
//! has already turned decimal, octal and hex spellings (`http://2130706433/`, `http://0x7f.1/`)
//! into the address they mean. Redirects are re-checked hop by hop, or not followed at all.
//! Proxies from the environment are ignored: through a proxy only the proxy's address would be
//! checked.

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Most redirects followed when a caller follows them at all.
pub const MAX_REDIRECTS: usize = 5;

/// Why an outbound call was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("only http and https may be called, not {0}:")]
    Scheme(String),
    #[error("{0} has no host")]
    NoHost(String),
    #[error(
        "{host} is {kind} address ({address}); outbound calls to it are refused unless an admin \
         adds the host to egress.allow_hosts"
    )]
    Address {
        host: String,
        address: IpAddr,
        kind: &'static str,
    },
    #[error("{host} cannot be resolved: {reason}")]
    Unresolved { host: String, reason: String },
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
}

/// The hosts an admin allowed in spite of their addresses, by name or by address.
#[derive(Debug, Default)]
struct Allowed {
    names: BTreeSet<String>,
    addresses: BTreeSet<IpAddr>,
}

impl Allowed {
    fn name(&self, host: &str) -> bool {
        self.names.contains(&normal_name(host))
    }

    fn address(&self, address: IpAddr) -> bool {
        self.addresses.contains(&canonical(address))
    }
}

fn normal_name(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An IPv4-mapped IPv6 address is the IPv4 address it maps.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The egress policy: cheap to clone, shared by every client built from it.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    allowed: Arc<Allowed>,
}

/// Whether a client follows redirects (each hop re-checked) or hands them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// A redirect is the answer: for calls that carry a credential in the URL or headers.
    Refuse,
    /// Up to [`MAX_REDIRECTS`], each checked like the first request.
    Follow,
}

impl Egress {
    /// A policy allowing `allow_hosts` (names or addresses, as `egress.allow_hosts` holds them)
    /// whatever they resolve to. Entries that are not hosts are the configuration's to refuse;
    /// here they simply never match.
    pub fn new(allow_hosts: &[String]) -> Self {
        let mut allowed = Allowed::default();
        for host in allow_hosts {
            let host = host.trim();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<IpAddr>() {
                Ok(address) => {
                    allowed.addresses.insert(canonical(address));
                }
                Err(_) => {
                    allowed.names.insert(normal_name(host));
                }
            }
        }
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// Checks what can be checked before connecting: the scheme, and the address when the URL
    /// names one. Host names are checked when they are resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme(url.scheme().to_owned()));
        }
        let address = match url.host() {
            None => return Err(Refused::NoHost(url.to_string())),
            Some(Host::Domain(_)) => return Ok(()),
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        };
        self.check_address(url.host_str().unwrap_or_default(), address)
    }

    fn check_address(&self, host: &str, address: IpAddr) -> Result<(), Refused> {
        if self.allowed.name(host) || self.allowed.address(address) {
            return Ok(());
        }
        match not_public(address) {
            None => Ok(()),
            Some(kind) => Err(Refused::Address {
                host: host.to_owned(),
                address,
                kind,
            }),
        }
    }

    /// A client that resolves through this policy, ignores proxies and treats redirects as
    /// asked. Everything else (timeouts, TLS, user agent) comes from `builder`.
    pub fn client(
        &self,
        builder: reqwest::ClientBuilder,
        redirects: Redirects,
    ) -> Result<Client, reqwest::Error> {
        let policy = match redirects {
            Redirects::Refuse => reqwest::redirect::Policy::none(),
            Redirects::Follow => {
                let egress = self.clone();
                reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() > MAX_REDIRECTS {
                        return attempt.error(Refused::TooManyRedirects);
                    }
                    match egress.check_url(attempt.url()) {
                        Ok(()) => attempt.follow(),
                        Err(refused) => attempt.error(refused),
                    }
                })
            }
        };
        let http = builder
            .no_proxy()
            .redirect(policy)
            .dns_resolver(Arc::new(Resolver {
                egress: self.clone(),
            }))
            .build()?;
        Ok(Client {
            http,
            egress: self.clone(),
        })
    }
}

/// Resolves a name and keeps the addresses the policy permits.
struct Resolver {
    egress: Egress,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.egress.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Refused::Unresolved {
                    host: host.clone(),
                    reason: e.to_string(),
                })?;
            let mut kept: Vec<SocketAddr> = Vec::new();
            let mut refused = None;
            for address in found {
                match egress.check_address(&host, address.ip()) {
                    Ok(()) => kept.push(address),
                    Err(why) => {
                        refused.get_or_insert(why);
                    }
                }
            }
            if kept.is_empty() {
                let why = refused.unwrap_or_else(|| Refused::Unresolved {
                    host: host.clone(),
                    reason: "no addresses".to_owned(),
                });
                return Err(Box::new(why) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client bound to an egress policy. Its only way out is [`Client::execute`], which
/// checks the URL before the request leaves. Requests are made with `reqwest::Request::new`:
/// there is deliberately no builder here, since reqwest's builder could `send()` itself past
/// the check of address literals.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    egress: Egress,
}

/// A call that was refused, or that failed on the way.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refused by the egress check: {0}")]
    Refused(Refused),
    #[error("{0}")]
    Http(String, #[source] reqwest::Error),
}

impl Error {
    /// Whether the policy refused the call (as opposed to the network or the peer failing).
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Refused(_))
    }

    /// The underlying HTTP error, for callers that tell timeouts from other failures.
    pub fn http(&self) -> Option<&reqwest::Error> {
        match self {
            Self::Http(_, error) => Some(error),
            Self::Refused(_) => None,
        }
    }

    /// Without the URL: it may carry a credential (a SAS token, a Teams webhook's key), so
    /// callers name the destination themselves.
    fn from_http(error: reqwest::Error) -> Self {
        if let Some(refused) = refusal(&error) {
            return Self::Refused(refused.clone());
        }
        let error = error.without_url();
        Self::Http(chain(&error), error)
    }
}

/// The egress refusal somewhere in an error's chain of causes, if that is why it failed.
fn refusal<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Refused> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        next = error.source();
    }
    None
}

/// An error and its causes in one line: reqwest's own message leaves out why it failed.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

impl Client {
    /// Sends `request` if the policy permits its destination.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, Error> {
        self.egress
            .check_url(request.url())
            .map_err(Error::Refused)?;
        self.http.execute(request).await.map_err(Error::from_http)
    }
}

/// What kind of non-public address `address` is, or `None` for a public one.
pub fn not_public(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => not_public_v4(v4),
        IpAddr::V6(v6) => not_public_v6(v6),
    }
}

fn not_public_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = address.octets();
    let kind = match (a, b, c, d) {
        (0, ..) => "a \"this network\"",
        (127, ..) => "a loopback",
        (10, ..) | (172, 16..=31, ..) | (192, 168, ..) => "a private",
        (169, 254, 169, 254) => "the cloud metadata",
        (169, 254, ..) => "a link-local",
        // Azure's platform endpoint (wireserver), reachable from every Azure VM.
        (168, 63, 129, 16) => "the Azure platform",
        (100, 64..=127, ..) => "a shared (carrier-grade NAT)",
        (192, 0, 0, _) => "an IETF protocol",
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => "a documentation",
        (198, 18..=19, ..) => "a benchmarking",
        (224..=239, ..) => "a multicast",
        (240..=255, ..) => "a reserved",
        _ => return None,
    };
    Some(kind)
}

fn not_public_v6(address: Ipv6Addr) -> Option<&'static str> {
    if address.is_unspecified() {
        return Some("an unspecified");
    }
    if address.is_loopback() {
        return Some("a loopback");
    }
    let segments = address.segments();
    // Forms that carry an IPv4 address are judged by it: mapped (::ffff:a.b.c.d), compatible
    // (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::).
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(v4) = address.to_ipv4_mapped() {
        return not_public_v4(v4);
    }
    if segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return not_public_v4(embedded(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        return not_public_v4(embedded(segments[1], segments[2]));
    }
    let kind = match segments[0] {
        0x0064 if segments[1] == 0xff9b => "a local-use NAT64",
        0x0100 if segments[1..4] == [0; 3] => "a discard-only",
        0x2001 if segments[1] == 0 => "a Teredo",
        0x2001 if segments[1] == 0x0db8 => "a documentation",
        s if s & 0xfe00 == 0xfc00 => "a unique-local",
        s if s & 0xffc0 == 0xfe80 => "a link-local",
        s if s & 0xffc0 == 0xfec0 => "a site-local",
        s if s & 0xff00 == 0xff00 => "a multicast",
        _ => return None,
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn refused(egress: &Egress, url: &str) -> Option<Refused> {
        egress.check_url(&Url::parse(url).unwrap()).err()
    }

    #[test]
    fn every_spelling_of_an_internal_address_is_refused() {
        let egress = Egress::default();
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://10.1.2.3/",
            "http://172.31.255.255/",
            "http://192.168.0.1:8443/",
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1/",
            "http://168.63.129.16/",
            "http://100.100.100.200/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::10.0.0.1]/",
            "http://[2002:a9fe:a9fe::]/",
            "http://[fd00:ec2::254]/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
            "http://[fec0::1]/",
            "http://[ff02::1]/",
            "http://[2001::1]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(
                matches!(refused(&egress, url), Some(Refused::Address { .. })),
                "{url} was not refused"
            );
        }
    }

    #[test]
    fn public_addresses_and_names_pass_the_url_check() {
        let egress = Egress::default();
        for url in [
            "https://93.184.215.14/",
            "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
            "https://account.blob.core.windows.net/docs",
            // A name is judged by what it resolves to, when the connection is made.
            "http://localhost/",
        ] {
            assert_eq!(refused(&egress, url), None, "{url}");
        }
    }

    #[test]
    fn only_http_and_https_go_out() {
        let egress = Egress::default();
        for url in [
            "file:///etc/passwd",
            "ftp://example.org/",
            "gopher://example.org/",
        ] {
            assert!(
                matches!(
                    refused(&egress, url),
                    Some(Refused::Scheme(_) | Refused::NoHost(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn an_admin_allows_a_host_by_address_or_name() {
        let egress = Egress::new(&["127.0.0.1".to_owned(), "[::1]".to_owned()]);
        assert_eq!(refused(&egress, "http://127.0.0.1:10000/"), None);
        assert_eq!(refused(&egress, "http://2130706433/"), None);
        assert_eq!(refused(&egress, "http://[::ffff:127.0.0.1]/"), None);
        assert_eq!(refused(&egress, "http://[::1]/"), None);
        assert!(refused(&egress, "http://127.0.0.2/").is_some());
        assert!(refused(&egress, "http://10.0.0.1/").is_some());
    }

    /// Reads one request's head, then answers `answer`.
    async fn answer(mut socket: tokio::net::TcpStream, answer: String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut head = Vec::new();
        let mut buffer = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
        let _ = socket.write_all(answer.as_bytes()).await;
    }

    /// A loopback listener that counts the connections it accepts.
    async fn listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        #[allow(
            clippy::disallowed_methods,
            reason = "a listener that lives as long as the test's runtime"
        )]
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                answer(socket, ok.to_owned()).await;
            }
        });
        (port, accepted)
    }

    fn get(_: &Client, url: &str) -> reqwest::Request {
        reqwest::Request::new(reqwest::Method::GET, Url::parse(url).unwrap())
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused_when_connecting() {
        let (port, accepted) = listener().await;
        let client = Egress::default()
            .client(reqwest::Client::builder(), Redirects::Follow)
            .unwrap();
        for url in [
            format!("http://localhost:{port}/"),
            format!("http://127.0.0.1:{port}/"),
            format!("http://2130706433:{port}/"),
        ] {
            let error = client.execute(get(&client, &url)).await.unwrap_err();
            assert!(error.is_refused(), "{url}: {error}");
            assert!(error.to_string().contains("loopback"), "{error}");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);

        let allowed = Egress::new(&["localhost".to_owned()])
            .client(reqwest::Client::builder(), Redirects::Follow)
            .unwrap();
        let url = format!("http://localhost:{port}/");
        let response = allowed.execute(get(&allowed, &url)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_redirect_into_the_network_is_refused() {
        let (target, accepted) = listener().await;
        // The first hop is allowed (the admin said so); where it redirects to is not.
        let redirector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = redirector.local_addr().unwrap().port();
        #[allow(
            clippy::disallowed_methods,
            reason = "a listener that lives as long as the test's runtime"
        )]
        tokio::spawn(async move {
            while let Ok((socket, _)) = redirector.accept().await {
                let redirect = format!(
                    "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.2:{target}/\r\n\
                     content-length: 0\r\nconnection: close\r\n\r\n"
                );
                answer(socket, redirect).await;
            }
        });
        let client = Egress::new(&["127.0.0.1".to_owned()])
            .client(reqwest::Client::builder(), Redirects::Follow)
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        let error = client.execute(get(&client, &url)).await.unwrap_err();
        assert!(error.is_refused(), "{error}");
        assert!(error.to_string().contains("127.0.0.2"), "{error}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);

        let refusing = Egress::new(&["127.0.0.1".to_owned()])
            .client(reqwest::Client::builder(), Redirects::Refuse)
            .unwrap();
        let response = refusing.execute(get(&refusing, &url)).await.unwrap();
        assert_eq!(response.status(), 302);
    }
}

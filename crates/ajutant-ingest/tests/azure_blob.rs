//! The Azure Blob connector against Azurite, the Azure Storage emulator: each test starts its
//! own blob service on a free port with a fresh folder, fills a container through signed REST
//! calls, and reads it back through the connector. `scripts/prepare-test-services` installs
//! Azurite under `.test-services/node`.

#![allow(clippy::expect_used, reason = "tests fail loudly")]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ajutant_ingest::connector::{
    AzureBlobConfig, AzureBlobConnector, AzureBlobCredential, Connector, ConnectorError, SasToken,
    SharedKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::Method;
use sha2::Sha256;

/// Azurite's well-known development account, published in Microsoft's Azurite docs.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service; killed when dropped, so a failing test leaves none behind.
struct Azurite {
    child: Child,
    /// Azurite's data and log; removed after the process is gone.
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:{port}/devstoreaccount1`
    account_url: String,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free a moment ago, never the same twice in this process. Azurite cannot be told to
/// pick one and report it; with ports from the kernel's pick, two tests starting at once could
/// be handed the same one, and the loser's readiness probe then reached the winner's Azurite,
/// which was gone when the winner's test ended (a flaky "connection refused").
fn distinct_free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Below the kernel's ephemeral range (32768 and up on Linux), offset per process.
    let base = 20_000 + (std::process::id() % 10_000) as u16;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::SeqCst) % 2_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Azurite {
    async fn start() -> Azurite {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let program = workspace.join(".test-services/node/node_modules/.bin/azurite-blob");
        assert!(
            program.exists(),
            "Azurite is not installed at {}: run scripts/prepare-test-services",
            program.display()
        );
        let port = distinct_free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("azurite.log")).expect("log file");
        let child = Command::new(&program)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            // Telemetry would try to reach Microsoft's servers from the test.
            .args(["--silent", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let mut azurite = Azurite {
            child,
            _dir: dir,
            account_url: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
        };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(address).await.is_err() {
            if let Ok(Some(status)) = azurite.child.try_wait() {
                let log = std::fs::read_to_string(azurite._dir.path().join("azurite.log"))
                    .unwrap_or_default();
                panic!("Azurite exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "Azurite did not answer on {address}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        azurite
    }

    fn connector(&self, container: &str, prefix: Option<&str>) -> AzureBlobConnector {
        self.connector_with(container, prefix, shared_key(KEY))
    }

    fn connector_with(
        &self,
        container: &str,
        prefix: Option<&str>,
        credential: AzureBlobCredential,
    ) -> AzureBlobConnector {
        AzureBlobConnector::new(AzureBlobConfig {
            account_url: self.account_url.clone(),
            container: container.into(),
            prefix: prefix.map(Into::into),
            credential,
            egress: loopback_allowed(),
        })
        .expect("valid configuration")
    }
}

fn shared_key(key: &str) -> AzureBlobCredential {
    AzureBlobCredential::SharedKey(SharedKey::new(ACCOUNT, key).expect("base64 key"))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Sends one Shared Key-signed request and insists on success.
async fn signed(method: Method, url: &str, headers: &[(&str, &str)], body: Vec<u8>) {
    let client = http();
    let mut builder = client.request(method.clone(), url).body(body);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.build().expect("request");
    SharedKey::new(ACCOUNT, KEY)
        .expect("key")
        .sign(&mut request)
        .expect("signs");
    let response = client.execute(request).await.expect("Azurite answers");
    let status = response.status();
    let code = response
        .headers()
        .get("x-ms-error-code")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    assert!(
        status.is_success(),
        "{method} {url}: {status} {code:?}: {}",
        response.text().await.unwrap_or_default()
    );
}

async fn create_container(azurite: &Azurite, container: &str) {
    let url = format!("{}/{container}?restype=container", azurite.account_url);
    signed(Method::PUT, &url, &[], Vec::new()).await;
}

async fn upload(azurite: &Azurite, container: &str, name: &str, bytes: &[u8]) {
    let url = azurite
        .connector(container, None)
        .blob_url(name)
        .expect("blob url");
    signed(
        Method::PUT,
        url.as_str(),
        &[("x-ms-blob-type", "BlockBlob")],
        bytes.to_vec(),
    )
    .await;
}

async fn delete(azurite: &Azurite, container: &str, name: &str) {
    let url = azurite
        .connector(container, None)
        .blob_url(name)
        .expect("blob url");
    signed(Method::DELETE, url.as_str(), &[], Vec::new()).await;
}

#[tokio::test]
async fn lists_every_page_honours_the_prefix_and_fetches_the_bytes() {
    let azurite = Azurite::start().await;
    create_container(&azurite, "docs").await;
    let hr = ["hr/a.txt", "hr/b.txt", "hr/c.txt", "hr/d.txt", "hr/e.txt"];
    for name in hr {
        upload(
            &azurite,
            "docs",
            name,
            format!("content of {name}").as_bytes(),
        )
        .await;
    }
    // Characters that must be percent-encoded alike in the URL and the signature.
    let odd = "other/naïve name & co+1.txt";
    upload(&azurite, "docs", odd, b"odd").await;
    upload(&azurite, "docs", "readme.md", b"# Readme").await;

    let connector = azurite.connector("docs", Some("hr/")).with_page_size(2);
    assert_eq!(connector.kind(), "azure_blob");
    let items = connector.list().await.expect("lists");
    let keys: Vec<_> = items.iter().map(|item| item.key.as_str()).collect();
    assert_eq!(keys, hr, "five blobs over three pages of two");
    let first = &items[0];
    assert_eq!(first.name, "a.txt");
    assert_eq!(first.size, Some("content of hr/a.txt".len() as u64));
    assert!(
        first
            .version
            .as_deref()
            .is_some_and(|etag| !etag.is_empty())
    );
    assert_eq!(
        first.url.as_deref(),
        Some(format!("{}/docs/hr/a.txt", azurite.account_url).as_str())
    );
    assert_eq!(first.acl, None);
    let bytes = connector.fetch(&items[4], 1024).await.expect("fetches");
    assert_eq!(bytes, b"content of hr/e.txt");

    let everything = azurite
        .connector("docs", None)
        .with_page_size(3)
        .list()
        .await
        .expect("lists");
    let keys: Vec<_> = everything.iter().map(|item| item.key.as_str()).collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert!(
        keys.contains(&odd) && keys.contains(&"readme.md"),
        "{keys:?}"
    );
    let odd_item = everything
        .iter()
        .find(|item| item.key == odd)
        .expect("listed");
    assert_eq!(odd_item.name, "naïve name & co+1.txt");
    let bytes = azurite
        .connector("docs", None)
        .fetch(odd_item, 1024)
        .await
        .expect("fetches");
    assert_eq!(bytes, b"odd");
}

#[tokio::test]
async fn refuses_blobs_over_the_limit_and_reports_deleted_ones_as_gone() {
    let azurite = Azurite::start().await;
    create_container(&azurite, "docs").await;
    upload(&azurite, "docs", "big.bin", &[7u8; 1000]).await;
    let connector = azurite.connector("docs", None);
    let items = connector.list().await.expect("lists");
    assert_eq!(items.len(), 1);

    let error = connector
        .fetch(&items[0], 999)
        .await
        .expect_err("too large");
    assert!(
        matches!(error, ConnectorError::TooLarge { size: 1000, limit: 999, ref key } if key == "big.bin"),
        "{error}"
    );
    let bytes = connector
        .fetch(&items[0], 1000)
        .await
        .expect("exactly at the limit");
    assert_eq!(bytes.len(), 1000);

    delete(&azurite, "docs", "big.bin").await;
    let error = connector.fetch(&items[0], 1000).await.expect_err("deleted");
    assert!(
        matches!(error, ConnectorError::Gone(ref key) if key == "big.bin"),
        "{error}"
    );
    assert!(connector.list().await.expect("lists").is_empty());
}

#[tokio::test]
async fn a_wrong_key_is_denied_and_a_missing_container_or_server_is_named() {
    let azurite = Azurite::start().await;
    create_container(&azurite, "docs").await;
    upload(&azurite, "docs", "a.txt", b"a").await;

    let wrong = shared_key(&BASE64.encode([1u8; 64]));
    let error = azurite
        .connector_with("docs", None, wrong.clone())
        .list()
        .await
        .expect_err("wrong key");
    assert!(matches!(error, ConnectorError::Denied(_)), "{error}");
    let items = azurite.connector("docs", None).list().await.expect("lists");
    let error = azurite
        .connector_with("docs", None, wrong)
        .fetch(&items[0], 10)
        .await
        .expect_err("wrong key");
    assert!(matches!(error, ConnectorError::Denied(_)), "{error}");

    let error = azurite
        .connector("missing", None)
        .list()
        .await
        .expect_err("no such container");
    assert!(
        matches!(error, ConnectorError::Config(ref message) if message.contains("container missing does not exist")),
        "{error}"
    );

    // A port nobody listens on: the account is unreachable, not misconfigured.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let error = AzureBlobConnector::new(AzureBlobConfig {
        account_url: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
        container: "docs".into(),
        prefix: None,
        credential: shared_key(KEY),
        egress: loopback_allowed(),
    })
    .expect("valid configuration")
    .list()
    .await
    .expect_err("nothing listens");
    assert!(matches!(error, ConnectorError::Unreachable(_)), "{error}");

    // Without the admin's allowance the emulator is the server's own network: refused before
    // a connection is made.
    let error = AzureBlobConnector::new(AzureBlobConfig {
        account_url: azurite.account_url.clone(),
        container: "docs".into(),
        prefix: None,
        credential: shared_key(KEY),
        egress: ajutant_egress::Egress::default(),
    })
    .expect("valid configuration")
    .list()
    .await
    .expect_err("loopback is refused");
    assert!(
        matches!(error, ConnectorError::Refused(ref why) if why.contains("loopback")),
        "{error}"
    );
}

/// The emulator listens on loopback, which only an admin's `egress.allow_hosts` opens.
fn loopback_allowed() -> ajutant_egress::Egress {
    ajutant_egress::Egress::new(&["127.0.0.1".to_owned()])
}

/// An account SAS (Azure's "Create an account SAS", version 2020-12-06 and later layout)
/// allowing read and list on blob containers and objects until `expiry`.
fn account_sas(key: &str, expiry: &str) -> String {
    let version = "2021-08-06";
    let (permissions, services, resource_types) = ("rl", "b", "co");
    // account, sp, ss, srt, st, se, sip, spr, sv, ses, each followed by a newline.
    let to_sign = format!(
        "{ACCOUNT}\n{permissions}\n{services}\n{resource_types}\n\n{expiry}\n\n\n{version}\n\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&BASE64.decode(key).expect("base64"))
        .expect("any key length");
    mac.update(to_sign.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", version)
        .append_pair("ss", services)
        .append_pair("srt", resource_types)
        .append_pair("sp", permissions)
        .append_pair("se", expiry)
        .append_pair("sig", &signature)
        .finish();
    query
}

#[tokio::test]
async fn a_sas_token_lists_and_fetches_and_a_forged_one_is_denied() {
    let azurite = Azurite::start().await;
    create_container(&azurite, "docs").await;
    upload(&azurite, "docs", "hr/a.txt", b"via sas").await;

    let sas = SasToken::new(&format!("?{}", account_sas(KEY, "2099-01-01T00:00:00Z")))
        .expect("has a signature");
    let connector = azurite.connector_with("docs", None, AzureBlobCredential::Sas(sas));
    let items = connector.list().await.expect("lists with the SAS");
    assert_eq!(items.len(), 1);
    assert!(
        items[0]
            .url
            .as_deref()
            .is_some_and(|url| !url.contains("sig=")),
        "the item's URL must not carry the token: {:?}",
        items[0].url
    );
    assert_eq!(
        connector.fetch(&items[0], 100).await.expect("fetches"),
        b"via sas"
    );

    let forged = SasToken::new(&account_sas(
        &BASE64.encode([2u8; 64]),
        "2099-01-01T00:00:00Z",
    ))
    .expect("has a signature");
    let error = azurite
        .connector_with("docs", None, AzureBlobCredential::Sas(forged))
        .list()
        .await
        .expect_err("forged");
    assert!(matches!(error, ConnectorError::Denied(_)), "{error}");
}

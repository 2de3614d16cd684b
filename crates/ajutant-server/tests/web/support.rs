//! What the web tests share: a signed-in browser session and page fetching.

use ajutant_testkit::TestApp;
use ajutant_testkit::identity::{BrowserSession, client, demo_user, sign_in};

/// A demo user signed in through the development provider, as a browser would be.
pub async fn browser(app: &TestApp, email: &str) -> BrowserSession {
    sign_in(app, &demo_user(email)).await.unwrap()
}

/// GETs a page as `session`, without following redirects; (status, body).
pub async fn page(app: &TestApp, session: &BrowserSession, path: &str) -> (u16, String) {
    let response = client()
        .get(app.url(path))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

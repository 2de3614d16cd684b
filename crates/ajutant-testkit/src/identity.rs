//! Signing in as the development identity provider's demo users, the way a browser and an API
//! client would: over HTTP, following the real redirects.

use ajutant_core::config::DevelopmentIdpConfig;
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{LOCATION, SET_COOKIE};
use sha2::{Digest, Sha256};
use url::Url;

use crate::TestApp;

/// The demo user with this e-mail address's object id.
pub fn demo_user(email: &str) -> String {
    DevelopmentIdpConfig::default()
        .users
        .into_iter()
        .find(|user| user.email == email)
        .map(|user| user.id)
        .unwrap_or_else(|| format!("no demo user {email}"))
}

/// A client that does not follow redirects, so each step can be inspected.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// A signed-in browser: the session cookie (`name=value`) and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub cookie: String,
    pub csrf: String,
    /// The whole `Set-Cookie` header the session cookie came in, for checking its attributes.
    pub set_cookie: String,
}

/// A sign-in started at `/auth/login`: where the provider is, and the cookie binding it to the
/// browser.
#[derive(Debug, Clone)]
pub struct StartedSignIn {
    pub authorize: Url,
    pub sign_in_cookie: String,
}

impl StartedSignIn {
    pub fn param(&self, name: &str) -> Option<String> {
        self.authorize
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// The `name=value` part of a `Set-Cookie` header with this cookie name prefix.
pub fn cookie_named(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().unwrap_or_default().to_owned();
            (pair, v.to_owned())
        })
}

fn location(response: &reqwest::Response) -> anyhow::Result<Url> {
    let location = response
        .headers()
        .get(LOCATION)
        .context("no Location header")?
        .to_str()?;
    Ok(Url::parse(location)?)
}

pub async fn start_sign_in(app: &TestApp) -> anyhow::Result<StartedSignIn> {
    let response = client().get(app.url("/auth/login")).send().await?;
    if response.status() != 303 {
        bail!("/auth/login answered {}", response.status());
    }
    let authorize = location(&response)?;
    let (sign_in_cookie, _) = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("ajutant_signin="))
        .map(|v| (v.split(';').next().unwrap_or_default().to_owned(), ()))
        .context("no sign-in cookie")?;
    Ok(StartedSignIn {
        authorize,
        sign_in_cookie,
    })
}

/// Picks `user_id` on the development provider's page; returns the callback URL it redirects to.
pub async fn pick_user(started: &StartedSignIn, user_id: &str) -> anyhow::Result<Url> {
    let mut form: Vec<(String, String)> = started.authorize.query_pairs().into_owned().collect();
    form.push(("user".to_owned(), user_id.to_owned()));
    let mut action = started.authorize.clone();
    action.set_query(None);
    let response = client().post(action).form(&form).send().await?;
    if response.status() != 303 {
        bail!("the provider's picker answered {}", response.status());
    }
    location(&response)
}

/// Completes the sign-in at the callback with the sign-in cookie.
pub async fn finish_sign_in(
    callback: &Url,
    sign_in_cookie: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(client()
        .get(callback.clone())
        .header("cookie", sign_in_cookie)
        .send()
        .await?)
}

/// The whole browser flow for one demo user.
pub async fn sign_in(app: &TestApp, user_id: &str) -> anyhow::Result<BrowserSession> {
    let started = start_sign_in(app).await?;
    let callback = pick_user(&started, user_id).await?;
    let response = finish_sign_in(&callback, &started.sign_in_cookie).await?;
    if response.status() != 303 {
        bail!(
            "the callback answered {}: {}",
            response.status(),
            response.text().await?
        );
    }
    let (cookie, set_cookie) = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("ajutant_session="))
        .map(|v| {
            (
                v.split(';').next().unwrap_or_default().to_owned(),
                v.to_owned(),
            )
        })
        .context("no session cookie")?;
    let me: serde_json::Value = client()
        .get(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let csrf = me["csrf_token"]
        .as_str()
        .context("no csrf_token in /api/v1/me")?
        .to_owned();
    Ok(BrowserSession {
        cookie,
        csrf,
        set_cookie,
    })
}

/// An access token for `user_id` from the development provider, obtained as an API client
/// would: the authorization code flow with PKCE, straight against the provider.
pub async fn access_token(app: &TestApp, user_id: &str) -> anyhow::Result<String> {
    let verifier = format!("test-verifier-{}", uuid::Uuid::new_v4().simple());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect_uri = app.url("/auth/callback");
    let form = [
        ("response_type", "code"),
        ("client_id", "ajutant-development"),
        ("redirect_uri", redirect_uri.as_str()),
        ("scope", "openid profile offline_access"),
        ("state", "api-client"),
        ("nonce", "api-client"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("user", user_id),
    ];
    let response = client()
        .post(app.url("/dev-idp/authorize"))
        .form(&form)
        .send()
        .await?;
    let callback = location(&response)?;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context("no code")?;
    let tokens: serde_json::Value = client()
        .post(app.url("/dev-idp/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", "ajutant-development"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(tokens["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned())
}

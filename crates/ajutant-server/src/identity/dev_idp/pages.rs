//! The authorization endpoint: the request's checks, the page that picks a demo user, and the
//! redirect back to the relying party with a code.

use std::time::{Duration, Instant};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{CLIENT_ID, DevIdp, Grant, PendingCode, lock};
use crate::identity::secrets::{random_token, sha256_hex};

/// An authorization code is redeemed by the relying party straight after the redirect.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

pub(super) const PAGE_TITLE: &str = "Development sign-in — not for production";

/// The authorization request's parameters, from the query (GET) or from the picker's hidden
/// fields (POST). All optional so that a missing one is answered the OAuth way, not by the
/// framework's rejection.
#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// The picked demo user's id; only in the picker's POST.
    user: Option<String>,
}

/// An authorization request that passed every check.
struct ValidAuthorize {
    scope: String,
    state: String,
    nonce: String,
    code_challenge: String,
}

enum AuthorizeError {
    /// The client or redirect URI is not the registered one. Reported here, never by redirect:
    /// sending the browser to an unverified URI would make this an open redirector.
    Unverified(&'static str),
    /// Safe to report to the relying party at its verified redirect URI.
    Invalid {
        description: &'static str,
        state: Option<String>,
    },
}

impl DevIdp {
    fn validate(&self, params: &AuthorizeParams) -> Result<ValidAuthorize, AuthorizeError> {
        if params.client_id.as_deref() != Some(CLIENT_ID) {
            return Err(AuthorizeError::Unverified(
                "client_id is not ajutant-development, the only client this provider serves.",
            ));
        }
        if params.redirect_uri.as_deref() != Some(self.inner.redirect_uri.as_str()) {
            return Err(AuthorizeError::Unverified(
                "redirect_uri is not the registered redirect URI.",
            ));
        }
        let invalid = |description| AuthorizeError::Invalid {
            description,
            state: params.state.clone(),
        };
        if params.response_type.as_deref() != Some("code") {
            return Err(invalid("response_type must be code"));
        }
        let scope = params.scope.clone().unwrap_or_default();
        if !scope.split_whitespace().any(|s| s == "openid") {
            return Err(invalid("scope must include openid"));
        }
        let state = required(&params.state).ok_or_else(|| invalid("state is required"))?;
        let nonce = required(&params.nonce).ok_or_else(|| invalid("nonce is required"))?;
        let code_challenge = required(&params.code_challenge)
            .ok_or_else(|| invalid("code_challenge is required"))?;
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(invalid("code_challenge_method must be S256"));
        }
        Ok(ValidAuthorize {
            scope,
            state,
            nonce,
            code_challenge,
        })
    }

    /// The redirect that reports an invalid request to the relying party.
    fn error_redirect(&self, description: &str, state: Option<&str>) -> Response {
        let mut target = self.inner.redirect_uri.clone();
        {
            let mut query = target.query_pairs_mut();
            query.append_pair("error", "invalid_request");
            query.append_pair("error_description", description);
            if let Some(state) = state {
                query.append_pair("state", state);
            }
        }
        Redirect::to(target.as_str()).into_response()
    }

    fn authorize_error(&self, error: AuthorizeError) -> Response {
        match error {
            AuthorizeError::Unverified(message) => bad_request_page(message),
            AuthorizeError::Invalid { description, state } => {
                self.error_redirect(description, state.as_deref())
            }
        }
    }
}

fn required(value: &Option<String>) -> Option<String> {
    value.as_ref().filter(|v| !v.is_empty()).cloned()
}

fn bad_request_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        format!("Development sign-in: {message}"),
    )
        .into_response()
}

pub(super) async fn authorize_page(
    State(idp): State<DevIdp>,
    params: Result<Query<AuthorizeParams>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return bad_request_page("the authorization request's query could not be read.");
    };
    let valid = match idp.validate(&params) {
        Ok(valid) => valid,
        Err(error) => return idp.authorize_error(error),
    };
    let mut response = Html(idp.picker_html(&valid)).into_response();
    let headers = response.headers_mut();
    // The picker posts to this provider, which then redirects to the relying party; browsers
    // apply form-action to that redirect too, so the redirect URI's origin is allowed as well
    // (it differs from 'self' when the page is reached as localhost and the redirect URI
    // names 127.0.0.1).
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; \
         frame-ancestors 'none'",
        idp.inner.redirect_uri.origin().ascii_serialization()
    );
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
         frame-ancestors 'none'",
    ));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

impl DevIdp {
    fn picker_html(&self, request: &ValidAuthorize) -> String {
        let hidden = [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", self.inner.redirect_uri.as_str()),
            ("scope", &request.scope),
            ("state", &request.state),
            ("nonce", &request.nonce),
            ("code_challenge", &request.code_challenge),
            ("code_challenge_method", "S256"),
        ];
        let mut fields = String::new();
        for (name, value) in hidden {
            fields.push_str(&format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(name),
                escape(value)
            ));
        }

        let mut buttons = String::new();
        for user in &self.inner.users {
            let groups: Vec<&str> = user
                .groups
                .iter()
                .map(|id| {
                    self.inner
                        .group_names
                        .get(id)
                        .map_or(id.as_str(), String::as_str)
                })
                .collect();
            let groups = if groups.is_empty() {
                "no groups".to_owned()
            } else {
                groups.join(", ")
            };
            buttons.push_str(&format!(
                "<li><button type=\"submit\" name=\"user\" value=\"{}\">\
                 <span class=\"name\">{}</span> \
                 <span class=\"email\">{}</span> \
                 <span class=\"groups\">Groups: {}</span></button></li>\n",
                escape(&user.id),
                escape(&user.name),
                escape(&user.email),
                escape(&groups),
            ));
        }
        if buttons.is_empty() {
            buttons
                .push_str("<li>No demo users are configured (identity.development.users).</li>\n");
        }

        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{PAGE_TITLE}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }}
.warning {{ background: #fff4ce; border-left: 4px solid #c19c00; padding: 0.5rem 0.75rem; }}
fieldset {{ border: none; padding: 0; }}
legend {{ font-weight: 600; margin-bottom: 0.5rem; }}
ul {{ list-style: none; padding: 0; }}
li {{ margin: 0.5rem 0; }}
button {{ width: 100%; text-align: left; padding: 0.75rem; font: inherit; border: 1px solid #8a8a8a; border-radius: 4px; background: #fff; cursor: pointer; }}
button:hover, button:focus-visible {{ background: #eef4fb; outline: 2px solid #0f6cbd; }}
.name {{ display: block; font-weight: 600; }}
.email, .groups {{ display: block; color: #424242; }}
</style>
</head>
<body>
<main>
<h1>{PAGE_TITLE}</h1>
<p class="warning">This built-in identity provider signs in as any demo user without a password.
It exists for local development and tests; Ajutant refuses to run it in production mode.</p>
<form method="post" action="authorize">
{fields}<fieldset>
<legend>Sign in as</legend>
<ul>
{buttons}</ul>
</fieldset>
</form>
</main>
</body>
</html>
"#
        )
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

pub(super) async fn authorize_submit(
    State(idp): State<DevIdp>,
    params: Result<Form<AuthorizeParams>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = params else {
        return bad_request_page("the sign-in form could not be read.");
    };
    let valid = match idp.validate(&params) {
        Ok(valid) => valid,
        Err(error) => return idp.authorize_error(error),
    };
    let Some(user) = params.user.as_deref().and_then(|id| idp.user(id)) else {
        return idp.error_redirect("no such demo user", Some(&valid.state));
    };

    let code = random_token();
    let now = Instant::now();
    {
        let mut codes = lock(&idp.inner.codes);
        codes.retain(|_, pending| pending.expires_at > now);
        codes.insert(
            sha256_hex(&code),
            PendingCode {
                grant: Grant {
                    user_id: user.id.clone(),
                    scope: valid.scope,
                    auth_time: OffsetDateTime::now_utc().unix_timestamp(),
                },
                redirect_uri: idp.inner.redirect_uri.as_str().to_owned(),
                nonce: valid.nonce,
                code_challenge: valid.code_challenge,
                expires_at: now + CODE_LIFETIME,
            },
        );
    }

    let mut target = idp.inner.redirect_uri.clone();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &valid.state);
    Redirect::to(target.as_str()).into_response()
}

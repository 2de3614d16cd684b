//! Open streams re-checked: the credential of a request that is still open signs in again, with
//! the same checks as a new request (a revoked key, an ended session, an expired token, a
//! deprovisioned user all fail), so a stream ends as soon as a new request would be refused.

use ajutant_core::policy::Action;
use futures::future::BoxFuture;

use super::{Caller, RecordsKeyUse, authenticate};
use crate::AppState;
use crate::access::Guard;
use crate::request::RequestContext;

/// A check for [`crate::sse::guarded`]: `Some("signed_out")` once the request's credential no
/// longer signs in its caller, `Some("not_allowed")` once the caller's roles no longer grant
/// `action` (when one is given). Records no `api_key.used` again; a refusal is recorded as any.
pub(crate) fn still_allowed(
    state: &AppState,
    context: &RequestContext,
    headers: &axum::http::HeaderMap,
    caller: &Caller,
    action: Option<Action>,
) -> impl FnMut() -> BoxFuture<'static, Option<&'static str>> + Send + 'static {
    let (state, context, headers) = (state.clone(), context.clone(), headers.clone());
    let principal = caller.principal.id.clone();
    move || {
        let (state, context, headers, principal, action) = (
            state.clone(),
            context.clone(),
            headers.clone(),
            principal.clone(),
            action.clone(),
        );
        Box::pin(async move {
            let (mut parts, ()) = axum::http::Request::new(()).into_parts();
            parts.headers = headers;
            parts.extensions.insert(RecordsKeyUse);
            let caller = match authenticate(&state, &context, &parts).await {
                Ok(caller) if caller.principal.id == principal => caller,
                _ => return Some("signed_out"),
            };
            // Signed in, and no role to re-check: still allowed.
            let action = action?;
            let guard = Guard::new(&state, &context, &caller);
            (!guard.allows(&action).await.unwrap_or(false)).then_some("not_allowed")
        })
    }
}

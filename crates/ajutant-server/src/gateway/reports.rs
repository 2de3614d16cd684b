//! `GET /api/v1/usage`: model usage and cost by principal, group, deployment or day, for IT
//! operations and platform admins.

use ajutant_core::policy::Action;
use ajutant_store::{UsageGrouping, UsageLine, UsageQuery};
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::access::Guard;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

/// Longest period one report covers.
const MAX_DAYS: i64 = 366;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageParams {
    /// `principal`, `group`, `deployment` (default) or `day`.
    pub by: Option<String>,
    /// First day, `YYYY-MM-DD` (UTC); default: 30 days ago.
    pub from: Option<String>,
    /// Last day, inclusive; default: today.
    pub to: Option<String>,
    /// Only this principal's calls.
    pub principal: Option<String>,
    /// Only calls to this deployment.
    pub deployment: Option<String>,
    /// Only calls by members of this group.
    pub group: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReportLine {
    /// The principal id, group id, deployment name or day.
    pub key: String,
    pub calls: i64,
    /// Calls that failed or were cancelled.
    pub failed: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// From the deployments' prices per 1,000 tokens.
    pub cost: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub by: String,
    pub from: String,
    pub to: String,
    /// Largest cost first.
    pub lines: Vec<UsageReportLine>,
}

pub(crate) fn day(
    name: &str,
    value: Option<String>,
    default: time::Date,
) -> Result<time::Date, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match value {
        None => Ok(default),
        Some(text) => time::Date::parse(&text, format)
            .map_err(|_| ApiError::BadRequest(format!("{name} must be a date, YYYY-MM-DD"))),
    }
}

/// Model usage and cost, added up by principal, group, deployment or day.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", params(UsageParams),
    responses((status = 200, description = "The report", body = UsageReport),
        (status = 400, description = "The request is invalid", body = Problem),
        (status = 401, description = "No valid credential", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn usage(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Query(params): Query<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    Ok(Json(usage_report(&guard, params).await?))
}

/// The usage report, as the API and the console show it.
pub(crate) async fn usage_report(
    guard: &Guard<'_>,
    params: UsageParams,
) -> Result<UsageReport, ApiError> {
    let (by, from, to, lines) = report(guard, params).await?;
    Ok(UsageReport {
        by: by.to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        lines: lines
            .into_iter()
            .map(|line: UsageLine| UsageReportLine {
                key: line.key,
                calls: line.calls,
                failed: line.failed,
                input_tokens: line.input_tokens,
                output_tokens: line.output_tokens,
                cost: line.cost,
            })
            .collect(),
    })
}

/// The report's rule: IT operations and platform admins read usage, grouped one way, over at
/// most [`MAX_DAYS`] days (the last 30 by default).
async fn report(
    guard: &Guard<'_>,
    params: UsageParams,
) -> Result<(&'static str, time::Date, time::Date, Vec<UsageLine>), ApiError> {
    guard.require(&Action::ReadUsage, "usage").await?;
    let (by, grouping) = match params.by.as_deref().unwrap_or("deployment") {
        "principal" => ("principal", UsageGrouping::Principal),
        "group" => ("group", UsageGrouping::Group),
        "deployment" => ("deployment", UsageGrouping::Deployment),
        "day" => ("day", UsageGrouping::Day),
        _ => {
            return Err(ApiError::BadRequest(
                "by must be principal, group, deployment or day".to_owned(),
            ));
        }
    };
    let today = OffsetDateTime::now_utc().date();
    let to = day("to", params.to, today)?;
    let from = day("from", params.from, to - time::Duration::days(30))?;
    if from > to || (to - from).whole_days() > MAX_DAYS {
        return Err(ApiError::BadRequest(format!(
            "from must not be after to, and a report covers at most {MAX_DAYS} days"
        )));
    }
    let lines = guard
        .state
        .store
        .usage_report(&UsageQuery {
            by: grouping,
            from_day: from.to_string(),
            to_day: to.to_string(),
            principal_id: params.principal,
            deployment: params.deployment,
            group_id: params.group,
        })
        .await?;
    Ok((by, from, to, lines))
}

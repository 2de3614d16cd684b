//! The usage page (`/console/usage`): model calls, tokens and cost by group, by deployment and
//! by day over a window, with charts of cost by day and calls by deployment. Read through the
//! usage report's API handler, once per grouping.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use crate::AppState;
use crate::access::Guard;
use crate::gateway::reports::{self, UsageParams, UsageReport, UsageReportLine};
use crate::problem::ApiError;
use crate::request::RequestContext;
use crate::web::charts::{Svg, bar_chart, number};
use crate::web::page::{Layout, PageError, Section, Viewer, render, require};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/console/usage", get(usage_page))
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    from: Option<String>,
    to: Option<String>,
}

fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

struct Line {
    key: String,
    calls: i64,
    failed: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost: String,
}

fn line(report: &UsageReportLine) -> Line {
    Line {
        key: report.key.clone(),
        calls: report.calls,
        failed: report.failed,
        input_tokens: report.input_tokens,
        output_tokens: report.output_tokens,
        cost: number(report.cost),
    }
}

/// One grouping of the report, as a table.
struct Table {
    heading: &'static str,
    key: &'static str,
    lines: Vec<Line>,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
struct UsagePage {
    layout: Layout,
    from: String,
    to: String,
    total_calls: i64,
    total_cost: String,
    /// Charts built by `charts.rs` from escaped text; the one thing inserted with `|safe`.
    charts: Vec<Svg>,
    tables: Vec<Table>,
}

/// The usage report grouped `by`, over the window the page asks for.
async fn report(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    by: &str,
    window: &PageQuery,
) -> Result<UsageReport, ApiError> {
    let guard = Guard::new(state, context, &viewer.caller);
    let params = UsageParams {
        by: Some(by.to_owned()),
        from: window.from.clone(),
        to: window.to.clone(),
        principal: None,
        deployment: None,
        group: None,
    };
    reports::usage_report(&guard, params).await
}

/// Usage and cost over a window (the last 30 days unless the form says otherwise).
async fn usage_page(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Usage)?;
    let window = PageQuery {
        from: given(query.from),
        to: given(query.to),
    };
    let by_group = report(&state, &context, &viewer, "group", &window).await?;
    let by_deployment = report(&state, &context, &viewer, "deployment", &window).await?;
    let mut by_day = report(&state, &context, &viewer, "day", &window).await?;
    // The report puts the largest cost first; a day chart and table read in time order.
    by_day.lines.sort_by(|a, b| a.key.cmp(&b.key));
    let cost_by_day: Vec<(&str, f64)> = by_day
        .lines
        .iter()
        .map(|l| (l.key.as_str(), l.cost))
        .collect();
    let calls_by_deployment: Vec<(&str, f64)> = by_deployment
        .lines
        .iter()
        .map(|l| (l.key.as_str(), l.calls as f64))
        .collect();
    let charts = vec![
        bar_chart("Cost by day", &cost_by_day, ""),
        bar_chart("Calls by deployment", &calls_by_deployment, "calls"),
    ];
    let total_calls = by_deployment.lines.iter().map(|l| l.calls).sum();
    let total_cost: f64 = by_deployment.lines.iter().map(|l| l.cost).sum();
    let tables = vec![
        Table {
            heading: "By group",
            key: "Group",
            lines: by_group.lines.iter().map(line).collect(),
        },
        Table {
            heading: "By deployment",
            key: "Deployment",
            lines: by_deployment.lines.iter().map(line).collect(),
        },
        Table {
            heading: "By day",
            key: "Day",
            lines: by_day.lines.iter().map(line).collect(),
        },
    ];
    Ok(render(&UsagePage {
        layout: Layout::new(&viewer, Section::Usage.title(), Section::Usage.path()),
        from: by_day.from,
        to: by_day.to,
        total_calls,
        total_cost: number(total_cost),
        charts,
        tables,
    }))
}

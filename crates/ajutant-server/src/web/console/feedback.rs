//! The owners' feedback pages: the assistants the viewer owns (`/console/feedback`) and, for
//! one of them, its figures with charts and its inbox with filters and paging
//! (`/console/feedback/{assistant_id}`). Read through the feedback API's handlers, which refuse
//! (404) an assistant the viewer does not own.

use ajutant_core::feedback::Category;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::access::Guard;
use crate::assistants;
use crate::feedback::analytics::Figures;
use crate::feedback::{self, AnalyticsParams, InboxItem, InboxParams};
use crate::problem::ApiError;
use crate::request::RequestContext;
use crate::web::charts::{Series, Svg, bar_chart, number, time_series};
use crate::web::page::{Layout, PageError, Section, Viewer, render, require};

/// Inbox items per page.
const PAGE_SIZE: i64 = 25;
/// Characters of an answer shown in the inbox; the rest is a click away in the trace.
const ANSWER_EXCERPT_CHARS: usize = 280;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console/feedback", get(index))
        .route("/console/feedback/{assistant_id}", get(assistant_page))
}

/// A category as the feedback form names it; an unknown code as it is.
pub(super) fn category_label(code: &str) -> String {
    let Some(category) = Category::parse(code) else {
        return code.to_owned();
    };
    match category {
        Category::Inaccurate => "Inaccurate",
        Category::Incomplete => "Incomplete",
        Category::OutdatedSource => "Outdated source",
        Category::Unhelpful => "Unhelpful",
        Category::FactualError => "Factual error that matters",
        Category::EthicalConcern => "Ethical concern",
        Category::HarmfulContent => "Harmful content",
        Category::Explainability => "Explainability problem",
        Category::Privacy => "Privacy or data exposure",
    }
    .to_owned()
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |r| format!("{}%", number(r * 100.0)))
}

// ---- The assistants ----

struct OwnedAssistant {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "console/feedback.html")]
struct IndexPage {
    layout: Layout,
    assistants: Vec<OwnedAssistant>,
}

/// The assistants whose feedback the viewer reads.
async fn index(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    require(&viewer, Section::Feedback)?;
    // Only names for the ids `Access` already found the viewer owns: no further authorization
    // is needed to read them, and each link's page is authorized by the feedback API.
    let mut owned = Vec::new();
    for id in &viewer.access.owned_assistants {
        let name = assistants::service::load(&state, id)
            .await?
            .map_or_else(|| id.clone(), |a| a.definition.name);
        owned.push(OwnedAssistant {
            id: id.clone(),
            name,
        });
    }
    Ok(render(&IndexPage {
        layout: Layout::new(&viewer, Section::Feedback.title(), Section::Feedback.path()),
        assistants: owned,
    }))
}

// ---- One assistant ----

/// The page's query: the figures' window (`from`, `to`, `bucket`) and the inbox's filters,
/// as the two forms send them (an empty field means "any").
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
    helpful: Option<String>,
    category: Option<String>,
    serious: Option<String>,
    escalated: Option<String>,
    version: Option<String>,
    given_from: Option<String>,
    given_until: Option<String>,
    cursor: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn yes_no(name: &str, value: &Option<String>) -> Result<Option<bool>, ApiError> {
    match given(value).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::BadRequest(format!(
            "{name} must be true or false"
        ))),
    }
}

impl PageQuery {
    /// The filters kept across the forms and the pages, as (name, value) pairs.
    fn pairs(&self, names: &[&str]) -> Vec<(String, String)> {
        let all = [
            ("from", &self.from),
            ("to", &self.to),
            ("bucket", &self.bucket),
            ("helpful", &self.helpful),
            ("category", &self.category),
            ("serious", &self.serious),
            ("escalated", &self.escalated),
            ("version", &self.version),
            ("given_from", &self.given_from),
            ("given_until", &self.given_until),
        ];
        all.into_iter()
            .filter(|(name, _)| names.contains(name))
            .filter_map(|(name, value)| given(value).map(|v| (name.to_owned(), v)))
            .collect()
    }

    fn inbox(&self) -> Result<InboxParams, ApiError> {
        let version = given(&self.version)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::BadRequest("version must be a number".to_owned()))
            })
            .transpose()?;
        Ok(InboxParams {
            helpful: yes_no("helpful", &self.helpful)?,
            category: given(&self.category),
            serious: yes_no("serious", &self.serious)?,
            escalated: yes_no("escalated", &self.escalated)?,
            version,
            from: given(&self.given_from),
            to: given(&self.given_until),
            cursor: given(&self.cursor),
            limit: Some(PAGE_SIZE),
        })
    }
}

const FIGURE_FIELDS: [&str; 3] = ["from", "to", "bucket"];
const INBOX_FIELDS: [&str; 7] = [
    "helpful",
    "category",
    "serious",
    "escalated",
    "version",
    "given_from",
    "given_until",
];

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

fn choices(current: &Option<String>, options: &[(&str, &str)]) -> Vec<Choice> {
    let current = given(current).unwrap_or_default();
    options
        .iter()
        .map(|(value, label)| Choice {
            value: (*value).to_owned(),
            label: (*label).to_owned(),
            selected: *value == current,
        })
        .collect()
}

struct Figure {
    label: &'static str,
    value: String,
}

fn figures_of(totals: &Figures) -> Vec<Figure> {
    vec![
        Figure {
            label: "Pieces of feedback",
            value: totals.count.to_string(),
        },
        Figure {
            label: "Helpful rate",
            value: percent(totals.helpful_rate),
        },
        Figure {
            label: "Minutes saved in total",
            value: totals.time_saved_total.to_string(),
        },
        Figure {
            label: "Median minutes saved",
            value: totals
                .time_saved_median
                .map_or_else(|| "—".to_owned(), number),
        },
        Figure {
            label: "Serious",
            value: totals.serious.to_string(),
        },
        Figure {
            label: "Escalated to IT operations",
            value: totals.escalated.to_string(),
        },
    ]
}

struct VersionRow {
    version: i64,
    count: u64,
    helpful_rate: String,
    time_saved: i64,
    serious: u64,
    escalated: u64,
}

struct InboxRow {
    created_at: String,
    judged: &'static str,
    question: String,
    answer: String,
    categories: String,
    comment: String,
    minutes: Option<i64>,
    version: i64,
    trace_id: String,
    serious: bool,
    escalated: bool,
}

fn excerpt(text: &str) -> String {
    if text.chars().count() <= ANSWER_EXCERPT_CHARS {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(ANSWER_EXCERPT_CHARS).collect();
        format!("{}…", cut.trim_end())
    }
}

fn inbox_row(item: InboxItem) -> InboxRow {
    InboxRow {
        created_at: rfc3339(item.created_at),
        judged: match item.helpful {
            Some(true) => "Helpful",
            Some(false) => "Not helpful",
            None => "—",
        },
        answer: if item.answer_withheld {
            format!(
                "(withheld: the answer cites {} document(s) you may not read)",
                item.withheld_citations
            )
        } else {
            excerpt(&item.answer)
        },
        question: item.question,
        categories: item
            .categories
            .iter()
            .map(|c| category_label(c))
            .collect::<Vec<_>>()
            .join(", "),
        comment: item.comment.unwrap_or_default(),
        minutes: item.time_saved_minutes,
        version: item.assistant_version,
        trace_id: item.trace_id.unwrap_or_default(),
        serious: item.serious,
        escalated: item.escalated,
    }
}

#[derive(Template)]
#[template(path = "console/feedback_assistant.html")]
struct AssistantPage {
    layout: Layout,
    assistant_id: String,
    name: String,
    /// The window the figures cover, as the API resolved it.
    from: String,
    to: String,
    buckets: Vec<Choice>,
    figures: Vec<Figure>,
    /// Charts built by `charts.rs` from escaped text; the one thing inserted with `|safe`.
    charts: Vec<Svg>,
    versions: Vec<VersionRow>,
    helpful: Vec<Choice>,
    categories: Vec<Choice>,
    serious: Vec<Choice>,
    escalated: Vec<Choice>,
    version: String,
    given_from: String,
    given_until: String,
    /// Hidden fields each form carries so the other form's choices survive.
    keep_for_figures: Vec<(String, String)>,
    keep_for_inbox: Vec<(String, String)>,
    inbox: Vec<InboxRow>,
    filtered: bool,
    next: Option<String>,
}

/// One assistant's figures, charts and inbox, for its owners.
async fn assistant_page(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Path(assistant_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Feedback)?;
    let guard = Guard::new(&state, &context, &viewer.caller);
    let figures = AnalyticsParams {
        from: given(&query.from),
        to: given(&query.to),
        bucket: given(&query.bucket),
    };
    let analytics = feedback::analytics_view(&guard, assistant_id.clone(), &figures).await?;
    let inbox = feedback::inbox_page(&guard, &assistant_id, &query.inbox()?).await?;
    // The feedback service has just authorized the viewer for this assistant; its name is
    // theirs to read.
    let name = assistants::service::load(&state, &assistant_id)
        .await?
        .map_or_else(|| assistant_id.clone(), |a| a.definition.name);
    let breakdown = &analytics.breakdown;
    let next = inbox.next_cursor.map(|cursor| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in query.pairs(&[&FIGURE_FIELDS[..], &INBOX_FIELDS[..]].concat()) {
            serializer.append_pair(&name, &value);
        }
        serializer.append_pair("cursor", &cursor);
        // Relative to this page, so the assistant id in the path needs no encoding here.
        format!("?{}", serializer.finish())
    });
    let mut category_options = vec![(String::new(), "Any category".to_owned())];
    category_options.extend(
        Category::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), category_label(c.as_str()))),
    );
    let category_refs: Vec<(&str, &str)> = category_options
        .iter()
        .map(|(v, l)| (v.as_str(), l.as_str()))
        .collect();
    let any_yes_no =
        |yes: &'static str, no: &'static str| [("", "Any"), ("true", yes), ("false", no)];
    Ok(render(&AssistantPage {
        layout: Layout::new(
            &viewer,
            format!("Feedback on {name}"),
            Section::Feedback.path(),
        ),
        from: analytics.from.clone(),
        to: analytics.to.clone(),
        buckets: choices(&query.bucket, &[("day", "Day"), ("week", "Week")]),
        figures: figures_of(&breakdown.totals),
        charts: charts(breakdown),
        versions: breakdown
            .by_version
            .iter()
            .map(|v| VersionRow {
                version: v.version,
                count: v.figures.count,
                helpful_rate: percent(v.figures.helpful_rate),
                time_saved: v.figures.time_saved_total,
                serious: v.figures.serious,
                escalated: v.figures.escalated,
            })
            .collect(),
        helpful: choices(&query.helpful, &any_yes_no("Helpful", "Not helpful")),
        categories: choices(&query.category, &category_refs),
        serious: choices(&query.serious, &any_yes_no("Serious", "Not serious")),
        escalated: choices(&query.escalated, &any_yes_no("Escalated", "Not escalated")),
        version: given(&query.version).unwrap_or_default(),
        given_from: given(&query.given_from).unwrap_or_default(),
        given_until: given(&query.given_until).unwrap_or_default(),
        keep_for_figures: query.pairs(&INBOX_FIELDS),
        keep_for_inbox: query.pairs(&FIGURE_FIELDS),
        filtered: !query.pairs(&INBOX_FIELDS).is_empty(),
        inbox: inbox.items.into_iter().map(inbox_row).collect(),
        next,
        assistant_id,
        name,
    }))
}

/// The charts of the figures: votes, helpful rate and minutes saved over time, and counts by
/// category and by version.
fn charts(breakdown: &feedback::analytics::Breakdown) -> Vec<Svg> {
    let periods: Vec<&str> = breakdown.series.iter().map(|p| p.start.as_str()).collect();
    let votes = time_series(
        "Helpful and not helpful answers over time",
        &periods,
        &[
            Series {
                name: "Helpful".to_owned(),
                values: breakdown
                    .series
                    .iter()
                    .map(|p| p.figures.helpful as f64)
                    .collect(),
            },
            Series {
                name: "Not helpful".to_owned(),
                values: breakdown
                    .series
                    .iter()
                    .map(|p| p.figures.not_helpful as f64)
                    .collect(),
            },
        ],
        "",
    );
    // Periods where nobody said helpful or not have no rate: left out rather than drawn as 0.
    let rated: Vec<(&str, f64)> = breakdown
        .series
        .iter()
        .filter_map(|p| {
            p.figures
                .helpful_rate
                .map(|r| (p.start.as_str(), r * 100.0))
        })
        .collect();
    let rate = bar_chart("Helpful rate over time", &rated, "%");
    let minutes: Vec<(&str, f64)> = breakdown
        .series
        .iter()
        .map(|p| (p.start.as_str(), p.figures.time_saved_total as f64))
        .collect();
    let saved = bar_chart("Minutes saved over time", &minutes, "minutes");
    let by_category: Vec<(String, f64)> = breakdown
        .totals
        .categories
        .iter()
        .map(|(code, count)| (category_label(code), *count as f64))
        .collect();
    let categories = bar_chart("Feedback by category", &by_category, "");
    let by_version: Vec<(String, f64)> = breakdown
        .by_version
        .iter()
        .map(|v| (format!("Version {}", v.version), v.figures.count as f64))
        .collect();
    let versions = bar_chart("Feedback by version", &by_version, "");
    vec![votes, rate, saved, categories, versions]
}

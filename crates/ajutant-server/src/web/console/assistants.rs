//! The console's assistants: those the viewer may edit (every one for platform admins), a new
//! assistant (admins), the edit form with the versions and a comparison of two of them, and the
//! assistant's kill switch. Reads go through `crate::assistants`' handlers; changes are the
//! browser's calls to the same API.

use ajutant_core::config::Capability;
use ajutant_core::policy::{AccessScope, Role};
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
use crate::assistants::{self as api, AssistantView, Definition, VersionView, service};
use crate::problem::ApiError;
use crate::request::RequestContext;
use crate::web::page::{Layout, PageError, Section, Viewer, render, require};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console/assistants", get(list))
        .route("/console/assistants/{id}", get(edit))
        .route("/console/assistants/{id}/diff", get(diff))
}

/// A time as `<time datetime>` wants it; `app.js` shows it in the reader's zone.
pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Who may use an assistant or read a collection, in words.
pub(super) fn scope_text(scope: &AccessScope) -> String {
    match scope {
        AccessScope::Organisation => "Everyone in the organisation".to_owned(),
        AccessScope::Groups { groups } => format!("Groups: {}", groups.join(", ")),
    }
}

/// One option of a select or one checkbox of a list.
#[derive(Debug, Clone)]
pub(super) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn not_found() -> PageError {
    PageError(ApiError::NotFound("no such page".to_owned()))
}

/// The deployments offering `capability` that the viewer can pick: every one for platform
/// admins (the admin API's list), otherwise those the viewer may call (`/v1/models`).
pub(super) async fn deployments_offering(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    capability: Capability,
) -> Result<Vec<String>, PageError> {
    let names: Vec<String> = if viewer.access.is(Role::PlatformAdmin) {
        let guard = Guard::new(state, context, &viewer.caller);
        crate::gateway::deployments::list(&guard)
            .await?
            .into_iter()
            .map(|d| d.config.name)
            .collect()
    } else {
        state.gateway.callable_by(&viewer.caller.principal)
    };
    Ok(names
        .into_iter()
        .filter(|name| state.gateway.offers(name, capability))
        .collect())
}

/// What the assistant form shows, blank or from a definition.
#[derive(Debug, Clone)]
struct FormValues {
    name: String,
    description: String,
    instructions: String,
    deployments: Vec<Choice>,
    collections: Vec<Choice>,
    organisation: bool,
    groups: String,
    owner_group: String,
    starters: String,
    top_k: String,
    temperature: String,
    top_p: String,
    max_tokens: String,
}

fn optional(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

impl FormValues {
    /// The form for `definition` (blank when none), offering `deployments` and `collections`
    /// (id, name); what the definition holds is always offered, so saving never drops it.
    fn new(
        definition: Option<&Definition>,
        deployments: Vec<String>,
        collections: Vec<(String, String)>,
    ) -> Self {
        let current_deployment = definition.map(|d| d.deployment.clone());
        let mut deployment_choices: Vec<Choice> = deployments
            .into_iter()
            .map(|name| Choice {
                selected: current_deployment.as_deref() == Some(name.as_str()),
                label: name.clone(),
                value: name,
            })
            .collect();
        if let Some(current) = current_deployment
            && !deployment_choices.iter().any(|c| c.value == current)
        {
            deployment_choices.insert(
                0,
                Choice {
                    label: format!("{current} (current)"),
                    value: current,
                    selected: true,
                },
            );
        }
        let chosen: Vec<String> = definition
            .map(|d| d.collections.clone())
            .unwrap_or_default();
        let mut collection_choices: Vec<Choice> = collections
            .into_iter()
            .map(|(id, name)| Choice {
                selected: chosen.contains(&id),
                value: id,
                label: name,
            })
            .collect();
        for id in &chosen {
            if !collection_choices.iter().any(|c| &c.value == id) {
                collection_choices.push(Choice {
                    value: id.clone(),
                    label: id.clone(),
                    selected: true,
                });
            }
        }
        let Some(d) = definition else {
            return Self {
                name: String::new(),
                description: String::new(),
                instructions: String::new(),
                deployments: deployment_choices,
                collections: collection_choices,
                organisation: true,
                groups: String::new(),
                owner_group: String::new(),
                starters: String::new(),
                top_k: String::new(),
                temperature: String::new(),
                top_p: String::new(),
                max_tokens: String::new(),
            };
        };
        let (organisation, groups) = match &d.access {
            AccessScope::Organisation => (true, String::new()),
            AccessScope::Groups { groups } => (false, groups.join("\n")),
        };
        Self {
            name: d.name.clone(),
            description: d.description.clone(),
            instructions: d.instructions.clone(),
            deployments: deployment_choices,
            collections: collection_choices,
            organisation,
            groups,
            owner_group: d.owner_group.clone().unwrap_or_default(),
            starters: d.starters.join("\n"),
            top_k: optional(d.top_k),
            temperature: optional(d.generation.temperature),
            top_p: optional(d.generation.top_p),
            max_tokens: optional(d.generation.max_tokens),
        }
    }
}

/// The collections the viewer can pick from, as (id, name).
async fn collection_choices(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
) -> Result<Vec<(String, String)>, PageError> {
    let guard = Guard::new(state, context, &viewer.caller);
    let collections = crate::grounding::service::list(&guard).await?;
    Ok(collections
        .into_iter()
        .map(|seen| (seen.collection.id, seen.collection.name))
        .collect())
}

/// One assistant in the list.
struct Row {
    id: String,
    name: String,
    status: String,
    version: i64,
    deployment: String,
    scope: String,
    owner_group: String,
    updated_at: String,
}

impl From<AssistantView> for Row {
    fn from(a: AssistantView) -> Self {
        Self {
            scope: scope_text(&a.definition.access),
            owner_group: a.definition.owner_group.unwrap_or_default(),
            deployment: a.definition.deployment,
            name: a.definition.name,
            id: a.id,
            status: a.status,
            version: a.version,
            updated_at: rfc3339(a.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/assistants.html")]
struct List {
    layout: Layout,
    rows: Vec<Row>,
    /// The new-assistant form, for platform admins.
    new_form: Option<FormValues>,
}

/// `/console/assistants`: the assistants the viewer may edit.
async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
) -> Result<Response, PageError> {
    require(&viewer, Section::Assistants)?;
    let guard = Guard::new(&state, &context, &viewer.caller);
    let rows = service::list(&guard)
        .await?
        .into_iter()
        .filter(|seen| seen.standing.manages())
        .map(|seen| Row::from(api::view(seen)))
        .collect();
    let new_form = if viewer.access.is(Role::PlatformAdmin) {
        let deployments = deployments_offering(&state, &context, &viewer, Capability::Chat).await?;
        let collections = collection_choices(&state, &context, &viewer).await?;
        Some(FormValues::new(None, deployments, collections))
    } else {
        None
    };
    Ok(render(&List {
        layout: Layout::new(&viewer, "Assistants", Section::Assistants.path()),
        rows,
        new_form,
    }))
}

/// An editable assistant, or the same 404 as a missing one.
async fn editable(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    id: &str,
) -> Result<AssistantView, PageError> {
    let guard = Guard::new(state, context, &viewer.caller);
    let seen = service::get(&guard, id).await?;
    if seen.standing.manages() {
        Ok(api::view(seen))
    } else {
        // Someone who may only use it sees it in the chat, not here.
        Err(not_found())
    }
}

async fn all_versions(
    state: &AppState,
    context: &RequestContext,
    viewer: &Viewer,
    id: &str,
) -> Result<Vec<VersionView>, PageError> {
    let guard = Guard::new(state, context, &viewer.caller);
    let versions = service::versions(&guard, id).await?;
    Ok(versions.into_iter().map(VersionView::from).collect())
}

struct VersionRow {
    version: i64,
    created_by: String,
    created_at: String,
}

/// Who switched the assistant off, and why.
struct Killed {
    reason: String,
    by: String,
    at: String,
}

#[derive(Template)]
#[template(path = "console/assistants_edit.html")]
struct Edit {
    layout: Layout,
    id: String,
    name: String,
    status: String,
    version: i64,
    updated_by: String,
    updated_at: String,
    form: FormValues,
    /// Newest first.
    versions: Vec<VersionRow>,
    killed: Option<Killed>,
}

/// `/console/assistants/{id}`: the edit form, the versions and the kill switch.
async fn edit(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Assistants)?;
    let assistant = editable(&state, &context, &viewer, &id).await?;
    let versions = all_versions(&state, &context, &viewer, &id).await?;
    let deployments = deployments_offering(&state, &context, &viewer, Capability::Chat).await?;
    let collections = collection_choices(&state, &context, &viewer).await?;
    let killed = state.switches.current().assistant(&id).map(|p| Killed {
        reason: p.reason.clone(),
        by: p.by_name.clone(),
        at: rfc3339(p.at),
    });
    let page = Edit {
        layout: Layout::new(
            &viewer,
            format!("Assistant {}", assistant.definition.name),
            Section::Assistants.path(),
        ),
        form: FormValues::new(Some(&assistant.definition), deployments, collections),
        id: assistant.id,
        name: assistant.definition.name,
        status: assistant.status,
        version: assistant.version,
        updated_by: assistant.updated_by,
        updated_at: rfc3339(assistant.updated_at),
        versions: versions
            .into_iter()
            .rev()
            .map(|v| VersionRow {
                version: v.version,
                created_by: v.created_by,
                created_at: rfc3339(v.created_at),
            })
            .collect(),
        killed,
    };
    Ok(render(&page))
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

fn version_number(raw: Option<&str>, name: &str) -> Result<Option<i64>, PageError> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            PageError(ApiError::BadRequest(format!(
                "{name} must be a version number"
            )))
        }),
    }
}

/// Whether a line is in both versions, only the old one, or only the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Same,
    Removed,
    Added,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DiffLine {
    change: Change,
    text: String,
}

impl DiffLine {
    fn is_removed(&self) -> bool {
        self.change == Change::Removed
    }

    fn is_added(&self) -> bool {
        self.change == Change::Added
    }
}

/// Past this many cells the comparison table would be too big to hold; the differing middle
/// is then shown as removed and added whole.
const MAX_DIFF_CELLS: usize = 4_000_000;

/// A line diff of `old` and `new` by longest common subsequence, after setting aside the lines
/// they start and end with in common (usually most of a definition).
fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let line = |change, text: &str| DiffLine {
        change,
        text: text.to_owned(),
    };
    let mut out: Vec<DiffLine> = a[..prefix].iter().map(|t| line(Change::Same, t)).collect();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let (n, m) = (a_mid.len(), b_mid.len());
    if n.saturating_mul(m) > MAX_DIFF_CELLS {
        out.extend(a_mid.iter().map(|t| line(Change::Removed, t)));
        out.extend(b_mid.iter().map(|t| line(Change::Added, t)));
    } else {
        // lcs[i][j]: the longest common subsequence of a_mid[i..] and b_mid[j..].
        let width = m + 1;
        let mut lcs = vec![0u32; (n + 1) * width];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * width + j] = if a_mid[i] == b_mid[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n && j < m {
            if a_mid[i] == b_mid[j] {
                out.push(line(Change::Same, a_mid[i]));
                i += 1;
                j += 1;
            } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
                out.push(line(Change::Removed, a_mid[i]));
                i += 1;
            } else {
                out.push(line(Change::Added, b_mid[j]));
                j += 1;
            }
        }
        out.extend(a_mid[i..].iter().map(|t| line(Change::Removed, t)));
        out.extend(b_mid[j..].iter().map(|t| line(Change::Added, t)));
    }
    out.extend(a[a.len() - suffix..].iter().map(|t| line(Change::Same, t)));
    out
}

/// A version's definition as the comparison reads it: pretty JSON, one field a line.
fn pretty(version: &VersionView) -> Result<String, PageError> {
    serde_json::to_string_pretty(&version.definition)
        .map_err(|e| PageError(ApiError::Internal(e.to_string())))
}

#[derive(Template)]
#[template(path = "console/assistants_diff.html")]
struct Diff {
    layout: Layout,
    id: String,
    name: String,
    from: VersionRow,
    to: VersionRow,
    /// Every version number, for choosing another pair.
    numbers: Vec<i64>,
    lines: Vec<DiffLine>,
    changed: bool,
}

/// `/console/assistants/{id}/diff?from=N&to=M`: what changed between two versions (by default
/// the current one and the one before).
async fn diff(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<DiffQuery>,
) -> Result<Response, PageError> {
    require(&viewer, Section::Assistants)?;
    let assistant = editable(&state, &context, &viewer, &id).await?;
    let versions = all_versions(&state, &context, &viewer, &id).await?;
    let to = version_number(query.to.as_deref(), "to")?.unwrap_or(assistant.version);
    let from = version_number(query.from.as_deref(), "from")?.unwrap_or((to - 1).max(1));
    let find = |number: i64| {
        versions
            .iter()
            .find(|v| v.version == number)
            .ok_or_else(|| PageError(ApiError::NotFound(format!("no version {number}"))))
    };
    let (old, new) = (find(from)?, find(to)?);
    let lines = line_diff(&pretty(old)?, &pretty(new)?);
    let row = |v: &VersionView| VersionRow {
        version: v.version,
        created_by: v.created_by.clone(),
        created_at: rfc3339(v.created_at),
    };
    let page = Diff {
        layout: Layout::new(
            &viewer,
            format!("Compare versions of {}", assistant.definition.name),
            Section::Assistants.path(),
        ),
        id: assistant.id,
        name: assistant.definition.name,
        from: row(old),
        to: row(new),
        numbers: versions.iter().map(|v| v.version).collect(),
        changed: lines.iter().any(|l| l.change != Change::Same),
        lines,
    };
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(lines: &[DiffLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let mark = match l.change {
                    Change::Same => ' ',
                    Change::Removed => '-',
                    Change::Added => '+',
                };
                format!("{mark}{}", l.text)
            })
            .collect()
    }

    #[test]
    fn identical_texts_have_no_changes() {
        assert_eq!(marked(&line_diff("a\nb", "a\nb")), [" a", " b"]);
    }

    #[test]
    fn a_changed_line_is_removed_then_added_in_place() {
        assert_eq!(
            marked(&line_diff("a\nb\nc", "a\nB\nc")),
            [" a", "-b", "+B", " c"]
        );
    }

    #[test]
    fn insertions_and_deletions_keep_the_common_lines() {
        assert_eq!(
            marked(&line_diff("a\nb\nc\nd", "x\na\nc\nd\ny")),
            ["+x", " a", "-b", " c", " d", "+y"]
        );
    }

    #[test]
    fn empty_sides_are_all_added_or_all_removed() {
        assert_eq!(marked(&line_diff("", "a\nb")), ["+a", "+b"]);
        assert_eq!(marked(&line_diff("a", "")), ["-a"]);
    }
}

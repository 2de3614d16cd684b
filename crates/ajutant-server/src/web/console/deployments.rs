//! The console's deployments (platform admins): every deployment in force with its provider,
//! model, capabilities, switches, fallbacks, groups and prices, and a test call to each chat
//! deployment through the gateway (`static/deployments.js`).

use ajutant_core::config::{Capability, DeploymentConfig, ProviderKind};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use super::assistants::rfc3339;
use crate::AppState;
use crate::gateway::admin;
use crate::problem::ApiError;
use crate::request::RequestContext;
use crate::web::page::{Layout, PageError, Section, Viewer, render, require};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/console/deployments", get(list))
}

/// Who switched a deployment off, and why.
struct Killed {
    reason: String,
    by: String,
    at: String,
}

struct Row {
    name: String,
    /// `config` or `api`.
    source: &'static str,
    provider: &'static str,
    model: String,
    capabilities: String,
    chat: bool,
    enabled: bool,
    killed: Option<Killed>,
    fallbacks: String,
    groups: String,
    price_input: String,
    price_output: String,
}

fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Offline => "Offline (built in)",
        ProviderKind::Local => "Local embeddings (built in)",
        ProviderKind::OpenAi => "OpenAI",
        ProviderKind::AzureOpenAi => "Azure OpenAI",
        ProviderKind::Anthropic => "Anthropic",
        ProviderKind::OpenAiCompatible => "OpenAI-compatible",
    }
}

fn capability_name(capability: Capability) -> &'static str {
    match capability {
        Capability::Chat => "chat",
        Capability::Embeddings => "embeddings",
    }
}

#[derive(Template)]
#[template(path = "console/deployments.html")]
struct List {
    layout: Layout,
    rows: Vec<Row>,
}

impl List {
    fn chat_rows(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.chat).collect()
    }
}

/// `/console/deployments`: the deployments in force (the admin API's list).
async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    viewer: Viewer,
) -> Result<Response, PageError> {
    require(&viewer, Section::Deployments)?;
    let Json(deployments) =
        admin::list(State(state.clone()), context.clone(), viewer.caller.clone()).await?;
    let switches = state.switches.current();
    let mut rows = Vec::new();
    for view in deployments {
        let config: DeploymentConfig = serde_json::from_value(view.deployment).map_err(|e| {
            PageError(ApiError::Internal(format!(
                "a deployment cannot be read: {e}"
            )))
        })?;
        let killed = switches.deployment(&config.name).map(|p| Killed {
            reason: p.reason.clone(),
            by: p.by_name.clone(),
            at: rfc3339(p.at),
        });
        rows.push(Row {
            source: view.source,
            provider: provider_name(config.provider),
            capabilities: config
                .capabilities
                .iter()
                .map(|c| capability_name(*c))
                .collect::<Vec<_>>()
                .join(", "),
            chat: config.capabilities.contains(&Capability::Chat),
            enabled: config.enabled,
            killed,
            fallbacks: config.fallbacks.join(", "),
            groups: config.groups.join(", "),
            price_input: format!("{:.4}", config.price_input_per_1k),
            price_output: format!("{:.4}", config.price_output_per_1k),
            model: config.model,
            name: config.name,
        });
    }
    Ok(render(&List {
        layout: Layout::new(&viewer, "Deployments", Section::Deployments.path()),
        rows,
    }))
}

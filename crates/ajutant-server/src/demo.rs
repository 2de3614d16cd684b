//! The embedded default's demo: once, on a fresh instance with the development identity
//! provider, a collection of an imaginary company's IT and HR policies (bundled in `demo/`)
//! and a helpdesk assistant grounded in it, both scoped to the demo employees group. The
//! documents go through the normal ingestion job, so the demo exercises the real path.

use ajutant_core::config::{Capability, DEMO_EMPLOYEES, DEMO_HR_OWNERS, IdentityProviderKind};
use ajutant_core::policy::AccessScope;
use ajutant_store::{CollectionSpec, NewItem, StoreError};
use time::OffsetDateTime;

use crate::AppState;
use ajutant_core::assistant::{Definition, Generation};

const SEED: &str = "demo-helpdesk-v1";
const AUTHOR: &str = "system:demo";

const DOCUMENTS: &[(&str, &str)] = &[
    ("it-equipment.md", include_str!("../demo/it-equipment.md")),
    (
        "it-accounts-and-security.md",
        include_str!("../demo/it-accounts-and-security.md"),
    ),
    ("hr-leave.md", include_str!("../demo/hr-leave.md")),
    (
        "hr-expenses-and-travel.md",
        include_str!("../demo/hr-expenses-and-travel.md"),
    ),
    (
        "hr-remote-work.md",
        include_str!("../demo/hr-remote-work.md"),
    ),
];

/// Seeds the demo if this instance should and no instance has yet. Returns whether it did.
pub(crate) async fn seed(state: &AppState) -> Result<bool, StoreError> {
    let config = &state.config;
    if !config.grounding.demo || config.identity.provider != IdentityProviderKind::Development {
        return Ok(false);
    }
    let now = OffsetDateTime::now_utc();
    if !state.store.claim_seed(SEED, now).await? {
        return Ok(false);
    }
    let Some(chat) = config
        .deployments
        .iter()
        .find(|d| d.enabled && d.capabilities.contains(&Capability::Chat))
        .map(|d| d.name.clone())
    else {
        tracing::warn!("no chat deployment is configured; the demo assistant is not seeded");
        return Ok(false);
    };
    let embedding = &config.grounding.demo_embedding_deployment;
    let embedding = state
        .gateway
        .offers(embedding, Capability::Embeddings)
        .then(|| embedding.clone());
    let employees = AccessScope::Groups {
        groups: vec![DEMO_EMPLOYEES.to_owned()],
    };
    let collection = state
        .store
        .create_collection(
            &CollectionSpec {
                name: "Fjordlight handbook (demo)".to_owned(),
                description: "IT and HR policies of Fjordlight Tools, an imaginary company."
                    .to_owned(),
                readers: employees.readers(),
                owner_group: Some(DEMO_HR_OWNERS.to_owned()),
                embedding_deployment: embedding.clone(),
                source: None,
            },
            AUTHOR,
            now,
        )
        .await?;
    let items: Vec<NewItem> = DOCUMENTS
        .iter()
        .map(|(name, text)| NewItem {
            source_key: (*name).to_owned(),
            name: (*name).to_owned(),
            content_type: Some("text/markdown".to_owned()),
            acl: None,
            url: None,
            content: Some(text.as_bytes().to_vec()),
            refused: None,
        })
        .collect();
    state
        .store
        .create_job(
            &collection.id,
            ajutant_core::grounding::JobKind::Upload,
            &items,
            AUTHOR,
            now,
        )
        .await?;
    let definition = Definition {
        name: "Fjordlight helpdesk".to_owned(),
        description: "Answers questions about IT equipment, accounts, leave, expenses and \
                      working from home, from the company handbook."
            .to_owned(),
        instructions: "You are the Fjordlight Tools helpdesk. Answer employees' questions \
                       briefly and kindly, from the handbook only."
            .to_owned(),
        deployment: chat,
        generation: Generation::default(),
        collections: vec![collection.id.clone()],
        top_k: Some(4),
        access: employees,
        owner_group: Some(DEMO_HR_OWNERS.to_owned()),
        starters: vec![
            "How do I request a new laptop?".to_owned(),
            "How many days of annual leave do I have?".to_owned(),
            "What can I claim for my home office?".to_owned(),
        ],
    };
    state
        .store
        .create_assistant("helpdesk", &definition, AUTHOR, now)
        .await?;
    state.ingest.wake();
    tracing::info!(
        embeddings = embedding.as_deref().unwrap_or("none (lexical search only)"),
        "seeded the demo helpdesk assistant and its handbook"
    );
    Ok(true)
}

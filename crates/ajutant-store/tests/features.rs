//! The store's feature rules, on both databases: security trimming inside search, leases that
//! two competing claimers never share, a session that stays ended, a deleted directory user
//! who stays locked out, and an escalation written whole in one transaction.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::collections::HashSet;

use ajutant_core::assistant::{Definition, Generation};
use ajutant_core::chat::MessageRole;
use ajutant_core::incident::{IncidentStatus, TimelineKind};
use ajutant_core::policy::{AccessScope, Principal, PrincipalKind};
use ajutant_store::{
    CollectionSpec, DirectoryUser, Escalation, NewChunk, NewDocument, NewFeedback, NewMessage,
    NewNotification, NewSession, SearchScope, Store,
};
use ajutant_testdb::{Backend, TestDatabase, both_databases};
use time::{Duration, OffsetDateTime};

both_databases!(
    search_never_scores_a_passage_the_reader_may_not_read,
    two_workers_never_claim_the_same_job_and_a_lapsed_lease_is_taken_over,
    two_senders_never_lease_the_same_notification,
    an_escalation_is_written_whole_and_only_once,
    an_ended_session_stays_ended_and_loses_its_refresh_token,
    a_deleted_directory_user_stays_locked_out,
);

fn now() -> OffsetDateTime {
    // Whole microseconds, as both databases store them.
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap()
}

async fn collection(store: &Store, readers: &[&str]) -> String {
    store
        .create_collection(
            &CollectionSpec {
                name: format!("c-{}", uuid::Uuid::now_v7()),
                description: String::new(),
                readers: readers.iter().map(|r| (*r).to_owned()).collect(),
                owner_group: None,
                embedding_deployment: None,
                source: None,
            },
            "test",
            now(),
        )
        .await
        .unwrap()
        .id
}

async fn document(store: &Store, collection: &str, key: &str, acl: Option<&[&str]>, text: &str) {
    store
        .put_document(
            &NewDocument {
                collection_id: collection.to_owned(),
                source_key: key.to_owned(),
                title: key.to_owned(),
                kind: Some("text".to_owned()),
                size_bytes: i64::try_from(text.len()).unwrap(),
                content_hash: format!("hash-{key}"),
                url: None,
                acl: acl.map(|groups| groups.iter().map(|g| (*g).to_owned()).collect()),
            },
            &[NewChunk {
                ordinal: 0,
                heading: String::new(),
                page: None,
                text: text.to_owned(),
                indexed_text: text.to_owned(),
                tokens: 10,
                embedding: None,
            }],
            now(),
        )
        .await
        .unwrap();
}

async fn search_trimming_titles(store: &Store, collection: &str, groups: &[&str]) -> Vec<String> {
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    let collections = vec![collection.to_owned()];
    let hits = store
        .search_lexical(
            SearchScope {
                collections: &collections,
                groups: &groups,
            },
            "salary bands",
            10,
        )
        .await
        .unwrap();
    let ids: Vec<i64> = hits.iter().map(|(id, _)| *id).collect();
    let mut titles: Vec<String> = store
        .passages(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect();
    titles.sort();
    titles
}

async fn search_never_scores_a_passage_the_reader_may_not_read(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = database.store().await.unwrap();
    let hr = collection(&store, &["g-staff", "g-hr"]).await;
    document(
        &store,
        &hr,
        "open.md",
        None,
        "Salary bands are published each spring.",
    )
    .await;
    document(
        &store,
        &hr,
        "hr-only.md",
        Some(&["g-hr"]),
        "Salary bands per person, confidential.",
    )
    .await;
    // An ACL naming a group outside the collection's readers narrows to nobody.
    document(
        &store,
        &hr,
        "nobody.md",
        Some(&["g-other"]),
        "Salary bands of the board.",
    )
    .await;

    assert_eq!(
        search_trimming_titles(&store, &hr, &["g-staff"]).await,
        ["open.md"]
    );
    assert_eq!(
        search_trimming_titles(&store, &hr, &["g-hr"]).await,
        ["hr-only.md", "open.md"]
    );
    assert!(
        search_trimming_titles(&store, &hr, &["g-other"])
            .await
            .is_empty()
    );
    assert!(search_trimming_titles(&store, &hr, &[]).await.is_empty());
}

async fn two_workers_never_claim_the_same_job_and_a_lapsed_lease_is_taken_over(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = database.store().await.unwrap();
    let other = database.store().await.unwrap();
    let collection = collection(&store, &["*"]).await;
    let mut created = HashSet::new();
    for _ in 0..12 {
        let job = store
            .create_job(
                &collection,
                ajutant_core::grounding::JobKind::Sync,
                &[],
                "test",
                now(),
            )
            .await
            .unwrap();
        created.insert(job.id);
    }
    let lease = now() + Duration::minutes(5);
    let claim_all = |store: Store, worker: &'static str| async move {
        let mut claimed = Vec::new();
        while let Some(job) = store.claim_job(worker, now(), lease).await.unwrap() {
            claimed.push(job.id);
        }
        claimed
    };
    let (a, b) = tokio::join!(claim_all(store.clone(), "a"), claim_all(other, "b"));
    let all: Vec<&String> = a.iter().chain(&b).collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), 12, "a {a:?} b {b:?}");
    assert_eq!(
        distinct.len(),
        12,
        "a job was claimed twice: a {a:?} b {b:?}"
    );
    assert_eq!(distinct, created.iter().collect());

    // A worker that died leaves its job running under a lease; past the lease another takes it.
    let later = lease + Duration::seconds(1);
    let taken = store
        .claim_job("c", later, later + Duration::minutes(5))
        .await
        .unwrap()
        .unwrap();
    assert!(created.contains(&taken.id));
    assert_eq!(taken.attempts, 2);
    assert!(!store.renew_job_lease(&taken.id, "a", later).await.unwrap());
}

/// An answer in a conversation with the `helpdesk` assistant (created once): what feedback is
/// given on. Returns (conversation, message).
async fn answer(store: &Store) -> (String, String) {
    if store.assistant("helpdesk").await.unwrap().is_none() {
        let definition = Definition {
            name: "Helpdesk".to_owned(),
            description: String::new(),
            instructions: String::new(),
            deployment: "offline".to_owned(),
            generation: Generation::default(),
            collections: Vec::new(),
            top_k: None,
            access: AccessScope::Organisation,
            owner_group: None,
            starters: Vec::new(),
        };
        store
            .create_assistant("helpdesk", &definition, "test", now())
            .await
            .unwrap();
    }
    let conversation = store
        .create_conversation("u1", "helpdesk", "t", now())
        .await
        .unwrap();
    let message = store
        .append_message(
            &conversation.id,
            &NewMessage {
                role: MessageRole::Assistant,
                content: "an answer".to_owned(),
                ..NewMessage::default()
            },
            now(),
        )
        .await
        .unwrap();
    (conversation.id, message.id)
}

async fn escalate(
    store: &Store,
    (conversation, message): &(String, String),
    notifications: usize,
) -> ajutant_store::SavedFeedback {
    let feedback = NewFeedback {
        message_id: message.clone(),
        conversation_id: conversation.clone(),
        assistant_id: "helpdesk".to_owned(),
        assistant_version: 1,
        citations: "[]".to_owned(),
        question: "q".to_owned(),
        answer: "a".to_owned(),
        principal_id: "u1".to_owned(),
        principal_name: "User One".to_owned(),
        helpful: Some(false),
        categories: vec!["factual_error".to_owned()],
        serious: true,
        ..NewFeedback::default()
    };
    let incident_id = uuid::Uuid::now_v7().to_string();
    let escalation = Escalation {
        incident_id: incident_id.clone(),
        notifications: (0..notifications)
            .map(|n| NewNotification {
                id: format!("msg_{}", uuid::Uuid::now_v7()),
                target: format!("target-{n}"),
                event: "incident.opened".to_owned(),
                payload: format!("{{\"incident\":\"{incident_id}\"}}"),
            })
            .collect(),
    };
    store
        .save_feedback(&feedback, Some(&escalation), now())
        .await
        .unwrap()
}

async fn two_senders_never_lease_the_same_notification(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = database.store().await.unwrap();
    let other = database.store().await.unwrap();
    for _ in 0..4 {
        escalate(&store, &answer(&store).await, 3).await;
    }
    let lease = now() + Duration::minutes(1);
    let claim = |store: Store, worker: &'static str| async move {
        let mut leased = Vec::new();
        loop {
            let batch = store
                .claim_notifications(worker, now(), lease, 2)
                .await
                .unwrap();
            if batch.is_empty() {
                break leased;
            }
            leased.extend(batch.into_iter().map(|n| n.id));
        }
    };
    let (a, b) = tokio::join!(claim(store.clone(), "a"), claim(other, "b"));
    let distinct: HashSet<&String> = a.iter().chain(&b).collect();
    assert_eq!(a.len() + b.len(), 12, "a {a:?} b {b:?}");
    assert_eq!(distinct.len(), 12, "a notification was leased twice");
    // Leased rows are not handed out again while the lease holds.
    assert!(
        store
            .claim_notifications("c", now(), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn an_escalation_is_written_whole_and_only_once(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = database.store().await.unwrap();
    let before = now() - Duration::seconds(1);
    let answered = answer(&store).await;
    let saved = escalate(&store, &answered, 2).await;
    assert!(saved.created && saved.opened);
    let incident = saved.incident.unwrap();
    assert_eq!(incident.status, IncidentStatus::Open);
    let timeline = store.incident_events(&incident.id).await.unwrap();
    assert_eq!(
        timeline.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [TimelineKind::Opened]
    );
    let outbox = store.notifications(None, None, 100).await.unwrap();
    assert_eq!(outbox.len(), 2);
    let events = store.ops_events_after(before, 100).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "escalation" && e.subject == incident.id),
        "{events:?}"
    );

    // Feedback edited again escalates to the same incident: nothing is opened or sent twice.
    let again = escalate(&store, &answered, 2).await;
    assert!(!again.created && !again.opened);
    assert_eq!(again.incident.unwrap().id, incident.id);
    assert_eq!(store.notifications(None, None, 100).await.unwrap().len(), 2);
    assert_eq!(
        store.incidents(None, None, None, 100).await.unwrap().len(),
        1
    );
}

fn principal() -> Principal {
    Principal {
        id: "https://idp#u1".to_owned(),
        subject: "u1".to_owned(),
        display_name: "User One".to_owned(),
        kind: PrincipalKind::User,
        groups: Default::default(),
        app_roles: Default::default(),
        tenant: None,
    }
}

async fn an_ended_session_stays_ended_and_loses_its_refresh_token(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = database.store().await.unwrap();
    let principal = principal();
    let now = now();
    for id in ["s1", "s2"] {
        store
            .create_session(NewSession {
                id_hash: id,
                principal: &principal,
                csrf_token: "csrf",
                refresh_token: Some("refresh"),
                now,
                expires_at: now + Duration::hours(8),
                recheck_at: now + Duration::minutes(5),
            })
            .await
            .unwrap();
    }
    assert!(store.end_session("s1", "logout", now).await.unwrap());
    let ended = store.session("s1").await.unwrap().unwrap();
    assert!(ended.ended);
    assert_eq!(ended.refresh_token, None);
    assert!(
        !store.end_session("s1", "logout", now).await.unwrap(),
        "ended twice"
    );
    let live = store.session("s2").await.unwrap().unwrap();
    assert!(!live.ended);
    assert_eq!(live.refresh_token.as_deref(), Some("refresh"));
    assert_eq!(
        store
            .end_sessions_of("u1", "deprovisioned", now)
            .await
            .unwrap(),
        1
    );
    assert!(store.session("s2").await.unwrap().unwrap().ended);
}

async fn a_deleted_directory_user_stays_locked_out(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = database.store().await.unwrap();
    let now = now();
    let user = DirectoryUser {
        id: "d1".to_owned(),
        external_id: "oid-1".to_owned(),
        user_name: "one@example.org".to_owned(),
        display_name: "One".to_owned(),
        active: true,
        created_at: now,
        updated_at: now,
    };
    store.insert_directory_user(&user).await.unwrap();
    assert!(!store.is_deprovisioned("oid-1").await.unwrap());
    assert_eq!(
        store
            .delete_directory_user("d1", now)
            .await
            .unwrap()
            .as_deref(),
        Some("oid-1")
    );
    // The tombstone keeps the lock-out: the subject stays refused, and deleting again is a no-op.
    assert!(store.is_deprovisioned("oid-1").await.unwrap());
    assert_eq!(store.delete_directory_user("d1", now).await.unwrap(), None);
    assert!(!store.is_deprovisioned("oid-2").await.unwrap());
}

//! The `local` provider against the real all-MiniLM-L6-v2 files. They are not in the
//! repository: `scripts/fetch-embedding-model` puts them in `data/models/all-MiniLM-L6-v2`
//! (or set `AJUTANT_TEST_EMBEDDING_MODEL` to their folder). Without them these tests fail; they
//! never skip.
#![cfg(feature = "local-embeddings")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ajutant_core::config::{Capability, DeploymentConfig, ProviderKind};
use ajutant_core::model::{
    ChatMessage, ChatRequest, EmbeddingsRequest, MessageRole, ModelProvider, ProviderError,
};
use ajutant_providers::local::{Local, MAX_TOKENS};

const QUESTION: &str = "How do I request a new laptop?";
const ANSWER: &str = "To get a new computer, open a ticket with the IT service desk.";
const UNRELATED: &str = "The cafeteria serves lunch from noon.";

/// sentence-transformers' own output for `SentenceTransformer("all-MiniLM-L6-v2")
/// .encode("hello world")`, as published: the first 20 components and the last 4.
const HELLO_WORLD_HEAD: [f64; 20] = [
    -3.44772749e-02,
    3.10231782e-02,
    6.73497003e-03,
    2.61089858e-02,
    -3.93620245e-02,
    -1.60302445e-01,
    6.69240132e-02,
    -6.44148979e-03,
    -4.74504791e-02,
    1.47588560e-02,
    7.08752796e-02,
    5.55276312e-02,
    1.91933345e-02,
    -2.62513123e-02,
    -1.01095429e-02,
    -2.69404557e-02,
    2.23074611e-02,
    -2.22266484e-02,
    -1.49692640e-01,
    -1.74930077e-02,
];
const HELLO_WORLD_TAIL: [f64; 4] = [
    2.37922110e-02,
    -2.28897743e-02,
    3.89375277e-02,
    3.02067865e-02,
];
/// The same for "i am mlflow": the first 4 components and the last 4.
const MLFLOW_HEAD: [f64; 4] = [
    4.81191138e-03,
    -9.33756605e-02,
    6.95968643e-02,
    8.09735525e-03,
];
const MLFLOW_TAIL: [f64; 4] = [
    6.57437667e-02,
    -2.72239652e-02,
    4.02687863e-02,
    -1.05599344e-01,
];

fn model_folder() -> PathBuf {
    let folder = std::env::var_os("AJUTANT_TEST_EMBEDDING_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2")
        });
    assert!(
        folder.join("model.safetensors").is_file(),
        "the embedding model is not in {}: run scripts/fetch-embedding-model (or set \
         AJUTANT_TEST_EMBEDDING_MODEL to the folder holding it)",
        folder.display()
    );
    folder
}

/// One model for the whole test binary: loading it is 90 MB.
fn local() -> &'static Local {
    static LOCAL: OnceLock<Local> = OnceLock::new();
    LOCAL.get_or_init(|| Local::load(&model_folder()).unwrap())
}

async fn embed(provider: &dyn ModelProvider, input: &[&str]) -> Vec<Vec<f32>> {
    let request = EmbeddingsRequest {
        model: "ignored".to_owned(),
        input: input.iter().map(|s| s.to_string()).collect(),
        dimensions: None,
    };
    let response = provider.embed(&request).await.unwrap();
    assert_eq!(response.vectors.len(), input.len());
    response.vectors
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// How far `actual` is from the published `expected`, at most.
fn off_by(actual: &[f32], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len());
    actual
        .iter()
        .zip(expected)
        .map(|(x, y)| (f64::from(*x) - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn text_is_tokenized_as_bert_uncased_does() {
    let local = local();
    assert_eq!(
        local.tokenize("hello world").unwrap(),
        [101, 7592, 2088, 102]
    );
    // Lower-cased, accents stripped, punctuation split off, unknown words in WordPiece pieces
    // (ids from an independent BERT tokenizer over the same vocabulary).
    assert_eq!(
        local.tokenize("Café tokenization, naïvely!").unwrap(),
        [101, 7668, 19204, 3989, 1010, 15743, 2135, 999, 102]
    );
    assert_eq!(
        local.tokenize(QUESTION).unwrap(),
        [101, 2129, 2079, 1045, 5227, 1037, 2047, 12191, 1029, 102]
    );
    // Truncated to MAX_TOKENS, still closed by [SEP].
    let long = local.tokenize(&"word ".repeat(1_000)).unwrap();
    assert_eq!(long.len(), MAX_TOKENS);
    assert_eq!((long[0], long[MAX_TOKENS - 1]), (101, 102));
}

#[tokio::test]
async fn vectors_match_sentence_transformers() {
    let vectors = embed(local(), &["hello world", "i am mlflow"]).await;
    let (hello, mlflow) = (&vectors[0], &vectors[1]);
    assert_eq!(hello.len(), 384);
    let tolerance = 1e-5;
    println!(
        "off by at most {:e} and {:e}",
        off_by(&hello[..20], &HELLO_WORLD_HEAD).max(off_by(&hello[380..], &HELLO_WORLD_TAIL)),
        off_by(&mlflow[..4], &MLFLOW_HEAD).max(off_by(&mlflow[380..], &MLFLOW_TAIL))
    );
    assert!(
        off_by(&hello[..20], &HELLO_WORLD_HEAD) < tolerance,
        "{:?}",
        &hello[..20]
    );
    assert!(
        off_by(&hello[380..], &HELLO_WORLD_TAIL) < tolerance,
        "{:?}",
        &hello[380..]
    );
    assert!(
        off_by(&mlflow[..4], &MLFLOW_HEAD) < tolerance,
        "{:?}",
        &mlflow[..4]
    );
    assert!(
        off_by(&mlflow[380..], &MLFLOW_TAIL) < tolerance,
        "{:?}",
        &mlflow[380..]
    );
}

#[tokio::test]
async fn vectors_have_384_unit_length_dimensions() {
    assert_eq!(local().dimensions(), 384);
    for vector in embed(local(), &[QUESTION, "", "x", &"long ".repeat(400)]).await {
        assert_eq!(vector.len(), 384);
        let norm = dot(&vector, &vector).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

#[tokio::test]
async fn a_question_is_closer_to_its_answer_than_to_an_unrelated_sentence() {
    let vectors = embed(local(), &[QUESTION, ANSWER, UNRELATED]).await;
    let related = dot(&vectors[0], &vectors[1]);
    let unrelated = dot(&vectors[0], &vectors[2]);
    // A float64 reimplementation of the model (numpy) gives 0.642038 and 0.078209.
    assert!((related - 0.642_038).abs() < 1e-4, "{related}");
    assert!((unrelated - 0.078_209).abs() < 1e-4, "{unrelated}");
    assert!(related - unrelated > 0.4, "{related} vs {unrelated}");
}

#[tokio::test]
async fn a_vector_does_not_depend_on_its_batch() {
    let local = local();
    let sentences = [
        QUESTION,
        ANSWER,
        UNRELATED,
        "hello world",
        "",
        &"A long paragraph about expense reports and travel policy. ".repeat(30),
        "Password resets are handled by the self-service portal.",
    ];
    let mut alone = Vec::new();
    for sentence in sentences {
        alone.push(embed(local, &[sentence]).await.remove(0));
    }
    // Together, in another order, padded to the longest, and spread over two batches (more
    // than 32 inputs), each input must get the vector it gets alone.
    let mut mixed: Vec<usize> = (0..40).map(|i| (i * 5 + 3) % sentences.len()).collect();
    mixed.reverse();
    let input: Vec<&str> = mixed.iter().map(|&i| sentences[i]).collect();
    let together = embed(local, &input).await;
    for (vector, &i) in together.iter().zip(&mixed) {
        let difference = max_difference(vector, &alone[i]);
        assert!(difference < 1e-5, "{:?}: {difference}", sentences[i]);
    }
}

#[tokio::test]
async fn usage_counts_the_tokens_the_model_saw() {
    let local = local();
    let long = "word ".repeat(1_000);
    let request = EmbeddingsRequest {
        model: String::new(),
        input: vec!["hello world".to_owned(), long],
        dimensions: None,
    };
    let response = local.embed(&request).await.unwrap();
    assert_eq!(response.usage.input_tokens, 4 + MAX_TOKENS as u32);
    assert_eq!(response.usage.output_tokens, 0);
    assert_eq!(response.model, "all-MiniLM-L6-v2");

    let empty = EmbeddingsRequest::default();
    let response = local.embed(&empty).await.unwrap();
    assert!(response.vectors.is_empty());
    assert_eq!(response.usage.input_tokens, 0);
}

#[tokio::test]
async fn chat_and_other_dimensions_are_refused_plainly() {
    let local = local();
    assert_eq!(local.system(), "local");
    let chat = ChatRequest {
        messages: vec![ChatMessage::text(MessageRole::User, "hi")],
        ..ChatRequest::default()
    };
    let error = local.chat(&chat).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unsupported(m) if m.contains("embeddings only")),
        "{error}"
    );
    assert!(!error.is_retryable());
    let error = local.chat_stream(&chat).await.err().unwrap();
    assert!(matches!(error, ProviderError::Unsupported(_)), "{error}");

    let request = EmbeddingsRequest {
        input: vec!["hi".to_owned()],
        dimensions: Some(256),
        ..EmbeddingsRequest::default()
    };
    let error = local.embed(&request).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unsupported(m) if m.contains("384 dimensions")),
        "{error}"
    );
    let request = EmbeddingsRequest {
        dimensions: Some(384),
        ..request
    };
    assert_eq!(local.embed(&request).await.unwrap().vectors[0].len(), 384);
}

fn deployment(model: String) -> DeploymentConfig {
    DeploymentConfig {
        model,
        ..DeploymentConfig::local_embeddings()
    }
}

fn build(deployment: &DeploymentConfig) -> Result<Arc<dyn ModelProvider>, String> {
    let http = ajutant_providers::http_client(Duration::from_secs(1)).unwrap();
    ajutant_providers::provider_for(deployment, http).map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_local_deployment_is_built_from_its_model_folder() {
    let deployment = deployment(model_folder().to_string_lossy().into_owned());
    assert_eq!(deployment.provider, ProviderKind::Local);
    assert_eq!(deployment.capabilities, [Capability::Embeddings]);
    let provider = build(&deployment).unwrap();
    assert_eq!(provider.system(), "local");
    let vectors = embed(provider.as_ref(), &["hello world"]).await;
    assert!(off_by(&vectors[0][..20], &HELLO_WORLD_HEAD) < 1e-5);
}

#[test]
fn a_missing_or_incomplete_model_folder_is_a_clear_build_error() {
    let missing = "/nonexistent/models/all-MiniLM-L6-v2";
    let message = build(&deployment(missing.to_owned())).unwrap_err();
    assert!(
        message.starts_with("deployment local-embeddings: "),
        "{message}"
    );
    assert!(message.contains(missing), "{message}");
    assert!(message.contains("no such folder"), "{message}");
    assert!(
        message.contains("scripts/fetch-embedding-model"),
        "{message}"
    );

    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(
        model_folder().join("config.json"),
        folder.path().join("config.json"),
    )
    .unwrap();
    let message = build(&deployment(folder.path().to_string_lossy().into_owned())).unwrap_err();
    assert!(
        message.contains("cannot read model.safetensors"),
        "{message}"
    );
    assert!(
        message.contains("scripts/fetch-embedding-model"),
        "{message}"
    );

    // Weights that are not a safetensors file at all.
    std::fs::write(folder.path().join("model.safetensors"), b"not weights").unwrap();
    let message = build(&deployment(folder.path().to_string_lossy().into_owned())).unwrap_err();
    assert!(
        message.contains("model.safetensors cannot be read"),
        "{message}"
    );
}

/// Not a check: the speed on this machine, for ~130-token chunks, in whichever profile runs it.
/// `cargo test -p ajutant-providers --test local_embeddings -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    let started = Instant::now();
    let local = Local::load(&model_folder()).unwrap();
    println!("loaded in {:?}", started.elapsed());
    let local = &local;
    let chunk = "Employees request new hardware through the IT service desk portal. Laptops are \
        replaced every four years, or sooner when broken; the request needs the manager's \
        approval and names the cost centre. Standard models ship within five working days, \
        others take longer. Returned devices are wiped and recycled by the facilities team. \
        Questions about accessories, docking stations and monitors go to the same desk, which \
        answers within one working day. Lost or stolen devices must be reported at once, so that \
        the desk can lock them remotely and issue a replacement; the loss is also recorded for \
        the insurer. Personal devices may reach mail and chat only after enrolment.";
    let tokens = local.tokenize(chunk).unwrap().len();
    let input: Vec<String> = (0..64).map(|i| format!("{i}. {chunk}")).collect();
    let request = EmbeddingsRequest {
        input,
        ..EmbeddingsRequest::default()
    };
    local.embed(&request).await.unwrap(); // warm-up
    let started = Instant::now();
    local.embed(&request).await.unwrap();
    let elapsed = started.elapsed();
    let per_chunk = elapsed / request.input.len() as u32;
    println!(
        "{} chunks of ~{tokens} tokens in {elapsed:?}: {per_chunk:?} per chunk, {:.1} chunks/s",
        request.input.len(),
        request.input.len() as f64 / elapsed.as_secs_f64()
    );
}

//! The `local` provider: sentence embeddings computed in process, on the CPU, with no network.
//! It runs a BERT sentence-embedding model (all-MiniLM-L6-v2, 384 dimensions, as
//! `scripts/fetch-embedding-model` fetches it) with candle, the way sentence-transformers does:
//! WordPiece tokens truncated at 256, the encoder's last hidden states averaged over the real
//! (unpadded) tokens, then scaled to unit length. It offers embeddings only; chat is refused.
//!
//! Cost and fairness: a ~130-token input takes about 50 ms of both cores in a release build
//! (about 75 ms in debug builds and tests, whose profile optimises candle's kernels).
//! Inputs are sorted by length and cut into batches of at most 32, so a batch pads little.
//! Each batch runs on tokio's blocking pool, never on an async worker, and a provider runs one
//! batch at a time (a semaphore): concurrent requests take turns batch by batch, so a short
//! query is not stuck behind a whole ingestion. Within a batch candle's matrix products use
//! rayon on every core; `RAYON_NUM_THREADS` caps that when the server must keep a core free.
//!
//! The model is loaded once, when the provider is built (0.1 to 0.2 s, 90 MB); a folder
//! without a usable model fails then, naming the folder and the fetch script.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ajutant_core::model::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest, EmbeddingsResponse, ModelProvider,
    ProviderError, Usage,
};
use candle_core::{D, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use futures::future::BoxFuture;
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

/// The longest input the model sees, in tokens; longer ones are truncated (sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2).
pub const MAX_TOKENS: usize = 256;
/// The most inputs run through the model at once.
pub const BATCH_SIZE: usize = 32;
/// The files a model folder must hold.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];

/// Why a model folder cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot load the embedding model from {}: {cause}. Fetch it with \
     scripts/fetch-embedding-model, or point the deployment's model at a folder holding {}",
    folder.display(),
    MODEL_FILES.join(", ")
)]
pub struct LoadError {
    pub folder: PathBuf,
    pub cause: String,
}

/// An embedding model loaded from a folder, ready to run.
pub struct Local {
    /// The folder's name (`all-MiniLM-L6-v2`), reported as the model that answered; the path
    /// itself stays on the server.
    name: String,
    dimensions: usize,
    engine: Arc<Engine>,
    /// One permit: at most one batch of this provider runs at any time.
    turn: Arc<Semaphore>,
}

struct Engine {
    model: BertModel,
    tokenizer: Tokenizer,
    pad_id: u32,
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("model", &self.name)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl Local {
    /// Loads the model in `folder` (see [`MODEL_FILES`]). Blocking: reads about 90 MB.
    pub fn load(folder: &Path) -> Result<Self, LoadError> {
        let fail = |cause: String| LoadError {
            folder: folder.to_owned(),
            cause,
        };
        if !folder.is_dir() {
            return Err(fail("there is no such folder".to_owned()));
        }
        let read = |file: &str| {
            std::fs::read(folder.join(file)).map_err(|e| fail(format!("cannot read {file}: {e}")))
        };
        let [weights_file, config_file, tokenizer_file] = MODEL_FILES;
        let config: Config = serde_json::from_slice(&read(config_file)?)
            .map_err(|e| fail(format!("config.json is not a BERT configuration: {e}")))?;
        let weights =
            VarBuilder::from_buffered_safetensors(read(weights_file)?, DTYPE, &Device::Cpu)
                .map_err(|e| fail(format!("model.safetensors cannot be read: {e}")))?;
        let model = BertModel::load(weights, &config).map_err(|e| {
            fail(format!(
                "model.safetensors does not match config.json's BERT model: {e}"
            ))
        })?;
        let mut tokenizer = Tokenizer::from_bytes(read(tokenizer_file)?)
            .map_err(|e| fail(format!("tokenizer.json cannot be read: {e}")))?;
        // tokenizer.json carries its own settings (truncation at 128, padding to 128); ours
        // replace them. Padding happens per batch, in `Engine::embed`.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        let name = folder
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".to_owned());
        Ok(Self {
            name,
            dimensions: config.hidden_size,
            engine: Arc::new(Engine {
                model,
                tokenizer,
                pad_id: u32::try_from(config.pad_token_id).unwrap_or(0),
            }),
            turn: Arc::new(Semaphore::new(1)),
        })
    }

    /// The model's name: its folder's.
    pub fn model(&self) -> &str {
        &self.name
    }

    /// How many numbers each vector has (384 for all-MiniLM-L6-v2).
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The token ids the model sees for `text`: `[CLS]`, the WordPiece tokens truncated so that
    /// the whole is at most [`MAX_TOKENS`], `[SEP]`. Their count is what usage reports.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, ProviderError> {
        self.engine.tokenize(text)
    }

    async fn embed_all(&self, input: &[String]) -> Result<EmbeddingsResponse, ProviderError> {
        let engine = Arc::clone(&self.engine);
        let texts = input.to_vec();
        let tokens = blocking(move || {
            texts
                .iter()
                .map(|text| engine.tokenize(text))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let input_tokens = tokens.iter().map(Vec::len).sum::<usize>();

        // Shortest first, so each batch holds inputs of similar length and pads little.
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&index| tokens[index].len());
        let mut vectors = vec![Vec::new(); tokens.len()];
        for batch in order.chunks(BATCH_SIZE) {
            let ids: Vec<Vec<u32>> = batch.iter().map(|&i| tokens[i].clone()).collect();
            // The permit moves into the blocking task and is released when the batch is done,
            // even if this request is dropped meanwhile.
            let turn = Arc::clone(&self.turn)
                .acquire_owned()
                .await
                .map_err(failed)?;
            let engine = Arc::clone(&self.engine);
            let embedded = blocking(move || {
                let _turn = turn;
                engine.embed(&ids).map_err(failed)
            })
            .await?;
            for (&index, vector) in batch.iter().zip(embedded) {
                vectors[index] = vector;
            }
        }
        Ok(EmbeddingsResponse {
            model: self.name.clone(),
            vectors,
            usage: Usage {
                input_tokens: u32::try_from(input_tokens).unwrap_or(u32::MAX),
                output_tokens: 0,
            },
        })
    }
}

impl Engine {
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, ProviderError> {
        let encoding = self.tokenizer.encode_fast(text, true).map_err(|e| {
            ProviderError::Unsupported(format!("the input cannot be tokenized: {e}"))
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Unit-length mean-pooled embeddings of `batch` (token ids, each at most [`MAX_TOKENS`]).
    fn embed(&self, batch: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let width = batch.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * width);
        let mut mask = Vec::with_capacity(batch.len() * width);
        for sequence in batch {
            let padding = width - sequence.len();
            ids.extend_from_slice(sequence);
            ids.extend(std::iter::repeat_n(self.pad_id, padding));
            mask.extend(std::iter::repeat_n(1u32, sequence.len()));
            mask.extend(std::iter::repeat_n(0u32, padding));
        }
        let shape = (batch.len(), width);
        let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
        // (batch, width, dimensions); one segment, so every token type is 0.
        let hidden = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        // Mean over the real tokens only: padding must not pull the average.
        let mask = mask.to_dtype(DTYPE)?.unsqueeze(2)?; // (batch, width, 1)
        let counts = mask.sum(1)?.clamp(1f32, f32::MAX)?; // (batch, 1)
        let mean = hidden
            .broadcast_mul(&mask)?
            .sum(1)?
            .broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2()
    }
}

/// Runs CPU-bound work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ProviderError> + Send + 'static,
) -> Result<T, ProviderError> {
    tokio::task::spawn_blocking(work).await.map_err(failed)?
}

/// A failure of the model itself (or of the task running it): the provider's own 500.
fn failed(error: impl fmt::Display) -> ProviderError {
    ProviderError::Status {
        status: 500,
        message: format!("the local embedding model failed: {error}"),
        retry_after: None,
    }
}

fn embeddings_only() -> ProviderError {
    ProviderError::Unsupported(
        "this deployment runs a local embedding model and offers embeddings only, not chat"
            .to_owned(),
    )
}

impl ModelProvider for Local {
    fn system(&self) -> &'static str {
        "local"
    }

    fn chat<'a>(
        &'a self,
        _request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async { Err(embeddings_only()) })
    }

    fn chat_stream<'a>(
        &'a self,
        _request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>> {
        Box::pin(async { Err(embeddings_only()) })
    }

    fn embed<'a>(
        &'a self,
        request: &'a EmbeddingsRequest,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        Box::pin(async move {
            if let Some(dimensions) = request.dimensions
                && usize::try_from(dimensions).ok() != Some(self.dimensions)
            {
                return Err(ProviderError::Unsupported(format!(
                    "this model's embeddings have {} dimensions, not {dimensions}",
                    self.dimensions
                )));
            }
            self.embed_all(&request.input).await
        })
    }
}

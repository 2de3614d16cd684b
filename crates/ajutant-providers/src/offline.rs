//! The built-in offline provider: no network, no language model. Given grounding passages it
//! answers by quoting the sentences that best match the question, citing each passage; without
//! them it says plainly that no language model is configured. It streams like a real provider
//! (word by word) and reports token usage, so everything downstream works unchanged. Embeddings
//! are hashed bags of words: crude, deterministic, and enough to exercise vector retrieval.

use std::collections::BTreeSet;

use ajutant_core::model::{
    ChatEvent, ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest, EmbeddingsResponse,
    FinishReason, MessageRole, ModelProvider, Passage, ProviderError, Usage,
};
use futures::StreamExt;
use futures::future::BoxFuture;

/// Sentences quoted per answer, at most.
const MAX_QUOTES: usize = 3;
/// Dimensions of the offline embeddings (that of all-MiniLM-L6-v2, so indexes are sized alike).
pub const EMBEDDING_DIMENSIONS: usize = 384;

const NO_MODEL: &str = "No language model is configured for this assistant, so I can only quote \
     the organisation's documents. I found nothing in them that matches your question.";

#[derive(Debug, Clone)]
pub struct Offline {
    model: String,
}

impl Offline {
    pub fn new(model: &str) -> Self {
        let model = if model.trim().is_empty() {
            "ajutant-offline"
        } else {
            model
        };
        Self {
            model: model.to_owned(),
        }
    }

    /// The whole answer: quotes with citations, or the plain statement that there is no model.
    fn answer(&self, request: &ChatRequest) -> String {
        let question = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == MessageRole::User)
            .and_then(|m| m.content.as_ref())
            .map(|c| c.text())
            .unwrap_or_default();
        let quotes = best_sentences(&question, &request.grounding);
        if quotes.is_empty() {
            return NO_MODEL.to_owned();
        }
        let mut answer = String::from(
            "No language model is configured, so here is what the organisation's documents say:\n",
        );
        for (passage, sentence) in quotes {
            answer.push_str(&format!("\n> {sentence} [{}]\n", passage.citation));
        }
        let mut cited: Vec<&str> = Vec::new();
        for passage in &request.grounding {
            if answer.contains(&format!("[{}]", passage.citation))
                && !cited.contains(&passage.citation.as_str())
            {
                cited.push(&passage.citation);
                answer.push_str(&format!("\n[{}] {}", passage.citation, passage.title));
            }
        }
        answer
    }

    fn usage(request: &ChatRequest, answer: &str) -> Usage {
        let prompt: usize = request
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| count_tokens(&c.text()))
            .sum::<usize>()
            + request
                .grounding
                .iter()
                .map(|p| count_tokens(&p.text))
                .sum::<usize>();
        Usage {
            input_tokens: u32::try_from(prompt).unwrap_or(u32::MAX),
            output_tokens: u32::try_from(count_tokens(answer)).unwrap_or(u32::MAX),
        }
    }

    fn response_id() -> String {
        format!("offline-{}", uuid::Uuid::now_v7().simple())
    }
}

impl ModelProvider for Offline {
    fn system(&self) -> &'static str {
        "ajutant.offline"
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            refuse_tools(request)?;
            let answer = self.answer(request);
            Ok(ChatResponse {
                id: Self::response_id(),
                model: self.model.clone(),
                usage: Self::usage(request, &answer),
                content: Some(answer),
                tool_calls: Vec::new(),
                finish_reason: FinishReason::Stop,
            })
        })
    }

    fn chat_stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>> {
        Box::pin(async move {
            refuse_tools(request)?;
            let answer = self.answer(request);
            let usage = Self::usage(request, &answer);
            let mut events = vec![ChatEvent::Start {
                id: Self::response_id(),
                model: self.model.clone(),
            }];
            // Word by word, keeping the spacing, as a model's tokens arrive.
            let mut piece = String::new();
            for c in answer.chars() {
                piece.push(c);
                if c.is_whitespace() {
                    events.push(ChatEvent::Text(std::mem::take(&mut piece)));
                }
            }
            if !piece.is_empty() {
                events.push(ChatEvent::Text(piece));
            }
            events.push(ChatEvent::Finish(FinishReason::Stop));
            events.push(ChatEvent::Usage(usage));
            Ok(futures::stream::iter(events.into_iter().map(Ok)).boxed())
        })
    }

    fn embed<'a>(
        &'a self,
        request: &'a EmbeddingsRequest,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        Box::pin(async move {
            let dimensions = request
                .dimensions
                .map_or(EMBEDDING_DIMENSIONS, |d| d as usize);
            if dimensions == 0 || dimensions > 4096 {
                return Err(ProviderError::Unsupported(
                    "dimensions must be between 1 and 4096".to_owned(),
                ));
            }
            let tokens: usize = request.input.iter().map(|t| count_tokens(t)).sum();
            Ok(EmbeddingsResponse {
                model: self.model.clone(),
                vectors: request
                    .input
                    .iter()
                    .map(|text| embed(text, dimensions))
                    .collect(),
                usage: Usage {
                    input_tokens: u32::try_from(tokens).unwrap_or(u32::MAX),
                    output_tokens: 0,
                },
            })
        })
    }
}

/// Tools need a model that decides to call them; pretending would mislead the caller.
fn refuse_tools(request: &ChatRequest) -> Result<(), ProviderError> {
    if request.tools.is_empty() {
        Ok(())
    } else {
        Err(ProviderError::Unsupported(
            "the offline provider cannot call tools; configure a language model deployment"
                .to_owned(),
        ))
    }
}

/// Lower-case words of three letters or more: what "matches" means here.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// The sentences sharing the most words with the question, best first, with their passage.
fn best_sentences<'a>(question: &str, passages: &'a [Passage]) -> Vec<(&'a Passage, String)> {
    let wanted = words(question);
    if wanted.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(usize, usize, &Passage, String)> = Vec::new();
    for passage in passages {
        for (position, sentence) in sentences(&passage.text).into_iter().enumerate() {
            let overlap = words(&sentence).intersection(&wanted).count();
            if overlap > 0 {
                scored.push((overlap, position, passage, sentence));
            }
        }
    }
    // Most overlap first; ties keep document order.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(MAX_QUOTES)
        .map(|(_, _, passage, sentence)| (passage, sentence))
        .collect()
}

fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == '\n' {
            if !current.trim().is_empty() {
                out.push(current.trim().to_owned());
            }
            current.clear();
            continue;
        }
        current.push(c);
        if matches!(c, '.' | '!' | '?') {
            out.push(current.trim().to_owned());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Roughly what a BPE tokenizer counts: a token per four characters of a word, at least one.
pub fn count_tokens(text: &str) -> usize {
    text.split_whitespace()
        .map(|w| w.chars().count().div_ceil(4).max(1))
        .sum()
}

/// A unit vector: each word adds to one dimension chosen by its FNV-1a hash.
fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0f32; dimensions];
    for word in words(text) {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in word.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let slot = usize::try_from(hash % dimensions as u64).unwrap_or(0);
        vector[slot] += 1.0;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

#[cfg(test)]
mod tests {
    use super::*;
    use ajutant_core::model::ChatMessage;

    fn request(question: &str, grounding: Vec<Passage>) -> ChatRequest {
        ChatRequest {
            model: "ajutant-offline".to_owned(),
            messages: vec![ChatMessage::text(MessageRole::User, question)],
            grounding,
            ..ChatRequest::default()
        }
    }

    fn passage(citation: &str, title: &str, text: &str) -> Passage {
        Passage {
            citation: citation.to_owned(),
            title: title.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn it_quotes_and_cites_the_matching_sentences() {
        let grounding = vec![
            passage(
                "1",
                "Travel policy",
                "Staff book trains for trips under 500 km. Flights need approval.",
            ),
            passage(
                "2",
                "Leave policy",
                "Annual leave is 25 days. Carry-over ends in March.",
            ),
        ];
        let answer = Offline::new("").answer(&request("How many days of annual leave?", grounding));
        assert!(
            answer.contains("> Annual leave is 25 days. [2]"),
            "{answer}"
        );
        assert!(answer.contains("[2] Leave policy"), "{answer}");
        assert!(!answer.contains("[1] Travel policy"), "{answer}");
    }

    #[test]
    fn without_matching_passages_it_says_there_is_no_model() {
        let answer = Offline::new("").answer(&request("What is the weather?", Vec::new()));
        assert_eq!(answer, NO_MODEL);
    }

    #[test]
    fn embeddings_are_unit_vectors_closer_for_similar_texts() {
        let a = embed("annual leave days", 384);
        let b = embed("days of annual leave", 384);
        let c = embed("train travel booking", 384);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(&a, &a) - 1.0).abs() < 1e-5);
        assert!(dot(&a, &b) > dot(&a, &c));
    }

    #[test]
    fn tokens_are_counted_roughly_like_a_bpe() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("a cat sat"), 3);
        assert_eq!(count_tokens("extraordinarily"), 4);
    }
}

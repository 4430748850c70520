//! Document pipeline: fan-out and fan-in over chunks. `split` cuts the text into
//! [`CHUNKS`] parts, `chunk-0`..`chunk-3` analyse them in parallel, and `merge` receives
//! every chunk's result and writes a summary. Documents of a few hundred kilobytes flow
//! through (the store refuses payloads over 350 KB with a clear error, as DynamoDB would).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wf_engine::{EngineError, StepContext, StepError, Workflow, WorkflowBuilder, step};

/// The workflow id.
pub const ID: &str = "document-pipeline";

/// How many parallel chunks.
pub const CHUNKS: usize = 4;

/// The run input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// Document id.
    pub document_id: String,
    /// Its text.
    pub text: String,
}

/// `split`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chunks {
    /// Document id.
    pub document_id: String,
    /// The parts, in order.
    pub chunks: Vec<String>,
}

/// One chunk's analysis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkStats {
    /// Chunk number.
    pub index: usize,
    /// Words in it.
    pub words: usize,
    /// Characters in it.
    pub characters: usize,
    /// Its longest word.
    pub longest_word: String,
}

/// The run output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Document id.
    pub document_id: String,
    /// Chunks analysed.
    pub chunks: usize,
    /// Words in the document.
    pub words: usize,
    /// Characters in the document.
    pub characters: usize,
    /// Its longest word.
    pub longest_word: String,
}

async fn split(ctx: StepContext, document: Document) -> Result<Chunks, StepError> {
    if document.text.trim().is_empty() {
        return Err(StepError::terminal(
            "empty_document",
            "the document has no text",
        ));
    }
    let words: Vec<&str> = document.text.split_whitespace().collect();
    let per_chunk = words.len().div_ceil(CHUNKS).max(1);
    let mut chunks: Vec<String> = words.chunks(per_chunk).map(|c| c.join(" ")).collect();
    chunks.resize(CHUNKS, String::new());
    ctx.set_state("documentId", &document.document_id).await?;
    ctx.set_state("documentBytes", &document.text.len()).await?;
    Ok(Chunks {
        document_id: document.document_id,
        chunks,
    })
}

fn analyse(
    index: usize,
) -> impl Fn(StepContext, Chunks) -> std::future::Ready<Result<ChunkStats, StepError>>
+ Send
+ Sync
+ 'static {
    move |_ctx, input| {
        let text = input.chunks.get(index).cloned().unwrap_or_default();
        let longest_word = text
            .split_whitespace()
            .max_by_key(|w| w.chars().count())
            .unwrap_or_default()
            .to_owned();
        std::future::ready(Ok(ChunkStats {
            index,
            words: text.split_whitespace().count(),
            characters: text.chars().count(),
            longest_word,
        }))
    }
}

async fn merge(
    ctx: StepContext,
    parts: BTreeMap<String, ChunkStats>,
) -> Result<Summary, StepError> {
    let chunks = parts.len();
    let words = parts.values().map(|p| p.words).sum();
    let characters = parts.values().map(|p| p.characters).sum();
    let longest_word = parts
        .values()
        .map(|p| p.longest_word.clone())
        .max_by_key(|w| w.chars().count())
        .unwrap_or_default();
    let document_id: String = ctx.get_state("documentId").await?.unwrap_or_default();
    Ok(Summary {
        document_id,
        chunks,
        words,
        characters,
        longest_word,
    })
}

fn with_chunks(builder: WorkflowBuilder) -> WorkflowBuilder {
    builder.parallel((0..CHUNKS).map(|i| step(&format!("chunk-{i}"), analyse(i))))
}

/// The definition.
pub fn workflow() -> Result<Workflow, EngineError> {
    let builder = Workflow::builder(ID, "1")
        .description("split a document, analyse its chunks in parallel, merge the results")
        .then(step("split", split));
    with_chunks(builder).then(step("merge", merge)).build()
}

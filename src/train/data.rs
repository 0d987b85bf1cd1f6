//! Instruction pairs for fine-tuning, and their token form.
//!
//! Two sources: a gene's RefSeq summary (or any profile table's text, such as gene
//! cards) as the answer to the profile stage's own gene
//! prompt (so the fine-tuned model is taught exactly the question it will be asked), and
//! a GO biological-process definition as the answer to "what is the process X?". Each
//! pair is tokenized as generation sees it: the chat template with the assistant turn
//! opened, then the answer and the end-of-turn token; loss falls on the answer only.

use crate::error::{Error, Result};
use crate::genes::GeneCatalog;
use crate::llm::ChatTemplate;
use crate::profile::{ProfileRecord, PromptTemplate, RefseqSummaries, RefseqTextStyle};
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::path::Path;
use tokenizers::Tokenizer;

/// One prompt and the answer to teach.
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionPair {
    /// Split key (`gene:SYMBOL` or `go:GO-ID`).
    pub key: String,
    /// System line.
    pub system: String,
    /// User message.
    pub user: String,
    /// The answer.
    pub response: String,
}

/// One pair per gene with a RefSeq summary: the gene prompt filled with its symbol and
/// HGNC name, answered by the summary alone.
pub fn gene_pairs(
    summaries: &RefseqSummaries,
    catalog: &GeneCatalog,
    template: &PromptTemplate,
) -> Vec<InstructionPair> {
    let summaries = summaries.clone().with_style(RefseqTextStyle::SummaryOnly);
    answer_pairs(&summaries.all_profiles(catalog).records, catalog, template)
}

/// One pair per profile: the gene prompt filled with the profile's symbol and its HGNC
/// name, answered by the profile's text (a RefSeq summary, a gene card, ...).
pub fn answer_pairs(
    answers: &[ProfileRecord],
    catalog: &GeneCatalog,
    template: &PromptTemplate,
) -> Vec<InstructionPair> {
    answers
        .iter()
        .map(|record| {
            let name = catalog
                .resolve_quietly(&record.symbol)
                .map(|r| r.gene.name.clone())
                .unwrap_or_default();
            let values = BTreeMap::from([("symbol", record.symbol.clone()), ("name", name)]);
            let (system, user) = template.fill(&values);
            InstructionPair {
                key: super::split::gene_key(&record.symbol),
                system,
                user,
                response: record.text.clone(),
            }
        })
        .collect()
}

/// One pair per GO term of a `go_id`/`term`/`definition` TSV; `question` holds the
/// placeholder `{term}`.
pub fn go_pairs(path: &Path, system: &str, question: &str) -> Result<Vec<InstructionPair>> {
    if !question.contains("{term}") {
        return Err(Error::InvalidArgument(format!(
            "the GO question '{question}' has no {{term}} placeholder"
        )));
    }
    let lines = crate::fsutil::read_utf8_lines(path)?;
    let text = lines.join("\n");
    let (header, rows) = crate::io::tsv::split_header(&text, path)?;
    let (id_col, term_col, definition_col) = (
        header.column("go_id")?,
        header.column("term")?,
        header.column("definition")?,
    );
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        if row.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.split('\t').collect();
        let field = |c: usize| {
            fields.get(c).map(|s| s.trim()).ok_or_else(|| Error::Parse {
                path: path.to_path_buf(),
                line: i + 2,
                message: format!("{} fields, expected at least {}", fields.len(), c + 1),
            })
        };
        let (id, term, definition) = (field(id_col)?, field(term_col)?, field(definition_col)?);
        if definition.is_empty() || term.is_empty() {
            continue;
        }
        out.push(InstructionPair {
            key: super::split::go_key(id),
            system: system.to_string(),
            user: question.replace("{term}", term),
            response: definition.to_string(),
        });
    }
    Ok(out)
}

/// A tokenized pair: prompt then answer; the loss covers tokens from `response_start`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedExample {
    /// Prompt, answer and end-of-turn token ids.
    pub tokens: Vec<u32>,
    /// Index of the answer's first token.
    pub response_start: usize,
}

impl TokenizedExample {
    /// Number of answer tokens (the ones the loss sees).
    pub fn response_len(&self) -> usize {
        self.tokens.len() - self.response_start
    }
}

/// Turns pairs into token ids the way generation sees them.
pub struct ExampleEncoder<'a> {
    tokenizer: &'a Tokenizer,
    chat: &'a ChatTemplate,
    end_of_turn: u32,
    max_tokens: usize,
}

impl<'a> ExampleEncoder<'a> {
    /// An encoder; examples longer than `max_tokens` lose the end of their answer.
    pub fn new(
        tokenizer: &'a Tokenizer,
        chat: &'a ChatTemplate,
        end_of_turn: u32,
        max_tokens: usize,
    ) -> Self {
        ExampleEncoder {
            tokenizer,
            chat,
            end_of_turn,
            max_tokens,
        }
    }

    /// Tokenizes pairs in order.
    pub fn encode_all(&self, pairs: &[InstructionPair]) -> Result<Vec<TokenizedExample>> {
        pairs.iter().map(|p| self.encode(p)).collect()
    }

    /// Tokenizes one pair; an error when the prompt alone leaves no room for an answer.
    pub fn encode(&self, pair: &InstructionPair) -> Result<TokenizedExample> {
        let prompt = self.chat.render(&pair.system, &pair.user)?;
        let ids = |text: &str| -> Result<Vec<u32>> {
            Ok(self
                .tokenizer
                .encode(text, false)
                .map_err(|e| Error::Tokenizer(format!("{}: {e}", pair.key)))?
                .get_ids()
                .to_vec())
        };
        let mut tokens = ids(&prompt)?;
        let response_start = tokens.len();
        if response_start + 2 > self.max_tokens {
            return Err(Error::InvalidArgument(format!(
                "{}: the prompt alone is {response_start} tokens, the limit {}",
                pair.key, self.max_tokens
            )));
        }
        tokens.extend(ids(&pair.response)?);
        tokens.push(self.end_of_turn);
        tokens.truncate(self.max_tokens);
        Ok(TokenizedExample {
            tokens,
            response_start,
        })
    }
}

/// Next-token inputs, labels and response mask for a batch, padded on the right.
pub struct Batch {
    /// (batch, seq) input ids.
    pub input: Tensor,
    /// (batch, seq) the next token at each position.
    pub labels: Tensor,
    /// (batch, seq) 1 where the label is an answer token, else 0.
    pub mask: Tensor,
    /// Answer tokens in the batch.
    pub response_tokens: usize,
}

impl Batch {
    /// Collates examples; padding is masked out and, being after every real token, is
    /// never attended to by a real position under the causal mask.
    pub fn collate(examples: &[&TokenizedExample], device: &Device) -> Result<Self> {
        let width = examples
            .iter()
            .map(|e| e.tokens.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        if width == 0 {
            return Err(Error::InvalidArgument("an empty batch".into()));
        }
        let n = examples.len();
        let mut input = vec![0u32; n * width];
        let mut labels = vec![0u32; n * width];
        let mut mask = vec![0f32; n * width];
        let mut response_tokens = 0;
        for (row, example) in examples.iter().enumerate() {
            let t = &example.tokens;
            for i in 0..t.len().saturating_sub(1) {
                input[row * width + i] = t[i];
                labels[row * width + i] = t[i + 1];
                // Position i predicts token i + 1.
                if i + 1 >= example.response_start {
                    mask[row * width + i] = 1.0;
                    response_tokens += 1;
                }
            }
        }
        Ok(Batch {
            input: Tensor::from_vec(input, (n, width), device)?,
            labels: Tensor::from_vec(labels, (n, width), device)?,
            mask: Tensor::from_vec(mask, (n, width), device)?,
            response_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collate_masks_answer_labels_only() {
        let a = TokenizedExample {
            tokens: vec![1, 2, 3, 4, 5],
            response_start: 3,
        };
        let b = TokenizedExample {
            tokens: vec![7, 8, 9],
            response_start: 1,
        };
        let batch = Batch::collate(&[&a, &b], &Device::Cpu).unwrap();
        assert_eq!(
            batch.input.to_vec2::<u32>().unwrap(),
            vec![vec![1, 2, 3, 4], vec![7, 8, 0, 0]]
        );
        assert_eq!(
            batch.labels.to_vec2::<u32>().unwrap(),
            vec![vec![2, 3, 4, 5], vec![8, 9, 0, 0]]
        );
        assert_eq!(
            batch.mask.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, 0.0, 1.0, 1.0], vec![1.0, 1.0, 0.0, 0.0]]
        );
        assert_eq!(batch.response_tokens, a.response_len() + b.response_len());
    }
}

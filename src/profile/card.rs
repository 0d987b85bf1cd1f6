//! Gene cards: one text per gene from what bftembed ships (HGNC, RefSeq, GO), written
//! through a template (`profiles/card.toml`) that picks the fields and their order.
//!
//! A card is the GenePT "NCBI text block" made offline and for nearly every gene:
//! 12,627 protein-coding genes have a RefSeq summary, but almost all have GO
//! annotations. The `source` column lists the fields each card has
//! (`card:name+aliases+summary+go_process`), so later stages can tell which stores
//! carry the text a task's labels were taken from.

use super::gene_knowledge::{GeneKnowledge, Ontology};
use super::refseq::{ProfileBuild, RefseqSummaries, SkippedGene};
use super::table::ProfileRecord;
use crate::error::{Error, Result};
use crate::genes::{Gene, GeneCatalog, GeneList};
use std::collections::HashSet;
use std::path::Path;

/// The card template shipped in `profiles/card.toml`.
pub const DEFAULT_CARD_TEMPLATE: &str = include_str!("../../profiles/card.toml");

/// The profile-table metadata key that holds the card template's TOML text, so a
/// table (and every store built from it) records exactly how its cards were written.
pub const CARD_TEMPLATE_METADATA_KEY: &str = "bftembed.card_template";

/// The prefix of every card's `source` value.
pub const SOURCE_CARD_PREFIX: &str = "card:";

/// The HGNC locus type of protein-coding genes, the ones `--all` covers.
pub const PROTEIN_CODING: &str = "gene with protein product";

/// A field a card can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardField {
    /// HGNC approved name.
    Name,
    /// HGNC alias symbols.
    Aliases,
    /// HGNC previous symbols.
    PreviousSymbols,
    /// HGNC locus type.
    LocusType,
    /// HGNC gene groups.
    Groups,
    /// Chromosome (org.Hs.eg.db).
    Chromosome,
    /// RefSeq summary.
    Summary,
    /// GO molecular functions.
    GoFunction,
    /// GO biological processes.
    GoProcess,
    /// GO cellular components.
    GoComponent,
}

impl CardField {
    /// The name used in templates and in the `source` column.
    pub fn name(self) -> &'static str {
        match self {
            CardField::Name => "name",
            CardField::Aliases => "aliases",
            CardField::PreviousSymbols => "previous_symbols",
            CardField::LocusType => "locus_type",
            CardField::Groups => "groups",
            CardField::Chromosome => "chromosome",
            CardField::Summary => "summary",
            CardField::GoFunction => "go_function",
            CardField::GoProcess => "go_process",
            CardField::GoComponent => "go_component",
        }
    }

    /// What joins the items of a list field: GO term and group names hold commas
    /// ("DNA-binding transcription factor activity, RNA polymerase II-specific").
    fn list_separator(self) -> &'static str {
        match self {
            CardField::Aliases | CardField::PreviousSymbols => ", ",
            _ => "; ",
        }
    }

    /// Fields that say what a gene does or belongs to; a gene with none of them (only
    /// its names, locus type and chromosome) gets no card.
    fn is_knowledge(self) -> bool {
        matches!(
            self,
            CardField::Groups
                | CardField::Summary
                | CardField::GoFunction
                | CardField::GoProcess
                | CardField::GoComponent
        )
    }
}

/// One part of a card: a field and the sentence it is written in.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardPart {
    /// The field.
    pub field: CardField,
    /// The sentence, with `{value}`, `{symbol}` and `{name}` placeholders.
    pub text: String,
    /// At most this many items of a list field.
    #[serde(default)]
    pub max: Option<usize>,
}

/// A card template: which fields, in which order, in which words.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardTemplate {
    /// Recorded in the profile table's metadata.
    pub id: String,
    /// Put between parts.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// The parts, in order.
    pub parts: Vec<CardPart>,
    /// The TOML the template was read from.
    #[serde(skip)]
    pub toml: String,
}

fn default_separator() -> String {
    " ".into()
}

const CARD_PLACEHOLDERS: &[&str] = &["value", "symbol", "name"];

impl CardTemplate {
    /// The shipped template.
    pub fn default_card() -> Result<Self> {
        Self::parse(DEFAULT_CARD_TEMPLATE, Path::new("profiles/card.toml"))
    }

    /// Reads a template file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses a template; `origin` labels errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let mut template: CardTemplate =
            toml::from_str(text).map_err(|e| Error::bad_file(origin, e.to_string()))?;
        template.toml = text.to_string();
        if template.parts.is_empty() {
            return Err(Error::bad_file(origin, "a card template needs [[parts]]"));
        }
        let mut seen = HashSet::new();
        for part in &template.parts {
            let bad =
                |m: String| Error::bad_file(origin, format!("part {}: {m}", part.field.name()));
            if !seen.insert(part.field) {
                return Err(bad("is listed twice".into()));
            }
            if part.max == Some(0) {
                return Err(bad("max = 0 would write nothing; leave the part out".into()));
            }
            for name in super::template::placeholders(&part.text) {
                if !CARD_PLACEHOLDERS.contains(&name.as_str()) {
                    return Err(bad(format!(
                        "unknown placeholder {{{name}}} (allowed: {{value}}, {{symbol}}, {{name}})"
                    )));
                }
            }
        }
        Ok(template)
    }
}

/// Writes gene cards from the shipped knowledge through a template.
#[derive(Debug, Clone)]
pub struct GeneCards {
    template: CardTemplate,
    knowledge: GeneKnowledge,
    summaries: RefseqSummaries,
}

impl GeneCards {
    /// Cards from the shipped tables.
    pub fn embedded(template: CardTemplate) -> Result<Self> {
        Ok(GeneCards {
            template,
            knowledge: GeneKnowledge::embedded()?,
            summaries: RefseqSummaries::embedded()?,
        })
    }

    /// The template in use.
    pub fn template(&self) -> &CardTemplate {
        &self.template
    }

    /// The values of one field for a gene (empty when it has none).
    fn values(&self, gene: &Gene, field: CardField) -> Vec<String> {
        let owned = |v: &[String]| v.to_vec();
        let go = |o| {
            self.knowledge
                .go_terms(gene, o)
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        match field {
            CardField::Name => vec![gene.name.clone()],
            CardField::Aliases => owned(&gene.aliases),
            CardField::PreviousSymbols => owned(&gene.previous_symbols),
            CardField::LocusType => vec![gene.locus_type.clone()],
            CardField::Groups => owned(self.knowledge.groups(gene)),
            CardField::Chromosome => self
                .knowledge
                .chromosome(gene)
                .map(str::to_string)
                .into_iter()
                .collect(),
            CardField::Summary => self
                .summaries
                .summary_for(gene)
                .map(str::to_string)
                .into_iter()
                .collect(),
            CardField::GoFunction => go(Ontology::Function),
            CardField::GoProcess => go(Ontology::Process),
            CardField::GoComponent => go(Ontology::Component),
        }
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect()
    }

    /// The card of one gene, or why it has none.
    pub fn card(&self, gene: &Gene) -> std::result::Result<ProfileRecord, String> {
        let mut sentences = Vec::new();
        let mut fields = Vec::new();
        for part in &self.template.parts {
            let mut values = self.values(gene, part.field);
            if values.is_empty() {
                continue;
            }
            values.truncate(part.max.unwrap_or(usize::MAX));
            let sentence = part
                .text
                .replace("{symbol}", &gene.symbol)
                .replace("{name}", &gene.name)
                .replace("{value}", &values.join(part.field.list_separator()));
            sentences.push(sentence);
            fields.push(part.field);
        }
        if !fields.iter().any(|f| f.is_knowledge()) {
            return Err(format!(
                "{} has none of the template's knowledge fields (groups, summary, GO)",
                gene.symbol
            ));
        }
        let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
        Ok(ProfileRecord {
            symbol: gene.symbol.clone(),
            entrez_id: gene.entrez_id,
            source: format!("{SOURCE_CARD_PREFIX}{}", names.join("+")),
            text: sentences.join(&self.template.separator),
        })
    }

    /// Cards for every protein-coding HGNC gene that has any knowledge field.
    pub fn all_cards(&self, catalog: &GeneCatalog) -> ProfileBuild {
        let mut build = ProfileBuild {
            records: Vec::new(),
            skipped: Vec::new(),
        };
        for gene in catalog.genes().filter(|g| g.locus_type == PROTEIN_CODING) {
            match self.card(gene) {
                Ok(record) => build.records.push(record),
                Err(reason) => build.skipped.push(SkippedGene {
                    line: 0,
                    symbol: gene.symbol.clone(),
                    reason,
                }),
            }
        }
        build
    }

    /// Cards for the genes of a list, resolved through HGNC (any locus type).
    pub fn cards_for(&self, list: &GeneList, catalog: &GeneCatalog) -> ProfileBuild {
        let mut build = ProfileBuild {
            records: Vec::new(),
            skipped: Vec::new(),
        };
        let mut seen = HashSet::new();
        for entry in &list.entries {
            let skip = |reason: String| SkippedGene {
                line: entry.line,
                symbol: entry.symbol.clone(),
                reason,
            };
            let gene = match catalog.resolve(&entry.symbol) {
                Ok(resolved) => resolved.gene,
                Err(e) => {
                    build.skipped.push(skip(e.to_string()));
                    continue;
                }
            };
            if !seen.insert(gene.hgnc_id.clone()) {
                let reason = format!("same gene as an earlier line ({})", gene.symbol);
                build.skipped.push(skip(reason));
                continue;
            }
            match self.card(gene) {
                Ok(record) => build.records.push(record),
                Err(reason) => build.skipped.push(skip(reason)),
            }
        }
        build
    }
}

/// The card fields a profile's `source` value says it carries (none for other sources).
pub fn card_fields_of(source: &str) -> Vec<&str> {
    match source.strip_prefix(SOURCE_CARD_PREFIX) {
        Some(rest) => rest.split('+').filter(|f| !f.is_empty()).collect(),
        None => Vec::new(),
    }
}

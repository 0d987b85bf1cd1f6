//! How a task file's TOML becomes a [`TaskSpec`](super::TaskSpec)'s parts: `id`,
//! `title`, `label_sources` and `[probe]` by name, and any other table as the kind it names (generic
//! over the kinds' enum, so this module names no kind).
//!
//! serde's derive reads the kind (its `rename_all` names, `deny_unknown_fields` inside
//! each table) from a key and a value; this module only hands it that pair from inside
//! the file's map, so the TOML reader's errors keep their line numbers and an unknown
//! table is refused with the list of kinds serde knows.

use super::probe::ProbeSpec;
use crate::profile::CardField;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::marker::PhantomData;

/// A task file's contents, before paths are attached; `K` is the enum of kinds (an
/// externally tagged serde enum of one-table variants).
pub(super) struct TaskFile<K> {
    /// `id`.
    pub(super) id: String,
    /// `title`.
    pub(super) title: String,
    /// The one kind table.
    pub(super) kind: K,
    /// `[probe]`, or its defaults.
    pub(super) probe: ProbeSpec,
    /// `label_sources`: the profile-text parts the labels were taken from.
    pub(super) label_sources: Vec<CardField>,
}

impl<'de, K: Deserialize<'de>> Deserialize<'de> for TaskFile<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FileVisitor(PhantomData))
    }
}

struct FileVisitor<K>(PhantomData<K>);

impl<'de, K: Deserialize<'de>> Visitor<'de> for FileVisitor<K> {
    type Value = TaskFile<K>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a task file: id, title, one task table and an optional [probe]")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TaskFile<K>, A::Error> {
        let (mut id, mut title, mut probe) = (None, None, None);
        let mut label_sources = Vec::new();
        let mut kind: Option<(String, K)> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "id" => id = Some(map.next_value::<String>()?),
                "title" => title = Some(map.next_value::<String>()?),
                "probe" => probe = Some(map.next_value::<ProbeSpec>()?),
                "label_sources" => label_sources = map.next_value::<Vec<CardField>>()?,
                _ => {
                    let read = map.next_value_seed(KindSeed::<K>(&key, PhantomData))?;
                    if let Some((first, _)) = &kind {
                        return Err(de::Error::custom(format!(
                            "a task has exactly one kind, but both [{first}] and [{key}] are here"
                        )));
                    }
                    kind = Some((key, read));
                }
            }
        }
        let Some((_, kind)) = kind else {
            return Err(de::Error::custom(format!(
                "no task table: a task needs exactly one of {}",
                kind_tables::<K>()
            )));
        };
        Ok(TaskFile {
            id: id.ok_or_else(|| de::Error::missing_field("id"))?,
            title: title.ok_or_else(|| de::Error::missing_field("title"))?,
            kind,
            probe: probe.unwrap_or_default(),
            label_sources,
        })
    }
}

/// The kinds' table names, as serde's derive lists them when asked for a kind it does
/// not know (so the list is never written a second time).
fn kind_tables<'de, K: Deserialize<'de>>() -> String {
    let unknown: Result<K, de::value::Error> = K::deserialize(KeyedValue {
        key: "",
        value: ().into_deserializer(),
    });
    let message = unknown.err().map(|e| e.to_string()).unwrap_or_default();
    match message.split_once("expected one of ") {
        Some((_, names)) => names
            .split(", ")
            .map(|n| format!("[{}]", n.trim_matches('`')))
            .collect::<Vec<_>>()
            .join(", "),
        None => message,
    }
}

/// Reads the value of the table named `.0` as the kind of that name.
struct KindSeed<'a, K>(&'a str, PhantomData<K>);

impl<'de, K: Deserialize<'de>> DeserializeSeed<'de> for KindSeed<'_, K> {
    type Value = K;

    fn deserialize<D: Deserializer<'de>>(self, value: D) -> Result<K, D::Error> {
        K::deserialize(KeyedValue { key: self.0, value })
    }
}

/// An externally tagged enum as a key and its value: what serde's derived enum reader
/// asks for, made from a map entry.
struct KeyedValue<'a, D> {
    key: &'a str,
    value: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeyedValue<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        struct identifier ignored_any
    }
}

impl<'de, D: Deserializer<'de>> de::EnumAccess<'de> for KeyedValue<'_, D> {
    type Error = D::Error;
    type Variant = KindTable<D>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, KindTable<D>), D::Error> {
        let variant = seed.deserialize(self.key.into_deserializer())?;
        Ok((variant, KindTable(self.value)))
    }
}

/// The table of a kind: every kind holds one struct of settings.
struct KindTable<D>(D);

impl<'de, D: Deserializer<'de>> de::VariantAccess<'de> for KindTable<D> {
    type Error = D::Error;

    fn unit_variant(self) -> Result<(), D::Error> {
        Err(de::Error::custom("a task kind is a table of settings"))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, D::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _v: V) -> Result<V::Value, D::Error> {
        Err(de::Error::custom("a task kind is a table of settings"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, D::Error> {
        Err(de::Error::custom("a task kind is a table of settings"))
    }
}

//! `$body` values: gating on content type and encoding, decoding, and one selective parse per message
//! that extracts exactly the paths the conditions use (everything else is skipped, not built).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::message::MessageView;
use crate::path::Path;
use crate::value::Value;

/// Why the body of a message cannot be queried; every `$body` reference is then undefined.
/// The wording of the first four is IoT Hub's (its `RouteEvaluationError` log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// No `contentEncoding` system property.
    #[error("Content encoding is not specified in system properties.")]
    NoContentEncoding,
    /// `contentEncoding` is not utf-8, utf-16 or utf-32.
    #[error("Content encoding '{0}' is not supported.")]
    UnsupportedContentEncoding(String),
    /// No `contentType` system property.
    #[error("Content type is not specified in system properties.")]
    NoContentType,
    /// `contentType` is not `application/json`.
    #[error("Content type '{0}' is not supported.")]
    UnsupportedContentType(String),
    /// The decoded body is not JSON.
    #[error("The body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON, but not an object.
    #[error("The body is JSON but not an object; $body paths need an object at the top level.")]
    NotAnObject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16Le,
    Utf32Le,
}

/// Checks the system properties that gate body queries, in IoT Hub's order (encoding first).
fn gate<M: MessageView + ?Sized>(message: &M) -> Result<Encoding, BodyError> {
    let encoding = match message.content_encoding() {
        None => return Err(BodyError::NoContentEncoding),
        Some(e) if e.eq_ignore_ascii_case("utf-8") => Encoding::Utf8,
        Some(e) if e.eq_ignore_ascii_case("utf-16") => Encoding::Utf16Le,
        Some(e) if e.eq_ignore_ascii_case("utf-32") => Encoding::Utf32Le,
        Some(e) => return Err(BodyError::UnsupportedContentEncoding(e.to_owned())),
    };
    match message.content_type() {
        None => Err(BodyError::NoContentType),
        Some(t) if t.eq_ignore_ascii_case("application/json") => Ok(encoding),
        Some(t) => Err(BodyError::UnsupportedContentType(t.to_owned())),
    }
}

/// Decodes the body as .NET would: invalid sequences become U+FFFD. A leading byte-order mark is dropped.
fn decode(bytes: &[u8], encoding: Encoding) -> Cow<'_, str> {
    let text = match encoding {
        // Validation is fast; the lossy decoder only runs on invalid input.
        Encoding::Utf8 => {
            std::str::from_utf8(bytes).map_or_else(|_| String::from_utf8_lossy(bytes), Cow::Borrowed)
        }
        Encoding::Utf16Le => {
            let units = bytes.chunks(2).map(|c| {
                if let [a, b] = c {
                    u16::from_le_bytes([*a, *b])
                } else {
                    0xFFFD
                }
            });
            Cow::Owned(
                char::decode_utf16(units)
                    .map(|r| r.unwrap_or('\u{FFFD}'))
                    .collect(),
            )
        }
        Encoding::Utf32Le => Cow::Owned(
            bytes
                .chunks(4)
                .map(|c| match c {
                    [a, b, c, d] => {
                        char::from_u32(u32::from_le_bytes([*a, *b, *c, *d])).unwrap_or('\u{FFFD}')
                    }
                    _ => '\u{FFFD}',
                })
                .collect(),
        ),
    };
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.strip_prefix('\u{FEFF}').unwrap_or(s)),
        Cow::Owned(s) if s.starts_with('\u{FEFF}') => Cow::Owned(s['\u{FEFF}'.len_utf8()..].to_owned()),
        owned => owned,
    }
}

/// The union of body paths some conditions read, as a trie. Slots are numbered depth-first so a
/// subtree's slots are contiguous.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyPlan {
    nodes: Vec<TrieNode>,
    slot_count: usize,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    slot: Option<usize>,
    fields: Vec<(Box<str>, usize)>,
    indexes: Vec<(u32, usize)>,
    /// Slots of this node and everything below it.
    slots: std::ops::Range<usize>,
}

impl BodyPlan {
    /// Builds the plan; returns it and, for each path in `paths`, its slot.
    pub(crate) fn new(paths: &[Path]) -> (BodyPlan, Vec<u32>) {
        let mut plan = BodyPlan {
            nodes: vec![TrieNode::default()],
            slot_count: 0,
        };
        let leaves: Vec<usize> = paths.iter().map(|p| plan.insert(p)).collect();
        plan.number_slots(0);
        let slots = leaves
            .iter()
            .map(|&n| plan.nodes[n].slot.map_or(0, |s| s as u32))
            .collect();
        (plan, slots)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slot_count == 0
    }

    fn child(&mut self, node: usize, name: &str, index: Option<u32>) -> usize {
        let existing = match index {
            None => self.nodes[node]
                .fields
                .iter()
                .find(|(n, _)| &**n == name)
                .map(|&(_, c)| c),
            Some(i) => self.nodes[node]
                .indexes
                .iter()
                .find(|&&(n, _)| n == i)
                .map(|&(_, c)| c),
        };
        existing.unwrap_or_else(|| {
            let id = self.nodes.len();
            self.nodes.push(TrieNode::default());
            match index {
                None => self.nodes[node].fields.push((name.into(), id)),
                Some(i) => self.nodes[node].indexes.push((i, id)),
            }
            id
        })
    }

    fn insert(&mut self, path: &Path) -> usize {
        let mut node = 0;
        for segment in &path.0 {
            node = self.child(node, &segment.name, None);
            if let Some(index) = segment.index {
                node = self.child(node, "", Some(index));
            }
        }
        // Mark as a leaf; the real slot number is assigned by `number_slots`.
        self.nodes[node].slot = Some(usize::MAX);
        node
    }

    fn number_slots(&mut self, node: usize) {
        let start = self.slot_count;
        if self.nodes[node].slot.is_some() {
            self.nodes[node].slot = Some(self.slot_count);
            self.slot_count += 1;
        }
        let children: Vec<usize> = self.nodes[node]
            .fields
            .iter()
            .map(|&(_, c)| c)
            .chain(self.nodes[node].indexes.iter().map(|&(_, c)| c))
            .collect();
        for child in children {
            self.number_slots(child);
        }
        self.nodes[node].slots = start..self.slot_count;
    }

    /// Parses `text` once, filling one value per slot. Paths not present are `Missing`.
    fn extract<'a>(&self, text: &'a str) -> Result<Vec<Value<'a>>, BodyError> {
        let mut out = vec![Value::Missing; self.slot_count];
        if !text.trim_start().starts_with('{') {
            return Err(match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => BodyError::NotAnObject,
                Err(e) => BodyError::InvalidJson(e.to_string()),
            });
        }
        let mut de = serde_json::Deserializer::from_str(text);
        NodeSeed {
            plan: self,
            node: 0,
            out: &mut out,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| BodyError::InvalidJson(e.to_string()))?;
        Ok(out)
    }
}

/// Reads the value at one trie node, recording it if the node is a slot and descending if needed.
struct NodeSeed<'p, 'o, 'a> {
    plan: &'p BodyPlan,
    node: usize,
    out: &'o mut Vec<Value<'a>>,
}

impl NodeSeed<'_, '_, '_> {
    fn trie(&self) -> &TrieNode {
        &self.plan.nodes[self.node]
    }
}

impl<'a> NodeSeed<'_, '_, 'a> {
    fn set(&mut self, value: Value<'a>) {
        if let Some(slot) = self.trie().slot {
            self.out[slot] = value;
        }
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for NodeSeed<'_, '_, 'a> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for NodeSeed<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(mut self, v: bool) -> Result<(), E> {
        self.set(Value::Bool(v));
        Ok(())
    }

    fn visit_i64<E>(mut self, v: i64) -> Result<(), E> {
        self.set(Value::Number(v as f64));
        Ok(())
    }

    fn visit_u64<E>(mut self, v: u64) -> Result<(), E> {
        self.set(Value::Number(v as f64));
        Ok(())
    }

    fn visit_f64<E>(mut self, v: f64) -> Result<(), E> {
        self.set(Value::number(v));
        Ok(())
    }

    fn visit_borrowed_str<E>(mut self, v: &'de str) -> Result<(), E> {
        self.set(Value::String(Cow::Borrowed(v)));
        Ok(())
    }

    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        self.set(Value::String(Cow::Owned(v.to_owned())));
        Ok(())
    }

    fn visit_unit<E>(mut self) -> Result<(), E> {
        self.set(Value::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.set(Value::Object);
        while let Some(child) = map.next_key_seed(KeySeed { node: self.trie() })? {
            match child {
                Some(child) => {
                    // A repeated key replaces what an earlier one set, as in IoT Hub.
                    let range = self.plan.nodes[child].slots.clone();
                    self.out[range].fill(Value::Missing);
                    map.next_value_seed(NodeSeed {
                        plan: self.plan,
                        node: child,
                        out: &mut *self.out,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.set(Value::Array);
        let mut index = 0u32;
        loop {
            let child = self
                .trie()
                .indexes
                .iter()
                .find(|&&(i, _)| i == index)
                .map(|&(_, c)| c);
            let more = match child {
                Some(child) => seq.next_element_seed(NodeSeed {
                    plan: self.plan,
                    node: child,
                    out: &mut *self.out,
                })?,
                None => seq.next_element::<IgnoredAny>()?.map(|_| ()),
            };
            if more.is_none() {
                return Ok(());
            }
            index = index.saturating_add(1);
        }
    }
}

/// Reads an object key and says which child of the trie node it selects, without allocating.
struct KeySeed<'t> {
    node: &'t TrieNode,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self
            .node
            .fields
            .iter()
            .find(|(name, _)| &**name == key)
            .map(|&(_, c)| c))
    }
}

/// The body of one message, parsed at most once, on first use.
pub(crate) struct LazyBody<'p, 'a, M: ?Sized> {
    plan: &'p BodyPlan,
    message: &'a M,
    decoded: &'a OnceCell<Cow<'a, str>>,
    slots: OnceCell<Result<Vec<Value<'a>>, BodyError>>,
}

impl<'p, 'a, M: MessageView + ?Sized> LazyBody<'p, 'a, M> {
    pub(crate) fn new(plan: &'p BodyPlan, message: &'a M, decoded: &'a OnceCell<Cow<'a, str>>) -> Self {
        LazyBody {
            plan,
            message,
            decoded,
            slots: OnceCell::new(),
        }
    }

    pub(crate) fn slots(&self) -> Result<&[Value<'a>], &BodyError> {
        self.slots
            .get_or_init(|| {
                let encoding = gate(self.message)?;
                let text = self.decoded.get_or_init(|| decode(self.message.body(), encoding));
                let text: &'a str = match text {
                    Cow::Borrowed(s) => s,
                    Cow::Owned(s) => s.as_str(),
                };
                self.plan.extract(text)
            })
            .as_deref()
    }

    /// The body error, if the body was needed and could not be queried.
    pub(crate) fn error(&self) -> Option<&BodyError> {
        self.slots.get().and_then(|r| r.as_ref().err())
    }
}

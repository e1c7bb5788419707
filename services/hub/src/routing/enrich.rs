//! Enrichments: application properties stamped per endpoint at delivery (spec §9). Static values
//! and `$iothubname` are resolved when the routing is built; `$twin...` values are looked up in the
//! twin per message, and stamp their own text when the twin or the path is missing, or when the value
//! is not a primitive (IoT Hub: "only primitive types are supported for enrichments").

use std::borrow::Cow;

use iothub_protocol::{Message, MessageSource};
use iothub_query::names_equal;
use serde::Serialize;

use super::{EndpointId, Routing};

/// One enrichment, resolved.
#[derive(Debug, Clone)]
pub struct Enrichment {
    pub(crate) key: String,
    /// The value as configured (`$iothubname`, `$twin.tags.location`, or static text).
    pub(crate) text: String,
    pub(crate) value: EnrichmentValue,
    pub(crate) endpoints: Vec<EndpointId>,
}

#[derive(Debug, Clone)]
pub(crate) enum EnrichmentValue {
    /// Static text, or the hub name for `$iothubname`.
    Fixed(String),
    /// A path in the twin document: `["tags", "location"]`.
    Twin(Vec<String>),
}

impl Enrichment {
    /// The application property name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The endpoints it applies to.
    pub fn endpoints(&self) -> &[EndpointId] {
        &self.endpoints
    }

    /// The value for a message whose device twin is `twin`.
    pub fn resolve<'a>(&'a self, twin: Option<&'a serde_json::Value>) -> Cow<'a, str> {
        match &self.value {
            EnrichmentValue::Fixed(value) => Cow::Borrowed(value),
            EnrichmentValue::Twin(path) => match twin.and_then(|twin| lookup(twin, path)) {
                Some(serde_json::Value::String(s)) => Cow::Borrowed(s),
                Some(serde_json::Value::Number(n)) => Cow::Owned(n.to_string()),
                Some(serde_json::Value::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
                _ => Cow::Borrowed(&self.text),
            },
        }
    }
}

/// Twin names are case-insensitive (spec §8): an exact match first, else one ignoring case.
fn lookup<'a>(twin: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    let mut current = twin;
    for segment in path {
        let map = current.as_object()?;
        current = match map.get(segment) {
            Some(value) => value,
            None => map.iter().find(|(name, _)| names_equal(name, segment))?.1,
        };
    }
    Some(current)
}

/// What a `value` is, or why it is not valid.
pub(crate) fn parse_value(value: &str, hub_name: &str) -> Result<EnrichmentValue, String> {
    const TWIN_PREFIXES: [&str; 3] = ["tags.", "properties.desired.", "properties.reported."];
    if value.is_empty() {
        return Err("value must not be empty".to_owned());
    }
    if !value.starts_with('$') {
        return Ok(EnrichmentValue::Fixed(value.to_owned()));
    }
    if value == "$iothubname" {
        return Ok(EnrichmentValue::Fixed(hub_name.to_owned()));
    }
    let unsupported = || {
        format!(
            "value {value:?} is not supported: a value starting with '$' must be $iothubname, \
             $twin.tags.<path>, $twin.properties.desired.<path> or $twin.properties.reported.<path>"
        )
    };
    let Some(rest) = value.strip_prefix("$twin.") else {
        return Err(unsupported());
    };
    let Some(prefix) = TWIN_PREFIXES.iter().find(|p| rest.starts_with(*p)) else {
        return Err(unsupported());
    };
    let path: Vec<String> = rest.split('.').map(str::to_owned).collect();
    let prefix_segments = prefix.matches('.').count();
    if path.len() <= prefix_segments || path.iter().any(String::is_empty) {
        return Err(unsupported());
    }
    Ok(EnrichmentValue::Twin(path))
}

/// Whether `key` is a valid enrichment key: letters, digits, `-`, `_`, `.`.
pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One enrichment as stamped: `(key, value)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stamp<'a> {
    /// Application property name.
    pub key: &'a str,
    /// Its value.
    pub value: Cow<'a, str>,
}

/// The enrichments of one endpoint for one message; see [`Routing::enrichments`].
#[derive(Debug, Clone)]
pub struct Enrichments<'a> {
    routing: &'a Routing,
    indexes: std::slice::Iter<'a, usize>,
    twin: Option<&'a serde_json::Value>,
}

impl<'a> Iterator for Enrichments<'a> {
    type Item = Stamp<'a>;

    fn next(&mut self) -> Option<Stamp<'a>> {
        let enrichment = self.routing.enrichments.get(*self.indexes.next()?)?;
        Some(Stamp {
            key: &enrichment.key,
            value: enrichment.resolve(self.twin),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.indexes.size_hint()
    }
}

impl Routing {
    /// The `(key, value)` pairs to stamp as application properties on a message of `source` sent to
    /// `endpoint`, in configuration order. Digital twin change events are never enriched (spec §9).
    /// Allocates only for twin values that are numbers.
    pub fn enrichments<'a>(
        &'a self,
        endpoint: EndpointId,
        source: MessageSource,
        twin: Option<&'a serde_json::Value>,
    ) -> Enrichments<'a> {
        let indexes: &[usize] = match self.endpoints.get(endpoint.0) {
            Some(e) if source != MessageSource::DigitalTwinChangeEvents => &e.enrichments,
            _ => &[],
        };
        Enrichments {
            routing: self,
            indexes: indexes.iter(),
            twin,
        }
    }

    /// Stamps the enrichments of `endpoint` on `message` (its own source), replacing an application
    /// property of the same name. Use on the copy that goes to that endpoint.
    pub fn enrich(&self, endpoint: EndpointId, twin: Option<&serde_json::Value>, message: &mut Message) {
        let source = message.system.message_source;
        for stamp in self.enrichments(endpoint, source, twin) {
            message.set_app_property(stamp.key, Some(stamp.value.into_owned()));
        }
    }
}

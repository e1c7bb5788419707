//! What a condition reads from a message, as a trait the hub's own message type implements.

pub use crate::text::names_equal;

/// The parts of a message a condition can read. Property names are matched case-insensitively with
/// [`names_equal`]; values are compared case-sensitively.
pub trait MessageView {
    /// The application property `name`: `None` when absent, `Some(None)` when present with a null value.
    fn app_property(&self, name: &str) -> Option<Option<&str>>;

    /// The system property with query name `name` (`contentType`, `connectionDeviceId`, ...).
    fn system_property(&self, name: &str) -> Option<Option<&str>>;

    /// The body bytes, as sent.
    fn body(&self) -> &[u8];

    /// The `contentType` system property, which gates `$body` queries. Override it when the message
    /// keeps it in a field: it is read for every message whose body a condition queries.
    fn content_type(&self) -> Option<&str> {
        self.system_property("contentType").flatten()
    }

    /// The `contentEncoding` system property, which gates `$body` queries. Override as `content_type`.
    fn content_encoding(&self) -> Option<&str> {
        self.system_property("contentEncoding").flatten()
    }

    /// The device (or module) twin, for `$twin.` paths: `{"tags": ..., "properties": {"desired": ...,
    /// "reported": ...}}`. `None` makes every `$twin` path undefined.
    fn twin(&self) -> Option<&serde_json::Value> {
        None
    }
}

/// Looks `name` up in a list of properties, case-insensitively. The first match wins.
pub(crate) fn find<'a>(properties: &'a [(String, Option<String>)], name: &str) -> Option<Option<&'a str>> {
    properties
        .iter()
        .find(|(key, _)| names_equal(key, name))
        .map(|(_, value)| value.as_deref())
}

/// A self-contained message, for tests, tools and the route tester.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimpleMessage {
    /// Application properties, in order; a `None` value is present but null.
    pub app_properties: Vec<(String, Option<String>)>,
    /// System properties by query name.
    pub system_properties: Vec<(String, Option<String>)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Twin document, if any.
    pub twin: Option<serde_json::Value>,
}

impl SimpleMessage {
    /// A message with this body and no properties.
    pub fn new(body: Vec<u8>) -> Self {
        SimpleMessage {
            body,
            ..SimpleMessage::default()
        }
    }

    /// Adds an application property (`None`: present with a null value).
    pub fn with_app_property(mut self, name: &str, value: Option<&str>) -> Self {
        self.app_properties
            .push((name.to_owned(), value.map(str::to_owned)));
        self
    }

    /// Adds a system property, by query name.
    pub fn with_system_property(mut self, name: &str, value: Option<&str>) -> Self {
        self.system_properties
            .push((name.to_owned(), value.map(str::to_owned)));
        self
    }

    /// Sets the twin document.
    pub fn with_twin(mut self, twin: serde_json::Value) -> Self {
        self.twin = Some(twin);
        self
    }
}

impl MessageView for SimpleMessage {
    fn app_property(&self, name: &str) -> Option<Option<&str>> {
        find(&self.app_properties, name)
    }

    fn system_property(&self, name: &str) -> Option<Option<&str>> {
        find(&self.system_properties, name)
    }

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn twin(&self) -> Option<&serde_json::Value> {
        self.twin.as_ref()
    }
}

//! The per-message decision: which endpoints get a message (spec §10). Runs for every message, so
//! it allocates nothing once a [`Decision`] has been used a few times: the caller keeps one per
//! worker and passes it back in.

use iothub_protocol::{Message, MessageSource};
use iothub_query::{BodyError, MessageView, Outcome};

use super::{EndpointId, RouteId, Routing, source_slot};

/// Where one message goes. Reuse it: [`Routing::route`] clears it first.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub(crate) source: MessageSource,
    pub(crate) targets: Vec<EndpointId>,
    pub(crate) matched: Vec<RouteId>,
    pub(crate) fallback: bool,
    pub(crate) default_events: bool,
    pub(crate) body_error: Option<BodyError>,
    /// One outcome per condition of the source's table (routes, then the fallback).
    pub(crate) outcomes: Vec<Outcome>,
}

impl Decision {
    /// An empty decision, to be filled by [`Routing::route`].
    pub fn new() -> Decision {
        Decision::default()
    }

    /// The source of the message decided on.
    pub fn source(&self) -> MessageSource {
        self.source
    }

    /// Endpoints that get the message, each once, in the order of the first route that chose it.
    pub fn targets(&self) -> &[EndpointId] {
        &self.targets
    }

    /// Routes whose condition was `true`, in configuration order (for metrics and `hub route test`).
    pub fn matched_routes(&self) -> &[RouteId] {
        &self.matched
    }

    /// Whether the message went to the fallback route's endpoint.
    pub fn fallback_fired(&self) -> bool {
        self.fallback
    }

    /// Whether the message went to `events` because no route is configured at all.
    pub fn default_events(&self) -> bool {
        self.default_events
    }

    /// Telemetry that reaches no endpoint: dropped, and counted as orphaned. (An event of another
    /// source that no route takes is simply not emitted anywhere; it is not orphaned.)
    pub fn orphaned(&self) -> bool {
        self.targets.is_empty() && self.source == MessageSource::Telemetry
    }

    /// Why `$body` was undefined for some condition, if it was (IoT Hub logs it as a route
    /// evaluation error).
    pub fn body_error(&self) -> Option<&BodyError> {
        self.body_error.as_ref()
    }

    fn clear(&mut self, source: MessageSource) {
        self.source = source;
        self.targets.clear();
        self.matched.clear();
        self.fallback = false;
        self.default_events = false;
        self.body_error = None;
        self.outcomes.clear();
    }

    fn target(&mut self, endpoint: EndpointId) {
        if !self.targets.contains(&endpoint) {
            self.targets.push(endpoint);
        }
    }
}

/// A message seen with a twin supplied by the caller (the hub's `Message` carries none).
struct WithTwin<'a, M: ?Sized> {
    message: &'a M,
    twin: Option<&'a serde_json::Value>,
}

impl<M: MessageView + ?Sized> MessageView for WithTwin<'_, M> {
    fn app_property(&self, name: &str) -> Option<Option<&str>> {
        self.message.app_property(name)
    }

    fn system_property(&self, name: &str) -> Option<Option<&str>> {
        self.message.system_property(name)
    }

    fn body(&self) -> &[u8] {
        self.message.body()
    }

    fn content_type(&self) -> Option<&str> {
        self.message.content_type()
    }

    fn content_encoding(&self) -> Option<&str> {
        self.message.content_encoding()
    }

    fn twin(&self) -> Option<&serde_json::Value> {
        self.twin.or_else(|| self.message.twin())
    }
}

impl Routing {
    /// Decides where `message`, of `source`, goes; `twin` is its device (or module) twin when the
    /// caller has it, for `$twin` conditions. The result is in `decision`, which is cleared first.
    pub fn route<M: MessageView + ?Sized>(
        &self,
        message: &M,
        source: MessageSource,
        twin: Option<&serde_json::Value>,
        decision: &mut Decision,
    ) {
        decision.clear(source);
        let telemetry = source == MessageSource::Telemetry;
        if self.routes.is_empty() {
            if telemetry {
                decision.targets.push(EndpointId::EVENTS);
                decision.default_events = true;
            }
            return;
        }
        let table = &self.tables[source_slot(source)];
        if table.conditions.is_empty() {
            return;
        }
        let view = WithTwin { message, twin };
        decision.body_error = table.conditions.evaluate_into(&view, &mut decision.outcomes);
        for (i, (route, endpoint)) in table.routes.iter().zip(&table.endpoints).enumerate() {
            if decision.outcomes.get(i) == Some(&Outcome::True) {
                decision.matched.push(*route);
                decision.target(*endpoint);
            }
        }
        if table.has_fallback
            && decision.matched.is_empty()
            && decision.outcomes.last() == Some(&Outcome::True)
            && let Some(fallback) = &self.fallback
        {
            decision.fallback = true;
            decision.target(fallback.endpoint);
        }
    }

    /// [`Routing::route`] for the hub's own message, whose source it carries.
    pub fn route_message(
        &self,
        message: &Message,
        twin: Option<&serde_json::Value>,
        decision: &mut Decision,
    ) {
        self.route(message, message.system.message_source, twin, decision);
    }
}

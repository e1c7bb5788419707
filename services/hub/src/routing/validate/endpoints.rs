//! Endpoint checks: names, connection strings (overrides, masked keys, identity, backend kind),
//! queue names and storage settings.

use std::time::Duration;

use crate::endpoints::storage::connection::StorageConnection;
use secrecy::{ExposeSecret as _, SecretString};

use super::super::config::{QueueEndpointConfig, RoutingConfig, StorageEndpointConfig};
use super::super::endpoint::{
    DEFAULT_FILE_NAME_FORMAT, Endpoint, EndpointId, EndpointKind, QueueBackend, StorageBackend,
    StorageEncoding, StorageSettings, check_file_name_format, classify, is_masked, key_value,
};
use super::super::limits;
use super::{
    Builder, Category, NAME_RULE, OVERRIDE_HINT, QUEUE_STRINGS, RESERVED_ENDPOINT_NAMES, STORAGE_STRINGS,
    Target, valid_name,
};

impl Builder<'_> {
    pub(super) fn endpoints_section(&mut self, config: &RoutingConfig) {
        let e = &config.endpoints;
        let count = e.service_bus_queues.len()
            + e.storage_containers.len()
            + e.service_bus_topics.len()
            + e.event_hubs.len()
            + e.cosmos_db_sql_containers.len();
        if count > limits::MAX_CUSTOM_ENDPOINTS {
            self.problem(
                "endpoints",
                format!(
                    "{count} custom endpoints; IoT Hub allows at most {}",
                    limits::MAX_CUSTOM_ENDPOINTS
                ),
            );
        }
        for (i, queue) in e.service_bus_queues.iter().enumerate() {
            let location = format!("endpoints.serviceBusQueues[{i}] {:?}", queue.name);
            self.queue_endpoint(&location, queue);
        }
        for (i, storage) in e.storage_containers.iter().enumerate() {
            let location = format!("endpoints.storageContainers[{i}] {:?}", storage.name);
            self.storage_endpoint(&location, storage);
        }
        let unsupported = [
            (
                "serviceBusTopics",
                "Service Bus topic",
                e.service_bus_topics.iter().map(|x| &x.name).collect::<Vec<_>>(),
            ),
            (
                "eventHubs",
                "Event Hubs",
                e.event_hubs.iter().map(|x| &x.name).collect(),
            ),
            (
                "cosmosDbSqlContainers",
                "Cosmos DB",
                e.cosmos_db_sql_containers.iter().map(|x| &x.name).collect(),
            ),
        ];
        for (list, what, names) in unsupported {
            for (i, name) in names.into_iter().enumerate() {
                let location = format!("endpoints.{list}[{i}] {name:?}");
                self.problem(
                    &location,
                    format!(
                        "{what} endpoints are not supported by the local hub; use serviceBusQueues \
                         or storageContainers"
                    ),
                );
                self.endpoint_name(&location, name, Target::Unsupported);
            }
        }
    }

    /// Checks the name of an endpoint and records it.
    fn endpoint_name(&mut self, location: &str, name: &str, target: Target) {
        if RESERVED_ENDPOINT_NAMES
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(name))
        {
            self.problem(
                location,
                "name is reserved (events, fileNotifications and $default name built-in endpoints)",
            );
        } else if !valid_name(name) {
            self.problem(location, NAME_RULE);
        }
        if let Some((_, first, _)) = self.names.iter().find(|(n, _, _)| n == name) {
            let message = format!("name is already used by {first}");
            self.problem(location, message);
            return;
        }
        self.names.push((name.to_owned(), location.to_owned(), target));
    }

    fn next_id(&self) -> EndpointId {
        EndpointId(self.endpoints.len())
    }

    fn queue_endpoint(&mut self, location: &str, config: &QueueEndpointConfig) {
        self.endpoint_name(location, &config.name, Target::Endpoint(self.next_id()));
        let connection = self.connection(
            location,
            &config.name,
            config.connection_string.as_ref(),
            config.authentication_type.as_deref(),
            Category::Queue,
        );
        let (kind, connection_string, overridden) = match connection {
            Some((kind, cs, overridden)) => (kind, Some(cs), overridden),
            None => (EndpointKind::Queue(QueueBackend::ServiceBus), None, false),
        };
        let field = config.entity_path.as_deref().filter(|p| !p.is_empty());
        let from_string = connection_string
            .as_ref()
            .and_then(|cs| key_value(cs.expose_secret(), "EntityPath"))
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let queue_name = match (kind, from_string, field) {
            (_, Some(name), _) => Some(name),
            (_, None, Some(name)) => Some(name.to_owned()),
            (EndpointKind::Queue(QueueBackend::ServiceBus), None, None) => {
                if connection_string.is_some() && !self.options.skip_connection_checks {
                    self.problem(
                        location,
                        "no queue name: the Service Bus connection string has no EntityPath and the \
                         endpoint no entityPath",
                    );
                }
                None
            }
            (_, None, None) => Some(config.name.clone()),
        };
        self.endpoints.push(Endpoint {
            name: config.name.clone(),
            kind,
            connection_string,
            overridden,
            queue_name,
            storage: None,
            enrichments: Vec::new(),
        });
    }

    fn storage_endpoint(&mut self, location: &str, config: &StorageEndpointConfig) {
        self.endpoint_name(location, &config.name, Target::Endpoint(self.next_id()));
        let connection = self.connection(
            location,
            &config.name,
            config.connection_string.as_ref(),
            config.authentication_type.as_deref(),
            Category::Storage,
        );
        let (kind, connection_string, overridden) = match connection {
            Some((kind, cs, overridden)) => (kind, Some(cs), overridden),
            None => (EndpointKind::Storage(StorageBackend::AzureBlob), None, false),
        };
        let storage = self.storage_settings(location, config);
        self.endpoints.push(Endpoint {
            name: config.name.clone(),
            kind,
            connection_string,
            overridden,
            queue_name: None,
            storage,
            enrichments: Vec::new(),
        });
    }

    fn storage_settings(
        &mut self,
        location: &str,
        config: &StorageEndpointConfig,
    ) -> Option<StorageSettings> {
        let before = self.problems.len();
        let container_name = config.container_name.clone().unwrap_or_default();
        if container_name.is_empty() {
            self.problem(location, "containerName is required");
        }
        let file_name_format = config
            .file_name_format
            .clone()
            .unwrap_or_else(|| DEFAULT_FILE_NAME_FORMAT.to_owned());
        if let Some(why) = check_file_name_format(&file_name_format) {
            self.problem(
                location,
                format!(
                    "fileNameFormat {file_name_format:?} {why}; it needs each of {{iothub}} \
                     {{partition}} {{YYYY}} {{MM}} {{DD}} {{HH}} {{mm}} exactly once"
                ),
            );
        }
        let short = self.options.allow_short_batches;
        let (frequency_range, chunk_range) = if short {
            (limits::SHORT_BATCH_FREQUENCY_SECS, limits::SHORT_CHUNK_SIZE_BYTES)
        } else {
            (limits::BATCH_FREQUENCY_SECS, limits::CHUNK_SIZE_BYTES)
        };
        let hint = if short {
            ""
        } else {
            " (the development override allow_short_batches permits shorter batches)"
        };
        let frequency = config
            .batch_frequency_in_seconds
            .unwrap_or(limits::DEFAULT_BATCH_FREQUENCY_SECS);
        if !frequency_range.contains(&frequency) {
            self.problem(
                location,
                format!(
                    "batchFrequencyInSeconds must be {} to {}, not {frequency}{hint}",
                    frequency_range.start(),
                    frequency_range.end()
                ),
            );
        }
        let chunk = config
            .max_chunk_size_in_bytes
            .unwrap_or(limits::DEFAULT_CHUNK_SIZE_BYTES);
        if !chunk_range.contains(&chunk) {
            self.problem(
                location,
                format!(
                    "maxChunkSizeInBytes must be {} to {}, not {chunk}{hint}",
                    chunk_range.start(),
                    chunk_range.end()
                ),
            );
        }
        let encoding = match config.encoding.as_deref() {
            None => Some(StorageEncoding::Avro),
            Some(text) => {
                let parsed = StorageEncoding::parse(text);
                if parsed.is_none() {
                    self.problem(
                        location,
                        format!("encoding {text:?} is not one of avro, avroDeflate, json"),
                    );
                }
                parsed
            }
        };
        if self.problems.len() > before {
            return None;
        }
        Some(StorageSettings {
            container_name,
            file_name_format,
            batch_frequency: Duration::from_secs(frequency.unsigned_abs()),
            max_chunk_size_bytes: chunk.unsigned_abs(),
            encoding: encoding?,
        })
    }

    /// The connection string an endpoint uses (its override, else its own) and the backend it
    /// selects; `None` after reporting why there is none.
    fn connection(
        &mut self,
        location: &str,
        name: &str,
        configured: Option<&SecretString>,
        authentication_type: Option<&str>,
        category: Category,
    ) -> Option<(EndpointKind, SecretString, bool)> {
        let before = self.problems.len();
        let found = self.checked_connection(location, name, configured, authentication_type, category);
        if found.is_some() || !self.options.skip_connection_checks {
            return found;
        }
        self.problems.truncate(before);
        let (connection_string, overridden) = match self.options.endpoint_overrides.get(name) {
            Some(cs) => (cs.clone(), true),
            None => (configured?.clone(), false),
        };
        let kind = match (category, classify(connection_string.expose_secret())) {
            (Category::Queue, Some(kind @ EndpointKind::Queue(_)))
            | (Category::Storage, Some(kind @ EndpointKind::Storage(_))) => kind,
            (Category::Queue, _) => EndpointKind::Queue(QueueBackend::ServiceBus),
            (Category::Storage, _) => EndpointKind::Storage(StorageBackend::AzureBlob),
        };
        Some((kind, connection_string, overridden))
    }

    fn checked_connection(
        &mut self,
        location: &str,
        name: &str,
        configured: Option<&SecretString>,
        authentication_type: Option<&str>,
        category: Category,
    ) -> Option<(EndpointKind, SecretString, bool)> {
        let identity_based = match authentication_type {
            None => false,
            Some(t) if t.eq_ignore_ascii_case("keyBased") => false,
            Some(t) if t.eq_ignore_ascii_case("identityBased") => true,
            Some(t) => {
                self.problem(
                    location,
                    format!("authenticationType {t:?} is not keyBased or identityBased"),
                );
                false
            }
        };
        let (connection_string, overridden) = match self.options.endpoint_overrides.get(name) {
            Some(cs) => (cs.clone(), true),
            None if identity_based => {
                self.problem(
                    location,
                    format!(
                        "authenticationType identityBased needs an Azure managed identity, which \
                         the local hub does not have; {OVERRIDE_HINT}"
                    ),
                );
                return None;
            }
            None => match configured {
                Some(cs) if !cs.expose_secret().trim().is_empty() => (cs.clone(), false),
                _ => {
                    self.problem(
                        location,
                        format!("no connectionString; give one, or {OVERRIDE_HINT}"),
                    );
                    return None;
                }
            },
        };
        let text = connection_string.expose_secret();
        if is_masked(text) {
            let whose = if overridden {
                "the override's connection string"
            } else {
                "connectionString"
            };
            self.problem(
                location,
                format!("{whose} has a masked key (\"****\", as ARM exports it); {OVERRIDE_HINT}"),
            );
            return None;
        }
        let expected = match category {
            Category::Queue => QUEUE_STRINGS,
            Category::Storage => STORAGE_STRINGS,
        };
        let whose = if overridden {
            "the override's connection string"
        } else {
            "connectionString"
        };
        let kind = match (category, classify(text)) {
            (Category::Queue, Some(kind @ EndpointKind::Queue(_)))
            | (Category::Storage, Some(kind @ EndpointKind::Storage(_))) => kind,
            (Category::Queue, Some(_)) => {
                self.problem(
                    location,
                    format!("{whose} is for a storage endpoint; a queue endpoint needs {expected}"),
                );
                return None;
            }
            (Category::Storage, Some(_)) => {
                self.problem(
                    location,
                    format!("{whose} is for a queue endpoint; a storage endpoint needs {expected}"),
                );
                return None;
            }
            (_, None) => {
                self.problem(
                    location,
                    format!("{whose} is not one the hub knows; expected {expected}"),
                );
                return None;
            }
        };
        // Parse it fully now, so a malformed one is reported with every other problem.
        let parsed = match kind {
            EndpointKind::Queue(_) => queue::ConnectionConfig::parse(text)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            EndpointKind::Storage(_) => StorageConnection::parse(text)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            EndpointKind::Events => Ok(()),
        };
        if let Err(reason) = parsed {
            self.problem(location, format!("{whose}: {reason}"));
            return None;
        }
        Some((kind, connection_string, overridden))
    }
}

//! The device registry: identities, keys and status, persisted in `<data_dir>/registry.db` and held
//! in memory for authentication on every connect. Connection state and last activity live in
//! memory only (a restarted hub starts with every device disconnected).

mod device;
mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use iothub_protocol::sas::SharedAccessKey;
use iothub_protocol::timestamp::Timestamp;

pub use device::{
    Authentication, Capabilities, ConnectionState, Device, DeviceRequest, NEVER, Status, SymmetricKey,
    invalid_device_id,
};
pub use store::{Store, StoreError};

/// Why a registry operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such device.
    #[error("device {0} not found")]
    NotFound(String),
    /// Create without `If-Match` on an existing device.
    #[error("device {0} already exists; send If-Match to update it")]
    AlreadyExists(String),
    /// `If-Match` does not match the current etag.
    #[error("the etag does not match: the device changed since it was read")]
    PreconditionFailed,
    /// The request is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A device in memory: its document, decoded keys, and live state.
#[derive(Debug)]
pub struct Entry {
    device: Device,
    keys: Vec<SharedAccessKey>,
    connected: AtomicBool,
    connection_changed_ms: AtomicI64,
    last_activity_ms: AtomicI64,
}

impl Entry {
    /// The device's id.
    pub fn id(&self) -> &str {
        &self.device.device_id
    }

    /// Whether it may connect.
    pub fn enabled(&self) -> bool {
        self.device.status == Status::Enabled
    }

    /// Its generation id, stamped on every message.
    pub fn generation_id(&self) -> &str {
        &self.device.generation_id
    }

    /// Its primary and secondary keys.
    pub fn keys(&self) -> &[SharedAccessKey] {
        &self.keys
    }

    /// Records activity now (a message or a connection).
    pub fn touch(&self) {
        self.last_activity_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Records a connect or disconnect.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        self.connection_changed_ms.store(now_ms(), Ordering::Relaxed);
        self.touch();
    }

    /// The device document with its live state filled in.
    pub fn snapshot(&self) -> Device {
        let mut device = self.device.clone();
        device.connection_state = if self.connected.load(Ordering::Relaxed) {
            ConnectionState::Connected
        } else {
            ConnectionState::Disconnected
        };
        device.connection_state_updated_time = format_ms(self.connection_changed_ms.load(Ordering::Relaxed));
        device.last_activity_time = format_ms(self.last_activity_ms.load(Ordering::Relaxed));
        device
    }
}

fn now_ms() -> i64 {
    Timestamp::now().unix_millis()
}

fn format_ms(ms: i64) -> String {
    if ms <= 0 {
        return NEVER.to_owned();
    }
    Timestamp::from_unix_millis(ms).map_or_else(|_| NEVER.to_owned(), |t| t.as_str().to_owned())
}

/// .NET ticks now (100 ns units since 0001-01-01), IoT Hub's form of generation ids and etags.
fn ticks() -> u128 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() / 100);
    since_epoch + 621_355_968_000_000_000
}

/// A fresh random key, 32 bytes as IoT Hub generates them.
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::random();
    STANDARD.encode(bytes)
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    devices: RwLock<HashMap<String, Arc<Entry>>>,
    /// MQTT sessions (CleanSession=0) by client id: their subscriptions. Mirrors the store, so a
    /// connect touches the disk only when a session actually changes.
    sessions: Mutex<HashMap<String, Vec<String>>>,
    store: Mutex<Store>,
    last_ticks: Mutex<u128>,
    /// Held from a write's check (exists? etag?) to its insert, so two concurrent creates of one id
    /// cannot both succeed: the second sees the first and gets 409, as IoT Hub answers.
    writes: Mutex<()>,
}

impl Registry {
    /// Opens the registry at `path` and loads every device.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let store = Store::open(path)?;
        let mut devices = HashMap::new();
        for device in store.devices()? {
            let entry = entry_for(device)?;
            devices.insert(entry.id().to_owned(), Arc::new(entry));
        }
        let sessions = store.sessions()?.into_iter().collect();
        Ok(Registry {
            devices: RwLock::new(devices),
            sessions: Mutex::new(sessions),
            store: Mutex::new(store),
            last_ticks: Mutex::new(0),
            writes: Mutex::new(()),
        })
    }

    /// The subscriptions kept for MQTT client `client_id`, if it has a session.
    pub fn session(&self, client_id: &str) -> Option<Vec<String>> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client_id)
            .cloned()
    }

    /// Keeps (or with `None` forgets) the session of `client_id`; writes only when it changes.
    pub fn set_session(
        &self,
        client_id: &str,
        subscriptions: Option<&[String]>,
    ) -> Result<(), RegistryError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let current = sessions.get(client_id).map(Vec::as_slice);
        if current == subscriptions {
            return Ok(());
        }
        self.store().put_session(client_id, subscriptions)?;
        match subscriptions {
            Some(list) => sessions.insert(client_id.to_owned(), list.to_vec()),
            None => sessions.remove(client_id),
        };
        Ok(())
    }

    /// The store (policy keys and MQTT sessions live there too).
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The device `id`, for authentication and stamping.
    pub fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.read().get(id).cloned()
    }

    /// The device `id` as the API shows it.
    pub fn get(&self, id: &str) -> Option<Device> {
        self.entry(id).map(|e| e.snapshot())
    }

    /// Up to `top` devices, by id.
    pub fn list(&self, top: usize) -> Vec<Device> {
        let devices = self.read();
        let mut ids: Vec<&String> = devices.keys().collect();
        ids.sort();
        ids.into_iter()
            .take(top)
            .filter_map(|id| devices.get(id))
            .map(|e| e.snapshot())
            .collect()
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are no devices.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creates a device, or updates it when `if_match` is given (`*` or its etag). Returns the
    /// device and whether it was created.
    pub fn create_or_update(
        &self,
        id: &str,
        request: DeviceRequest,
        if_match: Option<&str>,
    ) -> Result<(Device, bool), RegistryError> {
        if let Some(reason) = invalid_device_id(id) {
            return Err(RegistryError::Invalid(reason));
        }
        if let Some(body_id) = &request.device_id
            && body_id != id
        {
            return Err(RegistryError::Invalid(format!(
                "the body's deviceId {body_id:?} differs from the path's {id:?}"
            )));
        }
        let _write = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let existing = self.entry(id);
        let if_match = if_match.map(|m| m.trim().trim_matches('"'));
        let created = match (&existing, if_match) {
            (None, _) => true,
            (Some(_), None) => return Err(RegistryError::AlreadyExists(id.to_owned())),
            (Some(e), Some(tag)) if tag != "*" && tag != e.device.etag => {
                return Err(RegistryError::PreconditionFailed);
            }
            (Some(_), Some(_)) => false,
        };
        let now = Timestamp::now();
        let stamp = self.next_ticks();
        let previous = existing.as_ref().map(|e| e.device.clone());
        let status = request
            .status
            .or(previous.as_ref().map(|d| d.status))
            .unwrap_or_default();
        let mut authentication = request
            .authentication
            .or_else(|| previous.as_ref().map(|d| d.authentication.clone()))
            .unwrap_or_default();
        if authentication.kind != "sas" {
            return Err(RegistryError::Invalid(format!(
                "authentication type {:?} is not supported; use \"sas\"",
                authentication.kind
            )));
        }
        let keys = &mut authentication.symmetric_key;
        keys.primary_key = Some(keys.primary_key.take().unwrap_or_else(generate_key));
        keys.secondary_key = Some(keys.secondary_key.take().unwrap_or_else(generate_key));
        let status_changed = previous.as_ref().is_none_or(|d| d.status != status);
        let device = Device {
            device_id: id.to_owned(),
            generation_id: previous
                .as_ref()
                .map_or_else(|| stamp.to_string(), |d| d.generation_id.clone()),
            etag: STANDARD.encode(stamp.to_string()),
            connection_state: ConnectionState::Disconnected,
            status,
            status_reason: request
                .status_reason
                .or_else(|| previous.as_ref().and_then(|d| d.status_reason.clone())),
            connection_state_updated_time: NEVER.to_owned(),
            status_updated_time: if status_changed {
                now.as_str().to_owned()
            } else {
                previous
                    .as_ref()
                    .map_or_else(|| now.as_str().to_owned(), |d| d.status_updated_time.clone())
            },
            last_activity_time: NEVER.to_owned(),
            cloud_to_device_message_count: 0,
            authentication,
            capabilities: request
                .capabilities
                .or(previous.map(|d| d.capabilities))
                .unwrap_or_default(),
        };
        let entry = entry_for(device.clone())?;
        if let Some(old) = &existing {
            // Keep the live state across an update.
            entry
                .connected
                .store(old.connected.load(Ordering::Relaxed), Ordering::Relaxed);
            entry.connection_changed_ms.store(
                old.connection_changed_ms.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            entry
                .last_activity_ms
                .store(old.last_activity_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.store().put_device(&device)?;
        let entry = Arc::new(entry);
        let snapshot = entry.snapshot();
        self.write().insert(id.to_owned(), entry);
        Ok((snapshot, created))
    }

    /// Deletes a device (`if_match`: `*`, its etag, or absent).
    pub fn delete(&self, id: &str, if_match: Option<&str>) -> Result<Device, RegistryError> {
        let _write = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = self
            .entry(id)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))?;
        if let Some(tag) = if_match.map(|m| m.trim().trim_matches('"'))
            && tag != "*"
            && tag != entry.device.etag
        {
            return Err(RegistryError::PreconditionFailed);
        }
        self.store().delete_device(id)?;
        self.write().remove(id);
        let module_prefix = format!("{id}/");
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|client, _| client != id && !client.starts_with(&module_prefix));
        Ok(entry.snapshot())
    }

    fn next_ticks(&self) -> u128 {
        let mut last = self.last_ticks.lock().unwrap_or_else(PoisonError::into_inner);
        *last = ticks().max(*last + 1);
        *last
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.devices.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Entry>>> {
        self.devices.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn entry_for(device: Device) -> Result<Entry, RegistryError> {
    let sym = &device.authentication.symmetric_key;
    let mut keys = Vec::with_capacity(2);
    for (name, key) in [
        ("primaryKey", &sym.primary_key),
        ("secondaryKey", &sym.secondary_key),
    ] {
        if let Some(text) = key {
            let key = SharedAccessKey::from_base64(text)
                .map_err(|e| RegistryError::Invalid(format!("authentication.symmetricKey.{name}: {e}")))?;
            let len = STANDARD.decode(text).map_or(0, |b| b.len());
            if !(16..=64).contains(&len) {
                return Err(RegistryError::Invalid(format!(
                    "authentication.symmetricKey.{name}: keys are 16 to 64 bytes, this one is {len}"
                )));
            }
            keys.push(key);
        }
    }
    Ok(Entry {
        device,
        keys,
        connected: AtomicBool::new(false),
        connection_changed_ms: AtomicI64::new(0),
        last_activity_ms: AtomicI64::new(0),
    })
}

//! SQLite persistence of the registry: devices, policy keys, and MQTT sessions (subscriptions kept
//! across reconnects for CleanSession=0). Writes are rare; every one is committed before it returns.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::device::Device;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("registry store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row is not valid JSON (a damaged or foreign file).
    #[error("registry store: a stored row is damaged: {0}")]
    Corrupt(#[from] serde_json::Error),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policy_keys (name TEXT PRIMARY KEY, primary_key TEXT NOT NULL, secondary_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mqtt_sessions (client_id TEXT PRIMARY KEY, subscriptions TEXT NOT NULL);
";

/// The registry database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (or creates) `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// Every device.
    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT doc FROM devices ORDER BY device_id")?;
        let docs: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        docs.iter()
            .map(|d| serde_json::from_str(d).map_err(StoreError::from))
            .collect()
    }

    /// Inserts or replaces a device.
    pub fn put_device(&self, device: &Device) -> Result<(), StoreError> {
        let doc = serde_json::to_string(device)?;
        self.conn.execute(
            "INSERT INTO devices (device_id, doc) VALUES (?1, ?2) \
             ON CONFLICT (device_id) DO UPDATE SET doc = excluded.doc",
            params![device.device_id, doc],
        )?;
        Ok(())
    }

    /// Deletes a device and its MQTT sessions.
    pub fn delete_device(&self, device_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM devices WHERE device_id = ?1", params![device_id])?;
        self.conn.execute(
            "DELETE FROM mqtt_sessions WHERE client_id = ?1 OR client_id LIKE ?2 ESCAPE '\\'",
            params![
                device_id,
                format!(
                    "{}/%",
                    device_id
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                )
            ],
        )?;
        Ok(())
    }

    /// The stored keys of a policy, if any.
    pub fn policy_keys(&self, name: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT primary_key, secondary_key FROM policy_keys WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Stores the keys of a policy.
    pub fn put_policy_keys(&self, name: &str, primary: &str, secondary: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO policy_keys (name, primary_key, secondary_key) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET primary_key = excluded.primary_key, secondary_key = excluded.secondary_key",
            params![name, primary, secondary],
        )?;
        Ok(())
    }

    /// Every kept MQTT session: client id and subscriptions.
    pub fn sessions(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT client_id, subscriptions FROM mqtt_sessions")?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(id, doc)| Ok((id, serde_json::from_str(&doc)?)))
            .collect()
    }

    /// Keeps (or, with `None`, forgets) the subscriptions of an MQTT client id.
    pub fn put_session(&self, client_id: &str, subscriptions: Option<&[String]>) -> Result<(), StoreError> {
        match subscriptions {
            Some(filters) => {
                let doc = serde_json::to_string(filters)?;
                self.conn.execute(
                    "INSERT INTO mqtt_sessions (client_id, subscriptions) VALUES (?1, ?2) \
                     ON CONFLICT (client_id) DO UPDATE SET subscriptions = excluded.subscriptions",
                    params![client_id, doc],
                )?;
            }
            None => {
                self.conn.execute(
                    "DELETE FROM mqtt_sessions WHERE client_id = ?1",
                    params![client_id],
                )?;
            }
        }
        Ok(())
    }
}

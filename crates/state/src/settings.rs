//! The `settings` table: daemon settings changed at run time (over RPC), as JSON values
//! under string keys. They outlive restarts and take precedence over the config file's
//! defaults; which keys exist is the daemon's business, the store keeps any JSON.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StateError;
use crate::store::Store;

impl Store {
    /// The setting `key` as a `T`, or `None` if it was never set. `Err(Setting)` if the
    /// stored JSON does not fit `T`.
    pub fn get_setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        let json: Option<String> = self.read(|conn| {
            Ok(conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| row.get(0)).optional()?)
        })?;
        json.map(|json| {
            serde_json::from_str(&json).map_err(|source| StateError::Setting { key: key.to_owned(), source })
        })
        .transpose()
    }

    /// Sets `key` to `value` (as JSON), replacing any earlier value.
    pub fn set_setting<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), StateError> {
        let json =
            serde_json::to_string(value).map_err(|source| StateError::Setting { key: key.to_owned(), source })?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, json],
            )?;
            Ok(())
        })
    }

    /// Deletes `key`; returns whether it was set.
    pub fn remove_setting(&self, key: &str) -> Result<bool, StateError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM settings WHERE key = ?1", [key])? > 0))
    }

    /// Every setting, by key.
    pub fn settings(&self) -> Result<BTreeMap<String, serde_json::Value>, StateError> {
        let rows: Vec<(String, String)> = self.read(|conn| {
            let mut stmt = conn.prepare("SELECT key, value FROM settings ORDER BY key")?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(key, json)| match serde_json::from_str(&json) {
                Ok(value) => Ok((key, value)),
                Err(source) => Err(StateError::Setting { key, source }),
            })
            .collect()
    }
}

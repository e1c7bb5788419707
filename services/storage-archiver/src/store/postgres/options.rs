//! The PostgreSQL index URL: tokio-postgres' own options plus `schema` and `pool_size`.

use std::time::Duration;

use super::DEFAULT_POOL_SIZE;
use crate::store::{Error, Result};

/// The URL split into what tokio-postgres reads and what this module reads.
#[derive(Debug)]
pub(super) struct Options {
    pub(super) config: tokio_postgres::Config,
    pub(super) schema: Option<String>,
    pub(super) pool_size: usize,
}

impl Options {
    pub(super) fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            reason: reason.to_owned(),
        };
        let mut parsed = url::Url::parse(url).map_err(|_| invalid("not a URL"))?;
        let (mut schema, mut pool_size, mut rest) = (None, DEFAULT_POOL_SIZE, Vec::new());
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "schema" => schema = Some(value.into_owned()),
                "pool_size" => {
                    pool_size = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("pool_size must be a positive whole number"))?;
                }
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        if let Some(name) = &schema {
            let valid = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !valid {
                return Err(invalid(
                    "schema must be 1 to 63 letters, digits or _, not starting with a digit",
                ));
            }
        }
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
        let mut config: tokio_postgres::Config =
            parsed
                .as_str()
                .parse()
                .map_err(|e: tokio_postgres::Error| Error::InvalidUrl {
                    reason: e.to_string(),
                })?;
        if let Some(name) = &schema {
            // Lower case, as PostgreSQL folds the unquoted name it is created with.
            let search_path = format!("-c search_path={}", name.to_ascii_lowercase());
            let options = match config.get_options() {
                Some(given) => format!("{given} {search_path}"),
                None => search_path,
            };
            config.options(options);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(Self {
            config,
            schema,
            pool_size,
        })
    }
}

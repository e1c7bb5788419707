//! Blob storage connection strings: which backend, where, and with what key.
//!
//! - `file://<dir>`: a local directory (`file:///abs/path`, or `file://data/blobs` relative to the
//!   working directory). The container is a subdirectory.
//! - An Azure Storage connection string, `Key=Value` pairs separated by `;` (keys
//!   case-insensitive, as Azure's SDKs read them):
//!   `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=core.windows.net`,
//!   optionally `BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1` (Azurite's explicit form).
//!   `QueueEndpoint`, `TableEndpoint` and `FileEndpoint` are accepted and ignored.
//! - `UseDevelopmentStorage=true`: Azurite on `http://127.0.0.1:10000/devstoreaccount1` with the
//!   well-known `devstoreaccount1` key; `DevelopmentStorageProxyUri=http://host` moves the host.
//!
//! Errors name the offending key, never a value: a connection string holds a secret. The account key
//! is kept in a [`SecretString`] and [`StorageConnection`]'s `Debug` shows `AccountKey=<redacted>`.

use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use url::Url;

/// Azurite's well-known account.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known account key (public: it is in every Azure Storage emulator doc).
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default blob port.
const DEV_BLOB_PORT: u16 = 10000;

/// Why a connection string was refused. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    /// Empty text.
    #[error("the storage connection string is empty")]
    Empty,
    /// `file://` with no path.
    #[error("the storage connection string `file://` has no directory")]
    EmptyPath,
    /// A `;`-separated part is not `Key=Value`.
    #[error("the storage connection string's part {position} is not `Key=Value`")]
    NotKeyValue {
        /// 1-based position among the `;`-separated parts.
        position: usize,
    },
    /// A key this parser does not know. It is named only when it looks like a key (letters only):
    /// anything else may be a misplaced secret.
    #[error("the storage connection string has an unknown key {}", .key.as_deref().map_or_else(|| format!("in part {}", .position), |key| format!("`{key}`")))]
    UnknownKey {
        /// The key, when it is letters only (at most 64).
        key: Option<String>,
        /// 1-based position among the `;`-separated parts.
        position: usize,
    },
    /// A key given twice.
    #[error("the storage connection string has `{key}` twice")]
    DuplicateKey {
        /// The key.
        key: &'static str,
    },
    /// A required key is absent.
    #[error("the storage connection string has no `{key}`")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A key's value is not acceptable; `reason` describes the value without showing it.
    #[error("the storage connection string's `{key}` is invalid: {reason}")]
    InvalidValue {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Where blob containers live: a local directory or a blob service, with its credentials.
#[derive(Clone)]
pub enum StorageConnection {
    /// A local directory; containers are subdirectories.
    Local {
        /// The directory.
        root: PathBuf,
    },
    /// Azure Blob Storage or Azurite, with Shared Key authorization.
    Azure {
        /// The storage account.
        account: String,
        /// The account key (base64).
        key: SecretString,
        /// The blob service, e.g. `https://acct.blob.core.windows.net` or
        /// `http://127.0.0.1:10000/devstoreaccount1` (a path-style endpoint).
        endpoint: Url,
    },
}

impl StorageConnection {
    /// Parses a connection string.
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ConnectionStringError::Empty);
        }
        if let Some(path) = strip_prefix_ignore_case(text, "file://") {
            if path.is_empty() {
                return Err(ConnectionStringError::EmptyPath);
            }
            return Ok(StorageConnection::Local {
                root: PathBuf::from(path),
            });
        }
        Self::parse_azure(&Pairs::parse(text)?)
    }

    fn parse_azure(pairs: &Pairs<'_>) -> Result<Self, ConnectionStringError> {
        use ConnectionStringError as E;
        if let Some(dev) = pairs.get(Setting::UseDevelopmentStorage) {
            if !dev.eq_ignore_ascii_case("true") {
                return Err(E::InvalidValue {
                    key: Setting::UseDevelopmentStorage.name(),
                    reason: "only `true` is supported",
                });
            }
            if let Some(other) = pairs.keys().find(|key| {
                !matches!(
                    key,
                    Setting::UseDevelopmentStorage | Setting::DevelopmentStorageProxyUri
                )
            }) {
                return Err(E::InvalidValue {
                    key: other.name(),
                    reason: "not allowed with UseDevelopmentStorage=true",
                });
            }
            let mut endpoint = match pairs.get(Setting::DevelopmentStorageProxyUri) {
                Some(uri) => parse_url(uri, Setting::DevelopmentStorageProxyUri)?,
                None => Url::parse("http://127.0.0.1").map_err(|_| E::Empty)?,
            };
            if endpoint.port().is_none() {
                let _ = endpoint.set_port(Some(DEV_BLOB_PORT));
            }
            endpoint.set_path(DEV_ACCOUNT);
            return Ok(StorageConnection::Azure {
                account: DEV_ACCOUNT.to_owned(),
                key: SecretString::from(DEV_ACCOUNT_KEY),
                endpoint,
            });
        }
        if pairs.get(Setting::SharedAccessSignature).is_some() {
            return Err(E::InvalidValue {
                key: Setting::SharedAccessSignature.name(),
                reason: "SAS connection strings are not supported here; use AccountName and AccountKey",
            });
        }
        let account = pairs.get(Setting::AccountName).ok_or(E::MissingKey {
            key: Setting::AccountName.name(),
        })?;
        if account.is_empty() || !account.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(E::InvalidValue {
                key: Setting::AccountName.name(),
                reason: "an account name is letters and digits",
            });
        }
        let key = pairs.get(Setting::AccountKey).ok_or(E::MissingKey {
            key: Setting::AccountKey.name(),
        })?;
        if key.is_empty() || STANDARD.decode(key).is_err() {
            return Err(E::InvalidValue {
                key: Setting::AccountKey.name(),
                reason: "not base64",
            });
        }
        let endpoint = match pairs.get(Setting::BlobEndpoint) {
            Some(endpoint) => parse_url(endpoint, Setting::BlobEndpoint)?,
            None => {
                let protocol = pairs.get(Setting::DefaultEndpointsProtocol).unwrap_or("https");
                if !matches!(protocol, "http" | "https") {
                    return Err(E::InvalidValue {
                        key: Setting::DefaultEndpointsProtocol.name(),
                        reason: "expected http or https",
                    });
                }
                let suffix = pairs.get(Setting::EndpointSuffix).unwrap_or("core.windows.net");
                Url::parse(&format!("{protocol}://{account}.blob.{suffix}")).map_err(|_| E::InvalidValue {
                    key: Setting::EndpointSuffix.name(),
                    reason: "does not make a valid URL",
                })?
            }
        };
        Ok(StorageConnection::Azure {
            account: account.to_owned(),
            key: SecretString::from(key),
            endpoint,
        })
    }

    /// Where the containers are, without secrets: `file://<dir>` or the blob endpoint URL.
    pub fn location(&self) -> String {
        match self {
            StorageConnection::Local { root } => format!("file://{}", root.display()),
            StorageConnection::Azure { endpoint, .. } => endpoint.as_str().trim_end_matches('/').to_owned(),
        }
    }
}

impl std::str::FromStr for StorageConnection {
    type Err = ConnectionStringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Debug for StorageConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageConnection::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            StorageConnection::Azure {
                account, endpoint, ..
            } => f
                .debug_struct("Azure")
                .field("account", account)
                .field("key", &"<redacted>")
                .field("endpoint", &endpoint.as_str())
                .finish(),
        }
    }
}

/// The settings (keys) of an Azure Storage connection string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    DefaultEndpointsProtocol,
    AccountName,
    AccountKey,
    EndpointSuffix,
    BlobEndpoint,
    QueueEndpoint,
    TableEndpoint,
    FileEndpoint,
    SharedAccessSignature,
    UseDevelopmentStorage,
    DevelopmentStorageProxyUri,
}

impl Setting {
    const ALL: [Setting; 11] = [
        Setting::DefaultEndpointsProtocol,
        Setting::AccountName,
        Setting::AccountKey,
        Setting::EndpointSuffix,
        Setting::BlobEndpoint,
        Setting::QueueEndpoint,
        Setting::TableEndpoint,
        Setting::FileEndpoint,
        Setting::SharedAccessSignature,
        Setting::UseDevelopmentStorage,
        Setting::DevelopmentStorageProxyUri,
    ];

    fn name(self) -> &'static str {
        match self {
            Setting::DefaultEndpointsProtocol => "DefaultEndpointsProtocol",
            Setting::AccountName => "AccountName",
            Setting::AccountKey => "AccountKey",
            Setting::EndpointSuffix => "EndpointSuffix",
            Setting::BlobEndpoint => "BlobEndpoint",
            Setting::QueueEndpoint => "QueueEndpoint",
            Setting::TableEndpoint => "TableEndpoint",
            Setting::FileEndpoint => "FileEndpoint",
            Setting::SharedAccessSignature => "SharedAccessSignature",
            Setting::UseDevelopmentStorage => "UseDevelopmentStorage",
            Setting::DevelopmentStorageProxyUri => "DevelopmentStorageProxyUri",
        }
    }
}

/// The `Key=Value` pairs of a connection string, each key once.
struct Pairs<'a>(Vec<(Setting, &'a str)>);

impl<'a> Pairs<'a> {
    fn parse(text: &'a str) -> Result<Self, ConnectionStringError> {
        let mut pairs: Vec<(Setting, &'a str)> = Vec::new();
        for (index, part) in text.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = part
                .split_once('=')
                .ok_or(ConnectionStringError::NotKeyValue { position: index + 1 })?;
            let name = name.trim();
            let key = Setting::ALL
                .into_iter()
                .find(|key| key.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| ConnectionStringError::UnknownKey {
                    key: (name.len() <= 64
                        && !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphabetic()))
                    .then(|| name.to_owned()),
                    position: index + 1,
                })?;
            if pairs.iter().any(|(seen, _)| *seen == key) {
                return Err(ConnectionStringError::DuplicateKey { key: key.name() });
            }
            pairs.push((key, value.trim()));
        }
        if pairs.is_empty() {
            return Err(ConnectionStringError::Empty);
        }
        Ok(Pairs(pairs))
    }

    fn get(&self, key: Setting) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, value)| *value)
    }

    fn keys(&self) -> impl Iterator<Item = Setting> + '_ {
        self.0.iter().map(|(key, _)| *key)
    }
}

fn parse_url(text: &str, key: Setting) -> Result<Url, ConnectionStringError> {
    let invalid = |reason| ConnectionStringError::InvalidValue {
        key: key.name(),
        reason,
    };
    let url = Url::parse(text).map_err(|_| invalid("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("expected an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok(url)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed key that is not the one any test account uses.
    const SECRET_KEY: &str = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtcHJpbnRlZA==";

    #[track_caller]
    fn check_error(connection_string: &str, expect: &str) {
        let error = StorageConnection::parse(connection_string).unwrap_err();
        assert_eq!(error.to_string(), expect, "{connection_string}");
        let text = format!("{error} {error:?}");
        assert!(
            !text.contains(&SECRET_KEY[..16]) && !text.contains("not-base64!"),
            "{text}"
        );
    }

    #[test]
    fn bad_connection_strings_name_the_key_and_never_the_secret() {
        check_error("", "the storage connection string is empty");
        check_error("  ;; ", "the storage connection string is empty");
        check_error(
            "file://",
            "the storage connection string `file://` has no directory",
        );
        check_error(
            &format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={SECRET_KEY};Colour=blue"),
            "the storage connection string has an unknown key `Colour`",
        );
        check_error(
            &format!("AccountName=acct;AccountKey={SECRET_KEY};AccountKey={SECRET_KEY}"),
            "the storage connection string has `AccountKey` twice",
        );
        check_error(
            "DefaultEndpointsProtocol=https;AccountName=acct",
            "the storage connection string has no `AccountKey`",
        );
        check_error(
            &format!("AccountKey={SECRET_KEY}"),
            "the storage connection string has no `AccountName`",
        );
        check_error(
            &format!("AccountName=ac-ct;AccountKey={SECRET_KEY}"),
            "the storage connection string's `AccountName` is invalid: an account name is letters and digits",
        );
        check_error(
            "AccountName=acct;AccountKey=not-base64!",
            "the storage connection string's `AccountKey` is invalid: not base64",
        );
        check_error(
            &format!("AccountName=acct;AccountKey={SECRET_KEY};justtext"),
            "the storage connection string's part 3 is not `Key=Value`",
        );
        // A misplaced secret (it has `=` padding, so it parses as a key) is not echoed back.
        check_error(
            &format!("AccountName=acct;AccountKey={SECRET_KEY};{SECRET_KEY}"),
            "the storage connection string has an unknown key in part 3",
        );
        check_error(
            &format!("AccountName=acct;AccountKey={SECRET_KEY};BlobEndpoint=ftp://host/acct"),
            "the storage connection string's `BlobEndpoint` is invalid: expected an http or https URL",
        );
        check_error(
            &format!("AccountName=acct;AccountKey={SECRET_KEY};BlobEndpoint=http://host/acct?x=1"),
            "the storage connection string's `BlobEndpoint` is invalid: the URL must not have a query or fragment",
        );
        check_error(
            &format!("DefaultEndpointsProtocol=gopher;AccountName=acct;AccountKey={SECRET_KEY}"),
            "the storage connection string's `DefaultEndpointsProtocol` is invalid: expected http or https",
        );
        check_error(
            "UseDevelopmentStorage=false",
            "the storage connection string's `UseDevelopmentStorage` is invalid: only `true` is supported",
        );
        check_error(
            &format!("UseDevelopmentStorage=true;AccountKey={SECRET_KEY}"),
            "the storage connection string's `AccountKey` is invalid: not allowed with UseDevelopmentStorage=true",
        );
        check_error(
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2020&sig=abc",
            "the storage connection string's `SharedAccessSignature` is invalid: SAS connection strings are not supported here; use AccountName and AccountKey",
        );
    }

    #[test]
    fn connection_strings_pick_the_backend_and_hide_the_key() {
        let azure: StorageConnection = format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={SECRET_KEY};EndpointSuffix=core.windows.net"
        )
        .parse()
        .unwrap();
        assert_eq!(azure.location(), "https://acct.blob.core.windows.net");
        let debug = format!("{azure:?}");
        assert!(!debug.contains(SECRET_KEY), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");

        // Keys are case-insensitive; BlobEndpoint wins; the explicit Azurite form.
        let explicit: StorageConnection = format!(
            "defaultendpointsprotocol=http;accountname=devstoreaccount1;ACCOUNTKEY={SECRET_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
        )
        .parse()
        .unwrap();
        assert_eq!(explicit.location(), "http://127.0.0.1:10000/devstoreaccount1");

        let dev: StorageConnection = "UseDevelopmentStorage=true".parse().unwrap();
        assert_eq!(dev.location(), "http://127.0.0.1:10000/devstoreaccount1");
        match &dev {
            StorageConnection::Azure { account, key, .. } => {
                assert_eq!(account, DEV_ACCOUNT);
                assert_eq!(secrecy::ExposeSecret::expose_secret(key), DEV_ACCOUNT_KEY);
            }
            StorageConnection::Local { .. } => panic!("{dev:?}"),
        }
        let proxied: StorageConnection =
            "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite"
                .parse()
                .unwrap();
        assert_eq!(proxied.location(), "http://azurite:10000/devstoreaccount1");
        let proxied_port: StorageConnection =
            "usedevelopmentstorage=TRUE;DevelopmentStorageProxyUri=http://azurite:20000"
                .parse()
                .unwrap();
        assert_eq!(proxied_port.location(), "http://azurite:20000/devstoreaccount1");
        assert!(!format!("{dev:?}").contains("Eby8vdM02x"));

        let local: StorageConnection = "file://data/blobs".parse().unwrap();
        assert_eq!(local.location(), "file://data/blobs");
        assert!(
            matches!(&local, StorageConnection::Local { root } if root == std::path::Path::new("data/blobs"))
        );
        let absolute: StorageConnection = " FILE:///var/lib/blobs ".parse().unwrap();
        assert_eq!(absolute.location(), "file:///var/lib/blobs");
    }
}

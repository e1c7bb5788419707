//! TLS for the device listeners: a configured certificate, or a development CA and server certificate
//! generated into `<data_dir>/tls` on first start and reused afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::HubConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate or key could not be parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("generating the development certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server certificate chain and key, ready to build rustls configurations.
#[derive(Debug)]
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The development CA clients must trust, when the hub generated its own certificate.
    pub ca_file: Option<PathBuf>,
}

impl ServerIdentity {
    /// A rustls server configuration (TLS 1.2 and 1.3; the Python IoT SDK speaks only 1.2).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn pem_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(pem_error(path, "no certificate in the file"));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, e))
}

/// Loads the configured certificate, or the development one (generating it if needed).
pub fn server_identity(config: &HubConfig) -> Result<ServerIdentity, TlsError> {
    if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
        return Ok(ServerIdentity {
            chain: read_chain(cert)?,
            key: read_key(key)?,
            ca_file: None,
        });
    }
    let dir = config.data_dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    let names = subject_names(config);
    let (ca_params, ca_key) = development_ca(&dir)?;
    let server_cert = dir.join("server.pem");
    let server_key = dir.join("server-key.pem");
    let names_file = dir.join("server.names");
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    if current != names.join("\n") || !server_cert.is_file() || !server_key.is_file() {
        issue_server_certificate(&names, ca_params, ca_key, &server_cert, &server_key)?;
        write(&names_file, names.join("\n").as_bytes(), PUBLIC)?;
        tracing::info!(names = %names.join(","), "issued a development server certificate");
    }
    Ok(ServerIdentity {
        chain: read_chain(&server_cert)?,
        key: read_key(&server_key)?,
        ca_file: Some(dir.join("ca.pem")),
    })
}

/// Names the certificate covers: the configured host names, plus loopback.
fn subject_names(config: &HubConfig) -> Vec<String> {
    let mut names: Vec<String> = config.host_names.clone();
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(extra)) {
            names.push(extra.to_owned());
        }
    }
    names
}

/// Where the development CA certificate is (or will be) for this configuration.
pub fn development_ca_file(config: &HubConfig) -> PathBuf {
    config.data_dir.join("tls").join("ca.pem")
}

/// The CA's parameters. Rebuilt identically when the CA is loaded: the issuer name and key identifier
/// of issued certificates come from these and the CA key.
fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "iot-routing local hub development CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(params)
}

fn development_ca(dir: &Path) -> Result<(CertificateParams, KeyPair), TlsError> {
    let ca_file = dir.join("ca.pem");
    let ca_key_file = dir.join("ca-key.pem");
    if ca_file.is_file() && ca_key_file.is_file() {
        let key_pem = std::fs::read_to_string(&ca_key_file).map_err(io_error(&ca_key_file))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| pem_error(&ca_key_file, e))?;
        return Ok((ca_params()?, key));
    }
    let key = KeyPair::generate()?;
    let params = ca_params()?;
    let cert = params.self_signed(&key)?;
    write(&ca_key_file, key.serialize_pem().as_bytes(), PRIVATE)?;
    write(&ca_file, cert.pem().as_bytes(), PUBLIC)?;
    tracing::info!(ca = %ca_file.display(), "generated a development CA");
    Ok((params, key))
}

fn issue_server_certificate(
    names: &[String],
    ca_params: CertificateParams,
    ca_key: KeyPair,
    cert_file: &Path,
    key_file: &Path,
) -> Result<(), TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let issuer = Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer)?;
    write(key_file, key.serialize_pem().as_bytes(), PRIVATE)?;
    write(cert_file, cert.pem().as_bytes(), PUBLIC)?;
    Ok(())
}

/// Keys: readable by their owner only.
const PRIVATE: u32 = 0o600;
/// Certificates: readable by clients running as other users (other containers on a shared volume).
const PUBLIC: u32 = 0o644;

/// Writes a file atomically with the given permissions.
fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    // A leftover from a crash would keep its old permissions: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

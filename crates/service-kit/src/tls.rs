//! TLS clients for every service: rustls with the ring provider (no aws-lc in the workspace),
//! trusting the public web roots, or only the CA certificates of a PEM file (a private CA, or the
//! local hub's development CA that `hub cert` prints).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// A client configuration trusting `ca_file`'s certificates, or the public roots when `None`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let problem = |e: &dyn std::fmt::Display| TlsError(format!("ca_file {}: {e}", path.display()));
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| problem(&e))? {
                roots
                    .add(cert.map_err(|e| problem(&e))?)
                    .map_err(|e| problem(&e))?;
            }
            if roots.is_empty() {
                return Err(problem(&"no certificate in the file"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

//! TLS for `--tls-cert`/`--tls-key`, with ALPN offering HTTP/2 first.
//!
//! Why serve TLS at all when a proxy could: browsers multiplex streams over one connection only
//! on HTTP/2, and only over TLS. Over HTTP/1.1 a page gets six connections per origin, so six
//! tabs with a stream each exhaust them. With `h2` negotiated here, every tab's stream and every
//! `fetch` share one connection.
//!
//! rustls with the ring provider; TLS 1.2 and 1.3 with rustls's safe defaults.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server's TLS settings: what [`TlsConn::accept`](crate::tls_conn::TlsConn::accept) takes.
pub type TlsConfig = Arc<rustls::ServerConfig>;

/// Builds the TLS settings from PEM files: a certificate chain (leaf first) and its private key
/// (PKCS#8, PKCS#1 or SEC1).
pub fn acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect())
        .map_err(|e| {
            format!(
                "cannot read certificates from --tls-cert {}: {e}",
                cert_path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {} holds no PEM certificate",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        format!(
            "cannot read a private key from --tls-key {}: {e}",
            key_path.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert and --tls-key do not form a usable pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

//! The connection under every request the bench makes: plain TCP, or TLS over it when
//! `--tls-ca` names the certificate (or CA) the server presents.
//!
//! Over TLS every connection does its own handshake. Publishers and HTTP/1.1 streams offer only
//! `http/1.1`, as a browser's `EventSource` on an HTTP/1.1 origin would; HTTP/2 streams
//! (`--http2-streams`) offer only `h2`. The client's own memory is not what is measured, so
//! nothing here is tuned for it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A connected socket, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Conn = Box<dyn Io>;

/// How to reach the server.
#[derive(Clone)]
pub struct Transport {
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.tls.is_some() { "TLS" } else { "TCP" })
    }
}

impl Transport {
    pub fn plain() -> Self {
        Self { tls: None }
    }

    /// TLS trusting the PEM certificates in `ca_file`, expecting `server_name` in the server's
    /// certificate, offering `alpn` (`b"http/1.1"` or `b"h2"`).
    pub fn tls(ca_file: &Path, server_name: &str, alpn: &[u8]) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read --tls-ca {}: {e}", ca_file.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "--tls-ca {} holds no certificate",
                ca_file.display()
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| format!("bad --tls-server-name {server_name:?}: {e}"))?;
        Ok(Self {
            tls: Some((TlsConnector::from(Arc::new(config)), name)),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects to `server` (from any local address).
    pub async fn connect(&self, server: SocketAddr) -> Result<Conn, String> {
        let tcp = TcpStream::connect(server)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        self.wrap(tcp).await
    }

    /// Starts TLS on `tcp` if this transport is TLS.
    pub async fn wrap(&self, tcp: TcpStream) -> Result<Conn, String> {
        tcp.set_nodelay(true).ok();
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                Ok(Box::new(tls))
            }
        }
    }
}

//! TLS clients for a hub started with `--tls-cert`/`--tls-key`: a self-signed certificate, a
//! rustls connection trusting only it, and HTTP/1.1 requests over such a connection.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A self-signed certificate for localhost, written to temp files: (cert path, key path, DER).
pub fn self_signed() -> (String, String, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let dir = std::env::temp_dir().join(format!("herald-tls-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let der = certified.cert.der().clone();
    (cert.display().to_string(), key.display().to_string(), der)
}

/// A TLS connection to `addr` trusting only `root`, offering `alpn`.
pub async fn tls_connect(
    addr: &str,
    root: CertificateDer<'static>,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    tls_connect_with(addr, root, alpn, rustls::DEFAULT_VERSIONS).await
}

/// [`tls_connect`] offering only the TLS `versions` given.
pub async fn tls_connect_with(
    addr: &str,
    root: CertificateDer<'static>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tls_over(tcp, client_config(root, alpn, versions)).await
}

/// TLS over a TCP connection made by the caller (with its own socket options), trusting only
/// `root`, offering HTTP/1.1.
pub async fn tls_over_tcp(
    tcp: TcpStream,
    root: CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = client_config(root, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    tls_over(tcp, config).await
}

fn client_config(
    root: CertificateDer<'static>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

async fn tls_over(
    tcp: TcpStream,
    config: rustls::ClientConfig,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

/// Sends `request` over a new HTTP/1.1-over-TLS connection and returns the response head (the
/// body streams in as it is read).
pub async fn send_tls(
    addr: &str,
    root: &CertificateDer<'static>,
    request: http::Request<Full<Bytes>>,
) -> http::Response<Incoming> {
    let tls = tls_connect(addr, root.clone(), &[b"http/1.1"]).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender.send_request(request).await.expect("request")
}

//! TLS client settings for probes (`https` and the TLS variants of other kinds), with rustls and
//! the `ring` provider.
//!
//! Verification is on by default: the chain must lead to a trusted root and the certificate must
//! name the server (the SNI name, or the IP address when there is none). Roots are the system's
//! bundle ([`SYSTEM_ROOTS`]) or, with `ca_file`, only the certificates of that PEM file — the usual
//! case for real servers behind a director, which carry certificates of an internal CA. Turning
//! verification off (`verify = false`) still requires a completed handshake with a valid signature
//! from the presented key, so "TLS is up" keeps its meaning. Unlike ldirectord (whose HTTPS check
//! never verifies hostnames, classic-tools.md §1.5) nothing is skipped silently.
//!
//! Configurations are built once per distinct `(verify, ca_file)` and shared; a CA file is read
//! when its configuration is first needed and again on [`TlsConfigs::reload`] (a daemon's SIGHUP,
//! through [`super::Prober::reload`]), never per check. A file that cannot be read on reload keeps
//! the certificates read before: a broken file put in place by mistake does not take every server
//! checked with it down. Not here: client certificates, revocation lists, pinning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::Down;

/// Debian's bundle of trusted roots (package `ca-certificates`), used when no `ca_file` is given.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What decides how a server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsKey {
    /// Verify chain and name.
    pub verify: bool,
    /// Trust only these roots instead of [`SYSTEM_ROOTS`].
    pub ca_file: Option<PathBuf>,
}

/// Built client configurations, one per [`TlsKey`].
#[derive(Default)]
pub struct TlsConfigs {
    built: Mutex<HashMap<TlsKey, Built>>,
}

/// A built configuration and the ALPN protocols it was built with (to build it again on reload).
struct Built {
    config: Arc<ClientConfig>,
    alpn: Vec<Vec<u8>>,
}

/// A CA file that could not be read again on [`TlsConfigs::reload`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (the certificates read from it before stay in use)")]
pub struct ReloadError {
    /// The file.
    pub ca_file: PathBuf,
    /// What is wrong with it, naming the file: `cannot read CA file /etc/ldir/ca.pem: …`.
    pub reason: String,
}

impl TlsConfigs {
    /// The configuration for `key`, built on first use. `alpn` is set on it (e.g. `http/1.1`).
    pub fn get(&self, key: &TlsKey, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, Down> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = built.get(key) {
            return Ok(b.config.clone());
        }
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = Arc::new(build(key, &alpn)?);
        built.insert(
            key.clone(),
            Built {
                config: config.clone(),
                alpn,
            },
        );
        Ok(config)
    }

    /// Reads the certificates of every configuration built so far again (each `ca_file`, and the
    /// system's roots), so that later [`get`](Self::get)s return configurations that trust what the
    /// files hold now. A `ca_file` that cannot be read or holds no certificate keeps its previous
    /// configuration and is returned as an error. Checks in flight finish with what they had.
    pub fn reload(&self) -> Vec<ReloadError> {
        let keys: Vec<(TlsKey, Vec<Vec<u8>>)> = self
            .built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| k.verify)
            .map(|(k, b)| (k.clone(), b.alpn.clone()))
            .collect();
        let mut errors = Vec::new();
        // Files are read without the lock held: checks go on meanwhile.
        for (key, alpn) in keys {
            match build(&key, &alpn) {
                Ok(config) => {
                    let config = Arc::new(config);
                    self.built
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, Built { config, alpn });
                }
                Err(Down(reason)) => errors.push(ReloadError {
                    ca_file: key.ca_file.unwrap_or_else(|| PathBuf::from(SYSTEM_ROOTS)),
                    reason,
                }),
            }
        }
        errors
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(key: &TlsKey, alpn: &[Vec<u8>]) -> Result<ClientConfig, Down> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Down(format!("tls setup: {e}")))?;
    let mut config = if key.verify {
        let roots = match &key.ca_file {
            Some(path) => load_roots(path)?,
            // Without the system bundle nothing is trusted: every verification fails, as it should.
            None => load_roots(Path::new(SYSTEM_ROOTS)).unwrap_or_else(|_| RootCertStore::empty()),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth()
    };
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

fn load_roots(path: &Path) -> Result<RootCertStore, Down> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| Down(format!("cannot read CA file {}: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| Down(format!("bad CA file {}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| Down(format!("bad CA certificate in {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(Down(format!(
            "no certificate in CA file {}",
            path.display()
        )));
    }
    Ok(roots)
}

/// Accepts any certificate, but still checks the handshake signatures made with its key.
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A rustls error as a one-line reason: `certificate expired`, `certificate not valid for name ...`.
pub fn reason(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::Expired) => "certificate expired".to_string(),
        Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "certificate expired".to_string()
        }
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate signed by an unknown issuer".to_string()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "certificate not valid for the server's name".to_string()
        }
        other => format!("tls: {other}"),
    }
}

/// Finds a rustls error in an error's source chain (reqwest and io errors wrap it, sometimes an
/// io error inside an io error, whose `source()` skips the wrapped error itself).
pub fn find_rustls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// TLS parameters of the non-HTTP kinds (pop3s, imaps, STARTTLS): the same meaning as `https`'.
#[derive(Debug, Clone, Copy)]
pub struct TlsParams<'a> {
    /// The name sent as SNI and required in the certificate; the target's address when absent.
    pub sni: Option<&'a str>,
    /// Verify the certificate (chain and name); on unless turned off.
    pub verify: bool,
    /// Trust only the CA certificates of this PEM file instead of [`SYSTEM_ROOTS`].
    pub ca_file: Option<&'a Path>,
}

/// Runs a TLS handshake over `stream` with `target` as the peer's address (checked against the
/// certificate when no SNI name is given). `configs` must be used for no ALPN but this (none).
pub async fn handshake<S>(
    configs: &TlsConfigs,
    p: TlsParams<'_>,
    target: std::net::IpAddr,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, Down>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let config = configs.get(
        &TlsKey {
            verify: p.verify,
            ca_file: p.ca_file.map(Path::to_path_buf),
        },
        &[],
    )?;
    let name = match p.sni {
        Some(n) => ServerName::try_from(n.to_string())
            .map_err(|e| Down(format!("bad TLS name {n:?}: {e}")))?,
        None => ServerName::IpAddress(target.into()),
    };
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| match find_rustls_error(&e) {
            Some(t) => Down(reason(t)),
            None => super::io_reason("tls handshake", &e),
        })
}

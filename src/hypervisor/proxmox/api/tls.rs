//! TLS for the Proxmox API client: certificate pinning by SHA-256, or the
//! platform verifier when nothing is pinned; never a blind accept.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::*;

/// The SHA-256 of a DER certificate as Proxmox shows it: `3A:5F:…`.
pub fn fingerprint_of(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// What our verifiers found wrong with a certificate; travels inside
/// `rustls::Error` up through reqwest's error chain.
#[derive(Debug)]
pub(super) enum CertProblem {
    Mismatch {
        presented: String,
    },
    Untrusted {
        presented: String,
        reason: String,
    },
    /// `fetch_fingerprint` stops every handshake here on purpose.
    Probed {
        presented: String,
    },
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mismatch { presented } => write!(f, "certificate {presented} does not match the pin"),
            Self::Untrusted { presented, reason } => write!(f, "certificate {presented} is not trusted: {reason}"),
            Self::Probed { presented } => write!(f, "certificate {presented} recorded"),
        }
    }
}

impl StdError for CertProblem {}

pub(super) fn cert_error(p: CertProblem) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(p))))
}

pub(super) fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// How the server certificate is judged.
#[derive(Debug)]
pub(super) enum Trust {
    /// Only this SHA-256 of the end-entity certificate is accepted.
    Pinned(Vec<u8>),
    /// The platform's normal verification.
    System(Arc<rustls_platform_verifier::Verifier>),
    /// Record the fingerprint and stop.
    Probe,
}

#[derive(Debug)]
pub(super) struct Verifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint_of(end_entity.as_ref());
        match &self.trust {
            Trust::Pinned(pin) => {
                if Sha256::digest(end_entity.as_ref()).as_slice() == pin.as_slice() {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(cert_error(CertProblem::Mismatch { presented }))
                }
            }
            Trust::System(inner) => inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| cert_error(CertProblem::Untrusted { presented, reason: why_untrusted(&e) })),
            Trust::Probe => Err(cert_error(CertProblem::Probed { presented })),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match &self.trust {
            Trust::System(inner) => inner.verify_tls12_signature(message, cert, dss),
            _ => rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            ),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match &self.trust {
            Trust::System(inner) => inner.verify_tls13_signature(message, cert, dss),
            _ => rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            ),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match &self.trust {
            Trust::System(inner) => inner.supported_verify_schemes(),
            _ => self.provider.signature_verification_algorithms.supported_schemes(),
        }
    }
}

/// Plain words for why normal verification refused a certificate.
pub(super) fn why_untrusted(err: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert) = err else {
        return err.to_string();
    };
    match cert {
        CertificateError::UnknownIssuer => "it is not signed by a known certificate authority".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it is not issued for this host name".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "it has expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "it is not valid yet".into(),
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::Other(rustls::OtherError(e)) => match e.to_string().as_str() {
            "CaUsedAsEndEntity" => "it is a self-signed certificate, not one issued by a known authority".into(),
            other => format!("the certificate was refused: {other}"),
        },
        other => format!("the certificate was refused: {other:?}"),
    }
}

pub(super) fn build_client(
    address: &str,
    trust: Option<&TlsFingerprint>,
    probe: bool,
    headers: HeaderMap,
    timeout: Duration,
) -> Result<reqwest::Client, ApiError> {
    let setup = |reason: String| ApiError::Setup { address: address.to_string(), reason };
    let provider = provider();
    let trust = if probe {
        Trust::Probe
    } else if let Some(fp) = trust {
        Trust::Pinned(fp.bytes())
    } else {
        let v = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| setup(e.to_string()))?;
        Trust::System(Arc::new(v))
    };
    let verifier = Arc::new(Verifier { trust, provider: provider.clone() });
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .default_headers(headers)
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .user_agent(concat!("drswitch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| setup(e.to_string()))
}

/// Walks an error chain, looking inside `io::Error`s too (their `source()`
/// skips the wrapped error).
pub(super) fn cert_problem(err: &reqwest::Error) -> Option<&CertProblem> {
    let tls = find_in_chain::<rustls::Error>(err)?;
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(e))) => e.downcast_ref(),
        _ => None,
    }
}

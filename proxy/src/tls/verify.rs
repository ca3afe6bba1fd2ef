//! How an upstream's certificate is checked: the chain against the CA
//! certificates (else the webpki roots) and revocation lists, the name
//! against `subjectAltNames` (any of them) or else the SNI name; or not at
//! all with `insecureSkipVerify`, though handshake signatures still are.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use sluice_api::istio::destination_rule::ClientTlsSettings;

use super::{certificates, revocation_lists};

/// The verifier the settings ask for; an error says which field is wrong.
pub fn server_verifier(
    settings: &ClientTlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    if settings.insecure_skip_verify == Some(true) {
        return Ok(Arc::new(SkipVerify {
            algorithms: provider.signature_verification_algorithms,
        }));
    }
    let roots = match &settings.ca_certificates {
        Some(path) => {
            let mut store = RootCertStore::empty();
            for cert in certificates(path, "caCertificates")? {
                store
                    .add(cert)
                    .map_err(|e| format!("caCertificates {path}: {e}"))?;
            }
            store
        }
        None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    };
    let mut builder =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(path) = &settings.ca_crl {
        builder = builder.with_crls(revocation_lists(path)?);
    }
    let webpki = builder.build().map_err(|e| e.to_string())?;
    if settings.subject_alt_names.is_empty() {
        return Ok(webpki);
    }
    let names = settings
        .subject_alt_names
        .iter()
        .map(|n| {
            ServerName::try_from(n.clone()).map_err(|_| {
                format!(
                    "subjectAltNames entry {n:?} is neither a DNS name nor an IP address \
                     (URI names such as SPIFFE IDs are not supported)"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(SubjectAltNames {
        inner: webpki,
        names,
    }))
}

/// Accepts a chain valid for any of the listed names, whatever the SNI.
#[derive(Debug)]
struct SubjectAltNames {
    inner: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
}

impl ServerCertVerifier for SubjectAltNames {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let mut last = Error::General("no subjectAltNames to verify against".into());
        for name in &self.names {
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            {
                Ok(verified) => return Ok(verified),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecureSkipVerify`: any certificate, but a real handshake.
#[derive(Debug)]
struct SkipVerify {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

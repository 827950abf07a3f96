//! `TARGET_CA_FILE`: CA certificates trusted for an https relay besides the
//! Web PKI roots, for a relay behind a private CA (cert-manager in the
//! cluster). Read once at start-up: a file that cannot be used stops the
//! proxy with a configuration error, rather than every request failing later.

use std::path::Path;

use cmw_contract::settings::TARGET_CA_FILE;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::{Config, ConfigError};

/// The file's CA certificates as roots; none when `TARGET_CA_FILE` is unset.
pub fn read_at_start(config: &Config) -> Result<RootCertStore, ConfigError> {
    match &config.target_ca_file {
        None => Ok(RootCertStore::empty()),
        Some(path) => read_roots(path),
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, ConfigError> {
    let invalid = |reason: String| ConfigError {
        variable: TARGET_CA_FILE.env,
        reason,
    };
    let pem =
        std::fs::read(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    parse_roots(&pem).map_err(|why| invalid(format!("{} {why}", path.display())))
}

/// Every `CERTIFICATE` section of `pem` as a root. Other sections (a key
/// kept in the same file) are passed over; a certificate that cannot be a
/// trust anchor is an error, not skipped, so a broken file is seen at once.
fn parse_roots(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for (index, certificate) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let certificate = certificate.map_err(|e| format!("is not valid PEM: {e}"))?;
        roots.add(certificate).map_err(|error| {
            // Not rustls's own text: it calls every certificate the peer's.
            let why = match error {
                rustls::Error::InvalidCertificate(why) => why.to_string(),
                other => other.to_string(),
            };
            format!(
                "holds a certificate (number {}) that cannot be a CA: {why}",
                index + 1
            )
        })?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string());
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 CA (`openssl req -x509 … -addext basicConstraints=critical,CA:TRUE`).
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIUKyQuJib8PuMAs6plhAEO0t3znYIwCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZY2xhdWRlLW1pZGRsZXdhcmUgdGVzdCBDQTAgFw0yNjEyMDMx
MzQ5NTRaGA8yMTI2MTEwOTEzNDk1NFowJDEiMCAGA1UEAwwZY2xhdWRlLW1pZGRs
ZXdhcmUgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFTihVwrHNcy
YgMtEv/1F/N/ztmKVHnn9OEjhHefKfGWB/98aTwOeCh+75aVcO15EcvYR5yLawe4
7XQm+xDTykqjUzBRMB0GA1UdDgQWBBTHz42F9cazNCJuk+A+w2HpSFrA1zAfBgNV
HSMEGDAWgBTHz42F9cazNCJuk+A+w2HpSFrA1zAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0gAMEUCIBwqIJ+sfnGkRSyUZafizjegK0BN81uGTkGUyTUSEA8X
AiEAv6sLL7IPbh12sADQaVZnThEoZXBc5mnjBkkldFPdOTk=
-----END CERTIFICATE-----
";

    /// A PEM section that is no certificate (its body is not even DER).
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n";

    #[test]
    fn every_certificate_becomes_a_root_and_other_sections_are_passed_over() {
        let bundle = format!("# relay CA\n{CA}{KEY}{CA}");
        assert_eq!(parse_roots(CA.as_bytes()).map(|r| r.len()), Ok(1));
        assert_eq!(parse_roots(bundle.as_bytes()).map(|r| r.len()), Ok(2));
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        for text in ["", "not pem at all\n", KEY] {
            let error = parse_roots(text.as_bytes()).map(|r| r.len()).unwrap_err();
            assert!(
                error.contains("holds no PEM certificate"),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn broken_pem_and_a_certificate_that_is_no_ca_are_refused() {
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let error = parse_roots(bad_base64.as_bytes())
            .map(|r| r.len())
            .unwrap_err();
        assert!(error.starts_with("is not valid PEM"), "{error}");

        let unterminated = CA.replace("-----END CERTIFICATE-----\n", "");
        let error = parse_roots(unterminated.as_bytes())
            .map(|r| r.len())
            .unwrap_err();
        assert!(error.starts_with("is not valid PEM"), "{error}");

        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let error = parse_roots(format!("{CA}{not_der}").as_bytes())
            .map(|r| r.len())
            .unwrap_err();
        assert!(error.contains("(number 2) that cannot be a CA"), "{error}");
        assert!(!error.contains("peer"), "the file is no peer: {error}");
    }

    #[test]
    fn errors_name_the_variable_and_the_file() {
        let missing = Path::new("/nonexistent/relay-ca.crt");
        let error = read_roots(missing).map(|r| r.len()).unwrap_err();
        assert_eq!(error.variable, "TARGET_CA_FILE");
        assert!(
            error
                .to_string()
                .contains("cannot read /nonexistent/relay-ca.crt"),
            "{error}"
        );
    }
}

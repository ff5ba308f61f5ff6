//! TLS for the HTTP edge: the rustls server configuration, from a PEM certificate and key or from
//! a self-signed development certificate made (once) in `<data_dir>/tls/`.
//!
//! warp 0.4 has no TLS of its own; [`crate::http::serve`] does the handshake with the
//! configuration built here. Only the ring crypto provider is compiled in: the default features
//! of rustls and its neighbours would add aws-lc-rs, and with two providers rustls cannot choose.
//!
//! The self-signed certificate names `localhost`, `127.0.0.1`, `::1` and the listen address (for
//! an unspecified one such as `0.0.0.0`, the address this machine reaches its network with), so a
//! development server on a LAN address is reachable over HTTPS: browsers then give the web client
//! a secure context, which camera and microphone access need. It is kept beside a small record of
//! the names and expiry, and made again only when a new name is needed or it nears expiry.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Utc};
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// The folder under the data directory that holds the self-signed certificate.
pub const SELF_SIGNED_DIR: &str = "tls";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
/// What the self-signed certificate was made for; see [`SelfSignedRecord`].
const RECORD_FILE: &str = "self-signed.json";

/// Apple platforms refuse server certificates valid for longer than 825 days, even trusted ones.
const SELF_SIGNED_DAYS: u64 = 825;
/// A certificate this close to expiry is replaced at start rather than left to lapse mid-run.
const RENEW_DAYS_BEFORE: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_cert and tls_key must be given together: {missing} is not set")]
    Incomplete { missing: &'static str },
    #[error("tls_self_signed cannot be combined with tls_cert and tls_key: choose one")]
    Conflict,
    #[error("the TLS {what} file {} does not exist", path.display())]
    Missing { what: &'static str, path: PathBuf },
    #[error("cannot read the TLS {what} file {}: {source}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS {what} file {} is not usable PEM: {reason}", path.display())]
    Invalid {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the TLS certificate and key were refused: {0}")]
    Rejected(#[source] rustls::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Makes ring the process-wide rustls provider. Idempotent: a provider installed earlier (by us
/// or by a test) stays, which is fine because ring is the only one compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS configuration `settings` ask for, or `None` for plain HTTP.
pub fn from_settings(settings: &Settings) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    match (
        &settings.tls_cert,
        &settings.tls_key,
        settings.tls_self_signed,
    ) {
        (None, None, false) => Ok(None),
        (Some(_), _, true) | (_, Some(_), true) => Err(TlsError::Conflict),
        (Some(_), None, false) => Err(TlsError::Incomplete { missing: "tls_key" }),
        (None, Some(_), false) => Err(TlsError::Incomplete {
            missing: "tls_cert",
        }),
        (Some(cert), Some(key), false) => {
            tracing::info!(certificate = %cert.display(), "serving HTTPS");
            load(cert, key).map(Some)
        }
        (None, None, true) => self_signed(
            &settings.data_dir.join(SELF_SIGNED_DIR),
            settings.listen.ip(),
        )
        .map(Some),
    }
}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(read_certs(cert)?, read_key(key)?)
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    install_crypto_provider();
    // Named explicitly rather than taken from the process default, so a provider some other
    // crate installed can never change what this server negotiates.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rejected)?
        .with_no_client_auth()
        // Also checks that the key belongs to the certificate.
        .with_single_cert(certs, key)
        .map_err(TlsError::Rejected)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads a whole file, telling a missing file apart from other failures.
fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            TlsError::Missing {
                what,
                path: path.to_path_buf(),
            }
        } else {
            TlsError::Unreadable {
                what,
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |reason: String| TlsError::Invalid {
        what: "certificate",
        path: path.to_path_buf(),
        reason,
    };
    let text = read_file(path, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("it holds no CERTIFICATE section".to_string()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read_file(path, "key")?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| TlsError::Invalid {
        what: "key",
        path: path.to_path_buf(),
        reason: match e {
            pem::Error::NoItemsFound => "it holds no PRIVATE KEY section".to_string(),
            other => other.to_string(),
        },
    })
}

/// What a self-signed certificate in `<data_dir>/tls/` was made for, so a start can tell whether
/// it still fits without parsing X.509.
#[derive(Debug, Serialize, Deserialize)]
struct SelfSignedRecord {
    names: Vec<String>,
    not_after: NaiveDate,
}

/// The self-signed certificate in `dir`, made (or made again) when missing, expiring, or lacking
/// a name that serving on `listen` needs; otherwise the same one as last time, so a browser that
/// was told to trust it keeps doing so.
pub fn self_signed(dir: &Path, listen: IpAddr) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let record_path = dir.join(RECORD_FILE);
    let mut names = self_signed_names(listen);
    let today = Utc::now().date_naive();

    if cert_path.exists() && key_path.exists() {
        // Without a record (files put there by hand, say) the pair is taken as it is.
        let record = std::fs::read(&record_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SelfSignedRecord>(&bytes).ok());
        let stale = record.as_ref().and_then(|record| {
            let renew_from = record.not_after - chrono::Days::new(RENEW_DAYS_BEFORE);
            if today >= renew_from {
                Some("it is about to expire")
            } else if names.iter().any(|n| !record.names.contains(n)) {
                Some("the listen address is not among its names")
            } else {
                None
            }
        });
        match (stale, record) {
            (Some(reason), Some(record)) => {
                tracing::info!(reason, "making a new self-signed TLS certificate");
                // Keep the old names too, so moving between two addresses does not churn.
                for name in record.names {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            _ => {
                tracing::info!(certificate = %cert_path.display(), "serving HTTPS with the self-signed certificate made earlier");
                return load(&cert_path, &key_path);
            }
        }
    }

    let not_before = today - chrono::Days::new(1);
    let not_after = not_before + chrono::Days::new(SELF_SIGNED_DAYS);
    let mut params = rcgen::CertificateParams::new(names.clone())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "telehealth development server");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    // Month and day always fit a u8.
    let date = |d: NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = date(not_before);
    params.not_after = date(not_after);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;

    // Inside the data directory, which this may be the first to create: owner-only, like it.
    crate::storage::create_private_dir(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&cert_path, cert.pem().as_bytes(), false)?;
    let record = SelfSignedRecord {
        names: names.clone(),
        not_after,
    };
    // The record only saves work on the next start; the certificate is usable without it.
    let record = serde_json::to_vec_pretty(&record).unwrap_or_default();
    write_file(&record_path, &record, false)?;
    tracing::info!(
        certificate = %cert_path.display(),
        names = ?names,
        "serving HTTPS with a new self-signed certificate; browsers warn until it is trusted"
    );
    server_config(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

/// `localhost` and the loopback addresses, then the address a browser on the network would use.
fn self_signed_names(listen: IpAddr) -> Vec<String> {
    let mut names: Vec<String> = vec![
        "localhost".into(),
        Ipv4Addr::LOCALHOST.to_string(),
        Ipv6Addr::LOCALHOST.to_string(),
    ];
    let reachable = if listen.is_unspecified() {
        outbound_address(listen)
    } else {
        Some(listen)
    };
    if let Some(ip) = reachable.map(|ip| ip.to_string())
        && !names.contains(&ip)
    {
        names.push(ip);
    }
    names
}

/// The local address this machine would send from to reach the network, found by "connecting"
/// a UDP socket (which only consults the routing table; nothing is sent). `None` offline.
fn outbound_address(unspecified: IpAddr) -> Option<IpAddr> {
    // Documentation-range destinations: routed by the default route, never actually contacted.
    let (bind, probe): (SocketAddr, SocketAddr) = match unspecified {
        IpAddr::V4(_) => (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
        ),
        IpAddr::V6(_) => (
            (Ipv6Addr::UNSPECIFIED, 0).into(),
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9).into(),
        ),
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key behind; a
/// `private` file is readable by its owner only.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    // A leftover temporary file would keep its old permissions: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_loopback_and_listen_address() {
        let names = self_signed_names("192.168.1.20".parse().expect("literal"));
        assert_eq!(names, ["localhost", "127.0.0.1", "::1", "192.168.1.20"]);
        let names = self_signed_names("127.0.0.1".parse().expect("literal"));
        assert_eq!(names, ["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn a_new_listen_address_remakes_the_certificate_keeping_old_names() {
        let dir = tempfile::tempdir().expect("temporary folder");
        self_signed(dir.path(), "10.0.0.5".parse().expect("literal")).expect("first");
        let first = std::fs::read(dir.path().join(CERT_FILE)).expect("cert written");
        self_signed(dir.path(), "10.0.0.5".parse().expect("literal")).expect("same");
        assert_eq!(
            first,
            std::fs::read(dir.path().join(CERT_FILE)).expect("cert")
        );
        self_signed(dir.path(), "10.0.0.6".parse().expect("literal")).expect("moved");
        assert_ne!(
            first,
            std::fs::read(dir.path().join(CERT_FILE)).expect("cert")
        );
        let record: SelfSignedRecord =
            serde_json::from_slice(&std::fs::read(dir.path().join(RECORD_FILE)).expect("record"))
                .expect("record parses");
        assert!(record.names.contains(&"10.0.0.5".to_string()));
        assert!(record.names.contains(&"10.0.0.6".to_string()));
    }
}

//! TLS: the server's certificate and key, the cipher list, and which channels
//! must (or must not) come over TLS.
//!
//! TLS runs on `rustls` with the `ring` provider: TLS 1.2 and 1.3, ECDHE key
//! exchange, AES-GCM and ChaCha20-Poly1305. What the C server's OpenSSL
//! options ask for beyond that is refused with [`TlsError`] (an OpenSSL
//! cipher list that selects none of these suites, a key encrypted in the
//! traditional OpenSSL form) or, for DH parameters, accepted unused: they
//! only serve finite-field DHE suites, which rustls does not offer, and every
//! suite it offers has forward secrecy through ECDHE.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::CipherSuite;

/// Largest certificate, key or CA file read (a chain of a few certificates
/// is a few KiB).
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Why a TLS setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A file is larger than any certificate or key file.
    #[error("{0} is larger than 1 MiB; not a certificate or key file")]
    TooLarge(PathBuf),
    /// No PEM certificate where one was expected.
    #[error("no PEM certificate in {0}")]
    NoCertificate(String),
    /// No PEM private key where one was expected.
    #[error("no PEM private key in {0}")]
    NoKey(String),
    /// PEM that does not parse.
    #[error("malformed PEM in {what}: {reason}")]
    Pem {
        /// Which input.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// An encrypted key and no password.
    #[error("the private key is encrypted and no password was given")]
    NeedPassword,
    /// The password does not open the key (or its cipher is unsupported).
    #[error("cannot decrypt the private key (wrong password, or an unsupported PKCS#8 cipher): {0}")]
    Decrypt(String),
    /// A key encrypted with OpenSSL's traditional PEM encryption.
    #[error(
        "the private key uses OpenSSL's traditional PEM encryption (Proc-Type: 4,ENCRYPTED), which is not \
         supported; convert it to encrypted PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
    )]
    TraditionalEncryption,
    /// DH parameters that do not parse.
    #[error("no PEM DH parameters in {0}")]
    NoDhParams(String),
    /// A cipher list that leaves no cipher suite rustls offers.
    #[error("cipher list {0:?} selects no cipher suite this server offers (ECDHE with AES-GCM or ChaCha20-Poly1305)")]
    NoCipherSuite(String),
    /// Certificate and key rejected by rustls (for instance, they do not match).
    #[error("certificate or key refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// A channel name `spice_server_set_channel_security` does not know.
    #[error("unknown channel name {0:?}")]
    UnknownChannel(String),
}

/// The TLS side of the server: certificate chain and key, cipher suites.
/// Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// The files of the C API's `spice_server_set_tls` (QEMU's `x509-dir`:
/// `ca-cert.pem`, `server-cert.pem`, `server-key.pem`).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 RSA, SEC1 EC, or
    /// encrypted PKCS#8 with [`Self::key_password`]).
    pub key: PathBuf,
    /// Password of an encrypted key.
    pub key_password: Option<String>,
    /// CA certificates. As with the C server, clients are not asked for
    /// certificates; the file must hold at least one certificate.
    pub ca: Option<PathBuf>,
    /// DH parameters (PEM). Checked, then unused: rustls offers no
    /// finite-field DHE suites.
    pub dh_params: Option<PathBuf>,
    /// An OpenSSL cipher list (TLS 1.2 suites; TLS 1.3 suites are always
    /// offered, as OpenSSL's `SSL_CTX_set_cipher_list` leaves them).
    pub ciphers: Option<String>,
}

impl TlsFiles {
    /// Reads and checks every file and builds the configuration.
    pub fn load(&self) -> Result<TlsConfig, TlsError> {
        let cert = read_file(&self.cert)?;
        let key = read_file(&self.key)?;
        if let Some(ca) = &self.ca {
            let pem = read_file(ca)?;
            parse_certs(&pem, &ca.display().to_string())?;
        }
        if let Some(dh) = &self.dh_params {
            let pem = read_file(dh)?;
            let is_dh = pkcs8::der::pem::decode_label(&pem).is_ok_and(|label| label == "DH PARAMETERS");
            if !is_dh {
                return Err(TlsError::NoDhParams(dh.display().to_string()));
            }
            tracing::warn!(
                file = %dh.display(),
                "DH parameters are not used: rustls offers only ECDHE key exchange"
            );
        }
        TlsConfig::build(
            &parse_certs(&cert, &self.cert.display().to_string())?,
            parse_key(
                &key,
                &self.key.display().to_string(),
                self.key_password.as_deref(),
            )?,
            self.ciphers.as_deref(),
        )
    }
}

impl TlsConfig {
    /// A configuration from a PEM certificate chain (leaf first) and a PEM
    /// private key, with every cipher suite rustls offers.
    pub fn from_pem(cert_chain: &[u8], key: &[u8], key_password: Option<&str>) -> Result<Self, TlsError> {
        Self::build(
            &parse_certs(cert_chain, "the certificate")?,
            parse_key(key, "the private key", key_password)?,
            None,
        )
    }

    /// [`Self::from_pem`] with the PEM read from files.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        TlsFiles {
            cert: cert.as_ref().to_owned(),
            key: key.as_ref().to_owned(),
            ..TlsFiles::default()
        }
        .load()
    }

    fn build(
        certs: &[CertificateDer<'static>],
        key: PrivateKeyDer<'static>,
        ciphers: Option<&str>,
    ) -> Result<Self, TlsError> {
        let mut provider = provider::default_provider();
        if let Some(list) = ciphers.filter(|l| !l.trim().is_empty()) {
            provider.cipher_suites = select_suites(list, &provider.cipher_suites)?;
        }
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(certs.to_vec(), key)?;
        Ok(Self {
            server: Arc::new(server),
        })
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut data = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if data.len() as u64 > MAX_PEM_FILE {
        return Err(TlsError::TooLarge(path.to_owned()));
    }
    Ok(data)
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.to_owned()));
    }
    Ok(certs)
}

const ENCRYPTED_PKCS8: &str = "ENCRYPTED PRIVATE KEY";

fn parse_key(pem: &[u8], what: &str, password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::TraditionalEncryption);
    }
    if let Some(start) = text.find(&format!("-----BEGIN {ENCRYPTED_PKCS8}-----")) {
        let Some(password) = password else {
            return Err(TlsError::NeedPassword);
        };
        let end_marker = format!("-----END {ENCRYPTED_PKCS8}-----");
        let Some(end) = text[start..].find(&end_marker) else {
            return Err(TlsError::Pem {
                what: what.to_owned(),
                reason: "unterminated encrypted key".into(),
            });
        };
        let block = &text[start..start + end + end_marker.len()];
        let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| TlsError::Decrypt(e.to_string()))?;
        let plain = info
            .decrypt(password.as_bytes())
            .map_err(|e| TlsError::Decrypt(e.to_string()))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey(what.to_owned()),
        e => TlsError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        },
    })
}

/// OpenSSL's name for a TLS 1.2 suite rustls offers.
fn openssl_name(suite: CipherSuite) -> Option<&'static str> {
    Some(match suite {
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => return None,
    })
}

/// Whether one OpenSSL cipher-list term (a name, an alias, or aliases joined
/// by `+`) names the suite called `name`; `None` for a term this mapping does
/// not know.
fn term_matches(term: &str, name: &str) -> Option<bool> {
    let mut all = true;
    for part in term.split('+') {
        let hit = match part {
            "ALL" | "DEFAULT" | "HIGH" | "SECURE" | "TLSv1.2" | "EECDH" | "kEECDH" | "ECDHE" | "kECDHE"
            | "ECDH" | "kECDH" | "AEAD" | "FIPS" => true,
            "aRSA" | "RSA" => name.contains("-RSA-"),
            "aECDSA" | "ECDSA" => name.contains("-ECDSA-"),
            "AESGCM" => name.contains("GCM"),
            "AES" => name.contains("AES"),
            "AES128" | "AES256" | "CHACHA20" | "SHA256" | "SHA384" => name.contains(part),
            // Ciphers, digests and key exchanges rustls has none of.
            "aNULL"
            | "eNULL"
            | "NULL"
            | "COMPLEMENTOFALL"
            | "COMPLEMENTOFDEFAULT"
            | "EXPORT"
            | "EXP"
            | "LOW"
            | "MEDIUM"
            | "RC4"
            | "MD5"
            | "DES"
            | "3DES"
            | "IDEA"
            | "SEED"
            | "CAMELLIA"
            | "ARIA"
            | "PSK"
            | "SRP"
            | "DSS"
            | "aDSS"
            | "DH"
            | "EDH"
            | "DHE"
            | "kDHE"
            | "kEDH"
            | "kRSA"
            | "ADH"
            | "AECDH"
            | "SHA1"
            | "SHA"
            | "SSLv3"
            | "TLSv1"
            | "TLSv1.0"
            | "CBC"
            | "AESCCM"
            | "AESCCM8" => false,
            p if p == name => true,
            p if p
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
                && p.contains('-') =>
            {
                // Another full suite name (a CBC suite, a DHE suite): none of ours.
                false
            }
            _ => return None,
        };
        all &= hit;
    }
    Some(all)
}

/// The suites an OpenSSL cipher list leaves: TLS 1.3 suites always (the
/// list only governs TLS 1.2 and older, as in OpenSSL), TLS 1.2 suites as
/// the list adds (`name`, `+`-joined aliases) and removes (`!`, `-`) them.
fn select_suites(
    list: &str,
    offered: &[rustls::SupportedCipherSuite],
) -> Result<Vec<rustls::SupportedCipherSuite>, TlsError> {
    let tls12: Vec<(rustls::SupportedCipherSuite, &'static str)> = offered
        .iter()
        .filter_map(|s| openssl_name(s.suite()).map(|n| (*s, n)))
        .collect();
    let mut chosen: Vec<bool> = vec![false; tls12.len()];
    let mut banned: Vec<bool> = vec![false; tls12.len()];
    for token in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if token.starts_with('@') {
            continue; // @STRENGTH, @SECLEVEL=n: ordering and levels.
        }
        let (op, term) = match token.as_bytes()[0] {
            b'!' | b'-' | b'+' => (token.as_bytes()[0], &token[1..]),
            _ => (b' ', token),
        };
        let mut known = true;
        for (i, (_, name)) in tls12.iter().enumerate() {
            match term_matches(term, name) {
                None => known = false,
                Some(false) => {}
                Some(true) => match op {
                    b'!' => banned[i] = true,
                    b'-' => chosen[i] = false,
                    b'+' => {}
                    _ => chosen[i] = true,
                },
            }
        }
        if !known {
            tracing::warn!(term = token, "cipher list term not known to this server; ignored");
        }
    }
    let mut suites: Vec<_> = offered.iter().filter(|s| s.tls13().is_some()).copied().collect();
    let before = suites.len();
    for (i, (suite, _)) in tls12.iter().enumerate() {
        if chosen[i] && !banned[i] {
            suites.push(*suite);
        }
    }
    if suites.len() == before {
        return Err(TlsError::NoCipherSuite(list.to_owned()));
    }
    Ok(suites)
}

/// Which transports a channel accepts (`SPICE_CHANNEL_SECURITY_*` bits:
/// `NONE` = 1 for plain TCP, `SSL` = 2 for TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security(u32);

impl Security {
    /// Plain TCP only (`SPICE_CHANNEL_SECURITY_NONE`).
    pub const PLAIN: Self = Self(1);
    /// TLS only (`SPICE_CHANNEL_SECURITY_SSL`).
    pub const TLS: Self = Self(2);
    /// Either (the default).
    pub const ANY: Self = Self(3);

    /// From the C API's bits; other bits are ignored.
    pub fn from_bits(bits: u32) -> Self {
        Self(bits & 3)
    }

    /// The C API's bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether a link over TLS (`true`) or plain TCP is accepted.
    pub fn allows(self, tls: bool) -> bool {
        self.0 & if tls { 2 } else { 1 } != 0
    }
}

/// Per-channel-type [`Security`], with a default for the rest
/// (`spice_server_set_channel_security`; QEMU's `tls-channel=` and
/// `plaintext-channel=`).
#[derive(Debug, Clone)]
pub struct SecurityPolicy {
    default: Security,
    channels: BTreeMap<u8, Security>,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        Self {
            default: Security::ANY,
            channels: BTreeMap::new(),
        }
    }
}

/// Channel names as `spice_server_set_channel_security` takes them.
const CHANNEL_NAMES: [(&str, u8); 10] = [
    ("main", 1),
    ("display", 2),
    ("inputs", 3),
    ("cursor", 4),
    ("playback", 5),
    ("record", 6),
    ("smartcard", 8),
    ("usbredir", 9),
    ("port", 10),
    ("webdav", 11),
];

impl SecurityPolicy {
    /// Sets the default for channels without their own setting.
    pub fn set_default(&mut self, security: Security) {
        self.default = security;
    }

    /// Sets one channel type's security (`SPICE_CHANNEL_*`).
    pub fn set(&mut self, channel_type: u8, security: Security) {
        self.channels.insert(channel_type, security);
    }

    /// Sets one channel's security by name (`main`, `display`, `inputs`,
    /// `cursor`, `playback`, `record`, `smartcard`, `usbredir`, `port`,
    /// `webdav`).
    pub fn set_named(&mut self, name: &str, security: Security) -> Result<(), TlsError> {
        let Some(&(_, channel_type)) = CHANNEL_NAMES.iter().find(|(n, _)| *n == name) else {
            return Err(TlsError::UnknownChannel(name.to_owned()));
        };
        self.set(channel_type, security);
        Ok(())
    }

    /// What a channel type accepts.
    pub fn for_channel(&self, channel_type: u8) -> Security {
        self.channels.get(&channel_type).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(suites: &[rustls::SupportedCipherSuite]) -> Vec<String> {
        suites.iter().map(|s| format!("{:?}", s.suite())).collect()
    }

    #[test]
    fn cipher_lists_map_onto_rustls_suites() {
        let offered = provider::default_provider().cipher_suites;
        let tls13 = offered.iter().filter(|s| s.tls13().is_some()).count();
        let all = select_suites("HIGH:!aNULL:!MD5", &offered).unwrap();
        assert_eq!(all.len(), offered.len());
        let one = select_suites("ECDHE-RSA-AES256-GCM-SHA384", &offered).unwrap();
        assert_eq!(one.len(), tls13 + 1);
        assert!(names(&one)
            .iter()
            .any(|n| n.contains("ECDHE_RSA_WITH_AES_256_GCM")));
        let no_chacha = select_suites("DEFAULT:!CHACHA20", &offered).unwrap();
        assert!(!names(&no_chacha)
            .iter()
            .any(|n| n.starts_with("TLS_ECDHE") && n.contains("CHACHA")));
        let plus = select_suites("EECDH+AESGCM", &offered).unwrap();
        assert_eq!(plus.len(), tls13 + 4);
        assert!(matches!(
            select_suites("RC4-SHA:DES-CBC3-SHA", &offered),
            Err(TlsError::NoCipherSuite(_))
        ));
        assert!(matches!(
            select_suites("nonsense", &offered),
            Err(TlsError::NoCipherSuite(_))
        ));
    }

    #[test]
    fn security_policy_defaults_and_names() {
        let mut p = SecurityPolicy::default();
        assert!(p.for_channel(2).allows(false) && p.for_channel(2).allows(true));
        p.set_named("display", Security::TLS).unwrap();
        assert!(!p.for_channel(2).allows(false));
        assert!(p.for_channel(2).allows(true));
        p.set_default(Security::PLAIN);
        assert!(!p.for_channel(1).allows(true));
        assert!(p.set_named("nope", Security::TLS).is_err());
    }

    #[test]
    fn keys_that_are_not_there_or_traditionally_encrypted_are_refused() {
        assert!(matches!(parse_key(b"", "k", None), Err(TlsError::NoKey(_))));
        let traditional = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            parse_key(traditional, "k", Some("x")),
            Err(TlsError::TraditionalEncryption)
        ));
        let encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            parse_key(encrypted, "k", None),
            Err(TlsError::NeedPassword)
        ));
        assert!(parse_key(encrypted, "k", Some("x")).is_err());
    }
}

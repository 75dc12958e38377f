//! Issuing certificates with rcgen: a CA, a broker's server certificate, a
//! user's client certificate; and reading back what the plan needs (issuer
//! generation, expiry, names) with x509-parser. Not pure: keys are random.

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::plan::Leaf;

/// Certificates start this long before they are issued: clocks of the pods
/// that check them may lag the operator's.
const BACKDATE: SignedDuration = SignedDuration::from_mins(5);

/// Why a certificate could not be issued or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
    #[error("cannot read a certificate: {0}")]
    Read(String),
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

// Never print a key.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The common name of generation `generation` of the CA called `name`
/// (`demo-cluster-ca`): the generation is read back from it.
pub fn ca_common_name(name: &str, generation: u32) -> String {
    format!("{name} v{generation}")
}

/// A new CA key and self-signed certificate.
pub fn new_ca(name: &str, generation: u32, now: Timestamp, validity: SignedDuration) -> Result<Issued, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&ca_common_name(name, generation));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = datetime(now - BACKDATE)?;
    params.not_after = datetime(now + validity)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What a leaf is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// A broker: serves TLS under these DNS names and authenticates to its peers.
    Broker { dns_names: Vec<String> },
    /// A user (or the operator): authenticates as a client.
    Client,
}

/// A leaf signed by `ca`, never valid beyond the CA itself.
pub fn issue(
    ca: &Issued,
    common_name: &str,
    usage: &Usage,
    now: Timestamp,
    validity: SignedDuration,
) -> Result<Issued, CertError> {
    let ca_not_after = read(&ca.cert_pem)?.not_after;
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let mut params = CertificateParams::default();
    // The subject alone, so the Kafka principal is `User:CN=<name>`.
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    match usage {
        Usage::Broker { dns_names } => {
            params.subject_alt_names = dns_names
                .iter()
                .map(|n| n.clone().try_into().map(SanType::DnsName))
                .collect::<Result<_, _>>()?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        }
        Usage::Client => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
    }
    params.not_before = datetime(now - BACKDATE)?;
    params.not_after = datetime((now + validity).min(ca_not_after))?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What the plan reads of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub subject: String,
    pub not_after: Timestamp,
    pub dns_names: Vec<String>,
}

impl Read {
    /// The leaf as the plan sees it, given the generation of the CA that
    /// signed it (0: none held) and the names it should carry.
    pub fn leaf(&self, issuer: u32, dns_names: &[String]) -> Leaf {
        let mut want = dns_names.to_vec();
        let mut have = self.dns_names.clone();
        want.sort();
        have.sort();
        Leaf {
            issuer,
            not_after: self.not_after,
            names_match: want == have,
        }
    }
}

/// Whether the first certificate of `leaf_pem` carries a signature of the
/// first certificate of `ca_pem`'s key: which CA issued a leaf, whatever the
/// CAs are called (a CA the user brings, or two generations of one subject).
pub fn signed_by(leaf_pem: &str, ca_pem: &str) -> bool {
    let parse = |text: &str| x509_parser::pem::parse_x509_pem(text.as_bytes()).ok().map(|(_, p)| p);
    let (Some(leaf), Some(ca)) = (parse(leaf_pem), parse(ca_pem)) else {
        return false;
    };
    let (Ok(leaf), Ok(ca)) = (leaf.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// A CA the user brings: a CA certificate (the first of `cert_pem`, which may
/// go on with the chain above it) whose key is `key_pem` (PKCS#8). The error
/// says what is wrong, never the key.
pub fn check_ca(ca: &Issued) -> Result<(), CertError> {
    let bad = |e: String| CertError::Read(e);
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes())
        .map_err(|e| bad(format!("the certificate is not PEM: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| bad(format!("the certificate does not parse: {e}")))?;
    if !cert.is_ca() {
        return Err(bad("the certificate is not a CA's (basicConstraints CA:TRUE)".into()));
    }
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|_| {
        bad("the key is not a PKCS#8 PEM private key rcgen can sign with (RSA, ECDSA P-256/P-384, Ed25519)".into())
    })?;
    if key.public_key_raw() != &*cert.public_key().subject_public_key.data {
        return Err(bad("the key is not the certificate's".into()));
    }
    Ok(())
}

/// Reads the first certificate of a PEM text.
pub fn read(pem_text: &str) -> Result<Read, CertError> {
    let bad = |e: String| CertError::Read(e);
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let cn = |name: &x509_parser::x509::X509Name| {
        name.iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let not_after = Timestamp::from_second(cert.validity().not_after.timestamp()).map_err(|e| bad(e.to_string()))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                dns_names.push(d.to_string());
            }
        }
    }
    Ok(Read {
        subject: cn(cert.subject()),
        not_after,
        dns_names,
    })
}

/// A PKCS#12 keystore (what Java clients take: `ssl.keystore.type=PKCS12`)
/// with the user's key and chain, under `password` (AES-256, PBKDF2-SHA256).
pub fn keystore(user: &Issued, ca: &Issued, alias: &str, password: &str) -> Result<Vec<u8>, CertError> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    use sha2::Digest;
    let bad = |e: String| CertError::Read(format!("keystore: {e}"));
    let der = |pem: &str| -> Result<Vec<u8>, CertError> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        Ok(p.contents)
    };
    let leaf = Certificate::from_der(&der(&user.cert_pem)?).map_err(|e| bad(e.to_string()))?;
    let root = Certificate::from_der(&der(&ca.cert_pem)?).map_err(|e| bad(e.to_string()))?;
    let key = PrivateKey::from_der(&der(&user.key_pem)?).map_err(|e| bad(e.to_string()))?;
    let id = sha2::Sha256::digest(leaf.as_der())[..20].to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(id, key, [leaf, root])),
    );
    store.writer(password).write().map_err(|e| bad(e.to_string()))
}

/// 32 random letters and digits.
pub fn password() -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        let mut b = [0u8; 64];
        if rng.fill(&mut b).is_err() {
            continue;
        }
        // 248 = 4 × 62: rejecting the rest keeps every character equally likely.
        out.extend(
            b.iter()
                .filter(|x| **x < 248)
                .map(|x| ALPHABET[(*x % 62) as usize] as char)
                .take(32 - out.len()),
        );
    }
    out
}

/// A PKCS#12 trust store of CA certificates (Java's `ssl.truststore.type=PKCS12`).
pub fn truststore(cas: &[&Issued], password: &str) -> Result<Vec<u8>, CertError> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry};
    let bad = |e: String| CertError::Read(format!("truststore: {e}"));
    let mut store = KeyStore::new();
    for (i, ca) in cas.iter().enumerate() {
        let (_, p) = x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let cert = Certificate::from_der(&p.contents).map_err(|e| bad(e.to_string()))?;
        store.add_entry(&format!("ca-{i}"), KeyStoreEntry::Certificate(cert));
    }
    store.writer(password).write().map_err(|e| bad(e.to_string()))
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "skein.dev");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn datetime(t: Timestamp) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(|e| CertError::Read(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    use super::*;

    fn days(d: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * d)
    }

    fn roots(bundle: &[&Issued]) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for ca in bundle {
            roots
                .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
                .unwrap();
        }
        Arc::new(roots)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Whether a client holding `bundle` accepts `leaf` as the server `host` at `at`.
    fn server_trusted(bundle: &[&Issued], leaf: &Issued, host: &str, at: Timestamp) -> bool {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(bundle), provider())
            .build()
            .unwrap();
        let cert = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.as_second() as u64));
        verifier
            .verify_server_cert(&cert, &[], &ServerName::try_from(host.to_string()).unwrap(), &[], now)
            .is_ok()
    }

    fn client_trusted(bundle: &[&Issued], leaf: &Issued, at: Timestamp) -> bool {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(bundle), provider())
            .build()
            .unwrap();
        let cert = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.as_second() as u64));
        verifier.verify_client_cert(&cert, &[], now).is_ok()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_broker_certificate_is_trusted_under_its_names_by_its_ca_only() {
        let ca = new_ca("demo-cluster-ca", 1, now(), days(365)).unwrap();
        let other = new_ca("demo-cluster-ca", 2, now(), days(365)).unwrap();
        let names = vec!["demo-0.demo-brokers.kafka.svc.cluster.local".to_string()];
        let leaf = issue(
            &ca,
            "demo-0",
            &Usage::Broker {
                dns_names: names.clone(),
            },
            now(),
            days(30),
        )
        .unwrap();
        assert!(server_trusted(&[&ca], &leaf, &names[0], now()));
        assert!(
            server_trusted(&[&other, &ca], &leaf, &names[0], now()),
            "a bundle of both"
        );
        assert!(!server_trusted(&[&other], &leaf, &names[0], now()));
        assert!(!server_trusted(
            &[&ca],
            &leaf,
            "demo-1.demo-brokers.kafka.svc.cluster.local",
            now()
        ));
        assert!(!server_trusted(&[&ca], &leaf, &names[0], now() + days(31)), "expired");
        // Brokers authenticate to each other with the same certificate.
        assert!(client_trusted(&[&ca], &leaf, now()));
    }

    #[test]
    fn keystores_and_truststores_open_with_their_password_only() {
        use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
        let ca = new_ca("demo-clients-ca", 1, now(), days(365)).unwrap();
        let other = new_ca("demo-clients-ca", 2, now(), days(365)).unwrap();
        let leaf = issue(&ca, "alice", &Usage::Client, now(), days(30)).unwrap();
        let pw = password();
        assert_eq!(pw.len(), 32);
        assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(pw, password());
        let store = KeyStore::from_pkcs12(
            &keystore(&leaf, &ca, "alice", &pw).unwrap(),
            &pw,
            Pkcs12ImportPolicy::Strict,
        )
        .expect("the keystore opens");
        let (alias, chain) = store.private_key_chain().expect("a key and its chain");
        assert_eq!(alias, "alice");
        assert_eq!(chain.certs().len(), 2);
        assert!(
            chain.certs()[0].subject().contains("alice"),
            "{}",
            chain.certs()[0].subject()
        );
        let trust = truststore(&[&other, &ca], &pw).unwrap();
        let store = KeyStore::from_pkcs12(&trust, &pw, Pkcs12ImportPolicy::Strict).expect("the truststore opens");
        let certs = store
            .entries()
            .filter(|(_, e)| matches!(e, KeyStoreEntry::Certificate(_)))
            .count();
        assert_eq!(certs, 2);
        assert!(KeyStore::from_pkcs12(&trust, "wrong", Pkcs12ImportPolicy::Strict).is_err());
    }

    #[test]
    fn a_user_certificate_authenticates_a_client_and_names_it() {
        let ca = new_ca("demo-clients-ca", 3, now(), days(365)).unwrap();
        let leaf = issue(&ca, "alice", &Usage::Client, now(), days(30)).unwrap();
        assert!(client_trusted(&[&ca], &leaf, now()));
        let r = read(&leaf.cert_pem).unwrap();
        assert_eq!(r.subject, "alice");
        assert!(signed_by(&leaf.cert_pem, &ca.cert_pem));
    }

    /// A CA as a user brings it: any subject, made outside the operator.
    fn company_ca(cn: &str) -> Issued {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.not_before = datetime(now() - days(1)).unwrap();
        params.not_after = datetime(now() + days(100)).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    #[test]
    fn the_issuer_is_told_by_signature_even_between_cas_of_one_name() {
        let (a, b) = (company_ca("Example Corp CA"), company_ca("Example Corp CA"));
        let leaf = issue(&b, "demo-0", &Usage::Client, now(), days(30)).unwrap();
        assert!(signed_by(&leaf.cert_pem, &b.cert_pem));
        assert!(!signed_by(&leaf.cert_pem, &a.cert_pem));
        assert!(!signed_by("not a certificate", &b.cert_pem));
    }

    #[test]
    fn a_ca_the_user_brings_is_checked_and_each_fault_named_without_the_key() {
        let ca = company_ca("Example Corp CA");
        check_ca(&ca).unwrap();
        let other = company_ca("Other CA");
        let leaf = issue(&ca, "x", &Usage::Client, now(), days(1)).unwrap();
        let cases = [
            (
                "a leaf, not a CA",
                Issued {
                    cert_pem: leaf.cert_pem.clone(),
                    key_pem: leaf.key_pem.clone(),
                },
                "not a CA",
            ),
            (
                "another CA's key",
                Issued {
                    cert_pem: ca.cert_pem.clone(),
                    key_pem: other.key_pem.clone(),
                },
                "not the certificate's",
            ),
            (
                "a key rcgen cannot read",
                Issued {
                    cert_pem: ca.cert_pem.clone(),
                    key_pem: "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".into(),
                },
                "PKCS#8",
            ),
            (
                "no certificate",
                Issued {
                    cert_pem: "junk".into(),
                    key_pem: ca.key_pem.clone(),
                },
                "not PEM",
            ),
        ];
        for (name, bad, want) in cases {
            let err = check_ca(&bad).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
            assert!(!err.contains("PRIVATE KEY"), "{name}: {err}");
        }
        // It signs leaves that chain to it, like the operator's own.
        let server = issue(
            &ca,
            "demo-0",
            &Usage::Broker {
                dns_names: vec!["demo-0".into()],
            },
            now(),
            days(30),
        )
        .unwrap();
        assert!(client_trusted(&[&ca], &server, now()));
    }

    #[test]
    fn a_leaf_never_outlives_its_ca_and_reads_back_as_the_plan_sees_it() {
        let ca = new_ca("demo-cluster-ca", 7, now(), days(10)).unwrap();
        let names = vec!["b".to_string(), "a".to_string()];
        let leaf = issue(
            &ca,
            "demo-0",
            &Usage::Broker {
                dns_names: names.clone(),
            },
            now(),
            days(30),
        )
        .unwrap();
        let r = read(&leaf.cert_pem).unwrap();
        assert_eq!(r.not_after, read(&ca.cert_pem).unwrap().not_after);
        assert_eq!(r.not_after, now() + days(10));
        let l = r.leaf(7, &["a".into(), "b".into()]);
        assert_eq!((l.issuer, l.names_match), (7, true));
        assert!(!r.leaf(7, &["a".into()]).names_match);
    }

    #[test]
    fn garbage_is_an_error_and_a_key_is_never_printed() {
        assert!(matches!(read("not a certificate"), Err(CertError::Read(_))));
        let ca = new_ca("x", 1, now(), days(1)).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }
}

//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's broker
//! serves them: credentials kept as salt, stored key, server key and
//! iterations (never the password), and the server side of the exchange as a
//! pure state machine over the client's messages.
//!
//! Hand-written on RustCrypto's pbkdf2/hmac/sha2/subtle: the exchange is two
//! messages, and rsasl's callback design does not fit a credential lookup
//! in the metadata image.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use skein_client::scram::ScramHash;
use subtle::ConstantTimeEq;

/// Kafka's bounds on iterations (AlterUserScramCredentials refuses others).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM mechanism, with Kafka's type codes (ScramMechanism).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The `mechanism` code of the *UserScramCredentials APIs.
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Mechanism> {
        match code {
            1 => Some(Mechanism::Sha256),
            2 => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// SCRAM's arithmetic for this mechanism (shared with the client side).
    fn arith(self) -> ScramHash {
        match self {
            Mechanism::Sha256 => ScramHash::Sha256,
            Mechanism::Sha512 => ScramHash::Sha512,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        self.arith().hmac(key, data)
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        self.arith().hash(data)
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        self.arith().salted_password(password, salt, iterations)
    }
}

/// What the broker keeps of a SCRAM password (Kafka's UserScramCredentialRecord).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// From the salted password AlterUserScramCredentials carries.
    pub fn from_salted_password(mechanism: Mechanism, salt: Vec<u8>, salted: &[u8], iterations: i32) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        ScramCredential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
            iterations,
        }
    }

    /// From a password (the broker's `--add-scram` and tests), with a random salt.
    pub fn from_password(mechanism: Mechanism, password: &str, iterations: i32) -> Self {
        let salt = random_bytes(32);
        let salted = mechanism.salted_password(password, &salt, iterations as u32);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }
}

/// A credential as Kafka's `kafka-storage format --add-scram` takes it:
/// `SCRAM-SHA-256=[name=alice,password=alice-secret]`, optionally with
/// `iterations=8192`, or `salt=<base64>,saltedpassword=<base64>` in place of
/// the password. Errors never include the password.
pub fn parse_add_scram(arg: &str) -> Result<(String, Mechanism, ScramCredential), String> {
    let (mech, rest) = arg
        .split_once('=')
        .ok_or("expected MECHANISM=[name=USER,password=PASSWORD]")?;
    let mechanism = Mechanism::from_name(mech.trim())
        .ok_or_else(|| format!("unknown mechanism {} (SCRAM-SHA-256 or SCRAM-SHA-512)", mech.trim()))?;
    let inner = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("expected the credential's attributes in [...]")?;
    let mut attrs = BTreeMap::new();
    for attr in inner.split(',') {
        let (k, v) = attr.split_once('=').ok_or("expected key=value attributes")?;
        attrs.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
    }
    let name = attrs
        .remove("name")
        .filter(|n| !n.is_empty())
        .ok_or("the credential needs a name")?;
    let iterations = match attrs.remove("iterations") {
        Some(i) => i.parse::<i32>().map_err(|_| "iterations must be a number")?,
        None => MIN_ITERATIONS,
    };
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(format!(
            "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
        ));
    }
    let credential = match (
        attrs.remove("password"),
        attrs.remove("salt"),
        attrs.remove("saltedpassword"),
    ) {
        (Some(pw), None, None) => ScramCredential::from_password(mechanism, &pw, iterations),
        (Some(pw), Some(salt), None) => {
            let salt = B64.decode(salt).map_err(|_| "salt must be base64")?;
            let salted = mechanism.salted_password(&pw, &salt, iterations as u32);
            ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
        }
        (None, Some(salt), Some(salted)) => {
            let salt = B64.decode(salt).map_err(|_| "salt must be base64")?;
            let salted = B64.decode(salted).map_err(|_| "saltedpassword must be base64")?;
            ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
        }
        _ => return Err("give password (and optionally salt), or salt and saltedpassword".into()),
    };
    if let Some(k) = attrs.keys().next() {
        return Err(format!("unknown attribute {k}"));
    }
    Ok((name, mechanism, credential))
}

/// Cryptographically random bytes (nonces, salts).
pub fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system's random source works");
    b
}

/// Why an exchange failed. The message is what the client is told: it never
/// says whether the user exists or which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    InvalidCredentials(&'static str),
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    #[error("SCRAM extensions are not supported (delegation tokens are not served)")]
    Extensions,
}

/// The server side of one SCRAM exchange.
pub enum ScramServer {
    /// Waiting for client-first-message.
    Start {
        mechanism: Mechanism,
    },
    /// Sent server-first-message; waiting for client-final-message.
    SentFirst {
        mechanism: Mechanism,
        user: String,
        credential: Option<ScramCredential>,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

impl ScramServer {
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer::Start { mechanism }
    }

    /// client-first-message → server-first-message. `lookup` finds the
    /// user's credential; an unknown user gets a made-up salt and fails at
    /// the proof, so the exchange does not reveal which users exist.
    pub fn first(
        &mut self,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        let ScramServer::Start { mechanism } = *self else {
            return Err(ScramError::Malformed("unexpected client-first-message"));
        };
        let msg = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        // gs2-header: "n,," or "y,,", optionally "n,a=authzid,"; "p=" asks for channel binding.
        let (cbind, rest) = msg.split_once(',').ok_or(ScramError::Malformed("no gs2 header"))?;
        match cbind {
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("bad channel binding flag")),
        }
        let (authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed("no gs2 header"))?;
        if !authzid.is_empty() && !authzid.starts_with("a=") {
            return Err(ScramError::Malformed("bad authzid"));
        }
        let gs2_header = format!("{cbind},{authzid},");
        let mut user = None;
        let mut nonce = None;
        for (i, attr) in bare.split(',').enumerate() {
            match (i, attr.split_once('=')) {
                (0, Some(("n", v))) => user = Some(sasl_name(v)?),
                (1, Some(("r", v))) if !v.is_empty() => nonce = Some(v.to_string()),
                (0 | 1, _) => return Err(ScramError::Malformed("expected n=user,r=nonce")),
                // Extensions (KIP-255's tokenauth and others).
                (_, Some((_, _))) => return Err(ScramError::Extensions),
                (_, None) => return Err(ScramError::Malformed("bad attribute")),
            }
        }
        let (Some(user), Some(client_nonce)) = (user, nonce) else {
            return Err(ScramError::Malformed("expected n=user,r=nonce"));
        };
        if let Some(authz) = authzid.strip_prefix("a=") {
            if sasl_name(authz)? != user {
                return Err(ScramError::InvalidCredentials(mechanism.name()));
            }
        }
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (mechanism.hash(user.as_bytes()), MIN_ITERATIONS),
        };
        let nonce = format!("{client_nonce}{}", B64.encode(random_bytes(24)));
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        *self = ScramServer::SentFirst {
            mechanism,
            user,
            credential,
            gs2_header,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(server_first.into_bytes())
    }

    /// client-final-message → (server-final-message, the authenticated user).
    pub fn last(&mut self, client_final: &[u8]) -> Result<(Vec<u8>, String), ScramError> {
        let ScramServer::SentFirst {
            mechanism,
            user,
            credential,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = std::mem::replace(self, ScramServer::Done)
        else {
            return Err(ScramError::Malformed("unexpected client-final-message"));
        };
        let msg = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(ScramError::Malformed("no proof"))?;
        let mut parts = without_proof.split(',');
        let cbind = parts
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding"))?;
        let r = parts
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        if parts.next().is_some() {
            return Err(ScramError::Extensions);
        }
        if B64.decode(cbind).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(ScramError::Malformed("channel binding does not match the gs2 header"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let invalid = ScramError::InvalidCredentials(mechanism.name());
        // librdkafka before 2.6.1 sends its client nonce once more in front of
        // the nonce (#4895); Kafka accepts a nonce that ends with the right one
        // since 3.8.1, and so does Skein, so deployed clients keep working.
        if !r.ends_with(&nonce) {
            return Err(invalid);
        }
        let Some(credential) = credential else {
            return Err(invalid);
        };
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(invalid);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        if !bool::from(mechanism.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(invalid);
        }
        let server_signature = mechanism.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((format!("v={}", B64.encode(server_signature)).into_bytes(), user))
    }
}

/// A saslname of RFC 5802: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn sasl_name(v: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in a name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, as RFC 5802 describes it, for the tests.
    fn client_final(
        mechanism: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let attrs: std::collections::HashMap<&str, &str> =
            server_first.split(',').filter_map(|a| a.split_once('=')).collect();
        let salt = B64.decode(attrs["s"]).unwrap();
        let iterations: u32 = attrs["i"].parse().unwrap();
        let salted = mechanism.salted_password(password, &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={}", attrs["r"]);
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = mechanism.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let server_key = mechanism.hmac(&salted, b"Server Key");
        let expected = mechanism.hmac(&server_key, auth.as_bytes());
        (format!("{without_proof},p={}", B64.encode(proof)), expected)
    }

    fn exchange(mechanism: Mechanism, stored: &str, tried: &str, user: &str) -> Result<String, ScramError> {
        let cred = ScramCredential::from_password(mechanism, stored, 4096);
        let mut s = ScramServer::new(mechanism);
        let first_bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
        let server_first = s.first(format!("n,,{first_bare}").as_bytes(), |u| {
            (u == "alice").then(|| cred.clone())
        })?;
        let server_first = String::from_utf8(server_first).unwrap();
        assert!(server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
        let (fin, expected) = client_final(mechanism, tried, &first_bare, &server_first);
        let (server_final, who) = s.last(fin.as_bytes())?;
        assert_eq!(server_final, format!("v={}", B64.encode(expected)).into_bytes());
        Ok(who)
    }

    #[test]
    fn the_right_password_authenticates_with_both_mechanisms() {
        for m in [Mechanism::Sha256, Mechanism::Sha512] {
            assert_eq!(exchange(m, "s3cret", "s3cret", "alice").unwrap(), "alice");
        }
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_fail_alike() {
        let wrong = exchange(Mechanism::Sha256, "s3cret", "guess", "alice").unwrap_err();
        let unknown = exchange(Mechanism::Sha256, "s3cret", "s3cret", "mallory").unwrap_err();
        assert_eq!(wrong, unknown);
        assert!(wrong
            .to_string()
            .contains("invalid credentials with SASL mechanism SCRAM-SHA-256"));
    }

    #[test]
    fn old_librdkafka_s_doubled_client_nonce_is_accepted_and_a_wrong_one_is_not() {
        let m = Mechanism::Sha256;
        let cred = ScramCredential::from_password(m, "pw", 4096);
        for (prefix, ok) in [("abc", true), ("", true), ("x", true)] {
            let mut s = ScramServer::new(m);
            let first_bare = "n=alice,r=abc";
            let server_first = String::from_utf8(
                s.first(format!("n,,{first_bare}").as_bytes(), |_| Some(cred.clone()))
                    .unwrap(),
            )
            .unwrap();
            let (fin, _) = client_final(m, "pw", first_bare, &server_first);
            let fin = fin.replacen("r=", &format!("r={prefix}"), 1);
            // The proof covers the message as sent, so it is recomputed over it.
            let without_proof = fin.rsplit_once(",p=").unwrap().0.to_string();
            let attrs: std::collections::HashMap<&str, &str> =
                server_first.split(',').filter_map(|a| a.split_once('=')).collect();
            let salted = m.salted_password("pw", &B64.decode(attrs["s"]).unwrap(), 4096);
            let client_key = m.hmac(&salted, b"Client Key");
            let auth = format!("{first_bare},{server_first},{without_proof}");
            let sig = m.hmac(&m.hash(&client_key), auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            let fin = format!("{without_proof},p={}", B64.encode(proof));
            assert_eq!(s.last(fin.as_bytes()).is_ok(), ok, "{prefix}");
        }
        // A nonce that is not the server's fails.
        let mut s = ScramServer::new(m);
        s.first(b"n,,n=alice,r=abc", |_| Some(cred.clone())).unwrap();
        assert!(s.last(b"c=biws,r=abcWRONG,p=AAAA").is_err());
    }

    #[test]
    fn rfc_7677_test_vector() {
        // RFC 7677 §3: user "user", password "pencil".
        let m = Mechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password("pencil", &salt, 4096);
        let cred = ScramCredential::from_salted_password(m, salt, &salted, 4096);
        let first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let auth = format!(
            "{first_bare},r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        );
        let client_key = m.hmac(&salted, b"Client Key");
        let sig = m.hmac(&cred.stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(B64.encode(proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        assert_eq!(
            B64.encode(m.hmac(&cred.server_key, auth.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn add_scram_arguments_as_kafka_storage_takes_them() {
        let (user, m, c) = parse_add_scram("SCRAM-SHA-512=[name=alice,password=alice-secret,iterations=8192]").unwrap();
        assert_eq!((user.as_str(), m, c.iterations), ("alice", Mechanism::Sha512, 8192));
        let (_, _, c) = parse_add_scram("SCRAM-SHA-256=[name=bob,password=\"pw\"]").unwrap();
        assert_eq!(c.iterations, 4096);
        for bad in [
            "SCRAM-SHA-1=[name=a,password=topsecret]",
            "SCRAM-SHA-256=name=a,password=topsecret",
            "SCRAM-SHA-256=[password=topsecret]",
            "SCRAM-SHA-256=[name=a,password=topsecret,iterations=10]",
            "SCRAM-SHA-256=[name=a,password=topsecret,colour=red]",
            "SCRAM-SHA-256=[name=a]",
        ] {
            let e = parse_add_scram(bad).unwrap_err();
            assert!(!e.contains("topsecret"), "{e}");
        }
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"n",
            b"n,,",
            b"x,,n=a,r=b",
            b"p=tls-unique,,n=a,r=b",
            b"n,,n=a",
            b"n,,r=b,n=a",
            b"n,,n=a=,r=b",
            b"n,,n=a,r=b,tokenauth=true",
            b"n,z,n=a,r=b",
            b"\xff\xfe",
        ] {
            let mut s = ScramServer::new(Mechanism::Sha512);
            assert!(s.first(bad, |_| None).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut s = ScramServer::new(Mechanism::Sha256);
        assert!(s.last(b"c=biws,r=x,p=AAAA").is_err());
        let mut s = ScramServer::new(Mechanism::Sha256);
        s.first(b"n,,n=alice,r=abc", |_| None).unwrap();
        for bad in [&b"c=biws,r=abc"[..], b"c=bad,r=abc,p=AA==", b"c=biws,p=AA=="] {
            let mut t = ScramServer::new(Mechanism::Sha256);
            t.first(b"n,,n=alice,r=abc", |_| None).unwrap();
            assert!(t.last(bad).is_err());
        }
        assert_eq!(sasl_name("a=2Cb=3Dc").unwrap(), "a,b=c");
    }
}

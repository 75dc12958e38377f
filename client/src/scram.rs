//! SCRAM's arithmetic (RFC 5802, RFC 7677) and the client side of the
//! exchange. The broker's server side (broker/src/security/scram.rs) uses the
//! same arithmetic from here, so the two cannot disagree.
//!
//! Hand-written on RustCrypto's pbkdf2/hmac/sha2/subtle: the exchange is two
//! messages each way; rsasl's callback design is more than a client needs.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// SCRAM's hash: SHA-256 or SHA-512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this hash's HMAC.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations).to_vec()
            }
            ScramHash::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, iterations).to_vec()
            }
        }
    }
}

/// Most iterations a server may ask a client to compute: more than Kafka's
/// 16384 would only slow the client down (a hostile server's choice).
const MAX_ITERATIONS: u32 = 16384;

/// A client's SCRAM exchange: `first()`, then `last(server_first)`, then
/// `verify(server_final)`.
pub struct ScramClient {
    hash: ScramHash,
    user: String,
    password: String,
    nonce: String,
    /// client-first-message-bare, kept for the AuthMessage.
    first_bare: String,
    /// The server signature `verify` expects, once `last` has run.
    expected_signature: Option<Vec<u8>>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A new exchange with a nonce from `random` (24 random bytes, base64).
    pub fn new(hash: ScramHash, user: &str, password: &str, random: &[u8]) -> ScramClient {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let nonce = B64.encode(random);
        ScramClient {
            hash,
            user: user.to_string(),
            password: password.to_string(),
            first_bare: format!("n={name},r={nonce}"),
            nonce,
            expected_signature: None,
        }
    }

    /// client-first-message.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// client-final-message, from the server-first-message.
    pub fn last(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let server_first = std::str::from_utf8(server_first).map_err(|_| "server-first-message is not UTF-8")?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(B64.decode(v).map_err(|_| "the server's salt is not base64")?),
                Some(("i", v)) => {
                    iterations = Some(
                        v.parse::<u32>()
                            .map_err(|_| "the server's iterations are not a number")?,
                    )
                }
                Some(("e", v)) => return Err(format!("the server refused: {v}")),
                _ => {}
            }
        }
        let nonce = nonce.ok_or("server-first-message has no nonce")?;
        let salt = salt.ok_or("server-first-message has no salt")?;
        let iterations = iterations.ok_or("server-first-message has no iteration count")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend the client's".into());
        }
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(format!(
                "the server asks for {iterations} iterations (1..={MAX_ITERATIONS})"
            ));
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let salted = self.hash.salted_password(&self.password, &salt, iterations);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored_key = self.hash.hash(&client_key);
        let signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = self.hash.hmac(&salted, b"Server Key");
        self.expected_signature = Some(self.hash.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final-message: the server knew the credential too.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final).map_err(|_| "server-final-message is not UTF-8")?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {e}"));
        }
        let v = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or("server-final-message has no signature")?;
        let got = B64.decode(v).map_err(|_| "the server's signature is not base64")?;
        let want = self.expected_signature.as_ref().ok_or("verify before last")?;
        if bool::from(got.ct_eq(want)) {
            Ok(())
        } else {
            Err("the server's signature is wrong: it does not know this user's credential".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let mut c = ScramClient::new(ScramHash::Sha256, "user", "pencil", &[]);
        c.nonce = "rOprNGfwEbeRWgbNEkqO".into();
        c.first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let last = c
            .last(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_ok());
        assert!(c.verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err());
        assert!(c.verify(b"e=invalid-proof").is_err());
    }

    #[test]
    fn a_hostile_server_first_message_is_an_error() {
        for bad in [
            &b"r=other,s=AAAA,i=4096"[..], // nonce not ours
            b"r=abc,s=AAAA,i=4096",        // nonce not extended
            b"r=abcdef,s=!!!,i=4096",      // salt not base64
            b"r=abcdef,s=AAAA,i=99999999", // iterations too many
            b"r=abcdef,s=AAAA,i=0",
            b"r=abcdef,s=AAAA",
            b"\xff\xfe",
            b"",
        ] {
            let mut c = ScramClient::new(ScramHash::Sha512, "u", "p", &[]);
            c.nonce = "abc".into();
            assert!(c.last(bad).is_err(), "{bad:?}");
        }
    }
}

//! The principal of a client certificate, as Kafka names it: the subject's
//! distinguished name in RFC 2253 form (`CN=alice,OU=eng,O=acme`, last RDN
//! first, as Java's `X500Principal.getName()`), rewritten by
//! `ssl.principal.mapping.rules` (Kafka's `SslPrincipalMapper`). Pure.
//!
//! Hand-written: x509-parser gives the name's parts but prints them in its own
//! order and escaping, and no crate implements Kafka's mapping rules.

use regex::Regex;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// Why a certificate gives no principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("the client certificate cannot be parsed: {0}")]
    Certificate(String),
    #[error("no rule of ssl.principal.mapping.rules applies to {0}")]
    NoMatchingRule(String),
    /// Kafka would make `User:` of it; an empty principal is refused instead,
    /// so no rule can turn a certificate into a nameless (and so ungrantable,
    /// yet `User:*`-matching) identity.
    #[error("ssl.principal.mapping.rules map {0} to an empty name")]
    EmptyName(String),
}

/// The subject of a DER certificate, in RFC 2253 form.
pub fn subject_dn(der: &[u8]) -> Result<String, PrincipalError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PrincipalError::Certificate(e.to_string()))?;
    Ok(rfc2253(cert.subject()))
}

/// A name in RFC 2253 form: RDNs last first, joined by `,`; the attributes
/// of a multi-valued RDN by `+`; the keywords Java knows, else the dotted
/// OID with the value's DER in hex.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    match (keyword(&oid), atv.as_str()) {
                        (Some(k), Ok(v)) => format!("{k}={}", escape(v)),
                        _ => {
                            let value = atv.attr_value();
                            let der = der_of(value.header.tag().0, value.data);
                            format!("{oid}=#{}", hex(&der))
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The attribute keywords of RFC 2253 (and Java's X500Principal).
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 2253 §2.4: `,+"\<>;` escaped, and a leading `#` or space and a trailing space.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A universal-class value re-encoded as DER (tag, length, contents).
fn der_of(tag: u32, data: &[u8]) -> Vec<u8> {
    let mut out = vec![(tag & 0x1f) as u8];
    let len = data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(data);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    /// The distinguished name unchanged.
    Default,
    Rewrite {
        /// The pattern, anchored: a rule applies only if it matches the whole name.
        whole: Regex,
        pattern: Regex,
        /// In the regex crate's syntax (`${1}` for Java's `$1`).
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses Kafka's rules: `RULE:pattern/replacement/[LU]` and `DEFAULT`,
    /// separated by commas or newlines (a pattern may itself hold commas; a
    /// `/` inside one is written `\/`).
    pub fn parse(rules: &str) -> Result<PrincipalMapper, String> {
        let mut out = Vec::new();
        let mut rest = rules.trim_start();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after).ok_or_else(|| format!("unterminated rule `{rest}`"))?;
                let (replacement, after) = until_slash(after).ok_or_else(|| format!("unterminated rule `{rest}`"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let bad = |e: regex::Error| format!("invalid pattern `{pattern}`: {e}");
                out.push(Rule::Rewrite {
                    whole: Regex::new(&format!("^(?:{pattern})$")).map_err(bad)?,
                    pattern: Regex::new(pattern).map_err(bad)?,
                    replacement: java_replacement(replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "invalid rule `{}`",
                    rest.split([',', '\n']).next().unwrap_or(rest)
                ));
            }
            rest = rest.trim_start_matches([' ', '\t']);
            match rest.chars().next() {
                None => {}
                Some(',' | '\n') => rest = rest[1..].trim_start(),
                Some(_) => return Err(format!("invalid rule: unexpected `{rest}`")),
            }
        }
        if out.is_empty() {
            out.push(Rule::Default);
        }
        Ok(PrincipalMapper { rules: out })
    }

    /// The principal name of a distinguished name: the first rule that applies.
    pub fn name(&self, dn: &str) -> Result<String, PrincipalError> {
        for rule in &self.rules {
            match rule {
                Rule::Default if dn.is_empty() => return Err(PrincipalError::EmptyName(String::new())),
                Rule::Default => return Ok(dn.to_string()),
                Rule::Rewrite {
                    whole,
                    pattern,
                    replacement,
                    case,
                } if whole.is_match(dn) => {
                    let name = pattern.replace_all(dn, replacement.as_str()).into_owned();
                    if name.is_empty() {
                        return Err(PrincipalError::EmptyName(dn.to_string()));
                    }
                    return Ok(match case {
                        Case::Keep => name,
                        Case::Lower => name.to_lowercase(),
                        Case::Upper => name.to_uppercase(),
                    });
                }
                Rule::Rewrite { .. } => {}
            }
        }
        Err(PrincipalError::NoMatchingRule(dn.to_string()))
    }
}

/// The text up to the first unescaped `/`, and what follows it; `\/` becomes `/`.
fn until_slash(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'/' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Java's replacement syntax (`$1`, `\$` for a dollar) in the regex crate's (`${1}`, `$$`).
fn java_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    fn map(rules: &str, dn: &str) -> Result<String, PrincipalError> {
        PrincipalMapper::parse(rules).unwrap().name(dn)
    }

    #[test]
    fn default_keeps_the_distinguished_name() {
        assert_eq!(map("DEFAULT", "CN=alice,OU=eng").unwrap(), "CN=alice,OU=eng");
        assert_eq!(map("", "CN=alice").unwrap(), "CN=alice");
    }

    #[test]
    fn kafka_documentation_examples() {
        // From Kafka's documentation of ssl.principal.mapping.rules.
        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT";
        assert_eq!(
            map(
                rules,
                "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown"
            )
            .unwrap(),
            "serviceuser"
        );
        assert_eq!(
            map(rules, "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").unwrap(),
            "adminuser@admin"
        );
        assert_eq!(map(rules, "cn=Kafka.Broker").unwrap(), "kafka.broker");
        assert_eq!(map(rules, "OU=nobody").unwrap(), "OU=nobody");
    }

    #[test]
    fn upper_case_escaped_slash_and_no_rule() {
        assert_eq!(map("RULE:^CN=(.*)$/$1/U", "CN=bob").unwrap(), "BOB");
        assert_eq!(map("RULE:^CN=a\\/b$/ab/", "CN=a/b").unwrap(), "ab");
        assert!(matches!(
            map("RULE:^CN=(.*)$/$1/", "OU=x"),
            Err(PrincipalError::NoMatchingRule(_))
        ));
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in ["RULE:abc", "RULE:a/b", "NOPE", "RULE:(/x/", "DEFAULT junk"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_certificate_subject_in_rfc_2253_form() {
        let pem = include_bytes!("../../tests/fixtures/tls/client.crt");
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem).unwrap();
        // Last RDN first; the multi-valued RDN joined by `+`; the comma escaped.
        let dn = subject_dn(&der).unwrap();
        assert!(
            dn == "CN=alice,OU=eng+UID=7,O=acme\\, inc,C=US" || dn == "CN=alice,UID=7+OU=eng,O=acme\\, inc,C=US",
            "{dn}"
        );
        let mapper = PrincipalMapper::parse("RULE:^CN=([^,]*),.*$/$1/U").unwrap();
        assert_eq!(mapper.name(&dn).unwrap(), "ALICE");
        assert!(matches!(
            subject_dn(b"not a certificate"),
            Err(PrincipalError::Certificate(_))
        ));
    }

    #[test]
    fn escapes_follow_rfc_2253() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape(" lead"), "\\ lead");
    }

    #[test]
    fn java_replacements_become_regex_crate_ones() {
        assert_eq!(java_replacement("$1@$2"), "${1}@${2}");
        assert_eq!(java_replacement("$1abc"), "${1}abc");
        assert_eq!(java_replacement("\\$x"), "$$x");
    }

    #[test]
    fn a_rule_or_a_subject_that_makes_an_empty_name_is_refused() {
        // Found by the client_certificate fuzz target: a CN that the rule's
        // character class does not match captures nothing.
        let m = PrincipalMapper::parse("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT").unwrap();
        assert!(matches!(m.name("CN='kein fuzz CA"), Err(PrincipalError::EmptyName(_))));
        assert_eq!(m.name("CN=alice").unwrap(), "ALICE");
        let default = PrincipalMapper::parse("DEFAULT").unwrap();
        assert!(matches!(default.name(""), Err(PrincipalError::EmptyName(_))));
    }
}

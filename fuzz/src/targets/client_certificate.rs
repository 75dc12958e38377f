//! A client certificate's bytes as the principal code reads them: its subject
//! in RFC 2253 form (hand-written over x509-parser) through Kafka's mapping rules.

use std::sync::OnceLock;

use skein_broker::security::principal::{subject_dn, PrincipalError, PrincipalMapper};

/// One input.
pub fn run(data: &[u8]) {
    static RULES: OnceLock<PrincipalMapper> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        PrincipalMapper::parse("RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT")
            .expect("rules")
    });
    if let Ok(dn) = subject_dn(data) {
        // DEFAULT always applies: a name, or the refusal of an empty one.
        match rules.name(&dn) {
            Ok(name) => assert!(!name.is_empty()),
            Err(PrincipalError::EmptyName(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

//! Who a client is and what protects its traffic: TLS for SSL and SASL_SSL
//! listeners (`tls`), the principal of a client certificate (`principal`),
//! SASL's mechanisms (`sasl`: PLAIN, and SCRAM in `scram`), and Kafka's ACL
//! model, the StandardAuthorizer decision and one request's view of it (`acl`).
//! Below the protocol: it knows configs and certificates, not requests.

pub mod acl;
pub mod inter_broker;
pub mod principal;
pub mod sasl;
pub mod scram;
pub mod tls;

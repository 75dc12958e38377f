//! Who a client is and what protects its traffic: TLS for SSL and SASL_SSL
//! listeners (`tls`) and the principal of a client certificate (`principal`).
//! Below the protocol: it knows configs and certificates, not requests.

pub mod principal;
pub mod tls;

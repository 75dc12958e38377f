//! The targets' bodies, one `run(data)` each: libFuzzer drives them from
//! fuzz_targets/ (`make fuzz`, `make fuzz-check`), and
//! broker/tests/fuzz_corpora.rs replays every checked-in corpus input through
//! them in `make test` (no instrumented build needed there).

pub mod client_certificate;
pub mod metadata_command;
pub mod record_batch;
pub mod request_decode;
pub mod request_handle;
pub mod sasl_exchange;
pub mod tls_accept;
pub mod txn_state;

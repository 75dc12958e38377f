//! libFuzzer's entry to `skein_fuzz::targets::txn_state` (the body is shared with
//! broker/tests/fuzz_corpora.rs, which replays the corpus in `make test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skein_fuzz::targets::txn_state::run(data));

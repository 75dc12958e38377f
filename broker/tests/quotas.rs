//! The request-time quota (`request_percentage`, KIP-124) on the wire: once a
//! client id has used its share of handler time, responses carry
//! `throttle_time_ms` (bounded by one quota window, as Kafka bounds it) and the
//! connection reads its next request only after that time; ApiVersions is
//! exempt. The byte-rate quotas are tested with real clients in test_quota.py.

mod common;

use std::time::{Duration, Instant};

use common::BrokerProcess;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn request_percentage(value: Option<f64>) -> AlterClientQuotasRequest {
    use alter_client_quotas_request::{EntityData, EntryData, OpData};
    AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(s("client-id"))
            .with_entity_name(Some(s("skein-test")))])
        .with_ops(vec![OpData::default()
            .with_key(s("request_percentage"))
            .with_value(value.unwrap_or(0.0))
            .with_remove(value.is_none())])])
}

#[test]
fn a_client_over_its_request_time_is_throttled_and_muted_and_api_versions_is_exempt() {
    let b = BrokerProcess::start(&["quota.window.num=2"]);
    let mut c = b.connect();
    // A millionth of a thread: the first request or two use it up.
    let r = c.call(1, &request_percentage(Some(0.0001)));
    assert_eq!(r.entries[0].error_code, 0, "{:?}", r.entries[0].error_message);
    let metadata = MetadataRequest::default().with_topics(None);
    let mut throttle = 0;
    for _ in 0..20 {
        throttle = c.call(12, &metadata).throttle_time_ms;
        if throttle > 0 {
            break;
        }
    }
    assert!(throttle > 0, "no throttle time after 20 requests over the quota");
    assert!(throttle <= 1000, "bounded by one window: {throttle} ms");
    // The connection reads nothing until the throttle time has passed.
    let sent = Instant::now();
    let v = c.call(3, &ApiVersionsRequest::default());
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(throttle as u64 * 8 / 10),
        "answered after {waited:?}, throttled for {throttle} ms"
    );
    assert_eq!(v.throttle_time_ms, 0, "ApiVersions is exempt from the request quota");
    // Removing the quota ends the throttling once the mute has passed.
    let r = c.call(1, &request_percentage(None));
    assert_eq!(r.entries[0].error_code, 0);
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..5 {
        assert_eq!(c.call(12, &metadata).throttle_time_ms, 0);
    }
}

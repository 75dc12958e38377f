//! Regression tests: the bytes that used to abort or balloon the broker, each named
//! for what it claims. Lengths and counts from the wire are checked against the
//! bytes actually there before anything is allocated.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{one_record_batch, BrokerProcess};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

/// Produce v3 (header v1), acks=1, and a topic array claiming `i32::MAX` topics
/// with none following: the frame that aborted the broker with
/// "memory allocation of 73197266976 bytes failed".
fn produce_v3_claiming_two_billion_topics() -> Bytes {
    let mut body = BytesMut::new();
    body.put_i16(0); // api key: Produce
    body.put_i16(3);
    body.put_i32(7); // correlation id
    body.put_i16(-1); // client id: null
    body.put_i16(-1); // transactional id: null
    body.put_i16(1); // acks
    body.put_i32(1000); // timeout
    body.put_i32(i32::MAX); // topics: the lie
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put(body);
    frame.freeze()
}

/// Produce v9 (flexible): the same lie as a compact array (varint length + 1).
fn produce_v9_claiming_four_billion_topics() -> Bytes {
    let mut body = BytesMut::new();
    body.put_i16(0);
    body.put_i16(9);
    body.put_i32(8);
    body.put_i16(-1); // client id (header v2 keeps it a non-compact string)
    body.put_u8(0); // header tagged fields
    body.put_u8(0); // transactional id: compact null
    body.put_i16(1);
    body.put_i32(1000);
    body.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // u32::MAX as an unsigned varint
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put(body);
    frame.freeze()
}

#[test]
fn an_array_length_beyond_the_frame_is_a_decode_error_not_an_allocation() {
    for (frame, header_version, version) in [
        (produce_v3_claiming_two_billion_topics(), 1, 3),
        (produce_v9_claiming_four_billion_topics(), 2, 9),
    ] {
        let mut buf = frame.slice(4..);
        RequestHeader::decode(&mut buf, header_version).unwrap();
        let err = ProduceRequest::decode(&mut buf, version).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "v{version}: {err}");
    }
}

#[test]
fn a_record_batch_claiming_two_billion_records_decodes_to_an_error() {
    use kafka_protocol::records::RecordBatchDecoder;
    let mut buf = BytesMut::from(&one_record_batch(Some(Bytes::from_static(b"k")), Bytes::from_static(b"v"))[..]);
    // records count (offset 57) and last offset delta (23) lie; CRC fixed up.
    buf[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    buf[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = buf.freeze();
    assert!(skein_broker::log::batch::validate(&batch).is_err());
    let mut b = batch.clone();
    assert!(skein_broker::log::compression::decode_batch(&mut b, 1 << 20).is_err());
    // kafka-protocol's own decoder (patched) reserves no more than the bytes hold.
    let mut b = batch.clone();
    assert!(RecordBatchDecoder::decode(&mut b).is_err());
}

#[test]
fn the_frames_that_aborted_the_broker_close_one_connection_and_nothing_else() {
    let mut b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("survivor")))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    assert_eq!(c.call(7, &create).topics[0].error_code, 0);
    for frame in [
        produce_v3_claiming_two_billion_topics(),
        produce_v9_claiming_four_billion_topics(),
    ] {
        let mut bad = b.connect();
        bad.send_bytes(&frame).unwrap();
        assert!(bad.closed_by_broker(), "the broker answered a frame it cannot decode");
        assert!(b.alive(), "the broker died");
    }
    // The well-behaved connection opened before is still served.
    let meta = c.call(12, &MetadataRequest::default().with_topics(None));
    assert!(meta
        .topics
        .iter()
        .any(|t| t.name.as_ref().map(|n| n.as_str()) == Some("survivor")));
}

#[test]
fn a_few_bytes_asking_for_two_billion_partitions_are_a_policy_violation() {
    // 20 bytes of CreateTopics used to make the broker place 2^31-1 partitions
    // (a replica list each) before creating a single one.
    let mut b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    let huge = |name: &'static str, n: i32| {
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_num_partitions(n)
            .with_replication_factor(1)
    };
    let r = c.call(
        7,
        &CreateTopicsRequest::default().with_topics(vec![huge("huge", i32::MAX)]),
    );
    assert_eq!(r.topics[0].error_code, ResponseError::PolicyViolation.code());
    let r = c.call(7, &CreateTopicsRequest::default().with_topics(vec![huge("grows", 1)]));
    assert_eq!(r.topics[0].error_code, 0);
    let grow = CreatePartitionsRequest::default().with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("grows")))
            .with_count(i32::MAX),
    ]);
    assert_eq!(
        c.call(3, &grow).results[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    assert!(b.alive());
    let meta = c.call(12, &MetadataRequest::default().with_topics(None));
    let names: Vec<_> = meta
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, vec!["grows".to_string()]);
    assert_eq!(meta.topics[0].partitions.len(), 1);
}

//! Group coordinator benchmarks over the plain protocol: how long a stable group
//! of ten takes to rebalance when an eleventh member joins, and offset commits per second.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// A blocking connection that sends one request at a time.
pub struct Conn {
    stream: TcpStream,
    correlation: i32,
    /// The size of the last response frame, bytes.
    pub last_response_bytes: usize,
}

impl Conn {
    pub fn connect(bootstrap: &str) -> Conn {
        let stream = TcpStream::connect(bootstrap).expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            correlation: 0,
            last_response_bytes: 0,
        }
    }

    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.correlation += 1;
        let api = ApiKey::try_from(R::KEY).unwrap();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation);
        let mut body = BytesMut::new();
        header.encode(&mut body, api.request_header_version(version)).unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put(body);
        self.stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut resp).unwrap();
        self.last_response_bytes = resp.len();
        let mut buf = Bytes::from(resp);
        ResponseHeader::decode(&mut buf, <R::Response as HeaderVersion>::header_version(version)).unwrap();
        R::Response::decode(&mut buf, version).unwrap()
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Joins (with the MEMBER_ID_REQUIRED round trip) and syncs; returns (member id, generation).
fn join_and_sync(c: &mut Conn, group: &str, member: &str) -> (String, i32) {
    let mut member = member.to_string();
    loop {
        let r = c.call(
            9,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(30_000)
                .with_member_id(s(&member))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default().with_name(s("range"))
                ]),
        );
        if r.error_code == ResponseError::MemberIdRequired.code() {
            member = r.member_id.to_string();
            continue;
        }
        // The coordinator may still be loading __consumer_offsets right after it was created.
        if [
            ResponseError::CoordinatorLoadInProgress,
            ResponseError::NotCoordinator,
            ResponseError::CoordinatorNotAvailable,
        ]
        .iter()
        .any(|e| e.code() == r.error_code)
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        assert_eq!(
            r.error_code,
            0,
            "join of {member}: {:?}",
            ResponseError::try_from_code(r.error_code)
        );
        let assignments = r
            .members
            .iter()
            .map(|m| sync_group_request::SyncGroupRequestAssignment::default().with_member_id(m.member_id.clone()))
            .collect();
        let sync = c.call(
            5,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id(r.generation_id)
                .with_member_id(s(&member))
                .with_assignments(assignments),
        );
        if sync.error_code == ResponseError::RebalanceInProgress.code() {
            continue;
        }
        assert_eq!(
            sync.error_code,
            0,
            "sync of {member}: {:?}",
            ResponseError::try_from_code(sync.error_code)
        );
        return (member, r.generation_id);
    }
}

/// Ten members, stable; an eleventh joins. Returns the time until all eleven
/// have their new assignment. Members heartbeat every 10 ms, so the figure is
/// the coordinator's work plus at most one heartbeat interval.
pub fn rebalance_ten(bootstrap: &str) -> Duration {
    let group = "bench-rebalance";
    let n = 10;
    let ready = Arc::new(Barrier::new(n + 1));
    let done = Arc::new(Barrier::new(n + 2));
    let mut threads = Vec::new();
    for _ in 0..n {
        let (bootstrap, ready, done) = (bootstrap.to_string(), Arc::clone(&ready), Arc::clone(&done));
        threads.push(std::thread::spawn(move || {
            let mut c = Conn::connect(&bootstrap);
            let (mut member, mut generation) = join_and_sync(&mut c, group, "");
            // Wait until the whole group of ten is stable at one generation.
            loop {
                let hb = c.call(
                    4,
                    &HeartbeatRequest::default()
                        .with_group_id(GroupId(s(group)))
                        .with_generation_id(generation)
                        .with_member_id(s(&member)),
                );
                if hb.error_code == 0 {
                    break;
                }
                (member, generation) = join_and_sync(&mut c, group, &member);
            }
            ready.wait();
            let start_gen = generation;
            loop {
                std::thread::sleep(Duration::from_millis(10));
                let hb = c.call(
                    4,
                    &HeartbeatRequest::default()
                        .with_group_id(GroupId(s(group)))
                        .with_generation_id(generation)
                        .with_member_id(s(&member)),
                );
                if hb.error_code != 0 {
                    (member, generation) = join_and_sync(&mut c, group, &member);
                    if generation > start_gen {
                        break;
                    }
                }
            }
            done.wait();
        }));
    }
    // Wait until ten have joined and stabilised (the last joins trigger rebalances).
    ready.wait();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let newcomer = std::thread::spawn({
        let (bootstrap, done) = (bootstrap.to_string(), Arc::clone(&done));
        move || {
            let mut c = Conn::connect(&bootstrap);
            join_and_sync(&mut c, group, "");
            done.wait();
        }
    });
    done.wait();
    let took = t0.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    newcomer.join().unwrap();
    took
}

/// Offset commits per second from one standalone committer, each acknowledged
/// after it is written to `__consumer_offsets`.
pub fn commits_per_second(bootstrap: &str, topic: &str, seconds: f64) -> f64 {
    let mut c = Conn::connect(bootstrap);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < seconds {
        let r = c.call(
            8,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(s("bench-commits")))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(n as i64),
                    ])]),
        );
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "commit");
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Creates a one-partition topic (by asking for its metadata: auto-creation).
pub fn create_topic(bootstrap: &str, topic: &str) {
    let mut c = Conn::connect(bootstrap);
    c.call(
        9,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))
            ])),
    );
}

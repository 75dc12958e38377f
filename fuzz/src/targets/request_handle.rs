//! A request frame through `handle_frame` against one in-process broker with a
//! real data directory: decode, dispatch and every handler's treatment of what
//! decodes. The broker persists across inputs, as it would across requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::request_frame;
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use skein_broker::cluster::{Broker, NewTopic};
use skein_broker::config::BrokerConfig;
use skein_broker::controller::Controller;
use skein_broker::protocol::{handle_frame, SecurityProtocol, Session};

struct Fixture {
    rt: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static CELL: OnceLock<Fixture> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut m = BTreeMap::new();
        m.insert("log.dirs".to_string(), dir.path().display().to_string());
        m.insert("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string());
        // Metadata for random names would otherwise create a topic per input.
        m.insert("auto.create.topics.enable".to_string(), "false".to_string());
        // The authorizer on, open while no ACL names a resource: every handler
        // runs its checks, and ACLs the inputs create (DENY ones too) narrow
        // what later inputs may do.
        m.insert(
            "authorizer.class.name".to_string(),
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        );
        m.insert("allow.everyone.if.no.acl.found".to_string(), "true".to_string());
        let config = BrokerConfig::from_map(m).expect("config");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let broker = rt.block_on(async {
            let controller = Controller::start(&config).await.expect("controller");
            let broker = Broker::open(config, controller).expect("broker");
            broker.start().await.expect("start");
            for (name, partitions) in [("fuzz", 1), ("fuzz3", 3)] {
                let topic = NewTopic {
                    name: name.to_string(),
                    partitions,
                    replication_factor: 1,
                    assignments: vec![],
                    configs: BTreeMap::new(),
                };
                broker.create_topic(topic).await.expect("topic");
            }
            broker
        });
        Fixture { rt, broker, _dir: dir }
    })
}

/// One input.
pub fn run(data: &[u8]) {
    let Some(frame) = request_frame(data) else {
        return;
    };
    // CreateTopics and CreatePartitions may legally create up to 10,000
    // partitions per request, three open files each (auto-creation is off for
    // the same reason): a few such inputs exhaust the process's descriptors and
    // deleting them again takes seconds. request_decode covers their decoding;
    // tests/hostile_input.rs and the client tests cover their handling.
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    if key == ApiKey::CreateTopics as i16 || key == ApiKey::CreatePartitions as i16 {
        return;
    }
    let f = fixture();
    let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    // Long polls (Fetch's max_wait_ms, a JoinGroup waiting for its rebalance) park
    // legitimately; the input ends there, as if the client had gone away.
    let session = Session::new(peer, "PLAINTEXT".into(), SecurityProtocol::Plaintext, None);
    let handled = handle_frame(Arc::clone(&f.broker), session, Bytes::from(frame));
    let _ =
        f.rt.block_on(async { tokio::time::timeout(Duration::from_millis(2), handled).await });
}

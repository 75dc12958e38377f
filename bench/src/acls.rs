//! `acls`: produce through the StandardAuthorizer with thousands of bindings,
//! as a ratio to an open broker, in one run. Both brokers are fresh; each is
//! measured twice, alternately, and the better run of each is kept.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::{free_port, print_produced, produce_side_by_side, Args, Broker};

/// Bindings for other principals, each on a topic of its own.
const OTHER_BINDINGS: usize = 5000;
const AUTHORIZER: &str = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";

pub fn run(args: &Args, dir: &Path, lat_file: &Path) -> Vec<String> {
    let mut sets = vec![format!("num.partitions={}", args.partitions)];
    sets.extend(args.common_sets());
    let (open, _) = Broker::start(&args.broker, dir.join("acl-open"), free_port(), &sets);

    // The ACL broker: bindings are created while User:ANONYMOUS (this
    // PLAINTEXT client) is a super user, then it restarts without that, so
    // every request is decided by the bindings.
    let acl_dir = dir.join("acl-on");
    let port = free_port();
    let mut with_super = sets.clone();
    with_super.extend([AUTHORIZER.to_string(), "super.users=User:ANONYMOUS".to_string()]);
    let (mut b, _) = Broker::start(&args.broker, acl_dir.clone(), port, &with_super);
    create_bindings(&b.bootstrap());
    b.stop(false);
    let mut enforcing = sets.clone();
    enforcing.push(AUTHORIZER.to_string());
    let (acl, _) = Broker::start(&args.broker, acl_dir, port, &enforcing);

    let Some([open_r, acl_r]) = produce_side_by_side(args, [&open, &acl], "bench-acl", lat_file) else {
        return Vec::new();
    };
    let ratio = acl_r.mbps / open_r.mbps;
    let cpu_ratio = acl_r.cpu_per_gb() / open_r.cpu_per_gb();
    print_produced("produce 1024 B acks=1, open broker", &open_r, "");
    print_produced(
        &format!("produce 1024 B acks=1, {OTHER_BINDINGS} ACLs"),
        &acl_r,
        &format!("  ({ratio:.2}x the open broker's rate, {cpu_ratio:.2}x its CPU per GB)"),
    );
    vec![format!(
        r#"{{"scenario":"produce with ACLs","bindings":{},"open_mb_per_s":{:.1},"acl_mb_per_s":{:.1},"ratio":{ratio:.3},"open_cpu_s_per_gb":{:.2},"acl_cpu_s_per_gb":{:.2},"cpu_ratio":{cpu_ratio:.3}}}"#,
        OTHER_BINDINGS + 1,
        open_r.mbps,
        acl_r.mbps,
        open_r.cpu_per_gb(),
        acl_r.cpu_per_gb()
    )]
}

/// CreateAcls v3 over a raw connection: one binding per other principal,
/// and ALL on the `bench-` topic prefix for User:ANONYMOUS.
fn create_bindings(bootstrap: &str) {
    let binding = |principal: String, name: String, pattern: i8, op: i8| {
        AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(name))
            .with_resource_pattern_type(pattern)
            .with_principal(StrBytes::from_string(principal))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(op)
            .with_permission_type(3)
    };
    let mut creations: Vec<AclCreation> = (0..OTHER_BINDINGS)
        .map(|i| binding(format!("User:u{i}"), format!("t{i}"), 3, 4))
        .collect();
    creations.push(binding("User:ANONYMOUS".into(), "bench-".into(), 4, 2));
    let req = CreateAclsRequest::default().with_creations(creations);
    let header = RequestHeader::default()
        .with_request_api_key(30)
        .with_request_api_version(3)
        .with_correlation_id(1);
    let mut body = BytesMut::new();
    header.encode(&mut body, 2).unwrap();
    req.encode(&mut body, 3).unwrap();
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.put(body);
    let mut s = TcpStream::connect(bootstrap).expect("connect");
    s.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    let mut buf = Bytes::from(resp);
    kafka_protocol::messages::ResponseHeader::decode(&mut buf, 1).expect("response header");
    let r = CreateAclsResponse::decode(&mut buf, 3).expect("CreateAcls response");
    assert!(
        r.results.iter().all(|x| x.error_code == 0),
        "CreateAcls refused a binding"
    );
}

//! A real broker process and a minimal Kafka client for protocol-level tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// A broker process on a free loopback port, killed on drop.
pub struct BrokerProcess {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The broker's stdout and stderr, printed when a test fails.
    log: tempfile::NamedTempFile,
}

impl BrokerProcess {
    /// Starts a broker on a free port. Tests run in parallel and some open
    /// thousands of connections, so the port picked can be taken (by another
    /// test's client socket) before the broker binds it: then the broker exits
    /// and this tries again on another port.
    pub fn start(extra: &[&str]) -> BrokerProcess {
        Self::start_on("PLAINTEXT", extra)
    }

    /// Starts a broker whose one listener speaks `protocol` (PLAINTEXT, SASL_PLAINTEXT).
    pub fn start_on(protocol: &str, extra: &[&str]) -> BrokerProcess {
        for _ in 0..5 {
            if let Some(b) = Self::try_start(protocol, extra) {
                return b;
            }
        }
        panic!("broker did not start on any of 5 ports");
    }

    fn try_start(protocol: &str, extra: &[&str]) -> Option<BrokerProcess> {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skein-broker"));
        cmd.arg("--set")
            .arg(format!("log.dirs={}", dir.path().display()))
            .arg("--set")
            .arg(format!("listeners={protocol}://127.0.0.1:{port}"))
            .arg("--set")
            // No HTTP endpoint: its port would be one more that parallel tests could collide on.
            .arg("http.listener=")
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"));
        for e in extra {
            cmd.arg("--set").arg(e);
        }
        let child = cmd.spawn().expect("spawn broker");
        let mut b = BrokerProcess { child, port, dir, log };
        let t0 = Instant::now();
        while !listening(port) {
            if !b.alive() {
                return None;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(b)
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- the last lines of the broker on port {} ---", self.port);
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// Whether something listens on 127.0.0.1:`port`. A connect from an ephemeral
/// port equal to `port` itself "succeeds" (TCP simultaneous open with itself),
/// so a connection to ourselves does not count.
pub fn listening(port: u16) -> bool {
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s.local_addr().ok() != s.peer_addr().ok(),
        Err(_) => false,
    }
}

/// A blocking Kafka client that encodes requests with kafka-protocol.
pub struct Client {
    pub stream: TcpStream,
    correlation: i32,
}

impl Client {
    /// Connects to a broker on 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // As long as the broker's own bound on a metadata proposal (15 s), so
        // that a slow answer is seen as the broker's answer, not as a hang.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            stream: s,
            correlation: 0,
        }
    }

    /// Sends a request and decodes its response.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let raw = self.call_raw::<R>(version, req).expect("response");
        let mut buf = raw;
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut buf, header_version).expect("response header");
        assert_eq!(header.correlation_id, self.correlation);
        R::Response::decode(&mut buf, version).unwrap_or_else(|e| panic!("decode {:?} v{version}: {e}", R::KEY))
    }

    /// Sends a request; returns the response frame (without length), or None if the
    /// broker closed the connection.
    pub fn call_raw<R: Request>(&mut self, version: i16, req: &R) -> Option<Bytes> {
        self.correlation += 1;
        let frame = encode_request(version, self.correlation, req);
        self.stream.write_all(&frame).ok()?;
        self.read_frame()
    }

    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// Authenticates with SASL PLAIN (SaslHandshake v1, SaslAuthenticate v2).
    pub fn authenticate_plain(&mut self, user: &str, password: &str) {
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        let h = self.call(
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        );
        assert_eq!(h.error_code, 0, "SaslHandshake");
        let token = Bytes::from(format!("\0{user}\0{password}"));
        let a = self.call(2, &SaslAuthenticateRequest::default().with_auth_bytes(token));
        assert_eq!(a.error_code, 0, "SaslAuthenticate as {user}: {:?}", a.error_message);
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b)
    }

    /// True if the broker closed the connection (reads EOF or reset).
    pub fn closed_by_broker(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// A whole request frame: length, header, body.
pub fn encode_request<R: Request>(version: i16, correlation: i32, req: &R) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("skein-test")));
    let api = ApiKey::try_from(R::KEY).unwrap();
    let hv = api.request_header_version(version);
    let mut body = BytesMut::new();
    header.encode(&mut body, hv).unwrap();
    req.encode(&mut body, version).unwrap();
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.put(body);
    out.freeze()
}

/// Reads the i16 error code at the start of a decoded struct's bytes (helper for raw checks).
pub fn i16_at(b: &[u8], pos: usize) -> i16 {
    (&b[pos..pos + 2]).get_i16()
}

/// A v2 batch of one uncompressed record, encoded by kafka-protocol.
pub fn one_record_batch(key: Option<Bytes>, value: Bytes) -> Bytes {
    use kafka_protocol::records::*;
    let r = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 5,
        key,
        value: Some(value),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [r].iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode a record batch");
    buf.freeze()
}

//! The Kafka wire protocol: one handler per API and the table that dispatches to them.
//!
//! Each API lives in `handlers/<api>.rs` as a type implementing [`Handler`], with
//! the versions it serves declared next to it. [`API_TABLE`] lists them; it drives
//! dispatch and the ApiVersions response, so the two cannot disagree. Codecs come
//! from the kafka-protocol crate. Handlers never panic on client input: a bad
//! field is a Kafka error code in the response.

pub mod frame;
pub mod handler;
pub mod handlers;
pub mod session;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, VersionRange};

use crate::cluster::Broker;
use crate::metrics::Timed;
use crate::quota::QuotaType;
use frame::SpliceBuf;
pub use frame::{Frame, FramePart, ZeroCopy};
pub use handler::{Detach, Handler, RequestContext, Throttled};
pub use session::{KafkaPrincipal, SecurityProtocol, Session};

/// Why a connection must be closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("request frame shorter than a header ({0} bytes)")]
    ShortFrame(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} version {version} is not supported (supported: {supported})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        supported: VersionRange,
    },
    #[error("cannot decode {api:?} v{version}: {reason}")]
    Decode { api: ApiKey, version: i16, reason: String },
    #[error("cannot encode the response: {0}")]
    Encode(String),
    #[error(
        "{0:?} before SASL authentication (only ApiVersions, SaslHandshake and SaslAuthenticate are served until then)"
    )]
    Unauthenticated(ApiKey),
    #[error("the SASL session expired (connections.max.reauth.ms) and the client did not re-authenticate")]
    SessionExpired,
    #[error("authentication failed: {0}")]
    Authentication(String),
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<Frame>, ProtocolError>> + Send>>;

/// One row of the dispatch table.
pub struct ApiEntry {
    pub key: ApiKey,
    pub versions: VersionRange,
    pub advertised: VersionRange,
    call: fn(RequestContext, Bytes) -> HandlerFuture,
    /// Decodes a body of this API and drops it (the decode-only fuzz target).
    decode: fn(Bytes, i16) -> Result<(), ProtocolError>,
}

impl ApiEntry {
    const fn of<H: Handler>(key: ApiKey) -> ApiEntry {
        ApiEntry {
            key,
            versions: H::VERSIONS,
            advertised: H::ADVERTISED,
            call: dispatch::<H>,
            decode: |body, version| decode_body::<H::Request>(body, version).map(drop),
        }
    }
}

fn decode_body<R: Request>(mut body: Bytes, version: i16) -> Result<R, ProtocolError> {
    let api = ApiKey::try_from(R::KEY).map_err(|_| ProtocolError::UnknownApiKey(R::KEY))?;
    R::decode(&mut body, version).map_err(|e| ProtocolError::Decode {
        api,
        version,
        reason: e.to_string(),
    })
}

fn dispatch<H: Handler>(ctx: RequestContext, body: Bytes) -> HandlerFuture {
    Box::pin(async move {
        let version = ctx.api_version();
        let ctx = ctx.with_quotas(body.len());
        let request = decode_body::<H::Request>(body, version)?;
        let correlation_id = ctx.header.correlation_id;
        let zero_copy = ctx.zero_copy.clone();
        // The request-time quota counts the time the handler ran (its polls,
        // not its waits), in percent of one thread per second.
        let metered =
            (!H::exempt_from_request_quota(&request) && ctx.quota(QuotaType::Request).is_some()).then(|| ctx.clone());
        let (response, busy) = if metered.is_some() {
            busy_time(H::handle(ctx, request)).await
        } else {
            (H::handle(ctx, request).await, std::time::Duration::ZERO)
        };
        let Some(mut response) = response else {
            return Ok(None);
        };
        if let Some(ctx) = metered {
            let throttle = ctx.record_quota(QuotaType::Request, busy.as_nanos() as f64 * 100.0 / 1e9);
            let throttle = i32::try_from(throttle).unwrap_or(i32::MAX);
            if throttle > response.throttle_time_ms() {
                response.set_throttle_time_ms(throttle);
            }
        }
        encode_frame(correlation_id, version, &response, zero_copy).map(Some)
    })
}

/// Runs a future and sums the time spent in its polls.
async fn busy_time<F: Future>(future: F) -> (F::Output, std::time::Duration) {
    let mut future = std::pin::pin!(future);
    let mut busy = std::time::Duration::ZERO;
    let out = std::future::poll_fn(|cx| {
        let started = std::time::Instant::now();
        let poll = future.as_mut().poll(cx);
        busy += started.elapsed();
        poll
    })
    .await;
    (out, busy)
}

/// Encodes a response frame: length, response header, body.
pub fn encode_frame<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
    zero_copy: ZeroCopy,
) -> Result<Frame, ProtocolError> {
    let err = |e: &dyn std::fmt::Display| ProtocolError::Encode(e.to_string());
    let header_version = R::header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version).map_err(|e| err(&e))?
        + response.compute_size(version).map_err(|e| err(&e))?;
    // Zero-copy parts are not copied into the buffer, so it only needs room for the rest.
    let capacity = if zero_copy.is_empty() { size + 4 } else { 4096 };
    let mut buf = SpliceBuf::new(capacity, zero_copy);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version).map_err(|e| err(&e))?;
    response.encode(&mut buf, version).map_err(|e| err(&e))?;
    Ok(buf.finish())
}

/// Encodes a response frame as one buffer.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> Result<Bytes, ProtocolError> {
    let frame = encode_frame(correlation_id, version, response, ZeroCopy::default())?;
    match frame.parts.into_iter().next() {
        Some(FramePart::Bytes(b)) => Ok(b),
        _ => Err(ProtocolError::Encode("unexpected file part".into())),
    }
}

/// Every API this broker serves, with its versions.
pub static API_TABLE: &[ApiEntry] = &[
    ApiEntry::of::<handlers::produce::Produce>(ApiKey::Produce),
    ApiEntry::of::<handlers::fetch::Fetch>(ApiKey::Fetch),
    ApiEntry::of::<handlers::list_offsets::ListOffsets>(ApiKey::ListOffsets),
    ApiEntry::of::<handlers::metadata::Metadata>(ApiKey::Metadata),
    ApiEntry::of::<handlers::offset_commit::OffsetCommit>(ApiKey::OffsetCommit),
    ApiEntry::of::<handlers::offset_fetch::OffsetFetch>(ApiKey::OffsetFetch),
    ApiEntry::of::<handlers::find_coordinator::FindCoordinator>(ApiKey::FindCoordinator),
    ApiEntry::of::<handlers::join_group::JoinGroup>(ApiKey::JoinGroup),
    ApiEntry::of::<handlers::heartbeat::Heartbeat>(ApiKey::Heartbeat),
    ApiEntry::of::<handlers::leave_group::LeaveGroup>(ApiKey::LeaveGroup),
    ApiEntry::of::<handlers::sync_group::SyncGroup>(ApiKey::SyncGroup),
    ApiEntry::of::<handlers::describe_groups::DescribeGroups>(ApiKey::DescribeGroups),
    ApiEntry::of::<handlers::list_groups::ListGroups>(ApiKey::ListGroups),
    ApiEntry::of::<handlers::api_versions::ApiVersions>(ApiKey::ApiVersions),
    ApiEntry::of::<handlers::create_topics::CreateTopics>(ApiKey::CreateTopics),
    ApiEntry::of::<handlers::delete_topics::DeleteTopics>(ApiKey::DeleteTopics),
    ApiEntry::of::<handlers::delete_records::DeleteRecords>(ApiKey::DeleteRecords),
    ApiEntry::of::<handlers::init_producer_id::InitProducerId>(ApiKey::InitProducerId),
    ApiEntry::of::<handlers::offset_for_leader_epoch::OffsetForLeaderEpoch>(ApiKey::OffsetForLeaderEpoch),
    ApiEntry::of::<handlers::add_partitions_to_txn::AddPartitionsToTxn>(ApiKey::AddPartitionsToTxn),
    ApiEntry::of::<handlers::add_offsets_to_txn::AddOffsetsToTxn>(ApiKey::AddOffsetsToTxn),
    ApiEntry::of::<handlers::end_txn::EndTxn>(ApiKey::EndTxn),
    ApiEntry::of::<handlers::write_txn_markers::WriteTxnMarkers>(ApiKey::WriteTxnMarkers),
    ApiEntry::of::<handlers::txn_offset_commit::TxnOffsetCommit>(ApiKey::TxnOffsetCommit),
    ApiEntry::of::<handlers::describe_configs::DescribeConfigs>(ApiKey::DescribeConfigs),
    ApiEntry::of::<handlers::alter_configs::AlterConfigs>(ApiKey::AlterConfigs),
    ApiEntry::of::<handlers::create_partitions::CreatePartitions>(ApiKey::CreatePartitions),
    ApiEntry::of::<handlers::incremental_alter_configs::IncrementalAlterConfigs>(ApiKey::IncrementalAlterConfigs),
    ApiEntry::of::<handlers::describe_cluster::DescribeCluster>(ApiKey::DescribeCluster),
    ApiEntry::of::<handlers::describe_quorum::DescribeQuorum>(ApiKey::DescribeQuorum),
    ApiEntry::of::<handlers::unregister_broker::UnregisterBroker>(ApiKey::UnregisterBroker),
    ApiEntry::of::<handlers::update_features::UpdateFeatures>(ApiKey::UpdateFeatures),
    ApiEntry::of::<handlers::delete_groups::DeleteGroups>(ApiKey::DeleteGroups),
    ApiEntry::of::<handlers::offset_delete::OffsetDelete>(ApiKey::OffsetDelete),
    ApiEntry::of::<handlers::consumer_group_heartbeat::ConsumerGroupHeartbeat>(ApiKey::ConsumerGroupHeartbeat),
    ApiEntry::of::<handlers::consumer_group_describe::ConsumerGroupDescribe>(ApiKey::ConsumerGroupDescribe),
    ApiEntry::of::<handlers::describe_log_dirs::DescribeLogDirs>(ApiKey::DescribeLogDirs),
    ApiEntry::of::<handlers::elect_leaders::ElectLeaders>(ApiKey::ElectLeaders),
    ApiEntry::of::<handlers::alter_partition_reassignments::AlterPartitionReassignments>(
        ApiKey::AlterPartitionReassignments,
    ),
    ApiEntry::of::<handlers::list_partition_reassignments::ListPartitionReassignments>(
        ApiKey::ListPartitionReassignments,
    ),
    ApiEntry::of::<handlers::sasl_handshake::SaslHandshake>(ApiKey::SaslHandshake),
    ApiEntry::of::<handlers::sasl_authenticate::SaslAuthenticate>(ApiKey::SaslAuthenticate),
    ApiEntry::of::<handlers::describe_user_scram_credentials::DescribeUserScramCredentials>(
        ApiKey::DescribeUserScramCredentials,
    ),
    ApiEntry::of::<handlers::alter_user_scram_credentials::AlterUserScramCredentials>(
        ApiKey::AlterUserScramCredentials,
    ),
    ApiEntry::of::<handlers::describe_acls::DescribeAcls>(ApiKey::DescribeAcls),
    ApiEntry::of::<handlers::create_acls::CreateAcls>(ApiKey::CreateAcls),
    ApiEntry::of::<handlers::delete_acls::DeleteAcls>(ApiKey::DeleteAcls),
    ApiEntry::of::<handlers::describe_client_quotas::DescribeClientQuotas>(ApiKey::DescribeClientQuotas),
    ApiEntry::of::<handlers::alter_client_quotas::AlterClientQuotas>(ApiKey::AlterClientQuotas),
    ApiEntry::of::<handlers::describe_producers::DescribeProducers>(ApiKey::DescribeProducers),
    ApiEntry::of::<handlers::describe_transactions::DescribeTransactions>(ApiKey::DescribeTransactions),
    ApiEntry::of::<handlers::list_transactions::ListTransactions>(ApiKey::ListTransactions),
    // Appended, so the fuzz corpus's row numbers keep naming the same APIs.
    ApiEntry::of::<handlers::raft_voters::AddRaftVoter>(ApiKey::AddRaftVoter),
    ApiEntry::of::<handlers::raft_voters::RemoveRaftVoter>(ApiKey::RemoveRaftVoter),
    ApiEntry::of::<handlers::raft_voters::UpdateRaftVoter>(ApiKey::UpdateRaftVoter),
];

/// The table row for an API key.
pub fn lookup(api_key: i16) -> Option<&'static ApiEntry> {
    API_TABLE.iter().find(|e| e.key as i16 == api_key)
}

/// A request frame split into its table row, header and undecoded body.
enum Parsed {
    Request {
        entry: &'static ApiEntry,
        header: RequestHeader,
        body: Bytes,
    },
    /// Answered without a handler (an ApiVersions version this broker does not know).
    Answered(Bytes),
}

fn parse_frame(frame: Bytes) -> Result<Parsed, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::ShortFrame(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let entry = lookup(api_key).ok_or(ProtocolError::UnknownApiKey(api_key))?;
    if version < entry.versions.min || version > entry.versions.max {
        if entry.key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version in v0 so any client can read it.
            return handlers::api_versions::unsupported_version_response(correlation_id).map(Parsed::Answered);
        }
        return Err(ProtocolError::UnsupportedVersion {
            api: entry.key,
            version,
            supported: entry.versions,
        });
    }
    let mut body = frame;
    let header_version = entry.key.request_header_version(version);
    let header = RequestHeader::decode(&mut body, header_version).map_err(|e| ProtocolError::Decode {
        api: entry.key,
        version,
        reason: format!("header: {e}"),
    })?;
    Ok(Parsed::Request { entry, header, body })
}

/// Decodes a request frame's header and body as [`handle_frame`] would, without
/// handling it: what the decode-only fuzz target drives.
pub fn decode_frame(frame: Bytes) -> Result<(), ProtocolError> {
    match parse_frame(frame)? {
        Parsed::Request { entry, header, body } => (entry.decode)(body, header.request_api_version),
        Parsed::Answered(_) => Ok(()),
    }
}

/// A bare SASL token (after SaslHandshake v0): answered with a bare token, or
/// the connection closes.
async fn raw_sasl_token(broker: &Arc<Broker>, session: &Session, token: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    match handlers::sasl_authenticate::step(&broker.metadata(), &broker.config, session, token).await {
        Ok((bytes, _)) => {
            let mut out = bytes::BytesMut::with_capacity(4 + bytes.len());
            out.put_i32(bytes.len() as i32);
            out.put_slice(&bytes);
            Ok(Some(Frame::from_bytes(out.freeze())))
        }
        Err(e) => Err(ProtocolError::Authentication(e.to_string())),
    }
}

/// Handles one request frame (without its length prefix). `Ok(None)`: no response is due.
pub async fn handle_frame(
    broker: Arc<Broker>,
    session: Arc<Session>,
    frame: Bytes,
) -> Result<Option<Frame>, ProtocolError> {
    handle_frame_detachable(broker, session, frame, Detach::default()).await
}

/// [`handle_frame`], with the handle through which the handler may let its
/// connection read on before it answers (see [`Detach`]).
pub async fn handle_frame_detachable(
    broker: Arc<Broker>,
    session: Arc<Session>,
    frame: Bytes,
    detach: Detach,
) -> Result<Option<Frame>, ProtocolError> {
    if session.expects_raw_token() {
        return raw_sasl_token(&broker, &session, &frame).await;
    }
    match parse_frame(frame)? {
        Parsed::Request { entry, header, body } => {
            let key = entry.key;
            let sasl_api = matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
            if session.requires_authentication() && !sasl_api && key != ApiKey::ApiVersions {
                return Err(ProtocolError::Unauthenticated(key));
            }
            if !sasl_api && session.expired(crate::cluster::now_ms()) {
                return Err(ProtocolError::SessionExpired);
            }
            broker.metrics.request(key, header.request_api_version);
            let started = std::time::Instant::now();
            let ctx = RequestContext::new(Arc::clone(&broker), header, session, detach);
            let result = (entry.call)(ctx, body).await;
            // Fetch records its own time, as FetchConsumer or FetchFollower.
            if key != ApiKey::Fetch {
                broker.metrics.request_time(Timed::Api(key), started.elapsed());
            }
            result
        }
        Parsed::Answered(b) => Ok(Some(Frame::from_bytes(b))),
    }
}

//! AddRaftVoter (80), RemoveRaftVoter (81) and UpdateRaftVoter (82): the
//! metadata quorum's voter set changed at run time (KIP-853), one voter at a
//! time. Kafka sends them to a controller; every Skein broker holds a copy of
//! the quorum, so any broker takes them and passes them to the active
//! controller, as DescribeQuorum does.
//!
//! AddRaftVoter and RemoveRaftVoter need ALTER on the cluster (Kafka's
//! `kafka-metadata-quorum.sh add-controller`); UpdateRaftVoter, which a voter
//! sends about itself, needs CLUSTER_ACTION.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse, UpdateRaftVoterRequest,
    UpdateRaftVoterResponse,
};
use kafka_protocol::protocol::{Request, StrBytes, VersionRange};
use skein_client::{ClientSecurity, Connection};

use super::str_bytes;
use crate::error::AdminError;
use crate::protocol::handler::{Handler, Operation, RequestContext};

/// The client id of a forwarded request: its receiver answers, never forwards again.
pub(super) const FORWARDED: &str = "skein-forwarded";

/// Where a quorum request goes when this broker is not the active controller:
/// the active controller's broker listener. Err: the message to answer with.
pub(super) async fn forward_to_active_controller<R: Request>(
    ctx: &RequestContext,
    req: &R,
    timeout: Duration,
) -> Result<R::Response, String> {
    let q = ctx.metadata().quorum_status();
    let forwarded = ctx.header.client_id.as_ref().is_some_and(|c| c.as_str() == FORWARDED);
    let address = q
        .leader
        .filter(|l| !forwarded && *l != q.node_id)
        .and_then(|l| ctx.metadata().broker_address(l))
        .ok_or_else(|| "the metadata quorum has no active controller this broker can reach".to_string())?;
    forward(
        &address,
        ctx.api_version(),
        req,
        timeout,
        &ctx.metadata().inter_broker_security(),
    )
    .await
    .map_err(|e| format!("cannot reach the active controller at {address}: {e}"))
}

async fn forward<R: Request>(
    address: &str,
    version: i16,
    req: &R,
    timeout: Duration,
    security: &ClientSecurity,
) -> std::io::Result<R::Response> {
    let mut c = Connection::connect_with(address, FORWARDED.into(), Duration::from_secs(2), 1 << 20, security).await?;
    c.call(version, req, timeout).await
}

/// How long a forwarded voter change may take past catching up: two commits.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(15);

fn is_leader(ctx: &RequestContext) -> bool {
    ctx.metadata().quorum_status().role == "leader"
}

/// The request's cluster id, when it names one, must be this cluster's.
fn check_cluster(ctx: &RequestContext, cluster_id: Option<&StrBytes>) -> Result<(), AdminError> {
    match cluster_id {
        Some(id) if !id.is_empty() && id.as_str() != ctx.cluster_id() => Err(AdminError::new(
            ResponseError::InconsistentClusterId,
            format!("this is cluster {}, not {}", ctx.cluster_id(), id.as_str()),
        )),
        _ => Ok(()),
    }
}

/// How long AddRaftVoter waits for the new voter to catch up: the request's
/// timeout, within bounds (Kafka's admin client sends its default of 30 s).
fn catch_up_timeout(timeout_ms: i32) -> Duration {
    Duration::from_millis(timeout_ms.clamp(1_000, 60_000) as u64)
}

/// How a voter change is answered: on the active controller by `local`,
/// elsewhere by the active controller (its whole response, `Forwarded`).
enum Outcome<Resp> {
    Done(Result<(), AdminError>),
    Forwarded(Resp),
}

/// The steps AddRaftVoter and RemoveRaftVoter share: ALTER on the cluster,
/// the cluster id, and the active controller (this broker, or forwarded to).
async fn voter_change<R: Request, F: std::future::Future<Output = Result<(), AdminError>>>(
    ctx: &RequestContext,
    req: &R,
    cluster_id: Option<&StrBytes>,
    forward_timeout: Duration,
    local: impl FnOnce() -> F,
) -> Outcome<R::Response> {
    if !ctx.authz().allows_cluster(Operation::Alter) {
        return Outcome::Done(Err(AdminError::new(
            ResponseError::ClusterAuthorizationFailed,
            "changing the quorum's voters needs ALTER on the cluster",
        )));
    }
    if let Err(e) = check_cluster(ctx, cluster_id) {
        return Outcome::Done(Err(e));
    }
    if is_leader(ctx) {
        return Outcome::Done(local().await);
    }
    match forward_to_active_controller(ctx, req, forward_timeout).await {
        Ok(resp) => Outcome::Forwarded(resp),
        Err(m) => Outcome::Done(Err(AdminError::new(ResponseError::NotLeaderOrFollower, m))),
    }
}

pub struct AddRaftVoter;

impl Handler for AddRaftVoter {
    type Request = AddRaftVoterRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, req: AddRaftVoterRequest) -> Option<AddRaftVoterResponse> {
        let timeout = catch_up_timeout(req.timeout_ms);
        // The active controller waits up to `timeout` for the new voter to catch up.
        let (id, directory) = (req.voter_id, req.voter_directory_id);
        let local = || async { ctx.metadata().add_voter(id, directory, timeout).await };
        Some(
            match voter_change(&ctx, &req, req.cluster_id.as_ref(), timeout + CHANGE_TIMEOUT, local).await {
                Outcome::Forwarded(resp) => resp,
                Outcome::Done(Ok(())) => AddRaftVoterResponse::default(),
                Outcome::Done(Err(e)) => AddRaftVoterResponse::default()
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            },
        )
    }
}

pub struct RemoveRaftVoter;

impl Handler for RemoveRaftVoter {
    type Request = RemoveRaftVoterRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, req: RemoveRaftVoterRequest) -> Option<RemoveRaftVoterResponse> {
        let (id, directory) = (req.voter_id, req.voter_directory_id);
        let local = || async { ctx.metadata().remove_voter(id, directory).await };
        Some(
            match voter_change(&ctx, &req, req.cluster_id.as_ref(), CHANGE_TIMEOUT, local).await {
                Outcome::Forwarded(resp) => resp,
                Outcome::Done(Ok(())) => RemoveRaftVoterResponse::default(),
                Outcome::Done(Err(e)) => RemoveRaftVoterResponse::default()
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            },
        )
    }
}

pub struct UpdateRaftVoter;

impl Handler for UpdateRaftVoter {
    type Request = UpdateRaftVoterRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, req: UpdateRaftVoterRequest) -> Option<UpdateRaftVoterResponse> {
        let answer = |r: Result<(), AdminError>| match r {
            Ok(()) => UpdateRaftVoterResponse::default(),
            Err(e) => UpdateRaftVoterResponse::default().with_error_code(e.code.code()),
        };
        if !ctx.authz().allows_cluster(Operation::ClusterAction) {
            return Some(answer(Err(AdminError::new(
                ResponseError::ClusterAuthorizationFailed,
                "",
            ))));
        }
        if let Err(e) = check_cluster(&ctx, req.cluster_id.as_ref()) {
            return Some(answer(Err(e)));
        }
        // The voter's CONTROLLER listener: the one named by controller.listener.names.
        let name = ctx.config().controller_listener_name();
        let listener = req
            .listeners
            .iter()
            .find(|l| l.name.as_str() == name)
            .or_else(|| req.listeners.first());
        let Some(l) = listener.filter(|l| !l.host.is_empty() && l.port != 0) else {
            return Some(answer(Err(AdminError::new(ResponseError::InvalidRequest, ""))));
        };
        let address = format!("{}:{}", l.host.as_str(), l.port);
        if !is_leader(&ctx) {
            return Some(match forward_to_active_controller(&ctx, &req, CHANGE_TIMEOUT).await {
                Ok(resp) => resp,
                Err(_) => answer(Err(AdminError::new(ResponseError::NotLeaderOrFollower, ""))),
            });
        }
        Some(answer(
            ctx.metadata()
                .update_voter(req.voter_id, req.voter_directory_id, address)
                .await,
        ))
    }
}

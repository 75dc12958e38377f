//! AlterUserScramCredentials (key 51, KIP-554): upserts and deletes SCRAM
//! credentials in the metadata log. An upsertion carries the salt and the
//! salted password, never the password; the broker keeps the stored and
//! server keys derived from them. One result per user, as Kafka: a user named
//! twice in a request, an unknown mechanism or iterations outside
//! 4096..=16384 refuse that user's changes.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{propose, str_bytes};
use crate::controller::image::Command;
use crate::protocol::handler::{Handler, Operation, RequestContext};
use crate::security::scram::{Mechanism, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};

pub struct AlterUserScramCredentials;

type Outcome = Result<(), (ResponseError, String)>;

impl Handler for AlterUserScramCredentials {
    type Request = AlterUserScramCredentialsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(
        ctx: RequestContext,
        req: AlterUserScramCredentialsRequest,
    ) -> Option<AlterUserScramCredentialsResponse> {
        // Each user's commands, or why none run.
        let mut per_user: BTreeMap<String, Result<Vec<Command>, (ResponseError, String)>> = BTreeMap::new();
        let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
        let names = req
            .deletions
            .iter()
            .map(|d| (d.name.to_string(), d.mechanism))
            .chain(req.upsertions.iter().map(|u| (u.name.to_string(), u.mechanism)));
        for key in names {
            *seen.entry(key).or_default() += 1;
        }
        let refuse = |per_user: &mut BTreeMap<_, _>, user: &str, e: ResponseError, msg: &str| {
            per_user.insert(user.to_string(), Err((e, msg.to_string())));
        };
        for d in &req.deletions {
            let user = d.name.to_string();
            if matches!(per_user.get(&user), Some(Err(_))) {
                continue;
            }
            match check(&user, d.mechanism, &seen) {
                Err((e, m)) => refuse(&mut per_user, &user, e, &m),
                Ok(mechanism) => push(
                    &mut per_user,
                    &user,
                    Command::DeleteScramCredential {
                        user: user.clone(),
                        mechanism,
                    },
                ),
            }
        }
        for u in &req.upsertions {
            let user = u.name.to_string();
            if matches!(per_user.get(&user), Some(Err(_))) {
                continue;
            }
            let checked = check(&user, u.mechanism, &seen).and_then(|m| {
                if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&u.iterations) {
                    return Err((
                        ResponseError::UnacceptableCredential,
                        format!(
                            "Iterations {} not in the range {MIN_ITERATIONS}..{MAX_ITERATIONS}",
                            u.iterations
                        ),
                    ));
                }
                if u.salted_password.is_empty() || u.salt.is_empty() {
                    return Err((
                        ResponseError::UnacceptableCredential,
                        "Credential salt and salted password must not be empty".into(),
                    ));
                }
                Ok(m)
            });
            match checked {
                Err((e, m)) => refuse(&mut per_user, &user, e, &m),
                Ok(mechanism) => {
                    let credential = ScramCredential::from_salted_password(
                        mechanism,
                        u.salt.to_vec(),
                        &u.salted_password,
                        u.iterations,
                    );
                    push(
                        &mut per_user,
                        &user,
                        Command::UpsertScramCredential {
                            user: user.clone(),
                            mechanism,
                            credential,
                            only_if_absent: false,
                        },
                    )
                }
            }
        }
        let allowed = ctx.authz().allows_cluster(Operation::Alter);
        let mut results = Vec::new();
        for (user, commands) in per_user {
            let outcome: Outcome = match commands {
                _ if !allowed => Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "Authorization failed.".into(),
                )),
                Err(e) => Err(e),
                Ok(commands) => run(&ctx, commands).await,
            };
            let (code, message) = match outcome {
                Ok(()) => (0, None),
                Err((e, m)) => (e.code(), Some(str_bytes(m))),
            };
            results.push(
                AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(user))
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
        Some(AlterUserScramCredentialsResponse::default().with_results(results))
    }
}

fn push(per_user: &mut BTreeMap<String, Result<Vec<Command>, (ResponseError, String)>>, user: &str, c: Command) {
    if let Ok(v) = per_user.entry(user.to_string()).or_insert_with(|| Ok(Vec::new())) {
        v.push(c);
    }
}

/// The user's name and mechanism are acceptable, and named once in the request.
fn check(
    user: &str,
    mechanism: i8,
    seen: &BTreeMap<(String, i8), usize>,
) -> Result<Mechanism, (ResponseError, String)> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    let Some(m) = Mechanism::from_code(mechanism) else {
        return Err((
            ResponseError::UnsupportedSaslMechanism,
            format!("Unknown SCRAM mechanism {mechanism}"),
        ));
    };
    if seen.get(&(user.to_string(), mechanism)).copied().unwrap_or(0) > 1 {
        return Err((
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request".into(),
        ));
    }
    Ok(m)
}

/// Proposes a user's commands in order; the first refusal stops the rest.
async fn run(ctx: &RequestContext, commands: Vec<Command>) -> Outcome {
    for cmd in commands {
        propose(ctx, cmd).await?;
    }
    Ok(())
}

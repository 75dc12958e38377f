//! DescribeUserScramCredentials (key 50, KIP-554): each user's mechanisms and
//! iterations (never salts or keys); all users when none are named.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct DescribeUserScramCredentials;

impl Handler for DescribeUserScramCredentials {
    type Request = DescribeUserScramCredentialsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(
        ctx: RequestContext,
        req: DescribeUserScramCredentialsRequest,
    ) -> Option<DescribeUserScramCredentialsResponse> {
        if !ctx.authz().allows_cluster(Operation::Describe) {
            return Some(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            );
        }
        let all: BTreeMap<String, Vec<CredentialInfo>> = ctx.metadata().with_image(|img| {
            img.scram
                .iter()
                .map(|(user, creds)| {
                    let infos = creds
                        .iter()
                        .map(|(m, c)| {
                            CredentialInfo::default()
                                .with_mechanism(m.code())
                                .with_iterations(c.iterations)
                        })
                        .collect();
                    (user.clone(), infos)
                })
                .collect()
        });
        let result = |user: &str, infos: Vec<CredentialInfo>| {
            DescribeUserScramCredentialsResult::default()
                .with_user(str_bytes(user))
                .with_credential_infos(infos)
        };
        let results = match req.users.filter(|u| !u.is_empty()) {
            None => all.iter().map(|(u, infos)| result(u, infos.clone())).collect(),
            Some(users) => {
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for u in &users {
                    *counts.entry(u.name.to_string()).or_default() += 1;
                }
                counts
                    .into_iter()
                    .map(|(user, n)| {
                        let (code, msg) = if n > 1 {
                            (
                                ResponseError::DuplicateResource,
                                "Cannot describe SCRAM credentials for the same user twice in a single request",
                            )
                        } else if !all.contains_key(&user) {
                            (
                                ResponseError::ResourceNotFound,
                                "Attempt to describe a user credential that does not exist",
                            )
                        } else {
                            return result(&user, all[&user].clone());
                        };
                        result(&user, Vec::new())
                            .with_error_code(code.code())
                            .with_error_message(Some(str_bytes(msg)))
                    })
                    .collect()
            }
        };
        Some(DescribeUserScramCredentialsResponse::default().with_results(results))
    }
}

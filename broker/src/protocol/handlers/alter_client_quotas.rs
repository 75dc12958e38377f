//! AlterClientQuotas (key 49, KIP-546): sets and removes quotas on user and
//! client-id entities (`producer_byte_rate`, `consumer_byte_rate`,
//! `request_percentage`), written to the metadata log so every broker applies
//! the same quotas. One result per entry; an entry that is malformed, names a
//! key twice or an unknown key, or sets a value out of range changes nothing,
//! and the valid entries are applied together. `validate_only` checks only.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntryData;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData as ResultEntry};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::protocol::VersionRange;

use super::{propose, str_bytes};
use crate::controller::image::Command;
use crate::protocol::handler::{Handler, Operation, RequestContext};
use crate::quota::config::invalid_value;
use crate::quota::{QuotaChange as Change, QuotaEntity, QuotaType, QuotaValue};

pub struct AlterClientQuotas;

/// One entry as a change to apply, or why it cannot be.
fn validate(entry: &EntryData) -> Result<Change, String> {
    let entity = QuotaEntity::from_components(
        entry
            .entity
            .iter()
            .map(|e| (e.entity_type.as_str(), e.entity_name.as_ref().map(|n| n.as_str()))),
    )?;
    let mut ops: Vec<(QuotaType, Option<QuotaValue>)> = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let Some(t) = QuotaType::from_key(op.key.as_str()) else {
            return Err(match op.key.as_str() {
                "controller_mutation_rate" | "connection_creation_rate" => {
                    format!("Quota {} is not supported by this broker", op.key.as_str())
                }
                other => format!("Invalid configuration key {other}"),
            });
        };
        if ops.iter().any(|(seen, _)| *seen == t) {
            return Err(format!("Duplicate quota key {} in one entity's operations", t.key()));
        }
        if op.remove {
            ops.push((t, None));
        } else {
            if let Some(why) = invalid_value(t, op.value) {
                return Err(why);
            }
            ops.push((t, Some(QuotaValue(op.value))));
        }
    }
    Ok((entity, ops))
}

impl Handler for AlterClientQuotas {
    type Request = AlterClientQuotasRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    async fn handle(ctx: RequestContext, req: AlterClientQuotasRequest) -> Option<AlterClientQuotasResponse> {
        let allowed = ctx.authz().allows_cluster(Operation::AlterConfigs);
        let mut outcomes: Vec<Result<(), (ResponseError, String)>> = Vec::with_capacity(req.entries.len());
        let mut changes: Vec<Change> = Vec::new();
        let mut applied_at: Vec<usize> = Vec::new();
        for (i, entry) in req.entries.iter().enumerate() {
            if !allowed {
                outcomes.push(Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "Authorization failed.".into(),
                )));
                continue;
            }
            match validate(entry) {
                Err(why) => outcomes.push(Err((ResponseError::InvalidRequest, why))),
                Ok((entity, _)) if changes.iter().any(|(e, _)| *e == entity) => outcomes.push(Err((
                    ResponseError::InvalidRequest,
                    format!("Entity {} appears twice in the request", entity.describe()),
                ))),
                Ok(change) => {
                    changes.push(change);
                    applied_at.push(i);
                    outcomes.push(Ok(()));
                }
            }
        }
        if !changes.is_empty() && !req.validate_only {
            if let Err(e) = propose(&ctx, Command::AlterClientQuotas { changes }).await {
                for i in applied_at {
                    outcomes[i] = Err(e.clone());
                }
            }
        }
        let entries = req
            .entries
            .iter()
            .zip(outcomes)
            .map(|(entry, outcome)| {
                let (code, message) = match outcome {
                    Ok(()) => (0, None),
                    Err((e, m)) => (e.code(), Some(str_bytes(m))),
                };
                ResultEntry::default()
                    .with_error_code(code)
                    .with_error_message(message)
                    .with_entity(
                        entry
                            .entity
                            .iter()
                            .map(|e| {
                                EntityData::default()
                                    .with_entity_type(e.entity_type.clone())
                                    .with_entity_name(e.entity_name.clone())
                            })
                            .collect(),
                    )
            })
            .collect();
        Some(AlterClientQuotasResponse::default().with_entries(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData as Entity, OpData};

    fn entry(entity: &[(&str, Option<&str>)], ops: &[(&str, f64, bool)]) -> EntryData {
        EntryData::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(t, n)| {
                        Entity::default()
                            .with_entity_type(str_bytes(*t))
                            .with_entity_name(n.map(str_bytes))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter()
                    .map(|(k, v, remove)| {
                        OpData::default()
                            .with_key(str_bytes(*k))
                            .with_value(*v)
                            .with_remove(*remove)
                    })
                    .collect(),
            )
    }

    #[test]
    fn entries_become_changes_or_the_reason_they_cannot() {
        let (entity, ops) = validate(&entry(
            &[("user", Some("alice")), ("client-id", None)],
            &[("producer_byte_rate", 1024.0, false), ("request_percentage", 0.0, true)],
        ))
        .unwrap();
        assert_eq!(entity.describe(), "user=alice, client-id=<default>");
        assert_eq!(
            ops,
            vec![
                (QuotaType::Produce, Some(QuotaValue(1024.0))),
                (QuotaType::Request, None)
            ]
        );
        for (bad, why) in [
            (entry(&[], &[("producer_byte_rate", 1.0, false)]), "empty"),
            (
                entry(&[("user", Some("a"))], &[("fetch_rate", 1.0, false)]),
                "Invalid configuration key",
            ),
            (
                entry(&[("user", Some("a"))], &[("controller_mutation_rate", 1.0, false)]),
                "not supported",
            ),
            (
                entry(&[("user", Some("a"))], &[("consumer_byte_rate", -5.0, false)]),
                "positive",
            ),
            (
                entry(&[("user", Some("a"))], &[("consumer_byte_rate", 5.5, false)]),
                "Long",
            ),
            (
                entry(
                    &[("user", Some("a"))],
                    &[("consumer_byte_rate", 5.0, false), ("consumer_byte_rate", 0.0, true)],
                ),
                "Duplicate",
            ),
        ] {
            let err = validate(&bad).unwrap_err();
            assert!(err.contains(why), "{err} lacks {why}");
        }
    }
}

//! DescribeClientQuotas (key 48, KIP-546): the quotas set on entities that
//! match a filter. Each component names an entity type and matches one name
//! (EXACT), the type's default (DEFAULT) or any (ANY); `strict` leaves out
//! entities with types the filter does not name. A malformed filter is
//! INVALID_REQUEST for the whole request, as Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::protocol::handler::{Handler, Operation, RequestContext};
use crate::quota::config::{EntityName, CLIENT_ID, USER};
use crate::quota::QuotaEntity;

pub struct DescribeClientQuotas;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// What one component accepts of an entity's name of its type.
#[derive(Debug, PartialEq)]
enum Match {
    Exact(String),
    Default,
    Any,
}

impl Match {
    fn accepts(&self, name: Option<&EntityName>) -> bool {
        match (self, name) {
            (_, None) => false,
            (Match::Any, Some(_)) => true,
            (Match::Default, Some(n)) => *n == EntityName::Default,
            (Match::Exact(want), Some(EntityName::Named(n))) => n == want,
            (Match::Exact(_), Some(EntityName::Default)) => false,
        }
    }
}

/// The filter: what the user and client-id parts must be, if named.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    user: Option<Match>,
    client_id: Option<Match>,
    strict: bool,
}

fn parse_filter(components: &[ComponentData], strict: bool) -> Result<Filter, String> {
    let mut filter = Filter {
        strict,
        ..Filter::default()
    };
    for c in components {
        let m = match c.match_type {
            MATCH_EXACT => match &c._match {
                Some(name) => Match::Exact(name.to_string()),
                None => return Err(format!("Unspecified match for {} in an EXACT component", c.entity_type)),
            },
            MATCH_DEFAULT => Match::Default,
            MATCH_ANY => Match::Any,
            other => return Err(format!("Unknown match type {other}")),
        };
        let slot = match c.entity_type.as_str() {
            USER => &mut filter.user,
            CLIENT_ID => &mut filter.client_id,
            other => return Err(format!("Custom entity type '{other}' is not supported")),
        };
        if slot.is_some() {
            return Err(format!("Duplicate filter component entity type: {}", c.entity_type));
        }
        *slot = Some(m);
    }
    Ok(filter)
}

impl Filter {
    fn matches(&self, e: &QuotaEntity) -> bool {
        let part = |m: &Option<Match>, name: Option<&EntityName>| match m {
            Some(m) => m.accepts(name),
            None => !self.strict || name.is_none(),
        };
        part(&self.user, e.user.as_ref()) && part(&self.client_id, e.client_id.as_ref())
    }
}

impl Handler for DescribeClientQuotas {
    type Request = DescribeClientQuotasRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    async fn handle(ctx: RequestContext, req: DescribeClientQuotasRequest) -> Option<DescribeClientQuotasResponse> {
        let refused = |e: ResponseError, message: String| {
            Some(
                DescribeClientQuotasResponse::default()
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_entries(None),
            )
        };
        if !ctx.authz().allows_cluster(Operation::DescribeConfigs) {
            return refused(
                ResponseError::ClusterAuthorizationFailed,
                "Authorization failed.".into(),
            );
        }
        let filter = match parse_filter(&req.components, req.strict) {
            Ok(f) => f,
            Err(why) => return refused(ResponseError::InvalidRequest, why),
        };
        let entries = ctx.metadata().with_image(|img| {
            img.client_quotas
                .iter()
                .filter(|(entity, _)| filter.matches(entity))
                .map(|(entity, values)| {
                    EntryData::default()
                        .with_entity(
                            entity
                                .components()
                                .into_iter()
                                .map(|(t, n)| {
                                    EntityData::default()
                                        .with_entity_type(str_bytes(t))
                                        .with_entity_name(n.map(str_bytes))
                                })
                                .collect(),
                        )
                        .with_values(
                            values
                                .iter()
                                .map(|(t, v)| ValueData::default().with_key(str_bytes(t.key())).with_value(v.0))
                                .collect(),
                        )
                })
                .collect::<Vec<_>>()
        });
        Some(DescribeClientQuotasResponse::default().with_entries(Some(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(t: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(str_bytes(t))
            .with_match_type(match_type)
            .with_match(name.map(str_bytes))
    }

    fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
        QuotaEntity { user, client_id }
    }

    #[test]
    fn components_match_exact_default_and_any_names() {
        let alice = || Some(EntityName::Named("alice".into()));
        let app = || Some(EntityName::Named("app".into()));
        let default = || Some(EntityName::Default);
        let exact = parse_filter(&[component(USER, MATCH_EXACT, Some("alice"))], false).unwrap();
        assert!(exact.matches(&entity(alice(), None)));
        assert!(
            exact.matches(&entity(alice(), app())),
            "not strict: other types may be present"
        );
        assert!(!exact.matches(&entity(default(), None)));
        assert!(!exact.matches(&entity(None, app())));
        let strict = parse_filter(&[component(USER, MATCH_EXACT, Some("alice"))], true).unwrap();
        assert!(strict.matches(&entity(alice(), None)));
        assert!(!strict.matches(&entity(alice(), app())));
        let defaults = parse_filter(&[component(CLIENT_ID, MATCH_DEFAULT, None)], false).unwrap();
        assert!(defaults.matches(&entity(alice(), default())));
        assert!(!defaults.matches(&entity(None, app())));
        let any = parse_filter(&[component(CLIENT_ID, MATCH_ANY, None)], true).unwrap();
        assert!(any.matches(&entity(None, app())) && any.matches(&entity(None, default())));
        assert!(!any.matches(&entity(alice(), None)));
        let all = parse_filter(&[], false).unwrap();
        assert!(all.matches(&entity(alice(), app())));
    }

    #[test]
    fn malformed_filters_are_refused() {
        for bad in [
            vec![component(USER, MATCH_EXACT, None)],
            vec![component(USER, 7, None)],
            vec![component("ip", MATCH_ANY, None)],
            vec![component(USER, MATCH_ANY, None), component(USER, MATCH_DEFAULT, None)],
        ] {
            assert!(parse_filter(&bad, false).is_err(), "{bad:?}");
        }
    }
}

//! metav1 Conditions: one entry per type, `lastTransitionTime` moves only when the status does.

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A condition of `type_` at `generation`, stamped now.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(jiff::Timestamp::now()),
    }
}

/// Replaces the condition of the same type, keeping its transition time when the status is unchanged.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// Whether `conditions` hold `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether `conditions` hold `type_` with this reason.
pub fn is_reason(conditions: &[Condition], type_: &str, reason: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.reason == reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut cs = vec![];
        let mut first = condition("Ready", false, "Creating", "", Some(1));
        first.last_transition_time = Time(jiff::Timestamp::UNIX_EPOCH);
        set_condition(&mut cs, first);
        set_condition(&mut cs, condition("Ready", false, "Creating", "still", Some(2)));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time.0, jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(cs[0].observed_generation, Some(2));
        set_condition(&mut cs, condition("Ready", true, "Ready", "", Some(2)));
        assert_ne!(cs[0].last_transition_time.0, jiff::Timestamp::UNIX_EPOCH);
        assert!(is_true(&cs, "Ready"));
    }
}

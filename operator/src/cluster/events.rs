//! The Events a KafkaCluster's reconcile publishes, and the phases its status
//! shows: enums, serialised to the strings users see (and alert on).

/// `status.phase` of a KafkaCluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Ready,
    Degraded,
    Reconciling,
    Scaling,
    Rolling,
    Invalid,
    Paused,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 7] = [
        Phase::Ready,
        Phase::Degraded,
        Phase::Reconciling,
        Phase::Scaling,
        Phase::Rolling,
        Phase::Invalid,
        Phase::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::Reconciling => "Reconciling",
            Phase::Scaling => "Scaling",
            Phase::Rolling => "Rolling",
            Phase::Invalid => "Invalid",
            Phase::Paused => "Paused",
        }
    }

    /// The phase a status recorded, if it is one.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The reason of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The spec is refused.
    InvalidSpec,
    VolumesGrown,
    VolumeExpansionFailed,
    /// The cluster was deleted (the volume policy applied).
    Deleted,
    /// The phase changed to this one.
    Phase(Phase),
    Scaling,
    ScalingCompleted,
    ScalingCancelled,
    ScaleDownRefused,
    RebalanceStalled,
    Rolling,
    RollCompleted,
    RollBlocked,
    /// A CA's key is being replaced (a new one in the trust bundle).
    CaReplacing,
    /// The old CA left the trust bundle.
    CaReplaced,
    /// A CA the user brings (`generate: false`) is missing or unusable.
    CaUnusable,
    /// One voter of the metadata quorum is being added or removed.
    VoterChange,
    /// A voter change would leave the quorum without a majority.
    VoterChangeRefused,
    /// The quorum's voters are the ones `spec.controllers` asks for.
    VotersReady,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidSpec => "InvalidSpec",
            Reason::VolumesGrown => "VolumesGrown",
            Reason::VolumeExpansionFailed => "VolumeExpansionFailed",
            Reason::Deleted => "Deleted",
            Reason::Phase(p) => p.as_str(),
            Reason::Scaling => "Scaling",
            Reason::ScalingCompleted => "ScalingCompleted",
            Reason::ScalingCancelled => "ScalingCancelled",
            Reason::ScaleDownRefused => "ScaleDownRefused",
            Reason::RebalanceStalled => "RebalanceStalled",
            Reason::Rolling => "Rolling",
            Reason::RollCompleted => "RollCompleted",
            Reason::RollBlocked => "RollBlocked",
            Reason::CaReplacing => "CaReplacing",
            Reason::CaReplaced => "CaReplaced",
            Reason::CaUnusable => "CaUnusable",
            Reason::VoterChange => "VoterChange",
            Reason::VoterChangeRefused => "VoterChangeRefused",
            Reason::VotersReady => "VotersReady",
        }
    }

    /// Whether the Event is a Warning (something needs a person) or Normal.
    pub fn warning(self) -> bool {
        matches!(
            self,
            Reason::InvalidSpec
                | Reason::VolumeExpansionFailed
                | Reason::Phase(Phase::Degraded)
                | Reason::ScaleDownRefused
                | Reason::RebalanceStalled
                | Reason::RollBlocked
                | Reason::CaUnusable
                | Reason::VoterChangeRefused
        )
    }
}

/// One Event to publish about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub reason: Reason,
    pub note: String,
}

impl Event {
    pub fn new(reason: Reason, note: impl Into<String>) -> Event {
        Event {
            reason,
            note: note.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_through_their_strings() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert_eq!(Phase::parse("Sideways"), None);
    }

    #[test]
    fn warnings_are_the_events_that_need_a_person() {
        assert!(Reason::Phase(Phase::Degraded).warning());
        assert!(!Reason::Phase(Phase::Ready).warning());
        assert!(Reason::RollBlocked.warning() && !Reason::Rolling.warning());
        assert_eq!(Reason::Phase(Phase::Scaling).as_str(), Reason::Scaling.as_str());
    }
}

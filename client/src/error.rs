//! The admin client's errors: what a caller (or a script, through skeinctl's
//! exit codes) can tell apart.

use kafka_protocol::error::ResponseError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker answered with a Kafka error code (and maybe a message).
    #[error("{code:?} ({}){}", code.code(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        code: ResponseError,
        message: Option<String>,
    },
    /// No broker of the bootstrap list or of the cluster could be reached.
    #[error("cannot reach any broker ({0})")]
    Unreachable(String),
    /// The operation did not complete before its deadline; the last error is kept.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The broker supports no version of the API that this client speaks.
    #[error("the broker does not support {api} in a version this client speaks")]
    UnsupportedVersion { api: &'static str },
    /// A response that does not fit the request (a missing item, a bad frame).
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// The broker refused this client's credentials (SASL) or a TLS
    /// handshake failed (certificates): trying again will not help.
    #[error("authentication failed: {0}")]
    Authentication(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn kafka(code: ResponseError, message: Option<impl ToString>) -> Error {
        Error::Kafka {
            code,
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        }
    }

    /// The Kafka error code, if the broker sent one.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again (after refreshing metadata) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            // An unknown topic is an answer to an admin request, not a passing state.
            Error::Kafka {
                code: ResponseError::UnknownTopicOrPartition,
                ..
            } => false,
            Error::Kafka { code, .. } => {
                code.is_retriable()
                    || matches!(
                        code,
                        ResponseError::NotController
                            | ResponseError::CoordinatorLoadInProgress
                            | ResponseError::CoordinatorNotAvailable
                            | ResponseError::NotCoordinator
                    )
            }
            Error::Io(_) | Error::Unreachable(_) => true,
            _ => false,
        }
    }
}

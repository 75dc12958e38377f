//! The broker's admin error: a Kafka error code and a message for the client,
//! with the one mapping from each lower-level error to its code.

use std::io;

use kafka_protocol::error::ResponseError;
use skein_model::config::ConfigError;
use skein_model::topic_name::TopicNameError;

/// An error of an admin operation: a Kafka error code and a message for the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    pub code: ResponseError,
    pub message: String,
}

impl AdminError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for AdminError {
    fn from(e: ConfigError) -> Self {
        AdminError::new(ResponseError::InvalidConfig, e.to_string())
    }
}

impl From<TopicNameError> for AdminError {
    fn from(e: TopicNameError) -> Self {
        AdminError::new(ResponseError::InvalidTopicException, e.to_string())
    }
}

impl From<io::Error> for AdminError {
    fn from(e: io::Error) -> Self {
        AdminError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}

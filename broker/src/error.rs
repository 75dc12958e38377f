//! The broker's admin error: a Kafka error code and a message for the client,
//! with the one mapping from each lower-level error to its code.

use std::io;

use kafka_protocol::error::ResponseError;
use skein_model::config::ConfigError;
use skein_model::topic_name::TopicNameError;

use crate::log::batch::BatchError;
use crate::log::producer_state::SequenceError;
use crate::log::AppendError;

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

/// The single place where storage errors become Kafka error codes.
pub fn append_error_code(e: &AppendError) -> ResponseError {
    match e {
        AppendError::InvalidBatch(BatchError::Crc { .. })
        | AppendError::InvalidBatch(BatchError::Truncated(_))
        | AppendError::InvalidBatch(BatchError::LengthMismatch { .. }) => ResponseError::CorruptMessage,
        AppendError::InvalidBatch(BatchError::Magic(_)) | AppendError::InvalidBatch(BatchError::RecordCount { .. }) => {
            ResponseError::InvalidRecord
        }
        AppendError::InvalidRecord { .. } => ResponseError::InvalidRecord,
        AppendError::TooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::Sequence(SequenceError::OutOfOrder { .. }) => ResponseError::OutOfOrderSequenceNumber,
        AppendError::Sequence(SequenceError::InvalidProducerEpoch { .. }) => ResponseError::InvalidProducerEpoch,
        AppendError::Sequence(SequenceError::StaleMarker { .. }) => ResponseError::ProducerFenced,
        AppendError::Io(_) => ResponseError::KafkaStorageError,
        AppendError::Unverified { .. } => ResponseError::InvalidTxnState,
    }
}

//! The operator's errors, each with the category used as a condition reason and a metric label.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Kafka admin: {0}")]
    Kafka(#[from] skein_client::Error),
    #[error("KafkaCluster {0} is not ready")]
    ClusterNotReady(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("certificates: {0}")]
    Certificates(#[from] crate::certificates::issue::CertError),
}

impl Error {
    /// The category: a condition reason and the `reason` label of the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "Forbidden",
            Error::Kube(kube::Error::Api(s)) if s.code == 422 => "Rejected",
            Error::Kube(_) => "KubernetesApiError",
            Error::Kafka(_) => "KafkaError",
            Error::ClusterNotReady(_) => "ClusterNotReady",
            Error::Finalizer(_) => "FinalizerError",
            Error::Certificates(_) => "CertificateError",
        }
    }
}

impl<E: std::error::Error + 'static> From<kube::runtime::finalizer::Error<E>> for Error
where
    E: Into<Error>,
{
    fn from(e: kube::runtime::finalizer::Error<E>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(e) | F::CleanupFailed(e) => e.into(),
            F::AddFinalizer(e) | F::RemoveFinalizer(e) => Error::Kube(e),
            F::UnnamedObject => Error::Finalizer("object has no name".into()),
            F::InvalidFinalizer => Error::Finalizer("invalid finalizer".into()),
        }
    }
}

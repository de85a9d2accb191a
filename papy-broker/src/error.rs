//! The errors of the broker crate.

/// What can go wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker refused a command or the connection failed. The message
    /// never holds the URL's password.
    #[error("broker: {0}")]
    Broker(String),
    /// An entry that does not hold what papy writes.
    #[error("malformed stream entry {id}: {reason}")]
    Malformed {
        /// The entry's id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Invalid settings.
    #[error("{0}")]
    Config(String),
    /// This worker's key is not the run's: serving would dead-letter every
    /// entry, so the worker stops instead of retrying.
    #[error("{0}")]
    KeyMismatch(String),
    /// Redis refused a write because it is at its `maxmemory` (`OOM`):
    /// retrying does not help until memory is freed or the limit raised.
    #[error("Redis is at its maxmemory and refuses writes ({0}): raise `maxmemory`, or free memory (the keys of finished runs expire after their lease)")]
    Full(String),
}

impl From<redis::RedisError> for BrokerError {
    fn from(e: redis::RedisError) -> Self {
        if e.code() == Some("OOM") {
            return BrokerError::Full(e.to_string());
        }
        BrokerError::Broker(e.to_string())
    }
}

impl From<BrokerError> for papy_core::Error {
    fn from(e: BrokerError) -> Self {
        papy_core::Error::Config(e.to_string())
    }
}

/// The result type of this crate.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

//! Broker URLs in logs and messages: with the password hidden.

/// The URL with any password (and user name) replaced by `***`, for logs
/// and error messages: everything up to the *last* `@` is user information,
/// so a password holding `/`, `?` or `@` is hidden whole.
///
/// ```
/// use papy_broker::redact;
/// assert_eq!(redact("redis://:s3cret@db:6379/0"), "redis://***@db:6379/0");
/// assert_eq!(redact("rediss://user:pw@db"), "rediss://***@db");
/// assert_eq!(redact("redis://:pa/ss@db:6379"), "redis://***@db:6379");
/// assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// assert_eq!(redact("redis+unix:///tmp/r.sock?pass=pw"), "redis+unix:///tmp/r.sock?***");
/// ```
pub fn redact(url: &str) -> String {
    papy_core::pool::redact_url(url)
}

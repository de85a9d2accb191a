//! Broker URLs in logs and messages: with the password hidden.

use serde::{Deserialize, Serialize};

/// A broker URL whose `Debug` shows it [`redact`]ed (as a string).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Url(pub String);

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        redact(&self.0).fmt(f)
    }
}

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
    let (scheme, rest) = url.find("://").map_or(("", url), |p| url.split_at(p + 3));
    if let Some(at) = rest.rfind('@') {
        return format!("{scheme}***{}", &rest[at..]);
    }
    // Unix socket URLs carry the password as a query parameter.
    match rest.find('?') {
        Some(q) if rest[q..].contains("pass") => format!("{scheme}{}?***", &rest[..q]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn everything_up_to_the_last_at_is_user_information() {
        assert_eq!(
            super::redact("redis://:p/w?x@y@db:1/0"),
            "redis://***@db:1/0"
        );
        assert_eq!(super::redact("redis://u@db"), "redis://***@db");
        assert_eq!(super::redact("db:6379"), "db:6379");
    }
}

//! Broker URLs in logs and messages: with the password hidden.

/// The URL with any password (and user name) replaced by `***`, for logs
/// and error messages.
///
/// ```
/// use papy_broker::redact;
/// assert_eq!(redact("redis://:s3cret@db:6379/0"), "redis://***@db:6379/0");
/// assert_eq!(redact("rediss://user:pw@db"), "rediss://***@db");
/// assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// assert_eq!(redact("redis+unix:///tmp/r.sock?pass=pw"), "redis+unix:///tmp/r.sock?***");
/// ```
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(p) => (&url[..p + 3], &url[p + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_string(),
    };
    // Unix socket URLs carry the password as a query parameter.
    let tail = match tail.find('?') {
        Some(q) if tail[q..].contains("pass") => format!("{}?***", &tail[..q]),
        _ => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

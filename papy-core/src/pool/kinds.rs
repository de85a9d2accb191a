//! Pool kinds provided by other crates (brokers), so the core can build
//! them from a pipeline file without depending on them.
//!
//! A crate such as `papy-broker` installs a builder for its kind (`redis`)
//! once, before pipelines are loaded; [`file::numap_of`](crate::file::numap_of)
//! then builds `kind = "redis"` resources through it. A kind nobody
//! installed is a clear configuration error, never a silent thread pool.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{Pool, WorkerCommand};
use crate::error::{Error, Result};

/// A broker URL with its password (and user name) replaced by `***`, for
/// logs, error messages and `Debug`: everything between `://` and the
/// *last* `@` is user information (a password may hold `/`, `?` or `@`),
/// and a Unix socket URL's query holding a password is hidden too.
///
/// ```
/// use papy_core::pool::redact_url;
/// assert_eq!(redact_url("redis://:s3cret@db:6379/0"), "redis://***@db:6379/0");
/// assert_eq!(redact_url("redis://:a/b?c@d@db:6379/0"), "redis://***@db:6379/0");
/// assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(p) => (&url[..p + 3], &url[p + 3..]),
        None => ("", url),
    };
    if let Some(at) = rest.rfind('@') {
        return format!("{scheme}***{}", &rest[at..]);
    }
    // Unix socket URLs carry the password as a query parameter.
    match rest.find('?') {
        Some(q) if rest[q..].contains("pass") => format!("{scheme}{}?***", &rest[..q]),
        _ => url.to_string(),
    }
}

/// What a pipeline file says about a broker-backed pool.
#[derive(Clone, Default)]
pub struct BrokerSpec {
    /// The resource's name.
    pub name: String,
    /// The broker's URL (may hold a password: never log it as is).
    pub url: String,
    /// Names the run's keys; one host per run id at a time.
    pub run_id: Option<String>,
    /// Deliveries of one batch before it goes to the dead-letter stream.
    pub max_attempts: Option<u32>,
    /// A batch held this long by a silent worker is reclaimed.
    pub claim_after: Option<Duration>,
    /// Local workers the pool starts (and restarts) itself; 0 = only external ones.
    pub local_workers: usize,
    /// How to start a local worker (the pool adds the broker's settings to
    /// its environment).
    pub command: Option<WorkerCommand>,
}

/// Shows the URL with its password hidden.
impl std::fmt::Debug for BrokerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSpec")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("run_id", &self.run_id)
            .field("max_attempts", &self.max_attempts)
            .field("claim_after", &self.claim_after)
            .field("local_workers", &self.local_workers)
            .field("command", &self.command)
            .finish()
    }
}

/// Builds a pool of an installed kind.
pub type KindBuilder = fn(&BrokerSpec) -> Result<Arc<dyn Pool>>;

static KINDS: Mutex<BTreeMap<&'static str, KindBuilder>> = Mutex::new(BTreeMap::new());

/// Installs (or replaces) the builder of pool kind `kind`.
///
/// ```
/// use std::sync::Arc;
/// use papy_core::pool::{register_kind, build_kind, BrokerSpec, Pool, ThreadPool};
/// fn fake(_: &BrokerSpec) -> papy_core::Result<Arc<dyn Pool>> {
///     Ok(Arc::new(ThreadPool::new("fake", 1)?))
/// }
/// register_kind("fake", fake);
/// assert!(build_kind("fake", &BrokerSpec::default()).is_ok());
/// ```
pub fn register_kind(kind: &'static str, builder: KindBuilder) {
    KINDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(kind, builder);
}

/// Builds a pool of kind `kind` with the builder installed for it.
///
/// # Errors
/// No builder is installed for `kind` (the message says which crate to
/// install), or the builder's own error.
///
/// ```
/// use papy_core::pool::{build_kind, BrokerSpec};
/// let e = build_kind("nosuchkind", &BrokerSpec::default()).err().unwrap();
/// assert!(e.to_string().contains("nosuchkind"));
/// ```
pub fn build_kind(kind: &str, spec: &BrokerSpec) -> Result<Arc<dyn Pool>> {
    let builder = KINDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(kind)
        .copied();
    match builder {
        Some(b) => b(spec),
        None => Err(Error::Config(format!(
            "resource `{}`: pool kind `{kind}` is not available in this program \
             (the `papy` command line has it; a library user calls `papy_broker::install()` first)",
            spec.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use crate::Plumber;

    #[test]
    fn a_redis_resource_without_the_kind_installed_is_a_clear_error() {
        let text = r#"
[resources.farm]
kind = "redis"
url = "redis://127.0.0.1:6379"

[[pipers]]
name = "a"
resource = "farm"
worker = ["papy.ipasser"]
"#;
        let e = Plumber::from_toml(text).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(
            e.contains("resource `farm`: pool kind `redis` is not available"),
            "{e}"
        );
    }

    #[test]
    fn a_resources_debug_hides_the_password() {
        let r: crate::file::Resource =
            toml::from_str("kind = \"redis\"\nurl = \"redis://:pa/ss@w@db:6379/0\"\n")
                .expect("a resource");
        let text = format!("{r:?}");
        assert!(text.contains("redis://***@db:6379/0"), "{text}");
        assert!(!text.contains("pa/ss"), "{text}");
    }

    #[test]
    fn redact_treats_everything_up_to_the_last_at_as_user_information() {
        assert_eq!(
            super::redact_url("redis://:p/w?x@y@db:1/0"),
            "redis://***@db:1/0"
        );
        assert_eq!(super::redact_url("redis://u@db"), "redis://***@db");
        assert_eq!(super::redact_url("db:6379"), "db:6379");
    }

    #[test]
    fn a_redis_resource_needs_a_url() {
        let text = "[resources.farm]\nkind = \"redis\"\n";
        let e = Plumber::from_toml(text).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("needs `url`"));
    }
}

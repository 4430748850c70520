//! An SDK client built on first use. Cold start: building a client costs a Lambda init
//! time (its runtime plugins, its endpoint resolver parsing the partition table) even when
//! the invocation never calls it, as when `runs-api` reads a run without sending to SQS, or
//! a payload is small enough to stay in the table instead of going to S3. Build such a
//! client lazily; build the ones every invocation uses (DynamoDB) at init.

use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;

/// A client of type `C`, built by its builder on the first [`LazyClient::get`] and shared
/// by every clone afterwards.
pub struct LazyClient<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    client: OnceLock<C>,
    build: Box<dyn Fn() -> C + Send + Sync>,
}

impl<C: Clone + Send + Sync + 'static> LazyClient<C> {
    /// A client that `build` makes when first needed (once, even under concurrent calls).
    pub fn new(build: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: OnceLock::new(),
                build: Box::new(build),
            }),
        }
    }

    /// A client that `build` makes from (a clone of) `config` when first needed, e.g.
    /// `LazyClient::on_first_use(&config, aws_sdk_sqs::Client::new)`.
    pub fn on_first_use(config: &SdkConfig, build: fn(&SdkConfig) -> C) -> Self {
        let config = config.clone();
        Self::new(move || build(&config))
    }

    /// A client already built.
    pub fn ready(client: C) -> Self {
        let spare = client.clone();
        Self {
            inner: Arc::new(Inner {
                client: OnceLock::from(client),
                build: Box::new(move || spare.clone()),
            }),
        }
    }

    /// The client, built now if this is the first call.
    pub fn get(&self) -> &C {
        self.inner.client.get_or_init(|| (self.inner.build)())
    }

    /// Whether the client has been built.
    pub fn is_built(&self) -> bool {
        self.inner.client.get().is_some()
    }
}

impl<C> Clone for LazyClient<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.client.get() {
            Some(client) => f.debug_tuple("LazyClient").field(client).finish(),
            None => f.write_str("LazyClient(not built yet)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn builds_once_on_first_use_and_clones_share_it() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&builds);
        let lazy = LazyClient::new(move || counter.fetch_add(1, Ordering::SeqCst) + 100);
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 0);
        assert_eq!(*clone.get(), 100);
        assert_eq!(*lazy.get(), 100);
        assert!(lazy.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_ready_client_is_built() {
        let ready = LazyClient::ready(7_u8);
        assert!(ready.is_built());
        assert_eq!(*ready.get(), 7);
    }
}

//! `Cluster`: which backplane a socket's endpoint joins, and the cluster's timings.

use std::sync::Arc;
use std::time::Duration;

use super::backplane::Backplane;
use super::hub::Hub;

/// Which cluster a [`Socket`](crate::Socket) is a node of: the [`Backplane`] its
/// [`Endpoint`](crate::Endpoint) reaches the other nodes through, and the timings of the
/// cluster's membership. Set with [`Config::cluster`](crate::Config::cluster).
///
/// The default is [`standalone`](Cluster::standalone): a cluster of one node, where nothing
/// leaves the process and an operation costs what it did before clusters existed.
///
/// ```
/// use std::time::Duration;
///
/// let hub = ws::cluster::Hub::new();
/// let config = ws::Config::new().cluster(
///     ws::Cluster::in_process(&hub).heartbeat(Duration::from_millis(500)),
/// );
/// # drop(config);
/// ```
#[derive(Clone)]
pub struct Cluster {
    pub(crate) backplane: Option<Arc<dyn Backplane>>,
    pub(crate) heartbeat: Duration,
    pub(crate) expiry: Duration,
    pub(crate) query_timeout: Duration,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::standalone()
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("standalone", &self.backplane.is_none())
            .field("heartbeat", &self.heartbeat)
            .field("expiry", &self.expiry)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

impl Cluster {
    /// A cluster of one node: no backplane, nothing leaves the process. The default.
    pub fn standalone() -> Cluster {
        Cluster {
            backplane: None,
            heartbeat: Duration::from_secs(1),
            expiry: Duration::from_secs(3),
            query_timeout: Duration::from_secs(1),
        }
    }

    /// A node of the in-process cluster joined by `hub`.
    pub fn in_process(hub: &Hub) -> Cluster {
        Cluster::with_backplane(hub.backplane())
    }

    /// A node of the cluster of every node on the Redis at `url` (feature `redis`): Redis
    /// pub/sub carries the envelopes, on channels prefixed `ws:`. Nothing connects until the
    /// socket starts, and a node serves its own clients while Redis is down; see
    /// [`Redis`](super::Redis) for the link's behaviour, and
    /// `Cluster::with_backplane(Redis::new(url)?.prefix(..))` for another prefix.
    ///
    /// ```
    /// # fn main() -> Result<(), ws::cluster::RedisError> {
    /// let config = ws::Config::new().cluster(ws::Cluster::redis("redis://127.0.0.1:6379/")?);
    /// # drop(config);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RedisError`](super::RedisError) if `url` is not a Redis URL.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(url: &str) -> Result<Cluster, super::RedisError> {
        Ok(Cluster::with_backplane(super::Redis::new(url)?))
    }

    /// A node of a cluster joined by this backplane.
    pub fn with_backplane(backplane: impl Backplane) -> Cluster {
        Cluster {
            backplane: Some(Arc::new(backplane)),
            ..Cluster::standalone()
        }
    }

    /// How often this node tells the others it is alive (and how many clients it has).
    /// Default: 1 s.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(10));
        self
    }

    /// How long a node that has stopped sending heartbeats counts as alive. A node killed
    /// without a word leaves the others' view within this time and one sweep (a quarter of
    /// the heartbeat). Default: 3 s, three heartbeats.
    #[must_use]
    pub fn expiry(mut self, after: Duration) -> Self {
        self.expiry = after;
        self
    }

    /// How long a cluster-wide query ([`Endpoint::cluster_len`](crate::Endpoint::cluster_len))
    /// waits for the other nodes' answers before it reports those that did not answer.
    /// Default: 1 s.
    #[must_use]
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// Whether this is a cluster of one node, with no backplane.
    pub fn is_standalone(&self) -> bool {
        self.backplane.is_none()
    }
}

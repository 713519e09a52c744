//! A short Redis lock: `SET key token NX PX ttl`, released only by its holder (a script
//! compares the token), and expiring by itself if the holder dies.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::error::{ClusterError, Result};

/// Deletes the key only if it still holds our token (a lock that expired and was taken by
/// someone else is theirs).
const RELEASE: &str =
    r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// A lock held in Redis (see [`crate::Cluster::lock`]).
pub struct RedisLock {
    key: String,
    token: String,
}

impl RedisLock {
    /// Tries to take the lock until `wait` has passed; `Ok(None)` if someone else holds it.
    pub(crate) async fn acquire(
        redis: &mut ConnectionManager,
        key: String,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<RedisLock>> {
        let token = crate::random::hex(16);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(redis)
                .await
                .map_err(ClusterError::redis("take a lock"))?;
            if taken.is_some() {
                return Ok(Some(RedisLock { key, token }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    pub(crate) async fn release(self, redis: &mut ConnectionManager) -> Result<()> {
        let _: i64 = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(redis)
            .await
            .map_err(ClusterError::redis("release a lock"))?;
        Ok(())
    }
}

//! Server-side sessions. The signed cookie carries a random session id; the session itself
//! lives in the database (`sessions`), so signing out revokes it and it ends at its expiry.
//!
//! Every request that carries a session would otherwise read it: instead each instance keeps
//! what it read for a short while (`session_cache_seconds`, default 5 s), so the hot path adds
//! no query per reserve. A sign-out is honoured at once on the instance that served it and on
//! every other instance within that time.

use std::{sync::Arc, time::Duration};

use moka::sync::Cache;

pub use super::store::SessionId;
use super::store::{SessionRecord, Store, StoreError};
use crate::model::UserId;

/// A live session: who it signs in, and which session it is (sign-out revokes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user: UserId,
}

/// What an instance remembers of a session id: its user while live, or nothing (unknown,
/// revoked or expired), and until when (milliseconds since the epoch) that holds at most.
#[derive(Clone, Copy, Debug)]
struct Known {
    user: Option<UserId>,
    expires_at_ms: i64,
}

/// Opens, reads and revokes sessions. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    lifetime: Duration,
    cache: Option<Cache<SessionId, Known>>,
}

impl Sessions {
    /// Sessions that last `lifetime`, read through a cache of `cache_for` (none when zero).
    pub fn new(store: Arc<dyn Store>, lifetime: Duration, cache_for: Duration) -> Self {
        let cache = (!cache_for.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(cache_for)
                .build()
        });
        Self {
            store,
            lifetime,
            cache,
        }
    }

    /// How long a new session lasts (the cookie's max age).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Opens a session for `user`.
    pub async fn open(&self, user: UserId) -> Result<Session, StoreError> {
        let id = SessionId::random();
        self.store.create_session(id, user, self.lifetime).await?;
        Ok(Session { id, user })
    }

    /// The live session with this id, if it is one.
    pub async fn find(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        if let Some(known) = self.cache.as_ref().and_then(|cache| cache.get(&id)) {
            if known.expires_at_ms > now_ms {
                return Ok(known.user.map(|user| Session { id, user }));
            }
        }
        let known = match self.store.session(id).await? {
            Some(SessionRecord {
                user,
                expires_at_ms,
                live: true,
            }) => Known {
                user: Some(user),
                expires_at_ms,
            },
            // Unknown, revoked or expired: remembered as nobody, for the cache's time.
            _ => Known {
                user: None,
                expires_at_ms: i64::MAX,
            },
        };
        if let Some(cache) = &self.cache {
            cache.insert(id, known);
        }
        Ok(known.user.map(|user| Session { id, user }))
    }

    /// Revokes a session: it is anonymous from now on, here at once and on other instances
    /// within their cache time.
    pub async fn revoke(&self, id: SessionId) -> Result<(), StoreError> {
        self.store.revoke_session(id).await?;
        if let Some(cache) = &self.cache {
            cache.invalidate(&id);
        }
        Ok(())
    }
}

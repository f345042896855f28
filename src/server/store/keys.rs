//! Idempotency keys in the database: claims and settlements, written once for every database
//! like the stock writes (`server::sale::holds`) and, like them, many to a transaction. On
//! SQLite they take the writer's turn with everything else that writes; a claim that went straight to the
//! pool instead met the reserves' open transaction in SQLite's busy handler, which waits by
//! sleeping, and a keyed reserve (the web app's every reserve) ran at a tenth of the rate.
//! Their SQL is portable but for the database's "now", so each database's [`KeyTx`] impl is
//! one body (`key_steps!`) with its "now" filled in.

use async_trait::async_trait;

use super::{
    error::StoreError,
    steps::{Dialect, WriteTx},
};

/// A request's claim on its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRequest {
    /// Whose keys these are (a session's user, or the admin).
    pub scope: String,
    pub key: String,
    /// What the request does and with which input.
    pub fingerprint: String,
}

/// The answer to a claimed key (`None` releases it, so a retry runs again). Only the holder of
/// `token` may settle, so a claim taken over after a timeout is not clobbered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub scope: String,
    pub key: String,
    pub token: i64,
    pub answer: Option<StoredResponse>,
}

/// What an idempotency key says about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// First use (or a stale claim taken over): run the request, then settle the key with
    /// this token.
    Claimed { token: i64 },
    /// Already answered: send this again.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
    /// A new key, and its caller already has as many live keys as one may.
    TooMany,
}

/// The first answer to an idempotent request, as a retry gets it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    /// Where a form post was sent back to (a server function answering a plain form).
    pub location: Option<String>,
    pub body: String,
}

/// How long an unsettled claim blocks retries before a retry may take it over (a server that
/// died mid-request never settles its claim).
pub const KEY_CLAIM_TIMEOUT_MS: i64 = 30_000;

/// The stored row of a key that could not be claimed.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    fingerprint: String,
    status: Option<i32>,
    response: Option<String>,
    content_type: Option<String>,
    location: Option<String>,
}

impl KeyRow {
    pub(crate) fn claim(row: Option<KeyRow>, fingerprint: &str) -> KeyClaim {
        match row {
            // Released between our insert and this read: let the client retry.
            None => KeyClaim::InFlight,
            Some(row) if row.fingerprint != fingerprint => KeyClaim::Mismatch,
            Some(KeyRow {
                status: Some(status),
                response,
                content_type,
                location,
                ..
            }) => KeyClaim::Replay(StoredResponse {
                status: u16::try_from(status).unwrap_or(500),
                content_type,
                location,
                body: response.unwrap_or_default(),
            }),
            Some(_) => KeyClaim::InFlight,
        }
    }
}

/// The key steps inside one write transaction.
#[async_trait]
pub(crate) trait KeyTx: Send {
    /// Claims the key: answers the claim's token, or `None` when the key is taken (used, or
    /// claimed and not yet past the timeout) or new while its scope already has `max` keys.
    async fn claim(&mut self, request: &KeyRequest, max: i64) -> Result<Option<i64>, sqlx::Error>;
    /// How many keys a scope has.
    async fn keys_of(&mut self, scope: &str) -> Result<i64, sqlx::Error>;
    /// The row of a key that could not be claimed.
    async fn key_row(&mut self, scope: &str, key: &str) -> Result<Option<KeyRow>, sqlx::Error>;
    /// Records (or, without an answer, releases) a claimed key.
    async fn settle(&mut self, settlement: &Settlement) -> Result<(), sqlx::Error>;
}

/// Expands to the [`KeyTx`] impl of a transaction type whose connection is `self.$conn`,
/// given the database's "now".
macro_rules! key_steps {
    ($tx:ty, conn: $conn:tt, now: [$($now:tt)+]) => {
        #[async_trait::async_trait]
        impl $crate::server::store::keys::KeyTx for $tx {
            async fn claim(
                &mut self,
                request: &$crate::server::store::KeyRequest,
                max: i64,
            ) -> Result<Option<i64>, sqlx::Error> {
                // A claim left unsettled for longer than the timeout (a server that died
                // mid-request) may be taken over. A new key goes in only while its scope has
                // fewer than `max`.
                sqlx::query_scalar(concat!(
                    "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) \
                     SELECT $1, $2, $3, ",
                    $($now)+,
                    " WHERE (SELECT COUNT(*) FROM idempotency_keys WHERE scope = $1) < $5 \
                     ON CONFLICT (scope, key) DO UPDATE SET created_at = EXCLUDED.created_at \
                     WHERE idempotency_keys.status IS NULL \
                     AND idempotency_keys.fingerprint = EXCLUDED.fingerprint \
                     AND idempotency_keys.created_at < EXCLUDED.created_at - $4 \
                     RETURNING created_at"
                ))
                .bind(&request.scope)
                .bind(&request.key)
                .bind(&request.fingerprint)
                .bind($crate::server::store::keys::KEY_CLAIM_TIMEOUT_MS)
                .bind(max)
                .fetch_optional(&mut *self.$conn)
                .await
            }

            async fn keys_of(&mut self, scope: &str) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys WHERE scope = $1")
                    .bind(scope)
                    .fetch_one(&mut *self.$conn)
                    .await
            }

            async fn key_row(
                &mut self,
                scope: &str,
                key: &str,
            ) -> Result<Option<$crate::server::store::keys::KeyRow>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT fingerprint, status, response, content_type, location \
                     FROM idempotency_keys WHERE scope = $1 AND key = $2",
                )
                .bind(scope)
                .bind(key)
                .fetch_optional(&mut *self.$conn)
                .await
            }

            async fn settle(
                &mut self,
                settlement: &$crate::server::store::Settlement,
            ) -> Result<(), sqlx::Error> {
                let query = match &settlement.answer {
                    Some(answer) => sqlx::query(
                        "UPDATE idempotency_keys \
                         SET status = $1, response = $2, content_type = $3, location = $4 \
                         WHERE scope = $5 AND key = $6 AND created_at = $7 AND status IS NULL",
                    )
                    .bind(i32::from(answer.status))
                    .bind(&answer.body)
                    .bind(&answer.content_type)
                    .bind(&answer.location),
                    None => sqlx::query(
                        "DELETE FROM idempotency_keys \
                         WHERE scope = $1 AND key = $2 AND created_at = $3 AND status IS NULL",
                    ),
                };
                query
                    .bind(&settlement.scope)
                    .bind(&settlement.key)
                    .bind(settlement.token)
                    .execute(&mut *self.$conn)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use key_steps;

/// Idempotency keys, many to a transaction. Every database has them, through [`Dialect`].
#[async_trait]
pub trait KeyWrites: Send + Sync {
    /// Claims each request's key, in order, in one transaction: a key named twice is claimed
    /// by the first and in flight for the second; a new key of a scope that has `max` already
    /// is refused.
    async fn claim_keys(
        &self,
        requests: &[KeyRequest],
        max: i64,
    ) -> Result<Vec<KeyClaim>, StoreError>;
    /// Records each answer (or releases each key), in one transaction.
    async fn settle_keys(&self, settlements: &[Settlement]) -> Result<(), StoreError>;
}

#[async_trait]
impl<D> KeyWrites for D
where
    D: Dialect,
    D::Tx: KeyTx,
{
    async fn claim_keys(
        &self,
        requests: &[KeyRequest],
        max: i64,
    ) -> Result<Vec<KeyClaim>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut claims = vec![KeyClaim::InFlight; requests.len()];
        // Rows are locked in key order, so two instances' batches never wait on each other
        // in a cycle; a key named twice is claimed by its first mention.
        for i in key_order(requests, |r| (&r.scope, &r.key)) {
            let request = &requests[i];
            claims[i] = match tx.claim(request, max).await? {
                Some(token) => KeyClaim::Claimed { token },
                None => match tx.key_row(&request.scope, &request.key).await? {
                    // Not there, so not taken: the scope is full (or the key was released
                    // this instant, and a retry will do).
                    None if tx.keys_of(&request.scope).await? >= max => KeyClaim::TooMany,
                    row => KeyRow::claim(row, &request.fingerprint),
                },
            };
        }
        tx.commit(Vec::new()).await?;
        Ok(claims)
    }

    async fn settle_keys(&self, settlements: &[Settlement]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for i in key_order(settlements, |s| (&s.scope, &s.key)) {
            tx.settle(&settlements[i]).await?;
        }
        tx.commit(Vec::new()).await?;
        Ok(())
    }
}

/// The indices of `items` ordered by their (scope, key), first mentions first.
fn key_order<T>(items: &[T], key: impl Fn(&T) -> (&String, &String)) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Stable: a key named twice keeps its mentions in arrival order.
    order.sort_by(|&a, &b| key(&items[a]).cmp(&key(&items[b])));
    order
}

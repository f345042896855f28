//! Sign-ups: a buyer (by display name, or with a username and a password's hash) and their
//! first session, written together; those by display name many to a transaction like the
//! stock writes (`server::sale::holds`). On SQLite every commit is synced to disk and writers
//! take turns, so a sign-up written as two statements of its own paid two syncs and, meeting
//! the other writers in SQLite's busy handler, waited by sleeping. Their SQL is portable but for the
//! database's "now", so each database's [`AccountTx`] impl is one body (`account_steps!`).

use std::time::Duration;

use async_trait::async_trait;

use super::{
    error::StoreError,
    proofs::ProofTx,
    rows::SessionId,
    steps::{Dialect, WriteTx},
    tickets::Spend,
};
use crate::model::{ErrorCode, User, UserId};

/// A buyer to sign up, with the session they are signed in by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// A checked display name.
    pub name: String,
    pub session: SessionId,
    /// How long the session lasts.
    pub lifetime: Duration,
}

/// A buyer to sign up with a username (as typed; unique whatever its case) and the hash of
/// their password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLogin {
    pub username: String,
    pub password_hash: String,
}

/// The sign-up steps inside one write transaction.
#[async_trait]
pub(crate) trait AccountTx: Send {
    /// A new user; answers their id.
    async fn insert_user(&mut self, name: &str) -> Result<UserId, sqlx::Error>;
    /// A new user with a login, named by their username; `None` when the username is taken.
    async fn insert_login(&mut self, login: &NewLogin) -> Result<Option<UserId>, sqlx::Error>;
    /// A new session of `user` that lasts `lifetime`.
    async fn insert_session(
        &mut self,
        id: SessionId,
        user: UserId,
        lifetime: Duration,
    ) -> Result<(), sqlx::Error>;
}

/// Expands to the [`AccountTx`] impl of a transaction type whose connection is `self.$conn`,
/// given the database's "now".
macro_rules! account_steps {
    ($tx:ty, conn: $conn:tt, now: [$($now:tt)+]) => {
        #[async_trait::async_trait]
        impl $crate::server::store::accounts::AccountTx for $tx {
            async fn insert_user(
                &mut self,
                name: &str,
            ) -> Result<$crate::model::UserId, sqlx::Error> {
                sqlx::query_scalar(concat!(
                    "INSERT INTO users (name, created_at) VALUES ($1, ",
                    $($now)+,
                    ") RETURNING id"
                ))
                .bind(name)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn insert_login(
                &mut self,
                login: &$crate::server::store::accounts::NewLogin,
            ) -> Result<Option<$crate::model::UserId>, sqlx::Error> {
                sqlx::query_scalar(concat!(
                    "INSERT INTO users (name, created_at, username, password_hash) VALUES ($1, ",
                    $($now)+,
                    ", $2, $3) ON CONFLICT (username) DO NOTHING RETURNING id"
                ))
                .bind(&login.username)
                .bind(login.username.to_ascii_lowercase())
                .bind(&login.password_hash)
                .fetch_optional(&mut *self.$conn)
                .await
            }

            async fn insert_session(
                &mut self,
                id: $crate::server::store::SessionId,
                user: $crate::model::UserId,
                lifetime: std::time::Duration,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(concat!(
                    "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at) \
                     SELECT $1, $2, now, now, now + $3 FROM (SELECT ",
                    $($now)+,
                    " AS now) AS clock"
                ))
                .bind(id.to_string())
                .bind(user)
                .bind($crate::server::store::rows::ttl_ms(lifetime))
                .execute(&mut *self.$conn)
                .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use account_steps;

/// Sign-ups, many to a transaction. Every database has them, through [`Dialect`].
#[async_trait]
pub trait AccountWrites: Send + Sync {
    /// Signs up each buyer with their session, in one transaction; answers the users in the
    /// order given.
    async fn sign_up_many(&self, accounts: &[NewAccount]) -> Result<Vec<User>, StoreError>;
    /// Signs up a buyer with a login, spending `proof` (the proof of work that opened the
    /// door, if one did), and opens their session, in one transaction. Refused, writing
    /// nothing: `USERNAME_TAKEN`, or `PROOF_INVALID` for a proof spent already.
    async fn sign_up_login(
        &self,
        login: &NewLogin,
        proof: Option<&Spend>,
        session: SessionId,
        lifetime: Duration,
    ) -> Result<User, StoreError>;
    /// Opens a session of `user`, who proved who they are.
    async fn open_session(
        &self,
        user: UserId,
        session: SessionId,
        lifetime: Duration,
    ) -> Result<(), StoreError>;
}

#[async_trait]
impl<D> AccountWrites for D
where
    D: Dialect,
    D::Tx: AccountTx + ProofTx,
{
    async fn sign_up_many(&self, accounts: &[NewAccount]) -> Result<Vec<User>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut users = Vec::with_capacity(accounts.len());
        for account in accounts {
            let id = tx.insert_user(&account.name).await?;
            tx.insert_session(account.session, id, account.lifetime)
                .await?;
            users.push(User {
                id,
                name: account.name.clone(),
            });
        }
        tx.commit(Vec::new()).await?;
        Ok(users)
    }

    async fn sign_up_login(
        &self,
        login: &NewLogin,
        proof: Option<&Spend>,
        session: SessionId,
        lifetime: Duration,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(proof) = proof {
            if !tx.spend_proof(&proof.nonce, proof.expires_at).await? {
                tx.rollback().await?;
                return Err(StoreError::Refused(ErrorCode::ProofInvalid));
            }
        }
        let Some(id) = tx.insert_login(login).await? else {
            tx.rollback().await?;
            return Err(StoreError::Refused(ErrorCode::UsernameTaken));
        };
        tx.insert_session(session, id, lifetime).await?;
        tx.commit(Vec::new()).await?;
        Ok(User {
            id,
            name: login.username.clone(),
        })
    }

    async fn open_session(
        &self,
        user: UserId,
        session: SessionId,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        tx.insert_session(session, user, lifetime).await?;
        tx.commit(Vec::new()).await?;
        Ok(())
    }
}

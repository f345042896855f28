//! Sign-ups: a buyer (by display name, or with a username and a password's hash or a passkey)
//! and their first session, written together; those by display name many to a transaction like the
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

/// A buyer to sign up with a username (as typed; unique whatever its case) and what they will
/// sign in with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLogin {
    pub username: String,
    pub key: LoginKey,
}

/// What an account signs in with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginKey {
    /// A password's Argon2id hash (a PHC string).
    Password { hash: String },
    /// A passkey: its credential id (base64url) and the passkey as JSON.
    Passkey { id: String, passkey: String },
}

/// A passkey ceremony to wait for its answer: a sign-up's (naming the username it will make)
/// or a sign-in's (naming the account), with its state as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceremony {
    pub for_whom: CeremonyFor,
    pub state: String,
}

/// Whom a passkey ceremony is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CeremonyFor {
    SignUp { username: String },
    SignIn { user: UserId },
}

/// The sign-up steps inside one write transaction.
#[async_trait]
pub(crate) trait AccountTx: Send {
    /// A new user; answers their id.
    async fn insert_user(&mut self, name: &str) -> Result<UserId, sqlx::Error>;
    /// A new user with a login, named by their username; `None` when the username is taken.
    async fn insert_login(&mut self, login: &NewLogin) -> Result<Option<UserId>, sqlx::Error>;
    /// A passkey of `user`; false when its credential id is registered already.
    async fn insert_passkey(
        &mut self,
        user: UserId,
        id: &str,
        passkey: &str,
    ) -> Result<bool, sqlx::Error>;
    /// The passkey with this credential id, as it stands after a sign-in (its counter).
    async fn update_passkey(&mut self, id: &str, passkey: &str) -> Result<(), sqlx::Error>;
    /// A ceremony named `id` that waits `lifetime` for its answer.
    async fn insert_ceremony(
        &mut self,
        id: &str,
        ceremony: &Ceremony,
        lifetime: Duration,
    ) -> Result<(), sqlx::Error>;
    /// Takes (deletes) the ceremony named `id`: answers it if it had not expired.
    async fn take_ceremony(&mut self, id: &str) -> Result<Option<Ceremony>, sqlx::Error>;
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
                .bind(match &login.key {
                    $crate::server::store::accounts::LoginKey::Password { hash } => Some(hash),
                    $crate::server::store::accounts::LoginKey::Passkey { .. } => None,
                })
                .fetch_optional(&mut *self.$conn)
                .await
            }

            async fn insert_passkey(
                &mut self,
                user: $crate::model::UserId,
                id: &str,
                passkey: &str,
            ) -> Result<bool, sqlx::Error> {
                let done = sqlx::query(concat!(
                    "INSERT INTO passkeys (credential_id, user_id, passkey, created_at) \
                     VALUES ($1, $2, $3, ",
                    $($now)+,
                    ") ON CONFLICT DO NOTHING"
                ))
                .bind(id)
                .bind(user)
                .bind(passkey)
                .execute(&mut *self.$conn)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_passkey(&mut self, id: &str, passkey: &str) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE passkeys SET passkey = $2 WHERE credential_id = $1")
                    .bind(id)
                    .bind(passkey)
                    .execute(&mut *self.$conn)
                    .await?;
                Ok(())
            }

            async fn insert_ceremony(
                &mut self,
                id: &str,
                ceremony: &$crate::server::store::accounts::Ceremony,
                lifetime: std::time::Duration,
            ) -> Result<(), sqlx::Error> {
                use $crate::server::store::accounts::CeremonyFor;
                let (user, username) = match &ceremony.for_whom {
                    CeremonyFor::SignUp { username } => (None, Some(username.as_str())),
                    CeremonyFor::SignIn { user } => (Some(*user), None),
                };
                sqlx::query(concat!(
                    "INSERT INTO passkey_ceremonies (id, user_id, username, state, expires_at) \
                     VALUES ($1, $2, $3, $4, ",
                    $($now)+,
                    " + $5)"
                ))
                .bind(id)
                .bind(user)
                .bind(username)
                .bind(&ceremony.state)
                .bind($crate::server::store::rows::ttl_ms(lifetime))
                .execute(&mut *self.$conn)
                .await?;
                Ok(())
            }

            async fn take_ceremony(
                &mut self,
                id: &str,
            ) -> Result<Option<$crate::server::store::accounts::Ceremony>, sqlx::Error> {
                use $crate::server::store::accounts::{Ceremony, CeremonyFor};
                let row: Option<(Option<$crate::model::UserId>, Option<String>, String, bool)> =
                    sqlx::query_as(concat!(
                        "DELETE FROM passkey_ceremonies WHERE id = $1 \
                         RETURNING user_id, username, state, expires_at > ",
                        $($now)+
                    ))
                    .bind(id)
                    .fetch_optional(&mut *self.$conn)
                    .await?;
                Ok(row.and_then(|(user, username, state, live)| {
                    let for_whom = match (user, username) {
                        (Some(user), _) => CeremonyFor::SignIn { user },
                        (None, Some(username)) => CeremonyFor::SignUp { username },
                        (None, None) => return None,
                    };
                    live.then_some(Ceremony { for_whom, state })
                }))
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

/// `tx` with `proof` (the proof of work that opened the door, if one did) spent in it; else
/// rolled back, and `PROOF_INVALID`.
async fn spending<T: WriteTx + ProofTx>(mut tx: T, proof: Option<&Spend>) -> Result<T, StoreError> {
    if tx.spend(proof).await? {
        return Ok(tx);
    }
    tx.rollback().await?;
    Err(StoreError::Refused(ErrorCode::ProofInvalid))
}

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
    /// Opens a session of `user`, who proved who they are, with `passkey` (credential id and
    /// JSON) as it stands after the sign-in, if they signed in with one.
    async fn open_session(
        &self,
        user: UserId,
        passkey: Option<(&str, &str)>,
        session: SessionId,
        lifetime: Duration,
    ) -> Result<(), StoreError>;
    /// Keeps a passkey ceremony named `id` for `lifetime`, spending `proof` (a sign-up's proof
    /// of work) in the same transaction: `PROOF_INVALID` for a proof spent already.
    async fn begin_ceremony(
        &self,
        id: &str,
        ceremony: &Ceremony,
        proof: Option<&Spend>,
        lifetime: Duration,
    ) -> Result<(), StoreError>;
    /// Takes the ceremony named `id` (once: a second take finds nothing), if it has not
    /// expired.
    async fn take_ceremony(&self, id: &str) -> Result<Option<Ceremony>, StoreError>;
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
        let mut tx = spending(self.begin_write().await?, proof).await?;
        let Some(id) = tx.insert_login(login).await? else {
            tx.rollback().await?;
            return Err(StoreError::Refused(ErrorCode::UsernameTaken));
        };
        if let LoginKey::Passkey { id: key, passkey } = &login.key {
            if !tx.insert_passkey(id, key, passkey).await? {
                tx.rollback().await?;
                return Err(StoreError::Refused(ErrorCode::PasskeyRefused));
            }
        }
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
        passkey: Option<(&str, &str)>,
        session: SessionId,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some((id, passkey)) = passkey {
            tx.update_passkey(id, passkey).await?;
        }
        tx.insert_session(session, user, lifetime).await?;
        tx.commit(Vec::new()).await?;
        Ok(())
    }

    async fn begin_ceremony(
        &self,
        id: &str,
        ceremony: &Ceremony,
        proof: Option<&Spend>,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let mut tx = spending(self.begin_write().await?, proof).await?;
        tx.insert_ceremony(id, ceremony, lifetime).await?;
        tx.commit(Vec::new()).await?;
        Ok(())
    }

    async fn take_ceremony(&self, id: &str) -> Result<Option<Ceremony>, StoreError> {
        let mut tx = self.begin_write().await?;
        let ceremony = tx.take_ceremony(id).await?;
        tx.commit(Vec::new()).await?;
        Ok(ceremony)
    }
}

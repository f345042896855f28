//! Server-side sessions. The signed cookie carries a random session id; the session itself
//! lives in the database (`sessions`), so signing out revokes it and it ends at its expiry.
//!
//! Reading the session on every request would add a query to every reserve. Instead each
//! instance remembers what it read (and the sessions it opened) and, every
//! `session_cache_seconds`, asks the database which sessions were revoked since it last asked,
//! forgetting those. So the hot path reads nothing for a buyer it has seen, a sign-out is
//! honoured at once on the instance that served it, and on every other instance within
//! `session_cache_seconds`. With `session_cache_seconds = 0` every request reads the database.

use std::{sync::Arc, time::Duration};

use moka::sync::Cache;

pub use super::store::SessionId;
use super::{
    batch::{Batcher, SignUps},
    metrics::Metrics,
    passkeys::{Passkeys, CEREMONY_LIFETIME},
    passwords,
    store::{
        Ceremony, CeremonyFor, LoginKey, NewAccount, NewLogin, SessionRecord, Spend, Store,
        StoreError,
    },
};
use crate::model::{
    validate_name, validate_username, ApiError, ErrorCode, PasskeyOptions, User, UserId,
    MAX_PASSWORD_BYTES,
};

/// A live session: who it signs in, and which session it is (sign-out revokes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user: UserId,
}

/// What an instance remembers of a session id: its user until its expiry (milliseconds since
/// the epoch), or that it signs in nobody (revoked, or expired).
#[derive(Clone, Copy, Debug)]
struct Known {
    user: Option<UserId>,
    expires_at_ms: i64,
}

/// How long an instance remembers a session it has not seen: memory follows the buyers who
/// are active, not everyone who ever signed in.
const FORGET_IDLE: Duration = Duration::from_secs(3600);

/// Signs buyers up, and reads and revokes their sessions. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    lifetime: Duration,
    cache: Option<Cache<SessionId, Known>>,
    sign_ups: Arc<Batcher<SignUps>>,
    passkeys: Arc<Passkeys>,
}

impl Sessions {
    /// Sessions that last `lifetime`; remembered unless `remember` is false (then every
    /// request reads the database). Concurrent sign-ups share a transaction, up to
    /// `batch_max` of them. Passkeys are those of `passkeys`' relying party.
    pub fn new(
        store: Arc<dyn Store>,
        lifetime: Duration,
        remember: bool,
        batch_max: usize,
        metrics: Metrics,
        passkeys: Passkeys,
    ) -> Self {
        let cache = remember.then(|| {
            Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(FORGET_IDLE)
                .build()
        });
        Self {
            sign_ups: Batcher::new(store.clone(), SignUps, batch_max, metrics),
            store,
            lifetime,
            cache,
            passkeys: Arc::new(passkeys),
        }
    }

    /// How long a new session lasts (the cookie's max age).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Signs up a buyer by display name and opens their session, in a batch with the other
    /// sign-ups that arrive while one is being written.
    pub async fn sign_up(&self, name: &str) -> Result<(User, Session), ApiError> {
        let id = SessionId::random();
        let account = NewAccount {
            name: validate_name("name", name)?,
            session: id,
            lifetime: self.lifetime,
        };
        let user = self.sign_ups.submit((), account).await?;
        Ok((user.clone(), self.opened(id, user.id)))
    }

    /// Signs up a buyer with a username and a password (refused below the strength floor, or
    /// `USERNAME_TAKEN`), spending `proof` (a checked proof of work, if the shop asks one), and
    /// opens their session.
    pub async fn sign_up_with_password(
        &self,
        username: &str,
        password: &str,
        proof: Option<Spend>,
    ) -> Result<(User, Session), ApiError> {
        let username = validate_username(username)?;
        passwords::check_new(&username, password)?;
        let login = NewLogin {
            key: LoginKey::Password {
                hash: passwords::hash(password.to_string()).await?,
            },
            username,
        };
        self.sign_up_as(&login, proof.as_ref()).await
    }

    /// Begins making an account named `username` (checked, and not taken) with a passkey,
    /// spending `proof`: the options for the browser, whose answer goes to
    /// [`Sessions::sign_up_with_passkey`].
    pub async fn begin_passkey_sign_up(
        &self,
        username: &str,
        proof: Option<Spend>,
    ) -> Result<PasskeyOptions, ApiError> {
        let username = validate_username(username)?;
        if self.store.account(&username).await?.is_some() {
            return Err(ApiError::refusal(ErrorCode::UsernameTaken));
        }
        let begun = self.passkeys.register(&username)?;
        let for_whom = CeremonyFor::SignUp { username };
        self.begin_ceremony(for_whom, begun, proof).await
    }

    /// Signs up with the passkey the authenticator made in the ceremony `ceremony`
    /// (`credential`: its answer as JSON) and opens a session; `CEREMONY_EXPIRED` for a
    /// ceremony unknown, answered already or expired, `PASSKEY_REFUSED` for an answer that
    /// does not check out.
    pub async fn sign_up_with_passkey(
        &self,
        ceremony: &str,
        credential: &str,
    ) -> Result<(User, Session), ApiError> {
        let Some(Ceremony {
            for_whom: CeremonyFor::SignUp { username },
            state,
        }) = self.store.take_ceremony(ceremony).await?
        else {
            return Err(ApiError::refusal(ErrorCode::CeremonyExpired));
        };
        let passkey = self.passkeys.registered(&state, credential)?;
        let login = NewLogin {
            username,
            key: LoginKey::Passkey {
                id: passkey.id,
                passkey: passkey.passkey,
            },
        };
        // The proof of work was spent when the ceremony began.
        self.sign_up_as(&login, None).await
    }

    /// Begins signing in to `username`'s account with one of its passkeys (`NO_PASSKEY` if it
    /// has none): the options for the browser, whose answer goes to
    /// [`Sessions::sign_in_with_passkey`].
    pub async fn begin_passkey_sign_in(&self, username: &str) -> Result<PasskeyOptions, ApiError> {
        let refused = || ApiError::refusal(ErrorCode::NoPasskey);
        let account = self
            .store
            .account(username.trim())
            .await?
            .ok_or_else(refused)?;
        let passkeys = self.store.passkeys(account.user.id).await?;
        if passkeys.is_empty() {
            return Err(refused());
        }
        let begun = self.passkeys.challenge(&passkeys)?;
        let for_whom = CeremonyFor::SignIn {
            user: account.user.id,
        };
        self.begin_ceremony(for_whom, begun, None).await
    }

    /// Signs in with the passkey that answered the ceremony `ceremony` and opens a session;
    /// refused as [`Sessions::sign_up_with_passkey`] is.
    pub async fn sign_in_with_passkey(
        &self,
        ceremony: &str,
        credential: &str,
    ) -> Result<(User, Session), ApiError> {
        let Some(Ceremony {
            for_whom: CeremonyFor::SignIn { user },
            state,
        }) = self.store.take_ceremony(ceremony).await?
        else {
            return Err(ApiError::refusal(ErrorCode::CeremonyExpired));
        };
        let passkeys = self.store.passkeys(user).await?;
        let passkey = self.passkeys.authenticated(&state, &passkeys, credential)?;
        let user = self
            .store
            .user(user)
            .await?
            .ok_or_else(|| ApiError::refusal(ErrorCode::PasskeyRefused))?;
        self.sign_in_as(user, Some((&passkey.id, &passkey.passkey)))
            .await
    }

    /// Keeps a ceremony's state for its answer, under a fresh random id.
    async fn begin_ceremony(
        &self,
        for_whom: CeremonyFor,
        begun: super::passkeys::Begun,
        proof: Option<Spend>,
    ) -> Result<PasskeyOptions, ApiError> {
        let id = SessionId::random().to_string();
        let ceremony = Ceremony {
            for_whom,
            state: begun.state,
        };
        self.store
            .begin_ceremony(&id, &ceremony, proof.as_ref(), CEREMONY_LIFETIME)
            .await?;
        Ok(PasskeyOptions {
            ceremony: id,
            options: begun.options,
        })
    }

    /// Signs up `login`, spending `proof`, and opens the new account's session.
    async fn sign_up_as(
        &self,
        login: &NewLogin,
        proof: Option<&Spend>,
    ) -> Result<(User, Session), ApiError> {
        let id = SessionId::random();
        let user = self
            .store
            .sign_up_login(login, proof, id, self.lifetime)
            .await?;
        Ok((user.clone(), self.opened(id, user.id)))
    }

    /// Opens a session of `user`, who proved who they are (with `passkey` as it stands after,
    /// if they used one).
    async fn sign_in_as(
        &self,
        user: User,
        passkey: Option<(&str, &str)>,
    ) -> Result<(User, Session), ApiError> {
        let id = SessionId::random();
        self.store
            .open_session(user.id, passkey, id, self.lifetime)
            .await?;
        Ok((user.clone(), self.opened(id, user.id)))
    }

    /// Signs in the account of `username` (whatever its case) if `password` is its password,
    /// and opens a session; else `WRONG_PASSWORD`, the same answer, after the same work, for a
    /// username nobody has.
    pub async fn sign_in_with_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(User, Session), ApiError> {
        let found = if password.len() <= MAX_PASSWORD_BYTES {
            self.store.account(username.trim()).await?
        } else {
            None
        };
        let (user, hash) = found
            .and_then(|account| Some((account.user, account.password_hash?)))
            .unzip();
        let right = passwords::matches(password.to_string(), hash).await?;
        let Some(user) = user.filter(|_| right) else {
            return Err(ApiError::refusal(ErrorCode::WrongPassword));
        };
        self.sign_in_as(user, None).await
    }

    /// The session just opened as `id` for `user`, which this instance knows from now on: the
    /// buyer's requests after signing in read nothing more.
    fn opened(&self, id: SessionId, user: UserId) -> Session {
        let session = Session { id, user };
        if let Some(cache) = &self.cache {
            let lifetime_ms = i64::try_from(self.lifetime.as_millis()).unwrap_or(i64::MAX);
            let expires_at_ms = chrono::Utc::now()
                .timestamp_millis()
                .saturating_add(lifetime_ms);
            cache.insert(
                id,
                Known {
                    user: Some(user),
                    expires_at_ms,
                },
            );
        }
        session
    }

    /// The live session with this id, if it is one.
    pub async fn find(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        if let Some(known) = self.cache.as_ref().and_then(|cache| cache.get(&id)) {
            return Ok(known
                .user
                .filter(|_| known.expires_at_ms > now_ms)
                .map(|user| Session { id, user }));
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
            // Unknown (a cookie signed with this secret always names a real session, but it
            // may be from a database since wiped), revoked or expired: nobody, for good.
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
    /// at their next look for revocations.
    pub async fn revoke(&self, id: SessionId) -> Result<(), StoreError> {
        self.store.revoke_session(id).await?;
        if let Some(cache) = &self.cache {
            cache.invalidate(&id);
        }
        Ok(())
    }

    /// Every `every`, forgets the sessions revoked (on any instance) since the last look, so a
    /// sign-out elsewhere is honoured here within `every`.
    pub async fn forget_revoked_forever(self, every: Duration) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let overlap = i64::try_from(every.as_millis() * 2).unwrap_or(i64::MAX);
        let mut since = None;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let looked = async {
                let now = self.store.now_ms().await?;
                // The looks overlap, so a revocation committed while a session was being read
                // (and remembered) is still seen on the next look.
                let revoked = match since {
                    Some(since) => self.store.revoked_sessions_since(since).await?,
                    None => Vec::new(),
                };
                Ok::<_, StoreError>((now, revoked))
            };
            match looked.await {
                Ok((now, revoked)) => {
                    if since.is_none() {
                        // The first look: start from a clean slate, in case it came late.
                        cache.invalidate_all();
                    }
                    for id in revoked {
                        cache.invalidate(&id);
                    }
                    since = Some(now.saturating_sub(overlap));
                }
                Err(error) => tracing::warn!(%error, "could not look for revoked sessions"),
            }
        }
    }
}

//! Passwords: the strength floor a new one must pass (zxcvbn's estimate, which knows common
//! passwords, names, keyboard walks and the username itself), and Argon2id (the `argon2`
//! crate's defaults, OWASP's minimum: 19 MiB, 2 passes) to hash one and check one. Hashing
//! takes tens of milliseconds of a core by design, so it runs on the blocking pool, never on a
//! thread that serves requests.

use std::sync::LazyLock;

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use crate::model::{check_password_length, ApiError, ErrorCode};

/// zxcvbn's score (0 to 4) a new password must reach: 3 is "safely unguessable: moderate
/// protection from an offline slow-hash scenario".
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// A hash that no password matches, checked when a username is unknown so that the answer
/// takes as long as for a wrong password and does not tell which usernames exist.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    hash_now("a decoy that no account has").expect("hashing a fixed password works")
});

/// Checks a new password against the floor: long enough, and hard enough to guess for an
/// account named `username`.
pub fn check_new(username: &str, password: &str) -> Result<(), ApiError> {
    check_password_length(password)?;
    let estimate = zxcvbn::zxcvbn(password, &[username]);
    if estimate.score() < MIN_SCORE {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        return Err(ApiError::invalid(
            "password",
            format!(
                "That password is too easy to guess{hint}: add a few uncommon words or more \
                 characters."
            ),
        ));
    }
    Ok(())
}

/// The Argon2id hash of `password` (a PHC string with its salt), off the serving threads.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|_| ApiError::refusal(ErrorCode::Internal))?
}

/// Whether `password` matches `stored` (a PHC string; `None`: no such account, checked against
/// the decoy all the same), off the serving threads.
pub async fn matches(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DECOY.clone());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            tracing::error!("a stored password hash is not a PHC string");
            return false;
        };
        let right = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        known && right
    })
    .await
    .map_err(|_| ApiError::refusal(ErrorCode::Internal))
}

fn hash_now(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| {
            tracing::error!(%error, "could not hash a password");
            ApiError::refusal(ErrorCode::Internal)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_or_name_based_passwords_are_refused() {
        for weak in [
            "password123",
            "qwertyuiop",
            "sneakerfan2026",
            "aaaaaaaaaaaa",
        ] {
            let refused = check_new("sneakerfan", weak).unwrap_err();
            assert_eq!(refused.field.as_deref(), Some("password"), "{weak}");
        }
        assert!(check_new("sneakerfan", "violet kettle drums at noon").is_ok());
    }

    #[tokio::test]
    async fn a_hash_matches_its_password_only() {
        let stored = hash("violet kettle drums at noon".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            matches("violet kettle drums at noon".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!matches("violet kettle drums at nine".into(), Some(stored))
            .await
            .unwrap());
        assert!(!matches("a decoy that no account has".into(), None)
            .await
            .unwrap());
    }
}

//! A real account: the username a buyer picks at sign-up (shown publicly, unique whatever its
//! case) and the checks it and its password pass before the server hashes anything.

use serde::{Deserialize, Serialize};

use super::ApiError;

/// The ways this shop signs buyers in, beside a username with a password.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInWays {
    /// By display name alone (the demo's `demo_sign_in`).
    pub demo: bool,
    /// Where passkeys work: the shop's `public_origin` (a browser offers them on its pages
    /// only).
    pub passkey_origin: String,
}

/// A passkey ceremony begun: its id, sent back with the authenticator's answer, and the options
/// for the browser's `navigator.credentials` (JSON, `{"publicKey": ...}`, binary fields as
/// unpadded base64url, as `PublicKeyCredential.parseCreationOptionsFromJSON` takes them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyOptions {
    pub ceremony: String,
    pub options: String,
}

/// Shortest and longest username.
const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=20;
/// Shortest password, and the longest one the server hashes (Argon2id's work grows with it).
const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_BYTES: usize = 256;

/// A username as typed, checked: 3 to 20 ASCII letters, digits, `_` or `-`, starting with a
/// letter or a digit. Answers it trimmed; its lowercase form is what must be unique.
pub fn validate_username(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !USERNAME_CHARS.contains(&name.len())
        || !name.chars().all(allowed)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(ApiError::invalid(
            "username",
            "A username is 3 to 20 letters (a to z), digits, _ or -, starting with a letter \
             or a digit.",
        ));
    }
    Ok(name.to_string())
}

/// The length rules of a password (the server also refuses one that is easy to guess).
pub fn check_password_length(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            "password",
            format!("A password needs at least {MIN_PASSWORD_CHARS} characters."),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            "password",
            format!("A password may have at most {MAX_PASSWORD_BYTES} bytes."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_short_plain_and_start_with_a_letter_or_digit() {
        assert_eq!(
            validate_username("  Sneaker_Fan-9 ").unwrap(),
            "Sneaker_Fan-9"
        );
        for bad in [
            "ab",
            "_lead",
            "-lead",
            "has space",
            "émile",
            "a".repeat(21).as_str(),
            "",
        ] {
            let error = validate_username(bad).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("username"), "{bad:?}");
        }
    }

    #[test]
    fn a_password_has_a_floor_and_a_ceiling() {
        assert!(check_password_length("short").is_err());
        assert!(check_password_length("ten chars!").is_ok());
        assert!(check_password_length(&"x".repeat(257)).is_err());
    }
}

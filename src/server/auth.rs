//! Who is asking: signed session cookies for buyers, a bearer token for admins.

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, CookieJar, Key, SameSite};
use rand::{distr::Alphanumeric, Rng};
use subtle::ConstantTimeEq;

use crate::model::UserId;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "dropline_session";

/// The secrets that prove identity. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    key: Key,
    admin_token: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    /// Builds the signing key from `session_secret` (random when empty) and keeps the admin
    /// token (random when empty, then logged once so the operator can use it).
    pub fn new(session_secret: &str, admin_token: &str) -> Self {
        let key = if session_secret.is_empty() {
            Key::generate()
        } else {
            Key::derive_from(session_secret.as_bytes())
        };
        let admin_token = if admin_token.is_empty() {
            let token: String = rand::rng()
                .sample_iter(&Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            tracing::info!(admin_token = %token, "ADMIN_TOKEN not set; generated one for this run");
            token
        } else {
            admin_token.to_string()
        };
        Self { key, admin_token }
    }

    /// The signed-in user, if the request carries a session cookie with a valid signature.
    /// A forged or tampered cookie counts as no cookie.
    pub fn session_user(&self, headers: &HeaderMap) -> Option<UserId> {
        let mut jar = CookieJar::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for cookie in Cookie::split_parse(value.to_string()).flatten() {
                jar.add_original(cookie);
            }
        }
        jar.signed(&self.key)
            .get(SESSION_COOKIE)
            .and_then(|c| c.value().parse().ok())
            .map(UserId)
    }

    /// The `Set-Cookie` value that signs `user` in.
    pub fn sign_in_cookie(&self, user: UserId, secure: bool) -> HeaderValue {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key).add(
            Cookie::build((SESSION_COOKIE, user.to_string()))
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure)
                .path("/")
                .max_age(cookie::time::Duration::days(30)),
        );
        let cookie = jar.get(SESSION_COOKIE).expect("just added");
        HeaderValue::from_str(&cookie.to_string()).expect("cookie is valid header text")
    }

    /// The `Set-Cookie` value that signs out.
    pub fn sign_out_cookie(&self) -> HeaderValue {
        let cookie = Cookie::build((SESSION_COOKIE, ""))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(cookie::time::Duration::ZERO);
        HeaderValue::from_str(&cookie.to_string()).expect("cookie is valid header text")
    }

    /// True when `Authorization: Bearer <token>` carries the admin token.
    pub fn is_admin(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| self.token_matches(token.trim()))
    }

    /// Compares a presented admin token in constant time.
    pub fn token_matches(&self, token: &str) -> bool {
        token.as_bytes().ct_eq(self.admin_token.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&"s".repeat(32), "admin-secret")
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn cookie_pair(set_cookie: &HeaderValue) -> String {
        set_cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_signed_cookie_round_trips() {
        let auth = auth();
        let pair = cookie_pair(&auth.sign_in_cookie(UserId(42), false));
        assert_eq!(auth.session_user(&with_cookie(&pair)), Some(UserId(42)));
        let set = auth.sign_in_cookie(UserId(42), false);
        let set = set.to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
    }

    #[test]
    fn a_forged_or_tampered_cookie_is_ignored() {
        let auth = auth();
        assert_eq!(auth.session_user(&with_cookie("dropline_session=42")), None);
        let pair = cookie_pair(&auth.sign_in_cookie(UserId(42), false));
        let tampered = pair.replace("42", "43");
        assert_eq!(auth.session_user(&with_cookie(&tampered)), None);
        let other = Auth::new(&"t".repeat(32), "x");
        assert_eq!(other.session_user(&with_cookie(&pair)), None);
    }

    #[test]
    fn the_admin_token_is_checked() {
        let auth = auth();
        let mut headers = HeaderMap::new();
        assert!(!auth.is_admin(&headers));
        headers.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(!auth.is_admin(&headers));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer admin-secret".parse().unwrap(),
        );
        assert!(auth.is_admin(&headers));
    }
}

//! Who is asking, as credentials: the signed session cookie that carries a buyer's session id
//! (the session itself is in the database, see [`super::sessions`]), and the admin's bearer
//! token.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, CookieJar, Key, SameSite};
use rand::{distr::Alphanumeric, Rng};
use subtle::ConstantTimeEq;

use super::{settings::CookieSecure, store::SessionId};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "dropline_session";

/// Name of the session cookie when it is `Secure` (over HTTPS): the `__Host-` prefix makes the
/// browser keep it only if it is Secure, for the whole site (`Path=/`) and for this host alone
/// (no `Domain`), so a sibling subdomain cannot plant a session of its choosing.
pub const SECURE_SESSION_COOKIE: &str = "__Host-dropline_session";

/// The secrets that prove identity, and when the session cookie is `Secure`. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    key: Key,
    admin_token: String,
    cookie_secure: CookieSecure,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    /// Builds the signing key from `session_secret` (random when empty) and keeps the admin
    /// token. When no token is set a random one is made and printed once to the terminal, never
    /// to the logs, which a log collector would spread to everyone who reads them.
    pub fn new(session_secret: &str, admin_token: &str, cookie_secure: CookieSecure) -> Self {
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
            eprintln!("dropline: ADMIN_TOKEN is not set; this run's admin token is {token}");
            token
        } else {
            admin_token.to_string()
        };
        Self {
            key,
            admin_token,
            cookie_secure,
        }
    }

    /// Whether the session cookie of a request with these headers is `Secure` (and so named
    /// [`SECURE_SESSION_COOKIE`]).
    pub fn is_secure(&self, headers: &HeaderMap) -> bool {
        cookie_is_secure(self.cookie_secure, headers)
    }

    /// The session id the request's cookie carries, if it has a valid signature. A forged or
    /// tampered cookie counts as no cookie (and costs no database read). Over HTTPS only the
    /// `__Host-` cookie counts: a plain one may have been planted by a sibling subdomain.
    pub fn session_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        let mut jar = CookieJar::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for cookie in Cookie::split_parse(value.to_string()).flatten() {
                jar.add_original(cookie);
            }
        }
        let name = if self.is_secure(headers) {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        };
        jar.signed(&self.key)
            .get(name)
            .and_then(|c| c.value().parse().ok())
    }

    /// The `Set-Cookie` value that carries `session` for `lifetime` (as
    /// [`SECURE_SESSION_COOKIE`] when `secure`).
    pub fn sign_in_cookie(
        &self,
        session: SessionId,
        secure: bool,
        lifetime: Duration,
    ) -> HeaderValue {
        let name = if secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        };
        let mut jar = CookieJar::new();
        let max_age = cookie::time::Duration::seconds(lifetime.as_secs().try_into().unwrap_or(0));
        jar.signed_mut(&self.key).add(
            Cookie::build((name, session.to_string()))
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure)
                .path("/")
                .max_age(max_age),
        );
        let cookie = jar.get(name).expect("just added");
        HeaderValue::from_str(&cookie.to_string()).expect("cookie is valid header text")
    }

    /// The `Set-Cookie` values that sign out: both names cleared, whichever the browser has.
    pub fn sign_out_cookies(&self) -> [HeaderValue; 2] {
        [(SESSION_COOKIE, false), (SECURE_SESSION_COOKIE, true)].map(|(name, secure)| {
            let cookie = Cookie::build((name, ""))
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure)
                .path("/")
                .max_age(cookie::time::Duration::ZERO);
            HeaderValue::from_str(&cookie.to_string()).expect("cookie is valid header text")
        })
    }

    /// Compares a presented admin token in constant time.
    pub fn token_matches(&self, token: &str) -> bool {
        token.as_bytes().ct_eq(self.admin_token.as_bytes()).into()
    }
}

/// Whether a session cookie set in answer to this request is marked `Secure`.
pub fn cookie_is_secure(setting: CookieSecure, headers: &HeaderMap) -> bool {
    match setting {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        // Over HTTPS, directly or through a proxy that says so.
        CookieSecure::Auto => headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn auth() -> Auth {
        Auth::new(
            &"s".repeat(32),
            "admin-secret-admin-secret-admin-secret",
            CookieSecure::Auto,
        )
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

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn a_signed_cookie_round_trips() {
        let auth = auth();
        let session = SessionId::random();
        let set = auth.sign_in_cookie(session, false, DAY);
        assert_eq!(
            auth.session_id(&with_cookie(&cookie_pair(&set))),
            Some(session)
        );
        let set = set.to_str().unwrap();
        assert!(
            set.contains("HttpOnly")
                && set.contains("SameSite=Lax")
                && set.contains("Max-Age=86400"),
            "{set}"
        );
    }

    #[test]
    fn a_secure_cookie_is_host_only_and_read_back() {
        let auth = auth();
        let session = SessionId::random();
        let set = auth.sign_in_cookie(session, true, DAY);
        let text = set.to_str().unwrap();
        assert!(text.starts_with("__Host-dropline_session="), "{text}");
        assert!(text.contains("Secure") && text.contains("Path=/"), "{text}");
        assert!(!text.contains("Domain"), "{text}");
        let over_https = |cookie: &str| {
            let mut headers = with_cookie(cookie);
            headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
            headers
        };
        assert_eq!(
            auth.session_id(&over_https(&cookie_pair(&set))),
            Some(session)
        );
        // Over HTTPS a plain cookie (one a sibling subdomain could plant) signs in nobody,
        // beside the host-only one or alone.
        let planted = cookie_pair(&auth.sign_in_cookie(SessionId::random(), false, DAY));
        let both = format!("{planted}; {}", cookie_pair(&set));
        assert_eq!(auth.session_id(&over_https(&both)), Some(session));
        assert_eq!(auth.session_id(&over_https(&planted)), None);
    }

    #[test]
    fn a_forged_or_tampered_cookie_is_ignored() {
        let auth = auth();
        let session = SessionId::random();
        let forged = format!("dropline_session={session}");
        assert_eq!(auth.session_id(&with_cookie(&forged)), None);
        let pair = cookie_pair(&auth.sign_in_cookie(session, false, DAY));
        let other = SessionId::random();
        let tampered = pair.replace(&session.to_string(), &other.to_string());
        assert_eq!(auth.session_id(&with_cookie(&tampered)), None);
        let stranger = Auth::new(&"t".repeat(32), "x", CookieSecure::Auto);
        assert_eq!(stranger.session_id(&with_cookie(&pair)), None);
    }

    #[test]
    fn the_admin_token_is_checked() {
        let auth = auth();
        assert!(!auth.token_matches("wrong"));
        assert!(!auth.token_matches(""));
        assert!(auth.token_matches("admin-secret-admin-secret-admin-secret"));
    }

    #[test]
    fn the_cookie_is_secure_as_configured() {
        let mut https = HeaderMap::new();
        https.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let plain = HeaderMap::new();
        assert!(cookie_is_secure(CookieSecure::Auto, &https));
        assert!(!cookie_is_secure(CookieSecure::Auto, &plain));
        assert!(cookie_is_secure(CookieSecure::Always, &plain));
        assert!(!cookie_is_secure(CookieSecure::Never, &https));
    }

    /// Log lines written while it runs, as a log collector would receive them.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_generated_admin_token_never_reaches_the_logs() {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let auth =
            tracing::subscriber::with_default(subscriber, || Auth::new("", "", CookieSecure::Auto));
        let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_eq!(auth.admin_token.len(), 32);
        assert!(
            !logged.contains(&auth.admin_token),
            "the admin token was logged: {logged}"
        );
    }
}

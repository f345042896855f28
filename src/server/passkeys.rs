//! Passkeys (WebAuthn), by Kanidm's `webauthn-rs`: the options a browser's
//! `navigator.credentials` takes to make a passkey or to sign in with one, and the checks of
//! what the authenticator answers. Both ceremonies are two requests: the options go out with a
//! state the server keeps (in the database, so any instance can take the answer, once), and
//! the answer is checked against it. Every passkey asks for user verification (a PIN, a
//! fingerprint): a passkey alone signs in.
//!
//! Passkeys are bound to the host name of the shop's `public_origin`; a browser offers them
//! only on a page of that origin.

use std::time::Duration;

use webauthn_rs::{
    prelude::{
        Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
        RegisterPublicKeyCredential, Url, Uuid,
    },
    Webauthn, WebauthnBuilder,
};

use crate::model::{ApiError, ErrorCode};

/// How long an authenticator may take to answer (the browser's timeout), and the server keeps
/// a ceremony's state a little longer than that.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(120);
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(150);

/// The shop as a WebAuthn relying party.
pub struct Passkeys {
    webauthn: Webauthn,
}

/// A ceremony's two halves: the options for the browser (JSON, `{"publicKey": ...}`) and the
/// state the server keeps for the answer (JSON).
pub struct Begun {
    pub options: String,
    pub state: String,
}

impl Begun {
    fn of(
        options: &impl serde::Serialize,
        state: &impl serde::Serialize,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            options: to_json(options)?,
            state: to_json(state)?,
        })
    }
}

/// A passkey as it is stored: its credential id (base64url) and itself as JSON.
pub struct Stored {
    pub id: String,
    pub passkey: String,
}

impl Passkeys {
    /// The relying party of `origin` (a checked setting: a URL with a host name).
    pub fn new(origin: &str) -> Result<Self, String> {
        let origin = Url::parse(origin).map_err(|error| format!("{origin}: {error}"))?;
        let host = origin
            .domain()
            .ok_or_else(|| format!("{origin} has no host name"))?;
        let webauthn = WebauthnBuilder::new(host, &origin)
            .and_then(|builder| builder.rp_name("Dropline").timeout(ANSWER_WITHIN).build())
            .map_err(|error| format!("passkeys at {origin}: {error}"))?;
        Ok(Self { webauthn })
    }

    /// The options to make a passkey for a new account named `username`.
    pub fn register(&self, username: &str) -> Result<Begun, ApiError> {
        // The handle the authenticator keeps for the account: random, as it is never looked up
        // (a sign-in names its username first).
        let handle = Uuid::from_bytes(rand::random());
        let (options, state) = self
            .webauthn
            .start_passkey_registration(handle, username, username, None)
            .map_err(failed)?;
        Begun::of(&options, &state)
    }

    /// The passkey the authenticator made, if its answer (`credential`, the JSON of the
    /// browser's `PublicKeyCredential.toJSON()`) checks out against the ceremony's `state`.
    pub fn registered(&self, state: &str, credential: &str) -> Result<Stored, ApiError> {
        let state: PasskeyRegistration = from_state(state)?;
        let credential: RegisterPublicKeyCredential = from_answer(credential)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(refused)?;
        stored(&passkey)
    }

    /// The options to sign in with one of `passkeys` (stored JSON).
    pub fn challenge(&self, passkeys: &[String]) -> Result<Begun, ApiError> {
        let passkeys = parse_all(passkeys)?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(failed)?;
        Begun::of(&options, &state)
    }

    /// The passkey (one of `passkeys`) that signed the answer `credential`, as it stands after
    /// (its signature counter moved on), if the answer checks out against `state`.
    pub fn authenticated(
        &self,
        state: &str,
        passkeys: &[String],
        credential: &str,
    ) -> Result<Stored, ApiError> {
        let state: PasskeyAuthentication = from_state(state)?;
        let credential: PublicKeyCredential = from_answer(credential)?;
        let done = self
            .webauthn
            .finish_passkey_authentication(&credential, &state)
            .map_err(refused)?;
        let mut passkey = parse_all(passkeys)?
            .into_iter()
            .find(|passkey| passkey.cred_id() == done.cred_id())
            .ok_or_else(|| ApiError::refusal(ErrorCode::PasskeyRefused))?;
        let _ = passkey.update_credential(&done);
        stored(&passkey)
    }
}

fn stored(passkey: &Passkey) -> Result<Stored, ApiError> {
    Ok(Stored {
        id: base64_url(passkey.cred_id().as_ref()),
        passkey: to_json(passkey)?,
    })
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_all(passkeys: &[String]) -> Result<Vec<Passkey>, ApiError> {
    passkeys.iter().map(|passkey| from_state(passkey)).collect()
}

/// What the server wrote itself: not reading it back is the server's fault.
fn from_state<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ApiError> {
    serde_json::from_str(json).map_err(|error| {
        tracing::error!(%error, "a stored passkey or ceremony does not read back");
        ApiError::refusal(ErrorCode::Internal)
    })
}

/// What the buyer's browser sent: not reading it is their request's fault.
fn from_answer<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ApiError> {
    serde_json::from_str(json).map_err(|error| {
        ApiError::invalid(
            "credential",
            format!("The passkey's answer is not a WebAuthn credential as JSON: {error}."),
        )
    })
}

fn to_json(value: &impl serde::Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|error| {
        tracing::error!(%error, "could not write a passkey ceremony as JSON");
        ApiError::refusal(ErrorCode::Internal)
    })
}

fn failed(error: webauthn_rs::prelude::WebauthnError) -> ApiError {
    tracing::error!(%error, "could not begin a passkey ceremony");
    ApiError::refusal(ErrorCode::Internal)
}

fn refused(error: webauthn_rs::prelude::WebauthnError) -> ApiError {
    tracing::info!(%error, "a passkey's answer was refused");
    ApiError::refusal(ErrorCode::PasskeyRefused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_name_the_shop_and_ask_for_user_verification() {
        let passkeys = Passkeys::new("http://localhost:3000").unwrap();
        let begun = passkeys.register("sneakerfan").unwrap();
        let options: serde_json::Value = serde_json::from_str(&begun.options).unwrap();
        let public_key = &options["publicKey"];
        assert_eq!(public_key["rp"]["id"], "localhost");
        assert_eq!(public_key["user"]["name"], "sneakerfan");
        assert_eq!(
            public_key["authenticatorSelection"]["userVerification"],
            "required"
        );
        // A browser's JSON parser takes the challenge as unpadded base64url.
        let challenge = public_key["challenge"].as_str().unwrap();
        assert!(challenge.len() >= 43 && !challenge.contains(['=', '+', '/']));
    }

    #[test]
    fn an_ip_address_cannot_be_a_relying_party() {
        assert!(Passkeys::new("http://127.0.0.1:3000").is_err());
    }

    #[test]
    fn an_answer_that_is_not_a_credential_is_the_buyers_error() {
        let passkeys = Passkeys::new("http://localhost:3000").unwrap();
        let begun = passkeys.register("sneakerfan").unwrap();
        let error = passkeys
            .registered(&begun.state, r#"{"id": "x"}"#)
            .err()
            .unwrap();
        assert_eq!(error.field.as_deref(), Some("credential"));
    }
}

//! The seal every payload between instances carries: HMAC-SHA256 under a key only the
//! deployment's instances have, the sender's time and a nonce, so a database role that may
//! only connect (and so may `NOTIFY`) cannot forge one, and a recorded one cannot be sent
//! again.

use std::collections::HashMap;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::envelope::Envelope;

/// The most bytes one notification carries: PostgreSQL takes payloads under 8,000 bytes.
pub const NOTIFY_PAYLOAD_BYTES: usize = 7_900;

/// What a seal and its frame (`{"at":...,"nonce":...,"events":` and `}`) add to a payload's
/// events, at most.
const SEAL_OVERHEAD_BYTES: usize = 128;

/// How far a sealed payload's time may be from this instance's clock (milliseconds): an older
/// one (or one from the future) is refused, so a payload recorded off the channel cannot be
/// sent again later; within the window each is taken once, by its nonce.
pub const SEAL_WINDOW_MS: i64 = 120_000;

type HmacSha256 = Hmac<Sha256>;

/// The key that seals the events instances pass each other through PostgreSQL: HMAC-SHA256
/// under a key derived by HKDF-SHA256 from `session_secret`, which every instance of one
/// deployment shares (it must, to read each other's cookies) and a database role does not.
#[derive(Clone)]
pub struct EventKey([u8; 32]);

impl std::fmt::Debug for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventKey(..)")
    }
}

impl EventKey {
    /// The key of a deployment whose instances share `secret`.
    pub fn derive(secret: &str) -> Self {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"dropline"), secret.as_bytes())
            .expand(b"live events v1", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(key)
    }

    /// A key of this process alone (an instance with no secret shares no events).
    pub fn random() -> Self {
        Self(rand::random())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }

    /// `body` with its seal in front: 64 hex digits of HMAC-SHA256, a dot, the body.
    pub fn seal(&self, body: &str) -> String {
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        format!("{}.{body}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The body of a payload sealed with this key; `None` for any other (no seal, another
    /// key's, a changed byte). The seal is compared in constant time.
    pub fn open<'a>(&self, payload: &'a str) -> Option<&'a str> {
        let (seal, body) = payload.split_once('.')?;
        let seal = hex::decode(seal).ok()?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&seal).ok()?;
        Some(body)
    }

    /// A transaction's events as the sealed payloads of as few notifications as fit, in order,
    /// each under [`NOTIFY_PAYLOAD_BYTES`] (an envelope too big to share one goes alone). One
    /// write then costs one notification to send, and one for each instance to read, instead
    /// of one per event. `now_ms` is this instance's clock.
    pub fn payloads(&self, events: &[Envelope], now_ms: i64) -> Vec<String> {
        let budget = NOTIFY_PAYLOAD_BYTES - SEAL_OVERHEAD_BYTES;
        let mut arrays = Vec::new();
        let mut current = String::from("[");
        for event in events {
            let json = serde_json::to_string(event).expect("events always serialize");
            if current.len() > 1 && current.len() + json.len() + 2 > budget {
                current.push(']');
                arrays.push(std::mem::replace(&mut current, String::from("[")));
            }
            if current.len() > 1 {
                current.push(',');
            }
            current.push_str(&json);
        }
        if current.len() > 1 {
            current.push(']');
            arrays.push(current);
        }
        arrays
            .into_iter()
            .map(|events| {
                let nonce: u64 = rand::random();
                self.seal(&format!(
                    r#"{{"at":{now_ms},"nonce":{nonce},"events":{events}}}"#
                ))
            })
            .collect()
    }
}

/// A sealed payload's body.
#[derive(Deserialize)]
pub(super) struct Sealed {
    /// When it was sealed, by the sender's clock (milliseconds since the epoch).
    pub(super) at: i64,
    pub(super) nonce: u64,
    pub(super) events: Vec<Envelope>,
}

/// The nonces of the sealed payloads heard within the last [`SEAL_WINDOW_MS`], each with
/// when it was sealed.
#[derive(Default)]
pub(crate) struct Heard {
    nonces: HashMap<u64, i64>,
    /// How many nonces to hold before forgetting those past the window.
    prune_at: usize,
}

impl Heard {
    /// Why a sealed payload sent at `at` must not be taken now, if it must not.
    pub(super) fn refusal(&mut self, at: i64, nonce: u64, now_ms: i64) -> Option<&'static str> {
        if (now_ms - at).abs() > SEAL_WINDOW_MS {
            return Some("stale");
        }
        if self.nonces.len() >= self.prune_at {
            self.nonces
                .retain(|_, sealed| (now_ms - *sealed).abs() <= SEAL_WINDOW_MS);
            self.prune_at = (self.nonces.len() * 2).max(1024);
        }
        self.nonces.insert(nonce, at).map(|_| "replayed")
    }
}

/// This machine's clock, in milliseconds since the epoch.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transactions_events_share_as_few_notifications_as_fit() {
        let key = EventKey::derive("a deployment's secret");
        let events: Vec<Envelope> = (0..500).map(|i| Envelope::hold_expired(i, i)).collect();
        let payloads = key.payloads(&events, now_ms());
        let one = serde_json::to_string(&events[0]).unwrap().len();
        // Each envelope is ~100 bytes: dozens share a payload, none passes the limit.
        let budget = NOTIFY_PAYLOAD_BYTES - SEAL_OVERHEAD_BYTES;
        assert!(payloads.len() <= events.len() * (one + 1) / budget + 1);
        assert!(payloads.iter().all(|p| p.len() <= NOTIFY_PAYLOAD_BYTES));
        let back: Vec<Envelope> = payloads
            .iter()
            .flat_map(|p| {
                serde_json::from_str::<Sealed>(key.open(p).unwrap())
                    .unwrap()
                    .events
            })
            .collect();
        assert_eq!(back, events);
        assert!(key.payloads(&[], now_ms()).is_empty());
    }

    #[test]
    fn only_the_deployments_own_seal_opens() {
        let key = EventKey::derive("a deployment's secret");
        let sealed = key.seal("{\"x\":1}");
        assert_eq!(key.open(&sealed), Some("{\"x\":1}"));
        // Another instance of the same deployment derives the same key.
        assert_eq!(
            EventKey::derive("a deployment's secret").open(&sealed),
            Some("{\"x\":1}")
        );
        assert_eq!(EventKey::derive("another secret").open(&sealed), None);
        let changed = sealed.replace("\"x\":1", "\"x\":2");
        assert_eq!(key.open(&changed), None);
        assert_eq!(key.open("{\"x\":1}"), None);
        assert_eq!(key.open(&format!("{}.{{}}", "0".repeat(64))), None);
    }

    #[test]
    fn a_sealed_payload_is_taken_once_and_only_while_fresh() {
        let mut heard = Heard::default();
        let now = 1_000_000_000;
        assert_eq!(heard.refusal(now - 5, 7, now), None);
        assert_eq!(heard.refusal(now - 5, 7, now + 10), Some("replayed"));
        assert_eq!(
            heard.refusal(now - SEAL_WINDOW_MS - 1, 8, now),
            Some("stale")
        );
        assert_eq!(
            heard.refusal(now + SEAL_WINDOW_MS + 1, 9, now),
            Some("stale")
        );
        assert_eq!(heard.refusal(now, 10, now), None);
    }
}

//! The public randomness a queue's lobby and a draw's entries are ordered by when a beacon is
//! set: a round of a drand chain (quicknet: unchained BLS signatures on BLS12-381, the
//! signature on G1, the key on G2), named when the drop is created and published after its
//! entries are sealed, so nobody — whoever runs the server included — knows the order while
//! the list can still change. Every round is checked against the chain's public key
//! (`drand-verify`) before it decides anything; its randomness is the SHA-256 of the
//! signature, as drand defines it.

use std::time::Duration;

use drand_verify::{G2PubkeyRfc, Pubkey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::server::settings::BeaconChain;

/// A round whose signature verified under the chain's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub round: u64,
    /// The BLS signature, hex.
    pub signature: String,
    /// SHA-256 of the signature, hex: what the order is computed from.
    pub randomness: String,
}

/// Why a round cannot be used (yet).
#[derive(Debug, thiserror::Error)]
pub enum BeaconError {
    #[error("the chain's public key is not a point of G2")]
    Key,
    #[error("round {0}: the signature is not a compressed G1 point in hex")]
    Malformed(u64),
    #[error("round {0}: the signature does not verify under the chain's key")]
    Forged(u64),
    #[error("round {0} is not published yet")]
    NotYet(u64),
    #[error("asked for round {asked}, the beacon answered round {got}")]
    WrongRound { asked: u64, got: u64 },
    #[error("round {round}: {source}")]
    Fetch {
        round: u64,
        #[source]
        source: reqwest::Error,
    },
}

/// When `round` is published (Unix milliseconds): round 1 at genesis, one every period.
pub fn round_time(chain: &BeaconChain, round: u64) -> i64 {
    let after = i64::try_from(round.saturating_sub(1)).unwrap_or(i64::MAX);
    chain
        .genesis_ms
        .saturating_add(after.saturating_mul(chain.period_ms))
}

/// The round that orders a drop going live at `go_live_ms`: the first one published at least
/// the chain's margin after it. Answers the round and when it is published.
pub fn round_for(chain: &BeaconChain, go_live_ms: i64) -> (u64, i64) {
    let earliest = go_live_ms.saturating_add(chain.margin_ms);
    let since = earliest.saturating_sub(chain.genesis_ms).max(0);
    // Rounds fully elapsed since genesis, rounded up: round 1 is published at genesis.
    let steps = (since + chain.period_ms - 1) / chain.period_ms;
    let round = u64::try_from(steps).unwrap_or(0) + 1;
    (round, round_time(chain, round))
}

/// Checks `signature` (hex) as `round` of the chain; answers the round with its randomness.
pub fn check(chain: &BeaconChain, round: u64, signature: &str) -> Result<Round, BeaconError> {
    verify(&chain.public_key, round, signature)
}

/// The round to name instead when a drop's list is sealed at `now_ms` but the round it named
/// (`round_at`, on chain `chain_hash`) is published already or about to be — after an outage
/// past the margin — so that whoever seals cannot know the order first: the round
/// [`round_for`] names for go-live `now_ms`. `None` when the named round is still ahead, or
/// the drop is on another chain than `chain` (whose round times this server does not know).
pub fn renamed_round(
    chain: &BeaconChain,
    chain_hash: Option<&str>,
    round_at: Option<i64>,
    now_ms: i64,
) -> Option<(u64, i64)> {
    let published_soon = round_at? <= now_ms.saturating_add(chain.period_ms);
    (published_soon && chain_hash? == chain.chain_hash).then(|| round_for(chain, now_ms))
}

/// Checks `signature` (hex) as `round` under a chain key stored with a drop (`public_key`:
/// compressed on G2, hex): what a fetched round and one an operator pastes both go through.
pub fn check_under(public_key: &str, round: u64, signature: &str) -> Result<Round, BeaconError> {
    let key: [u8; 96] = hex::decode(public_key)
        .ok()
        .and_then(|key| key.try_into().ok())
        .ok_or(BeaconError::Key)?;
    verify(&key, round, signature)
}

/// Checks `signature` (hex) as `round` under `public_key` (compressed on G2).
fn verify(public_key: &[u8; 96], round: u64, signature: &str) -> Result<Round, BeaconError> {
    let key = G2PubkeyRfc::from_fixed(*public_key).map_err(|_| BeaconError::Key)?;
    let bytes = hex::decode(signature.trim()).map_err(|_| BeaconError::Malformed(round))?;
    match key.verify(round, b"", &bytes) {
        Ok(true) => Ok(Round {
            round,
            signature: hex::encode(&bytes),
            randomness: hex::encode(Sha256::digest(&bytes)),
        }),
        Ok(false) => Err(BeaconError::Forged(round)),
        Err(_) => Err(BeaconError::Malformed(round)),
    }
}

/// Reads rounds from a drand HTTP endpoint (`/{chain_hash}/public/{round}`), each checked
/// against the key of the chain its drop was created under, not the one configured now.
#[derive(Clone, Debug)]
pub struct Fetcher {
    /// The endpoint, without a trailing slash.
    url: String,
    http: reqwest::Client,
}

/// A round as a drand endpoint answers it (its `randomness` is recomputed, never trusted).
#[derive(Deserialize)]
struct Published {
    round: u64,
    signature: String,
}

impl Fetcher {
    pub fn new(url: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a TLS client builds");
        Self { url, http }
    }

    /// Fetches `round` of the chain `chain_hash` and checks it under `public_key` (hex): a
    /// round the endpoint has not published yet (404, or drand's 425 Too Early) is
    /// [`BeaconError::NotYet`]; one that does not verify is refused whatever the endpoint says.
    pub async fn fetch(
        &self,
        chain_hash: &str,
        public_key: &str,
        round: u64,
    ) -> Result<Round, BeaconError> {
        let url = format!("{}/{chain_hash}/public/{round}", self.url);
        let fetch = |source| BeaconError::Fetch { round, source };
        let answer = self.http.get(url).send().await.map_err(fetch)?;
        if matches!(answer.status().as_u16(), 404 | 425) {
            return Err(BeaconError::NotYet(round));
        }
        let published: Published = answer
            .error_for_status()
            .map_err(fetch)?
            .json()
            .await
            .map_err(fetch)?;
        if published.round != round {
            return Err(BeaconError::WrongRound {
                asked: round,
                got: published.round,
            });
        }
        check_under(public_key, round, &published.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::settings::Settings;

    /// quicknet as the default settings name it, served from nowhere.
    fn quicknet() -> BeaconChain {
        Settings {
            beacon_url: "http://127.0.0.1:9".into(),
            ..Settings::default()
        }
        .beacon()
        .expect("a beacon is set")
    }

    /// A round still ahead stays; one published (or due within a period) at the seal is
    /// replaced by the first the margin allows; a drop of another chain keeps its own.
    #[test]
    fn a_round_out_at_the_seal_is_replaced_by_a_later_one() {
        let chain = quicknet();
        let hash = Some(chain.chain_hash.as_str());
        let now = 1_800_000_000_000;
        let (_, ahead) = round_for(&chain, now);
        assert_eq!(renamed_round(&chain, hash, Some(ahead), now), None);
        let (later, at) = renamed_round(&chain, hash, Some(now - 60_000), now).unwrap();
        assert!(at >= now + chain.margin_ms);
        assert_eq!(round_time(&chain, later), at);
        assert_eq!(
            renamed_round(&chain, Some("00"), Some(now - 60_000), now),
            None
        );
    }

    /// Two rounds drand's quicknet published, with their signatures: from
    /// `https://api.drand.sh/52db9ba7…/public/123` and `…/public/1000`.
    const ROUND_123: &str = "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26c\
                             d02df835d3546d23c4b13e0dfc92";
    const ROUND_1000: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e34\
                              2b73a8dd2bacbe47e4b6b63ed5e39";

    #[test]
    fn real_quicknet_rounds_verify_and_give_drands_randomness() {
        let chain = quicknet();
        assert!(check(&chain, 123, ROUND_123).is_ok());
        let round = check(&chain, 1000, ROUND_1000).expect("round 1000 verifies");
        // The randomness drand itself published for round 1000.
        assert_eq!(
            round.randomness,
            "fe290beca10872ef2fb164d2aa4442de4566183ec51c56ff3cd603d930e54fdd"
        );
    }

    #[test]
    fn a_changed_byte_or_another_round_is_refused() {
        let chain = quicknet();
        for at in [0, 17, 47] {
            let mut bytes = hex::decode(ROUND_1000).unwrap();
            bytes[at] ^= 0x01;
            let changed = hex::encode(bytes);
            assert!(
                matches!(
                    check(&chain, 1000, &changed),
                    Err(BeaconError::Forged(1000) | BeaconError::Malformed(1000))
                ),
                "a signature changed at byte {at} was accepted"
            );
        }
        assert!(matches!(
            check(&chain, 1001, ROUND_1000),
            Err(BeaconError::Forged(1001))
        ));
        assert!(matches!(
            check(&chain, 123, "not hex"),
            Err(BeaconError::Malformed(123))
        ));
    }

    #[test]
    fn the_round_for_a_go_live_comes_after_it_by_the_margin() {
        let chain = quicknet();
        // Round 1000 is published 999 periods after genesis.
        assert_eq!(round_time(&chain, 1000), chain.genesis_ms + 999 * 3000);
        let go_live = round_time(&chain, 1000) - chain.margin_ms;
        assert_eq!(round_for(&chain, go_live), (1000, round_time(&chain, 1000)));
        // A millisecond later, the next round.
        assert_eq!(round_for(&chain, go_live + 1).0, 1001);
        for go_live in [0, chain.genesis_ms, 1_800_000_000_123] {
            let (round, at) = round_for(&chain, go_live);
            assert!(at >= go_live + chain.margin_ms);
            assert!(round == 1 || round_time(&chain, round - 1) < go_live + chain.margin_ms);
        }
    }
}

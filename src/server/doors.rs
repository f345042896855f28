//! Proof of work at the doors: a new account, a new ticket in a queue and a new entry in a draw
//! each take a solved ALTCHA challenge (PoW v2, PBKDF2/SHA-256, the `altcha` crate). A
//! challenge is issued for one door (one buyer's join of one drop, or signing up) and signed
//! with a key derived from the deployment's secret, so it cannot be moved to another door or an
//! easier cost; it expires; and its nonce is spent with what it opens (`store`), so it opens
//! one door once, on every instance.
//!
//! It is issued in ALTCHA's deterministic mode: the server picks the counter a solver must
//! reach, so the work is known, and checks a solution by one HMAC of the key it derived
//! (microseconds) instead of deriving it again. The mean counter follows the pressure on the
//! doors (proofs checked per second over the last ten seconds) from the floor to the ceiling.

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use altcha::{
    create_challenge, verify_solution, Challenge, CreateChallengeOptions, Payload,
    VerifySolutionOptions,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use hkdf::Hkdf;
use rand::Rng;
use sha2::Sha256;

use super::{settings::ProofTerms, store::Spend};
use crate::model::{ApiError, DropId, ErrorCode, UserId};

/// The key derivation every challenge uses.
const ALGORITHM: &str = "PBKDF2/SHA-256";
/// The pressure window, in seconds.
const WINDOW: usize = 10;

/// A door a proof of work opens: what its challenge is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// A buyer's join of a drop's queue, or entry in its draw.
    Join { drop: DropId, buyer: UserId },
    /// Making an account.
    SignUp,
}

impl Door {
    /// What a challenge for this door carries (and its HMAC covers).
    fn data(self) -> BTreeMap<String, serde_json::Value> {
        let pairs = match self {
            Door::Join { drop, buyer } => vec![
                ("buyer", serde_json::json!(buyer.0)),
                ("drop", serde_json::json!(drop.0)),
            ],
            Door::SignUp => vec![("door", serde_json::json!("sign_up"))],
        };
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect()
    }
}

/// The doors' challenges and their checks. One per instance.
pub struct Doors {
    terms: ProofTerms,
    /// Signs a challenge's parameters (HMAC-SHA256).
    signing: String,
    /// Signs the key a challenge's counter derives (the fast check).
    key_signing: String,
    pressure: Pressure,
}

impl Doors {
    /// The doors of a deployment whose instances share `secret`, asking proofs on `terms`.
    pub fn new(secret: &str, terms: ProofTerms) -> Self {
        let derive = |info: &[u8]| {
            let mut key = [0u8; 32];
            Hkdf::<Sha256>::new(Some(b"dropline"), secret.as_bytes())
                .expand(info, &mut key)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            hex::encode(key)
        };
        Self {
            terms,
            signing: derive(b"proof challenges v1"),
            key_signing: derive(b"proof keys v1"),
            pressure: Pressure::default(),
        }
    }

    /// Whether a door asks a proof at all.
    fn asked(&self) -> bool {
        self.terms.asked()
    }

    /// The mean tries of a challenge issued now.
    fn tries(&self) -> u32 {
        self.terms.tries(self.pressure.per_second(now_secs()))
    }

    /// A fresh challenge for `door`; `None` when no proof is asked.
    pub fn challenge(&self, door: Door) -> Option<Challenge> {
        if !self.asked() {
            return None;
        }
        let mean = self.tries().max(1);
        // Uniform around the mean, never below half of it: the work a buyer waits for is
        // predictable, and no challenge is free.
        let counter = rand::rng().random_range(mean / 2..=mean + mean / 2);
        let expires_at = now_secs() + self.terms.lifetime.as_secs();
        let challenge = create_challenge(CreateChallengeOptions {
            algorithm: ALGORITHM.into(),
            counter: Some(counter),
            cost: self.terms.cost,
            data: Some(door.data()),
            expires_at: Some(expires_at),
            hmac_signature_secret: Some(self.signing.clone()),
            hmac_key_signature_secret: Some(self.key_signing.clone()),
            ..CreateChallengeOptions::default()
        });
        match challenge {
            Ok(challenge) => Some(challenge),
            Err(error) => {
                // Only a bad key length or hex could fail, and ours are fixed.
                tracing::error!(%error, "could not issue a proof-of-work challenge");
                None
            }
        }
    }

    /// Checks the proof sent to open `door` (base64 of ALTCHA's payload JSON, `{"challenge",
    /// "solution"}`): what to spend with what it opens (a ticket, an account), `None` when no
    /// proof is asked. `PROOF_REQUIRED` without one; `PROOF_INVALID` for one that is not a
    /// solution of a challenge of ours, has expired, or was issued for another door (another
    /// drop or buyer, or sign-up).
    pub fn check(&self, door: Door, proof: Option<&str>) -> Result<Option<Spend>, ApiError> {
        if !self.asked() {
            return Ok(None);
        }
        let proof = proof.map(str::trim).filter(|p| !p.is_empty());
        let Some(proof) = proof else {
            return Err(ApiError::refusal(ErrorCode::ProofRequired));
        };
        let invalid = |why: &str| {
            ApiError::new(
                ErrorCode::ProofInvalid,
                format!("{why} Fetch a new challenge and solve it."),
            )
        };
        let payload: Payload = STANDARD
            .decode(proof)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| invalid("That is not a proof of work (base64 of its JSON)."))?;
        let verdict = verify_solution(VerifySolutionOptions {
            hmac_key_signature_secret: Some(self.key_signing.clone()),
            ..VerifySolutionOptions::new(&payload.challenge, &payload.solution, &self.signing)
        })
        .map_err(|_| invalid("That proof of work is malformed."))?;
        let parameters = &payload.challenge.parameters;
        if verdict.expired {
            return Err(invalid("That proof of work's challenge has expired."));
        }
        if !verdict.verified {
            return Err(invalid(
                "That proof of work does not solve a challenge this shop issued.",
            ));
        }
        if parameters.data.as_ref() != Some(&door.data()) {
            return Err(invalid(
                "That proof of work was issued for another door: another drop or another buyer, \
                 or signing up.",
            ));
        }
        self.pressure.count(now_secs());
        let expires_at = parameters.expires_at.unwrap_or_default();
        Ok(Some(Spend {
            nonce: parameters.nonce.clone(),
            expires_at: i64::try_from(expires_at).unwrap_or(i64::MAX),
        }))
    }
}

/// The proofs checked in each of the last [`WINDOW`] seconds.
#[derive(Default)]
struct Pressure {
    seconds: Mutex<[(u64, u32); WINDOW]>,
}

impl Pressure {
    /// One more proof checked in second `now`.
    fn count(&self, now: u64) {
        let mut seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut seconds[now as usize % WINDOW];
        if slot.0 != now {
            *slot = (now, 0);
        }
        slot.1 += 1;
    }

    /// Proofs checked per second over the window that ends at `now`.
    fn per_second(&self, now: u64) -> f64 {
        let seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        let recent: u32 = seconds
            .iter()
            .filter(|(second, _)| now.saturating_sub(*second) < WINDOW as u64)
            .map(|(_, count)| count)
            .sum();
        f64::from(recent) / WINDOW as f64
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms() -> ProofTerms {
        ProofTerms {
            floor: 4,
            ceiling: 40,
            cost: 1,
            full_pressure: 10.0,
            lifetime: Duration::from_secs(60),
        }
    }

    fn solved(challenge: &Challenge) -> String {
        let solution = altcha::solve_challenge(altcha::SolveChallengeOptions::new(challenge))
            .unwrap()
            .unwrap();
        let payload = Payload {
            challenge: challenge.clone(),
            solution,
        };
        STANDARD.encode(serde_json::to_vec(&payload).unwrap())
    }

    #[test]
    fn the_tries_rise_with_the_pressure_from_the_floor_to_the_ceiling() {
        let terms = terms();
        assert_eq!(terms.tries(0.0), 4);
        assert_eq!(terms.tries(5.0), 22);
        assert_eq!(terms.tries(10.0), 40);
        assert_eq!(terms.tries(1_000.0), 40);
    }

    #[test]
    fn pressure_counts_the_last_ten_seconds_only() {
        let pressure = Pressure::default();
        for _ in 0..30 {
            pressure.count(100);
        }
        pressure.count(105);
        assert_eq!(pressure.per_second(105), 3.1);
        assert_eq!(pressure.per_second(109), 3.1);
        assert_eq!(pressure.per_second(110), 0.1);
        assert_eq!(pressure.per_second(115), 0.0);
    }

    #[test]
    fn a_solved_challenge_opens_its_own_door_only() {
        let doors = Doors::new("a-secret-of-thirty-two-characters!", terms());
        let join = |drop, buyer| Door::Join {
            drop: DropId(drop),
            buyer: UserId(buyer),
        };
        let challenge = doors.challenge(join(7, 3)).unwrap();
        let proof = solved(&challenge);
        let spend = doors.check(join(7, 3), Some(&proof)).unwrap();
        assert_eq!(spend.unwrap().nonce, challenge.parameters.nonce);
        let code = |r: Result<Option<Spend>, ApiError>| r.unwrap_err().code;
        let invalid = ErrorCode::ProofInvalid;
        assert_eq!(code(doors.check(join(8, 3), Some(&proof))), invalid);
        assert_eq!(code(doors.check(join(7, 4), Some(&proof))), invalid);
        assert_eq!(code(doors.check(Door::SignUp, Some(&proof))), invalid);
        let required = ErrorCode::ProofRequired;
        assert_eq!(code(doors.check(join(7, 3), None)), required);
        assert_eq!(code(doors.check(join(7, 3), Some("%%"))), invalid);
        // Another deployment's secret did not sign it.
        let other = Doors::new("another-secret-of-thirty-two-chars", terms());
        assert_eq!(code(other.check(join(7, 3), Some(&proof))), invalid);
        // A sign-up's proof opens sign-up only.
        let sign_up = solved(&doors.challenge(Door::SignUp).unwrap());
        assert_eq!(code(doors.check(join(7, 3), Some(&sign_up))), invalid);
        assert!(doors.check(Door::SignUp, Some(&sign_up)).unwrap().is_some());
    }

    #[test]
    fn an_easier_challenge_made_by_the_buyer_is_refused() {
        let doors = Doors::new("a-secret-of-thirty-two-characters!", terms());
        let door = Door::Join {
            drop: DropId(7),
            buyer: UserId(3),
        };
        let mut challenge = doors.challenge(door).unwrap();
        // Rewritten to the cheapest counter there is, and solved: the signature no longer
        // covers it.
        challenge.parameters.cost = 1;
        let mut easy = create_challenge(CreateChallengeOptions {
            counter: Some(0),
            cost: 1,
            ..CreateChallengeOptions::default()
        })
        .unwrap();
        easy.parameters.data = challenge.parameters.data.clone();
        easy.parameters.expires_at = challenge.parameters.expires_at;
        easy.signature = challenge.signature.clone();
        easy.parameters.key_signature = challenge.parameters.key_signature.clone();
        let proof = solved(&easy);
        let refused = doors.check(door, Some(&proof)).unwrap_err();
        assert_eq!(refused.code, ErrorCode::ProofInvalid);
    }

    #[test]
    fn no_floor_asks_no_proof() {
        let doors = Doors::new(
            "a-secret-of-thirty-two-characters!",
            ProofTerms {
                floor: 0,
                ..terms()
            },
        );
        assert!(doors.challenge(Door::SignUp).is_none());
        assert_eq!(doors.check(Door::SignUp, None).unwrap(), None);
    }
}

//! `dropline-verify`: checks a Dropline queue's or draw's audit from the audit alone.
//!
//! It reads the final audit (`GET /api/v1/drops/{id}/audit`) and every ticket's story
//! (`GET /api/v1/drops/{id}/audit/tickets`, page by page), and checks, each a [`Fault`] when it
//! fails:
//! - **The randomness.** A beacon-mode order comes from a drand round: its BLS signature must
//!   verify under the chain's public key, its randomness be the SHA-256 of the signature, and
//!   the round be published after the entry list was sealed. A seed-mode order comes from a
//!   seed whose SHA-256 was published when the drop was created.
//! - **The sealed list.** Its ids give the published Merkle root and count, and they are
//!   exactly the tickets in line when it was sealed.
//! - **Every place.** The lobby stands in ascending `sha256_hex(source + ":" + id)` (`source`:
//!   the beacon's randomness, ":", the root; or the seed), the later tickets behind it in the
//!   order they joined; places run 1, 2, 3, ... with no gap and none twice; the final audit
//!   shows each ticket as its story does; a lobby ticket without a place left before go-live.
//! - **The moves.** A queue admits in place order (a ticket is let in only once every one
//!   ahead of it was, or had left); a draw's first `units` places win and each unit passed
//!   down the waitlist goes to the first entry still on it; a ticket that came back is a new
//!   one that joined after the old one left.
//! - **Receipts.** Each receipt a buyer holds is signed by the audit's receipt key and names a
//!   ticket the audit has.

pub mod audit;
mod order;
mod story;

use std::fmt;

pub use audit::{Audit, EntryProof, History, HistoryPage, Receipt};

/// The drand chain a beacon-mode order must come from, as its operators publish it (not as
/// the audit says): its hash, public key (compressed G2, hex), genesis and period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub chain_hash: String,
    pub public_key: String,
    pub genesis_seconds: i64,
    pub period_seconds: i64,
}

impl Chain {
    /// drand's quicknet (unchained BLS on BLS12-381, a round every 3 s), as the League of
    /// Entropy publishes it at `https://api.drand.sh/52db…e971/info`.
    pub fn quicknet() -> Self {
        Self {
            chain_hash: "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971".into(),
            public_key: concat!(
                "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6",
                "a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9",
                "c76a4bc09e76eae8991ef5ece45a"
            )
            .into(),
            genesis_seconds: 1_692_803_367,
            period_seconds: 3,
        }
    }

    /// When round `round` is published: round 1 at genesis, one a period after.
    pub fn round_at(&self, round: u64) -> Option<chrono::DateTime<chrono::Utc>> {
        let after = i64::try_from(round.checked_sub(1)?).ok()?;
        let seconds = self
            .genesis_seconds
            .checked_add(after.checked_mul(self.period_seconds)?)?;
        chrono::DateTime::from_timestamp(seconds, 0)
    }
}

/// What a buyer or a watcher kept that the audit must agree with: receipts, proofs of entry
/// fetched after the seal, and what the drop published at its creation.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    pub receipts: Vec<Receipt>,
    pub proofs: Vec<EntryProof>,
    /// The drop's `seed_sha256`, as shown before go-live.
    pub seed_sha256: Option<String>,
    /// The drop's `beacon_round`, as shown before go-live.
    pub beacon_round: Option<u64>,
}

/// One way an audit fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault(pub String);

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an audit that passes shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub draw: bool,
    /// `drand round N` or `the committed seed`.
    pub source: String,
    /// Placed by their keys: a queue's lobby, a draw's entries.
    pub lobby: usize,
    /// A queue: placed behind the lobby, in the order they joined.
    pub later: usize,
    /// A queue: let in, all in place order.
    pub admitted: usize,
    /// A draw: won at the draw.
    pub winners: usize,
    /// A draw: units passed down the waitlist.
    pub passed_down: usize,
    /// Tickets issued in all (every story).
    pub issued: usize,
    pub receipts: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.draw {
            write!(
                f,
                "ok: {} entries, {} won, {} passed down the waitlist",
                self.lobby, self.winners, self.passed_down
            )?;
        } else {
            write!(
                f,
                "ok: {} drawn in the lobby, {} joined later, {} admitted in place order",
                self.lobby, self.later, self.admitted
            )?;
        }
        write!(
            f,
            "; ordered by {}; {} tickets issued; {} receipts match",
            self.source, self.issued, self.receipts
        )
    }
}

/// Checks drop `drop`'s audit (`audit`, with every ticket's story `tickets`) against the
/// chain its order must come from (beacon mode) and what was kept of it (`evidence`); answers
/// what it shows, or every fault found. Check a sale once it is over: the stories are read
/// page by page, and a sale still moving can move between two pages.
pub fn verify(
    drop: i64,
    audit: &Audit,
    tickets: &[History],
    chain: &Chain,
    evidence: &Evidence,
) -> Result<Summary, Vec<Fault>> {
    let mut faults = Vec::new();
    order::unique(tickets, &mut faults);
    let source = order::source(audit, chain, evidence, &mut faults);
    order::sealed(audit, tickets, &evidence.proofs, &mut faults);
    let mut summary = match &source {
        Some(source) => order::places(audit, tickets, &source.prefix, &mut faults),
        None => Summary::default(),
    };
    story::rejoins(tickets, &mut faults);
    if audit.sale_mode == "draw" {
        let (winners, passed_down) = story::draw(audit, tickets, &mut faults);
        summary.winners = winners;
        summary.passed_down = passed_down;
    } else {
        summary.admitted = story::admissions(audit, tickets, &mut faults);
    }
    story::receipts(drop, audit, tickets, &evidence.receipts, &mut faults);
    if !faults.is_empty() {
        return Err(faults);
    }
    summary.draw = audit.sale_mode == "draw";
    summary.source = source.map(|s| s.name).unwrap_or_default();
    summary.issued = tickets.len();
    summary.receipts = evidence.receipts.len();
    Ok(summary)
}

/// Whether `proof` shows its ticket in the sealed list whose root and count it names (compare
/// them with the final audit's `entries`, or with what was published at the seal).
pub fn proves(proof: &EntryProof) -> bool {
    order::proves(proof)
}

/// Why an audit could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("the audit is not JSON of the documented shape: {0}")]
    Unreadable(serde_json::Error),
    #[error("the audit is not signed by the receipt key it names (its Dropline-Signature header)")]
    Unsigned,
    #[error("{url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

/// Fetches drop `drop`'s final audit and every page of its tickets' stories from the server
/// at `base` (`http://127.0.0.1:3000`).
pub async fn fetch(base: &str, drop: i64) -> Result<(Audit, Vec<History>), FetchError> {
    #[derive(serde::Deserialize)]
    struct Final {
        audit: Audit,
    }
    #[derive(serde::Deserialize)]
    struct Stories {
        history: HistoryPage,
    }
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = &client;
        async move {
            let url = format!("{}/api/v1/drops/{drop}/{path}", base.trim_end_matches('/'));
            let reply = client.get(&url).send().await?;
            if !reply.status().is_success() {
                let status = reply.status().as_u16();
                let body = reply.text().await.unwrap_or_default();
                return Err(FetchError::Refused { url, status, body });
            }
            Ok(reply)
        }
    };
    let reply = get("audit".into()).await?;
    let signature = reply
        .headers()
        .get("dropline-signature")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let document = reply.bytes().await?;
    let audit = serde_json::from_slice::<Final>(&document)
        .map_err(FetchError::Unreadable)?
        .audit;
    if !story::audit_signed(&audit, &document, signature.as_deref()) {
        return Err(FetchError::Unsigned);
    }
    let mut tickets = Vec::new();
    let mut after = Some(0);
    while let Some(from) = after {
        let page = get(format!("audit/tickets?after={from}"))
            .await?
            .json::<Stories>()
            .await?
            .history;
        tickets.extend(page.tickets);
        after = page.next_after;
    }
    Ok((audit, tickets))
}

/// `sha256_hex(text)`.
fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

//! What happened to the tickets once in order: a queue's admissions, a draw's winners and its
//! waitlist, tickets that came back, and the receipts buyers hold.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::{
    audit::{Audit, History, Receipt},
    Fault,
};

/// A ticket that came back is a new one, which joined after the old one left.
pub(crate) fn rejoins(tickets: &[History], faults: &mut Vec<Fault>) {
    let by_id: HashMap<&str, &History> = tickets.iter().map(|t| (t.id.as_str(), t)).collect();
    for ticket in tickets {
        let Some(new) = &ticket.rejoined_as else {
            continue;
        };
        match (by_id.get(new.as_str()), ticket.left_at) {
            (None, _) => faults.push(Fault(format!(
                "ticket {} came back as ticket {new}, which the audit leaves out",
                ticket.id
            ))),
            (Some(came_back), Some(left)) if came_back.joined_at >= left && *new != ticket.id => {}
            _ => faults.push(Fault(format!(
                "ticket {} came back as ticket {new}, which did not join after it left",
                ticket.id
            ))),
        }
    }
}

/// The tickets with a place, by place.
fn by_place(tickets: &[History]) -> Vec<&History> {
    let mut placed: Vec<&History> = tickets.iter().filter(|t| t.place.is_some()).collect();
    placed.sort_by_key(|t| t.place);
    placed
}

/// Checks that each of `line` (by place) given its turn at `turn(t)` had it only once every
/// one ahead of it had theirs or had left: with `what` naming the move in a fault. Answers how
/// many had a turn.
fn in_place_order(
    line: &[&History],
    turn: impl Fn(&History) -> Option<DateTime<Utc>>,
    what: &str,
    faults: &mut Vec<Fault>,
) -> usize {
    // The latest moment by which every ticket so far had had its turn or had left (None:
    // one never did), and that ticket.
    let mut ahead: Option<(Option<DateTime<Utc>>, &History)> = None;
    let mut turns = 0;
    for ticket in line {
        if let Some(at) = turn(ticket) {
            turns += 1;
            if let Some((until, waiting)) = ahead {
                if until.is_none_or(|until| until > at) {
                    faults.push(Fault(format!(
                        "{what} ticket {} (place {:?}) at {at} while ticket {} (place {:?}) \
                         ahead of it still waited",
                        ticket.id, ticket.place, waiting.id, waiting.place
                    )));
                }
            }
        }
        let done = match (turn(ticket), ticket.left_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let later = match (ahead.map(|(until, _)| until), done) {
            (None, _) => true,
            (Some(None), _) => false,
            (Some(Some(_)), None) => true,
            (Some(Some(until)), Some(done)) => done > until,
        };
        if later {
            ahead = Some((done, ticket));
        }
    }
    turns
}

/// A queue lets a ticket in only once every ticket ahead of it was let in or had left.
/// Answers how many were let in.
pub(crate) fn admissions(audit: &Audit, tickets: &[History], faults: &mut Vec<Fault>) -> usize {
    if let Some(early) = tickets.iter().find(|t| {
        t.admitted_at
            .is_some_and(|at| t.place.is_none() || audit.ordered_at.is_some_and(|o| at < o))
    }) {
        faults.push(Fault(format!(
            "ticket {} was admitted before it had a place",
            early.id
        )));
    }
    in_place_order(&by_place(tickets), |t| t.admitted_at, "admitted", faults)
}

/// A draw: the first `units` places win at the draw; each unit passed down the waitlist goes
/// to the first entry still on it. Answers (won at the draw, passed down the waitlist).
pub(crate) fn draw(audit: &Audit, tickets: &[History], faults: &mut Vec<Fault>) -> (usize, usize) {
    let placed = by_place(tickets);
    let drawn = audit.tickets.len().min(placed.len());
    let named: Vec<&str> = audit.winners.iter().flatten().map(String::as_str).collect();
    let units = audit
        .units
        .and_then(|units| usize::try_from(units).ok())
        .unwrap_or(named.len());
    let first = units.min(drawn);
    let expected: Vec<&str> = placed[..first].iter().map(|t| t.id.as_str()).collect();
    if named != expected {
        faults.push(Fault(format!(
            "the winners named are not the first {first} places of the drawn order"
        )));
    }
    if let Some(unpaid) = placed[..first].iter().find(|t| t.won_at.is_none()) {
        faults.push(Fault(format!(
            "entry {} is among the first {first} places but got no unit",
            unpaid.id
        )));
    }
    let waitlist = &placed[first..];
    let passed = in_place_order(waitlist, |t| t.won_at, "a unit passed to", faults);
    (first, passed)
}

/// The Ed25519 key the audit names as `receipt_key`, if it names a valid one.
fn receipt_key(audit: &Audit) -> Option<VerifyingKey> {
    let bytes = hex::decode(audit.receipt_key.as_deref()?).ok()?;
    VerifyingKey::from_bytes(&<[u8; 32]>::try_from(bytes).ok()?).ok()
}

/// How far the clock that signs receipts and the one that stamps tickets may disagree.
const CLOCK_LEEWAY_MS: i64 = 1_000;

/// Each receipt: for this drop, signed by the audit's receipt key, for a ticket the audit has
/// that joined no later than the receipt was issued.
pub(crate) fn receipts(
    drop: i64,
    audit: &Audit,
    tickets: &[History],
    receipts: &[Receipt],
    faults: &mut Vec<Fault>,
) {
    if receipts.is_empty() {
        return;
    }
    let key = receipt_key(audit);
    let Some(key) = key else {
        faults.push(Fault(
            "the audit names no receipt key to check receipts with".into(),
        ));
        return;
    };
    let issued: HashMap<&str, &History> = tickets.iter().map(|t| (t.id.as_str(), t)).collect();
    for receipt in receipts {
        let signature = hex::decode(&receipt.signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok());
        let signed = receipt.drop_id == drop
            && Some(receipt.public_key.as_str()) == audit.receipt_key.as_deref()
            && signature.is_some_and(|s| key.verify(receipt.message().as_bytes(), &s).is_ok());
        if !signed {
            faults.push(Fault(format!(
                "the receipt for ticket {} is not one this server signed for this drop",
                receipt.ticket
            )));
        } else {
            match issued.get(receipt.ticket.as_str()) {
                None => faults.push(Fault(format!(
                    "the server signed a receipt for ticket {}, which its audit leaves out",
                    receipt.ticket
                ))),
                // A ticket never joins after its receipt (a second's leeway for the clocks of
                // the instance that signed and the database that stamped).
                Some(story)
                    if story.joined_at.timestamp_millis()
                        > receipt.issued_at_ms + CLOCK_LEEWAY_MS =>
                {
                    faults.push(Fault(format!(
                        "ticket {} joined at {} by its story, after its receipt was issued",
                        receipt.ticket, story.joined_at
                    )))
                }
                Some(_) => {}
            }
        }
    }
}

/// Whether `signature` (hex, the `Dropline-Signature` header) is the audit's receipt key's
/// over `dropline audit v1\n` and the document's bytes as served. Kept, a signed document
/// that differs from another signed for the same drop proves the server told two stories.
pub(crate) fn audit_signed(audit: &Audit, document: &[u8], signature: Option<&str>) -> bool {
    let key = receipt_key(audit);
    let signature = signature
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .and_then(|bytes| Signature::from_slice(&bytes).ok());
    let message = [b"dropline audit v1\n".as_slice(), document].concat();
    match (key, signature) {
        (Some(key), Some(signature)) => key.verify(&message, &signature).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn audit(key: &SigningKey) -> Audit {
        serde_json::from_value(serde_json::json!({
            "sale_mode": "queue",
            "starts_at": "2026-12-03T10:00:00Z",
            "tickets": [],
            "receipt_key": hex::encode(key.verifying_key().as_bytes()),
        }))
        .unwrap()
    }

    /// The signature holds over the document as served, by the key the audit names, and over
    /// nothing else: a changed byte, another key, or no signature fail.
    #[test]
    fn an_audit_is_signed_by_the_key_it_names() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let document = br#"{"audit":{"sale_mode":"queue"}}"#;
        let message = [b"dropline audit v1\n".as_slice(), document].concat();
        let signature = hex::encode(key.sign(&message).to_bytes());
        assert!(audit_signed(&audit(&key), document, Some(&signature)));
        let mut changed = document.to_vec();
        changed[3] ^= 1;
        assert!(!audit_signed(&audit(&key), &changed, Some(&signature)));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!audit_signed(&audit(&other), document, Some(&signature)));
        assert!(!audit_signed(&audit(&key), document, None));
    }
}

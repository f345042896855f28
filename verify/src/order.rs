//! Where the order comes from, the sealed list, and every place.

use std::collections::{HashMap, HashSet};

use ct_merkle::{mem_backed_tree::MemoryBackedTree, InclusionProof, RootHash};
use drand_verify::{G2PubkeyRfc, Pubkey};
use sha2::{Digest, Sha256};

use crate::{
    audit::{Audit, EntryProof, History},
    sha256_hex, Chain, Evidence, Fault, Summary,
};

/// The order's source: what every key is computed from, and how the summary names it.
pub(crate) struct Source {
    pub(crate) prefix: String,
    pub(crate) name: String,
}

/// No ticket told twice: a story repeated could be read one way by one check and another way
/// by the next.
pub(crate) fn unique(tickets: &[History], faults: &mut Vec<Fault>) {
    let mut seen = HashSet::new();
    if let Some(twice) = tickets.iter().find(|t| !seen.insert(t.id.as_str())) {
        faults.push(Fault(format!("ticket {} has two stories", twice.id)));
    }
}

/// The order's source, checked: a round of `chain` (not of a key the audit names) whose
/// signature verifies and which was published after the list was sealed, or a seed that
/// matches what was published; and either as the drop committed to at creation, as far as
/// `evidence` kept it.
pub(crate) fn source(
    audit: &Audit,
    chain: &Chain,
    evidence: &Evidence,
    faults: &mut Vec<Fault>,
) -> Option<Source> {
    let mut fail = |text: String| {
        faults.push(Fault(text));
        None
    };
    let beacon_mode = audit.order.as_deref() == Some("beacon");
    // A round named at creation and replaced at a late seal: only one already out then.
    if let (Some(beacon), Some(entries)) = (&audit.beacon, &audit.entries) {
        if let Some(named) = beacon.named_round {
            // Within a period of the seal: the server renames a round about to come out too.
            let period = chrono::Duration::seconds(chain.period_seconds);
            let out_at_seal = chain
                .round_at(named)
                .is_some_and(|at| at <= entries.sealed_at + period);
            if !out_at_seal {
                return fail(format!(
                    "the drop named round {named} at creation and was ordered by round {} \
                     instead, though round {named} was not out when the list was sealed",
                    beacon.round
                ));
            }
        }
    }
    if let Some(round) = evidence.beacon_round {
        let audited = audit
            .beacon
            .as_ref()
            .map(|b| b.named_round.unwrap_or(b.round));
        if !beacon_mode || audited != Some(round) {
            return fail(format!(
                "the drop named drand round {round} at creation, but the audit is ordered by {}",
                audited.map_or("its seed".into(), |r| format!("round {r}"))
            ));
        }
    }
    if let Some(published) = &evidence.seed_sha256 {
        if beacon_mode || audit.seed_sha256.as_ref() != Some(published) {
            return fail(format!(
                "the drop published seed SHA-256 {published} at creation, but the audit is \
                 ordered otherwise"
            ));
        }
    }
    if beacon_mode {
        let (Some(beacon), Some(entries)) = (&audit.beacon, &audit.entries) else {
            return fail("a beacon-mode audit without its round or its sealed list".into());
        };
        if !beacon.chain_hash.eq_ignore_ascii_case(&chain.chain_hash)
            || !beacon.public_key.eq_ignore_ascii_case(&chain.public_key)
        {
            return fail(format!(
                "the audit names chain {} and its own key, not the chain the order must come from",
                beacon.chain_hash
            ));
        }
        if chain.round_at(beacon.round) != Some(beacon.round_at) {
            return fail(format!(
                "the audit says round {} was published at {}; the chain publishes it at {:?}",
                beacon.round,
                beacon.round_at,
                chain.round_at(beacon.round)
            ));
        }
        let key = hex::decode(&chain.public_key)
            .ok()
            .and_then(|bytes| <[u8; 96]>::try_from(bytes).ok())
            .and_then(|bytes| G2PubkeyRfc::from_fixed(bytes).ok());
        let Some(key) = key else {
            return fail("the beacon's public key is not a point on G2".into());
        };
        let signature = hex::decode(&beacon.signature).unwrap_or_default();
        if !matches!(key.verify(beacon.round, b"", &signature), Ok(true)) {
            return fail(format!(
                "round {}'s signature does not verify under the chain's key",
                beacon.round
            ));
        }
        if hex::encode(Sha256::digest(&signature)) != beacon.randomness {
            return fail("the randomness is not the SHA-256 of the round's signature".into());
        }
        if beacon.round_at <= entries.sealed_at {
            return fail(format!(
                "round {} was published at {}, before the list was sealed at {}: the order \
                 could be known while the list could change",
                beacon.round, beacon.round_at, entries.sealed_at
            ));
        }
        if audit.ordered_at.is_some_and(|at| at < beacon.round_at) {
            return fail("the tickets were put in order before the round was published".into());
        }
        return Some(Source {
            prefix: format!("{}:{}", beacon.randomness, entries.root),
            name: format!("drand round {}", beacon.round),
        });
    }
    match (&audit.seed, &audit.seed_sha256) {
        (Some(seed), Some(published)) if sha256_hex(seed) == *published => Some(Source {
            prefix: seed.clone(),
            name: "the committed seed".into(),
        }),
        (Some(_), Some(_)) => fail("the seed is not the one published".into()),
        _ => fail("the audit names neither a beacon round nor a seed".into()),
    }
}

/// Checks the sealed list (beacon mode): its root and count are of its ids, its ids are
/// exactly the tickets in line when it was sealed, and every proof of entry kept since the
/// seal holds under the same root (a list sealed again later would not).
pub(crate) fn sealed(
    audit: &Audit,
    tickets: &[History],
    proofs: &[EntryProof],
    faults: &mut Vec<Fault>,
) {
    let Some(entries) = &audit.entries else {
        if let Some(ticket) = tickets.iter().find(|t| t.sealed) {
            faults.push(Fault(format!(
                "ticket {} says it is sealed, but the audit has no sealed list",
                ticket.id
            )));
        }
        return;
    };
    let mut ids: Vec<&str> = entries.ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != entries.ids.len() {
        faults.push(Fault("the sealed list names a ticket twice".into()));
    }
    if i64::try_from(ids.len()).ok() != Some(entries.count) {
        faults.push(Fault(format!(
            "the sealed list holds {} ids, but its count says {}",
            ids.len(),
            entries.count
        )));
    }
    if merkle_root(&ids) != entries.root {
        faults.push(Fault(
            "the sealed list's root is not the root of its ids".into(),
        ));
    }
    for proof in proofs {
        if proof.root != entries.root || proof.count != entries.count || !proves(proof) {
            faults.push(Fault(format!(
                "the proof kept for ticket {} does not hold under the audit's sealed list: the \
                 list was sealed again",
                proof.ticket
            )));
        }
    }
    let listed: HashSet<&str> = ids.iter().copied().collect();
    let stories: HashSet<&str> = tickets.iter().map(|t| t.id.as_str()).collect();
    if let Some(missing) = ids.iter().find(|id| !stories.contains(*id)) {
        faults.push(Fault(format!(
            "sealed ticket {missing} has no story: the audit leaves it out"
        )));
    }
    let draw = audit.sale_mode == "draw";
    for ticket in tickets {
        let joined_before = if draw {
            ticket.joined_at < entries.sealed_at
        } else {
            ticket.joined_at < audit.starts_at
        };
        let in_line = joined_before && ticket.left_at.is_none_or(|at| at > entries.sealed_at);
        // In the seal's very millisecond the clock cannot tell before from after.
        let either = ticket.left_at == Some(entries.sealed_at)
            || (draw && ticket.joined_at == entries.sealed_at);
        let in_list = listed.contains(ticket.id.as_str());
        if in_list != ticket.sealed {
            faults.push(Fault(format!(
                "ticket {}'s story and the sealed list disagree on whether it is sealed",
                ticket.id
            )));
        } else if in_list && !in_line && !either {
            faults.push(Fault(format!(
                "ticket {} is sealed but was not in line when the list was sealed",
                ticket.id
            )));
        } else if !in_list && in_line && !either {
            faults.push(Fault(format!(
                "ticket {} was in line when the list was sealed but is not in it",
                ticket.id
            )));
        }
    }
}

/// Checks every place: places 1, 2, 3, ... each once; the final audit's tickets as their
/// stories show them; its lobby by the keys under `prefix`, its later tickets and every one
/// placed since in the order they joined; and that a ticket without a place had left before
/// the tickets were put in order. Answers how many stand in the lobby and behind it.
pub(crate) fn places(
    audit: &Audit,
    tickets: &[History],
    prefix: &str,
    faults: &mut Vec<Fault>,
) -> Summary {
    let mut placed: Vec<&History> = tickets.iter().filter(|t| t.place.is_some()).collect();
    placed.sort_by_key(|t| t.place);
    if let Some((ticket, expected)) = placed
        .iter()
        .zip(1..)
        .find(|(ticket, expected)| ticket.place != Some(*expected))
    {
        faults.push(Fault(format!(
            "the places do not run 1, 2, 3, ...: place {expected} is missing or given twice \
             (ticket {} stands at {:?})",
            ticket.id, ticket.place
        )));
        return Summary::default();
    }
    let stories: HashMap<&str, &History> = tickets.iter().map(|t| (t.id.as_str(), t)).collect();
    for shown in &audit.tickets {
        match stories.get(shown.id.as_str()) {
            None => faults.push(Fault(format!(
                "ticket {} of the final audit has no story: the audit leaves it out",
                shown.id
            ))),
            Some(story)
                if story.place != Some(shown.place) || story.joined_at != shown.joined_at =>
            {
                faults.push(Fault(format!(
                    "ticket {} stands at {} in the final audit but at {:?} in its story",
                    shown.id, shown.place, story.place
                )))
            }
            Some(_) => {}
        }
    }
    let at_go_live = audit.tickets.len().min(placed.len());
    let shown: HashSet<&str> = audit.tickets.iter().map(|t| t.id.as_str()).collect();
    if let Some(hidden) = placed[..at_go_live]
        .iter()
        .find(|t| !shown.contains(t.id.as_str()))
    {
        faults.push(Fault(format!(
            "ticket {} stands at place {:?} from go-live in its story, but the final audit \
             leaves it out",
            hidden.id, hidden.place
        )));
    }
    let draw = audit.sale_mode == "draw";
    let in_lobby = |t: &History| draw || t.joined_at < audit.starts_at;
    let (lobby, late): (Vec<&History>, Vec<&History>) =
        placed[..at_go_live].iter().partition(|t| in_lobby(t));
    if let Some(late_one) = placed[..lobby.len()].iter().find(|t| !in_lobby(t)) {
        faults.push(Fault(format!(
            "ticket {} joined after go-live but stands in the lobby",
            late_one.id
        )));
    }
    let mut by_key: Vec<(String, &History)> = lobby
        .iter()
        .map(|t| (sha256_hex(&format!("{prefix}:{}", t.id)), *t))
        .collect();
    by_key.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(((_, expected), actual)) = by_key
        .iter()
        .zip(&lobby)
        .find(|((_, expected), actual)| expected.id != actual.id)
    {
        faults.push(Fault(format!(
            "ticket {} stands at place {:?}, but the order puts ticket {} there",
            actual.id, actual.place, expected.id
        )));
    }
    if audit.order.as_deref() == Some("beacon") {
        if let Some(unsealed) = lobby.iter().find(|t| !t.sealed) {
            faults.push(Fault(format!(
                "ticket {} stands in the lobby but is not in the sealed list",
                unsealed.id
            )));
        }
    }
    // Tickets placed since go-live joined after it; one that joined before is the final
    // audit's, and hiding it there moves it to the back.
    let ordered_at = audit.ordered_at.unwrap_or(audit.starts_at);
    if let Some(hidden) = placed[at_go_live..]
        .iter()
        .find(|t| t.joined_at < ordered_at && !shown.contains(t.id.as_str()))
    {
        faults.push(Fault(format!(
            "ticket {} joined before the tickets were put in order, but the final audit leaves \
             it out",
            hidden.id
        )));
    }
    let behind: Vec<&History> = late
        .iter()
        .copied()
        .chain(placed[at_go_live..].iter().copied())
        .collect();
    for pair in behind.windows(2) {
        if pair[1].joined_at < pair[0].joined_at {
            faults.push(Fault(format!(
                "ticket {} joined before ticket {} but stands behind it",
                pair[1].id, pair[0].id
            )));
        }
    }
    for ticket in tickets.iter().filter(|t| t.place.is_none()) {
        let left_first = match (ticket.left_at, audit.ordered_at) {
            (Some(left), Some(ordered)) => left <= ordered,
            (left, None) => left.is_some(),
            (None, Some(_)) => false,
        };
        if !left_first {
            faults.push(Fault(format!(
                "ticket {} has no place but did not leave before the tickets were put in order",
                ticket.id
            )));
        }
    }
    Summary {
        lobby: lobby.len(),
        later: behind.len(),
        ..Summary::default()
    }
}

/// The RFC 6962 Merkle tree hash (SHA-256) over `ids`, in the order given, hex.
pub(crate) fn merkle_root(ids: &[&str]) -> String {
    let mut tree = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for id in ids {
        tree.push(id.as_bytes().to_vec());
    }
    hex::encode(tree.root().as_bytes())
}

/// Whether `proof`'s path leads from its ticket, as leaf `index`, to its root over `count`
/// leaves.
pub(crate) fn proves(proof: &EntryProof) -> bool {
    let root = hex::decode(&proof.root)
        .ok()
        .filter(|bytes| bytes.len() == 32);
    let path: Option<Vec<u8>> = proof
        .path
        .iter()
        .map(|hash| hex::decode(hash).ok().filter(|bytes| bytes.len() == 32))
        .collect::<Option<Vec<Vec<u8>>>>()
        .map(|hashes| hashes.concat());
    let (Some(root), Some(path), Ok(count)) = (root, path, u64::try_from(proof.count)) else {
        return false;
    };
    let Ok(path) = InclusionProof::<Sha256>::try_from_bytes(path) else {
        return false;
    };
    let digest = *sha2::digest::Output::<Sha256>::from_slice(&root);
    let root = RootHash::<Sha256>::new(digest, count);
    root.verify_inclusion(&proof.ticket.as_bytes().to_vec(), proof.index, &path)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(parts: &[&[u8]]) -> Vec<u8> {
        let mut digest = Sha256::new();
        for part in parts {
            digest.update(part);
        }
        digest.finalize().to_vec()
    }

    /// RFC 6962 by hand for three leaves: leaves `H(0x00 || id)`, nodes `H(0x01 || l || r)`,
    /// split at the largest power of two below the count.
    #[test]
    fn the_root_and_the_proofs_are_rfc_6962s() {
        let [a, b, c] = [h(&[b"\0", b"a"]), h(&[b"\0", b"b"]), h(&[b"\0", b"c"])];
        let ab = h(&[b"\x01", &a, &b]);
        let root = h(&[b"\x01", &ab, &c]);
        assert_eq!(merkle_root(&["a", "b", "c"]), hex::encode(&root));
        assert_eq!(merkle_root(&[]), sha256_hex(""));
        let proof = |ticket: &str, index, path: &[&Vec<u8>]| EntryProof {
            ticket: ticket.into(),
            index,
            count: 3,
            root: hex::encode(&root),
            sealed_at: chrono::DateTime::UNIX_EPOCH,
            path: path.iter().map(hex::encode).collect(),
        };
        assert!(proves(&proof("a", 0, &[&b, &c])));
        assert!(proves(&proof("b", 1, &[&a, &c])));
        assert!(proves(&proof("c", 2, &[&ab])));
        // Another leaf, another index, a short path, a changed byte: none proves anything.
        assert!(!proves(&proof("d", 2, &[&ab])));
        assert!(!proves(&proof("a", 1, &[&b, &c])));
        assert!(!proves(&proof("a", 0, &[&b])));
        let mut bent = c.clone();
        bent[0] ^= 1;
        assert!(!proves(&proof("a", 0, &[&b, &bent])));
    }
}

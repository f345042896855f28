//! Who may join a queue or enter a draw, the order a lobby (a draw's entries) is put in, and
//! how many a queue lets in at each pass. Plain functions, tested without a database; the
//! queue's and the draw's flows (`sale::queue`, `sale::draw`) call them under the drop's lock.

use std::{collections::HashMap, net::IpAddr};

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::{
    model::{ErrorCode, SaleMode, UserId},
    server::{
        settings::{AdmissionRule, NetworkCaps},
        store::{
            rows::LockedDrop,
            tickets::{Joiner, LineTicket},
        },
    },
};

/// Why a buyer may not join a drop's queue (`mode` queue) or enter its draw (`mode` draw) now,
/// if they may not. A queue takes buyers from its opening until it closes, a draw takes
/// entries from its opening until the draw.
pub fn may_join(drop: &LockedDrop, mode: SaleMode) -> Result<(), ErrorCode> {
    let not_open = drop.opens_at.is_some_and(|opens| opens > drop.now);
    match (drop.mode(), mode) {
        (SaleMode::Queue, SaleMode::Queue) if not_open => Err(ErrorCode::QueueNotOpen),
        (SaleMode::Queue, SaleMode::Queue) if drop.closed_at.is_some() => {
            Err(ErrorCode::OutOfStock)
        }
        (SaleMode::Draw, SaleMode::Draw) if not_open => Err(ErrorCode::EntriesNotOpen),
        (SaleMode::Draw, SaleMode::Draw) if drop.started() => Err(ErrorCode::EntriesClosed),
        (actual, wanted) if actual == wanted => Ok(()),
        (_, wanted) => Err(not_sold_by(wanted)),
    }
}

/// The network a client address counts against in a drop's caps: its IPv4 /24, or its IPv6
/// /64 (an IPv4 address written as IPv6 counts as IPv4), as text. The address itself is never
/// kept.
pub fn network_of(addr: IpAddr) -> String {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    let prefix = if addr.is_ipv4() { 24 } else { 64 };
    IpNet::new(addr, prefix)
        .map(|net| net.trunc().to_string())
        .unwrap_or_else(|_| addr.to_string())
}

/// Which of `joining` (buyers about to get a new ticket, in the order they asked, with their
/// networks) a drop turns away, and why: an account created at or after the drop's
/// `accounts_before` (`ACCOUNT_TOO_NEW`; `created` holds each account's creation), or one from a
/// network that has its cap of tickets already (`NETWORK_CAP_REACHED`; `taken` holds how many
/// each network has, counting those this batch takes in order). A cap of 0 is no cap.
pub fn refuse_joiners(
    joining: &[Joiner],
    created: &HashMap<UserId, i64>,
    accounts_before: Option<i64>,
    mut taken: HashMap<String, i64>,
    caps: NetworkCaps,
) -> HashMap<UserId, ErrorCode> {
    let mut refused = HashMap::new();
    for joiner in joining {
        let too_new = accounts_before
            .is_some_and(|before| created.get(&joiner.user).is_none_or(|at| *at >= before));
        if too_new {
            refused.insert(joiner.user, ErrorCode::AccountTooNew);
            continue;
        }
        let Some(network) = &joiner.network else {
            continue;
        };
        let cap = if network.contains(':') {
            caps.per_ipv6_64
        } else {
            caps.per_ipv4_24
        };
        let count = taken.entry(network.clone()).or_default();
        if cap > 0 && *count >= cap {
            refused.insert(joiner.user, ErrorCode::NetworkCapReached);
        } else {
            *count += 1;
        }
    }
    refused
}

/// The refusal of a queue's step (`mode` queue) or a draw's (`mode` draw) on a drop sold
/// otherwise.
pub fn not_sold_by(mode: SaleMode) -> ErrorCode {
    match mode {
        SaleMode::Draw => ErrorCode::NotADraw,
        _ => ErrorCode::NotAQueue,
    }
}

/// `sha256_hex(source + ":" + ticket)`: where a lobby ticket stands in the drawn order (the
/// lowest first), `source` being what the order is drawn from ([`order_source`]). Anyone can
/// recompute it from an audit.
pub fn lobby_key(source: &str, ticket: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(source.as_bytes());
    digest.update(b":");
    digest.update(ticket.as_bytes());
    format!("{:x}", digest.finalize())
}

/// What a drop's order is drawn from, once it can be known: its seed; or in beacon mode
/// `randomness + ":" + entry_root`, the beacon round's randomness bound to the sealed list, or
/// `None` while the list is not sealed or the round not kept. A drop whose list is sealed and
/// whose round is kept can be put in order.
pub fn order_source(
    seed: Option<&str>,
    beacon_round: Option<i64>,
    entry_root: Option<&str>,
    randomness: Option<&str>,
) -> Option<String> {
    match (beacon_round, entry_root, randomness) {
        (None, ..) => Some(seed.unwrap_or_default().to_string()),
        (Some(_), Some(root), Some(randomness)) => Some(format!("{randomness}:{root}")),
        (Some(_), ..) => None,
    }
}

/// The RFC 6962 Merkle root (hex) over the public ids of a sealed entry list, sorted by their
/// bytes first: leaves `SHA-256(0x00 || id)`, nodes `SHA-256(0x01 || left || right)`, the
/// root of none `SHA-256("")`. Answers the root and the sorted ids.
pub fn entry_root<'a>(ids: impl IntoIterator<Item = &'a str>) -> (String, Vec<String>) {
    let mut sorted: Vec<String> = ids.into_iter().map(str::to_string).collect();
    sorted.sort_unstable();
    let mut tree = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for id in &sorted {
        tree.push(id.as_bytes().to_vec());
    }
    (hex::encode(tree.root().as_bytes()), sorted)
}

/// Where `ticket` is in a sealed entry list (`sorted`: its ids sorted by their bytes, as
/// [`entry_root`] answers them) and the RFC 6962 audit path that proves it under the list's
/// root: (leaf index, sibling hashes from the leaf up, hex). `None` when it is not in the list.
pub fn entry_proof(sorted: &[String], ticket: &str) -> Option<(u64, Vec<String>)> {
    let index = sorted.binary_search_by(|id| id.as_str().cmp(ticket)).ok()?;
    let mut tree = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for id in sorted {
        tree.push(id.as_bytes().to_vec());
    }
    let proof = tree.prove_inclusion(index);
    let path = proof.as_bytes().chunks(32).map(hex::encode).collect();
    Some((u64::try_from(index).ok()?, path))
}

/// Places for the tickets in line at go-live: the lobby (joined before `starts_at`) by
/// ascending [`lobby_key`], then those who joined later in the order they joined. Answers
/// (ticket row id, place), place 1 first.
pub fn line_up(source: &str, starts_at: i64, tickets: &[LineTicket]) -> Vec<(i64, i64)> {
    let (mut lobby, mut late): (Vec<&LineTicket>, Vec<&LineTicket>) =
        tickets.iter().partition(|t| t.joined_at < starts_at);
    lobby.sort_by_cached_key(|t| lobby_key(source, &t.public_id));
    late.sort_by_key(|t| (t.joined_at, t.id));
    lobby
        .into_iter()
        .chain(late)
        .zip(1..)
        .map(|(ticket, place)| (ticket.id, place))
        .collect()
}

/// Places for a draw's entries: every entry by ascending [`lobby_key`] (a draw's lobby is all
/// of it). Answers (ticket row id, place), place 1 first.
pub fn draw_order(source: &str, entries: &[LineTicket]) -> Vec<(i64, i64)> {
    line_up(source, i64::MAX, entries)
}

/// What one admission pass of a queue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Let this many more buyers in (maybe none).
    Admit(i64),
    /// Sold out: no unit left and none held; the queue is over.
    Close,
}

/// The most buyers in the shop `unsold` units allow under `rule`.
pub fn room(rule: &AdmissionRule, unsold: i64) -> i64 {
    (unsold as f64 * rule.over_admission).floor() as i64
}

/// How a queue admits. The buyers "in the shop" — admitted but not yet reserving, plus those
/// holding a unit — may be at most `over_admission` times the units not yet sold (available
/// plus held): some admitted buyers never reserve, so a little more than the stock are let in.
/// At most `per_second` are let in per second (spread over the time since the last pass, at
/// most a second's worth at once).
///
/// A reserve changes neither side (an admission becomes a hold, a unit goes from available to
/// held); cancels, expiries and lapses only shrink the left. So between passes the line can
/// only move within the rule, and at every moment `in the shop + sold ≤ over_admission ×
/// total`.
///
/// Decides one pass: `available` units on sale, `holds` held, `unused` admissions outstanding,
/// `since_ms` since the last pass (`None`: none ran yet).
pub fn admission(
    rule: &AdmissionRule,
    available: i64,
    unused: i64,
    holds: i64,
    since_ms: Option<i64>,
) -> Admission {
    if available <= 0 && holds == 0 {
        return Admission::Close;
    }
    let room = (room(rule, available + holds) - unused - holds).max(0);
    let since_ms = since_ms.unwrap_or(1000).clamp(0, 1000);
    let allowance = i64::from(rule.per_second) * since_ms / 1000;
    Admission::Admit(room.min(allowance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_a_v4_24_or_a_v6_64() {
        let net = |a: &str| network_of(a.parse().unwrap());
        assert_eq!(net("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(net("::ffff:203.0.113.9"), "203.0.113.0/24");
        assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    }

    #[test]
    fn joiners_are_refused_by_account_age_then_by_their_networks_cap() {
        let joiner = |user, network: &str| Joiner {
            user: UserId(user),
            network: Some(network.into()),
            proof: None,
        };
        let joining = [
            joiner(1, "203.0.113.0/24"),
            joiner(2, "203.0.113.0/24"),
            joiner(3, "203.0.113.0/24"),
            joiner(4, "198.51.100.0/24"),
            joiner(5, "2001:db8::/64"),
            joiner(6, "2001:db8::/64"),
        ];
        let created: HashMap<UserId, i64> = (1..=6).map(|u| (UserId(u), 100)).collect();
        let caps = NetworkCaps {
            per_ipv4_24: 2,
            per_ipv6_64: 1,
        };
        let taken = HashMap::from([("203.0.113.0/24".to_string(), 1)]);
        let refused = refuse_joiners(&joining, &created, None, taken, caps);
        assert_eq!(
            refused,
            HashMap::from([
                (UserId(2), ErrorCode::NetworkCapReached),
                (UserId(3), ErrorCode::NetworkCapReached),
                (UserId(6), ErrorCode::NetworkCapReached),
            ])
        );
        // An account made at the cutoff or after is refused, and takes no network's place.
        let mut created = created;
        created.insert(UserId(1), 500);
        let refused = refuse_joiners(&joining, &created, Some(500), HashMap::new(), caps);
        assert_eq!(
            refused,
            HashMap::from([
                (UserId(1), ErrorCode::AccountTooNew),
                (UserId(6), ErrorCode::NetworkCapReached),
            ])
        );
        // No caps, no cutoff: nobody is refused.
        let open = refuse_joiners(
            &joining,
            &created,
            None,
            HashMap::new(),
            NetworkCaps::default(),
        );
        assert!(open.is_empty());
    }
    use crate::server::rules::fixtures::{drop, NOW};

    #[test]
    fn joining_needs_an_open_queue() {
        let queue = |opens_at, closed_at| LockedDrop {
            sale_mode: "queue".into(),
            opens_at,
            closed_at,
            ..drop(5)
        };
        let join = |drop: &LockedDrop| may_join(drop, SaleMode::Queue);
        assert_eq!(join(&drop(5)), Err(ErrorCode::NotAQueue));
        assert_eq!(
            join(&queue(Some(NOW + 1), None)),
            Err(ErrorCode::QueueNotOpen)
        );
        assert_eq!(
            join(&queue(Some(NOW), Some(NOW))),
            Err(ErrorCode::OutOfStock)
        );
        assert_eq!(join(&queue(Some(NOW), None)), Ok(()));
    }

    #[test]
    fn a_draw_orders_every_entry_by_its_key() {
        let entry = |id, public: &str, joined_at| LineTicket {
            id,
            public_id: public.into(),
            joined_at,
        };
        let entries = [entry(1, "x", 50), entry(2, "y", 10), entry(3, "z", 99)];
        let mut by_key = [
            (lobby_key("s", "x"), 1),
            (lobby_key("s", "y"), 2),
            (lobby_key("s", "z"), 3),
        ];
        by_key.sort();
        let places = draw_order("s", &entries);
        assert_eq!(
            places,
            by_key
                .iter()
                .zip(1..)
                .map(|((_, id), place)| (*id, place))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_lobby_key_is_the_published_rule() {
        // sha256("abc:t1"), as `printf 'abc:t1' | sha256sum` gives it.
        assert_eq!(
            lobby_key("abc", "t1"),
            "cfee85233c8a3db72341b276b2c9e669074817be84ddc63fbe84521f4ce2822e"
        );
    }

    #[test]
    fn the_lobby_goes_by_key_and_later_arrivals_by_time() {
        let ticket = |id, public: &str, joined_at| LineTicket {
            id,
            public_id: public.into(),
            joined_at,
        };
        let tickets = [
            ticket(1, "a", 10),
            ticket(2, "b", 11),
            ticket(3, "c", 12),
            ticket(4, "late-2", 30),
            ticket(5, "late-1", 25),
        ];
        let places = line_up("seed", 20, &tickets);
        let mut lobby: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|p| (lobby_key("seed", p), *p))
            .collect();
        lobby.sort();
        let by_place: Vec<i64> = places.iter().map(|(id, _)| *id).collect();
        let expected_lobby: Vec<i64> = lobby
            .iter()
            .map(|(_, p)| match *p {
                "a" => 1,
                "b" => 2,
                _ => 3,
            })
            .collect();
        assert_eq!(by_place[..3], expected_lobby[..]);
        assert_eq!(by_place[3..], [5, 4]);
        assert_eq!(
            places.iter().map(|(_, place)| *place).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn admission_keeps_the_line_within_the_stock() {
        let rule = AdmissionRule {
            over_admission: 1.5,
            per_second: 100,
        };
        // 10 units unsold: at most 15 in the shop, and at most 20 in 200 ms.
        assert_eq!(admission(&rule, 10, 0, 0, Some(200)), Admission::Admit(15));
        // 6 on sale and 4 held are still 10 unsold: 15 - 5 unused - 4 holding.
        assert_eq!(admission(&rule, 6, 5, 4, Some(200)), Admission::Admit(6));
        assert_eq!(admission(&rule, 100, 0, 0, Some(200)), Admission::Admit(20));
        // The shop is full: nobody more.
        assert_eq!(admission(&rule, 2, 9, 8, Some(1000)), Admission::Admit(0));
        // Every unit held: one more may come in for a hold that lapses (3 x 1.5 = 4).
        assert_eq!(admission(&rule, 0, 0, 3, Some(1000)), Admission::Admit(1));
        // Nothing left and nothing held: sold out.
        assert_eq!(admission(&rule, 0, 4, 0, Some(1000)), Admission::Close);
        // A reserve (an admission becomes a hold, a unit goes from sale to held) leaves the
        // room as it was.
        assert_eq!(
            admission(&rule, 10, 5, 0, Some(1000)),
            admission(&rule, 9, 4, 1, Some(1000))
        );
    }

    /// RFC 6962's tree hash, written out for three leaves: `((a b) c)`.
    #[test]
    fn the_entry_root_is_rfc_6962_over_the_sorted_ids() {
        let sha = |parts: &[&[u8]]| {
            let mut digest = Sha256::new();
            for part in parts {
                digest.update(part);
            }
            digest.finalize().to_vec()
        };
        let leaf = |id: &str| sha(&[&[0], id.as_bytes()]);
        let node = |l: &[u8], r: &[u8]| sha(&[&[1], l, r]);
        let ab = node(&leaf("a"), &leaf("b"));
        let expected = hex::encode(node(&ab, &leaf("c")));
        let (root, sorted) = entry_root(["c", "a", "b"]);
        assert_eq!(root, expected);
        assert_eq!(sorted, ["a", "b", "c"]);
        assert_eq!(entry_root([]).0, hex::encode(sha(&[])));
        assert_ne!(entry_root(["a", "b"]).0, entry_root(["a", "b", "c"]).0);
    }

    #[test]
    fn a_beacon_drop_has_no_order_until_sealed_and_drawn() {
        assert_eq!(
            order_source(Some("s"), None, None, None).as_deref(),
            Some("s")
        );
        assert_eq!(order_source(None, Some(7), None, None), None);
        assert_eq!(order_source(None, Some(7), Some("root"), None), None);
        assert_eq!(
            order_source(Some("ignored"), Some(7), Some("root"), Some("rand")).as_deref(),
            Some("rand:root")
        );
    }
}

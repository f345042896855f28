//! A queue's or a draw's audit as the store keeps it: the final document written at go-live
//! (the draw), and the later part read page by page.

use crate::model::{
    Audit, AuditBeacon, AuditHistory, AuditLater, AuditTicket, ErrorCode, OrderSource, SaleMode,
    SealedEntries, TicketHistory, TicketState, WaitlistMove,
};

use super::{
    error::StoreError,
    rows::from_ms,
    tickets::{Commitment, LineTicket},
};

/// One ticket of a queue's audit.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub(crate) public_id: String,
    pub(crate) joined_at: i64,
    pub(crate) place: i64,
    pub(crate) won_at: Option<i64>,
    pub(crate) rejoined_as: Option<String>,
}

/// Where an audit's later part starts, as a drop's row tells: how it is sold, how many won at
/// the draw, and how many tickets the final audit placed (`None` before go-live).
#[derive(sqlx::FromRow)]
pub(crate) struct AuditStart {
    pub(crate) sale_mode: String,
    pub(crate) winners_drawn: i64,
    pub(crate) placed: Option<i64>,
}

impl AuditStart {
    /// The drop's row (`$1`) as this reads it.
    pub(crate) const SQL: &'static str = "SELECT d.sale_mode, d.winners_drawn, f.placed \
        FROM drops d LEFT JOIN final_audits f ON f.drop_id = d.id WHERE d.id = $1";

    /// The refusal for a drop with no audit (yet), else how it is sold and the highest place
    /// the final audit covers.
    pub(crate) fn after(row: Option<AuditStart>) -> Result<(SaleMode, i64), StoreError> {
        let row = row.ok_or(StoreError::Refused(ErrorCode::DropNotFound))?;
        match (audited(&row.sale_mode, row.placed.is_some())?, row.placed) {
            (SaleMode::Draw, _) => Ok((SaleMode::Draw, row.winners_drawn)),
            (mode, placed) => Ok((mode, placed.unwrap_or_default())),
        }
    }
}

/// How a drop whose final audit is (`kept`) or is not kept yet is sold; the refusal when it
/// has no audit to show: `NOT_A_QUEUE` for a first-come drop, `NOT_STARTED` before go-live.
pub(crate) fn audited(sale_mode: &str, kept: bool) -> Result<SaleMode, StoreError> {
    match SaleMode::parse(sale_mode).unwrap_or_default() {
        SaleMode::FirstCome => Err(StoreError::Refused(ErrorCode::NotAQueue)),
        _ if !kept => Err(StoreError::Refused(ErrorCode::NotStarted)),
        mode => Ok(mode),
    }
}

/// One page of an audit's later part from its rows (a queue's tickets, a draw's moves), by
/// place; the page is full when it has `limit` rows, and the next one starts after its last.
pub(crate) fn later_page(mode: SaleMode, rows: Vec<AuditRow>, limit: i64) -> AuditLater {
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let next_after = rows.last().filter(|_| full).map(|row| row.place);
    let mut later = AuditLater {
        next_after,
        ..AuditLater::default()
    };
    for row in rows {
        match mode {
            SaleMode::Draw => later.waitlist_moves.push(WaitlistMove {
                id: row.public_id,
                place: row.place,
                at: from_ms(row.won_at.unwrap_or_default()),
            }),
            _ => later.tickets.push(AuditTicket {
                id: row.public_id,
                joined_at: from_ms(row.joined_at),
                place: row.place,
                rejoined_as: row.rejoined_as,
            }),
        }
    }
    later
}

/// One ticket's story as stored (see [`TicketHistory`]).
#[derive(sqlx::FromRow)]
pub(crate) struct HistoryRow {
    pub(crate) id: i64,
    pub(crate) public_id: String,
    pub(crate) joined_at: i64,
    pub(crate) sealed: bool,
    pub(crate) place: Option<i64>,
    pub(crate) state: String,
    pub(crate) left_at: Option<i64>,
    pub(crate) admitted_at: Option<i64>,
    pub(crate) ended_at: Option<i64>,
    pub(crate) won_at: Option<i64>,
    pub(crate) rejoined_as: Option<String>,
}

/// Columns of `tickets` in the order [`HistoryRow`] reads them.
macro_rules! history_columns {
    () => {
        "id, public_id, joined_at, sealed, place, state, left_at, admitted_at, ended_at, won_at, \
         rejoined_as"
    };
}
pub(crate) use history_columns;

/// One page of every ticket's story from its rows, in the order they were issued; the page is
/// full when it has `limit` rows, and the next one starts after its last.
pub(crate) fn history_page(rows: Vec<HistoryRow>, limit: i64) -> AuditHistory {
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let next_after = rows.last().filter(|_| full).map(|row| row.id);
    let tickets = rows
        .into_iter()
        .map(|row| TicketHistory {
            id: row.public_id,
            joined_at: from_ms(row.joined_at),
            sealed: row.sealed,
            place: row.place,
            state: TicketState::parse(&row.state).unwrap_or(TicketState::Closed),
            left_at: row.left_at.map(from_ms),
            admitted_at: row.admitted_at.map(from_ms),
            ended_at: row.ended_at.map(from_ms),
            won_at: row.won_at.map(from_ms),
            rejoined_as: row.rejoined_as,
        })
        .collect();
    AuditHistory {
        tickets,
        next_after,
    }
}

/// What a final audit says of where its order came from: how the drop is sold, what it was
/// committed to, its go-live, and (beacon mode) the sealed list's ids, sorted.
pub(crate) struct AuditHead<'a> {
    pub(crate) mode: SaleMode,
    pub(crate) commitment: &'a Commitment,
    pub(crate) starts_at: i64,
    pub(crate) sealed: &'a [String],
    /// The public key receipts are signed with.
    pub(crate) receipt_key: Option<&'a str>,
    /// When the tickets were put in order (the database's clock, under the drop's lock).
    pub(crate) ordered_at: Option<i64>,
    /// A draw: the units it is drawn for.
    pub(crate) units: Option<i64>,
}

/// The final audit of a queue put in order or a draw made now, as its REST answer
/// (`{"audit": ...}`): where its order came from (`head`), the tickets just placed (`placed`:
/// (ticket, place)), and for a draw the places up to `won_through` as its winners.
pub(crate) fn final_audit_document(
    head: &AuditHead<'_>,
    placed: &[(&LineTicket, i64)],
    won_through: Option<i64>,
) -> String {
    let mut tickets: Vec<AuditTicket> = placed
        .iter()
        .map(|(ticket, place)| AuditTicket {
            id: ticket.public_id.clone(),
            joined_at: from_ms(ticket.joined_at),
            place: *place,
            rejoined_as: None,
        })
        .collect();
    tickets.sort_by_key(|ticket| ticket.place);
    let winners = won_through.map(|through| {
        tickets
            .iter()
            .take_while(|ticket| ticket.place <= through)
            .map(|ticket| ticket.id.clone())
            .collect()
    });
    let c = head.commitment;
    let beacon = (|| {
        Some(AuditBeacon {
            chain_hash: c.beacon_chain.clone()?,
            public_key: c.beacon_public_key.clone()?,
            round: u64::try_from(c.beacon_round?).ok()?,
            round_at: from_ms(c.beacon_round_at?),
            named_round: c.beacon_named_round.and_then(|r| u64::try_from(r).ok()),
            signature: c.beacon_signature.clone()?,
            randomness: c.beacon_randomness.clone()?,
        })
    })();
    let entries = (|| {
        Some(SealedEntries {
            root: c.entry_root.clone()?,
            count: c.entry_count?,
            sealed_at: from_ms(c.sealed_at?),
            ids: head.sealed.to_vec(),
        })
    })();
    let audit = Audit {
        sale_mode: head.mode,
        order: if c.beacon_round.is_some() {
            OrderSource::Beacon
        } else {
            OrderSource::Seed
        },
        seed_sha256: c.seed_sha256.clone(),
        seed: c.seed.clone(),
        beacon,
        entries,
        receipt_key: head.receipt_key.map(str::to_string),
        starts_at: from_ms(head.starts_at),
        ordered_at: head.ordered_at.map(from_ms),
        units: head.units,
        tickets,
        winners,
    };
    serde_json::to_string(&serde_json::json!({ "audit": audit })).expect("an audit serializes")
}

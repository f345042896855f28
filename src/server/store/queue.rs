//! The steps of a queue's and a draw's tickets inside one write transaction ([`QueueTx`]), and
//! their SQL, written once for both databases ([`queue_steps!`]) but for the phrases each
//! says its own way, which each database's store passes in.

use std::time::Duration;

use async_trait::async_trait;

use super::tickets::{Commitment, LineTicket, NewTicket, PlacedTicket, TicketRow, Unaudited};
use crate::model::{DropId, TicketState, UserId};

/// The steps of a queue's and a draw's tickets inside one write transaction: joining,
/// leaving, going live (places and the final audit), admissions, closing.
#[async_trait]
pub(crate) trait QueueTx: Send {
    /// The user's ticket for the drop, if any.
    async fn ticket(
        &mut self,
        drop: DropId,
        user: UserId,
    ) -> Result<Option<TicketRow>, sqlx::Error>;
    /// The tickets these users hold in the drop's queue.
    async fn tickets_of(
        &mut self,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// New tickets of the drop in `state` (waiting in a queue, entered in a draw), in one
    /// statement.
    async fn insert_tickets(
        &mut self,
        drop: DropId,
        tickets: &[NewTicket],
        state: TicketState,
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// Gives tickets their places in line, (ticket row id, place), in one statement, and answers
    /// them as they now stand. With `won_through` (a draw), the places up to it win now and the
    /// rest go on the waitlist, in the same statement.
    async fn set_places(
        &mut self,
        places: &[(i64, i64)],
        won_through: Option<i64>,
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// The admissions these users reserved with are used.
    async fn use_admissions(
        &mut self,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// When each of these users' accounts was created: (user, created_at).
    async fn account_ages(&mut self, users: &[UserId]) -> Result<Vec<(UserId, i64)>, sqlx::Error>;
    /// How many of the drop's current tickets came from each of these networks.
    async fn network_counts(
        &mut self,
        drop: DropId,
        networks: &[String],
    ) -> Result<Vec<(String, i64)>, sqlx::Error>;
    /// A ticket its buyer left, replaced by a new one (`public_id`) as they join again: it
    /// keeps its place, its seal and its story, and the audit shows both.
    async fn retire(&mut self, ticket: i64, public_id: &str) -> Result<(), sqlx::Error>;
    /// A ticket out of line, as `state` (left, or withdrawn).
    async fn leave(&mut self, ticket: i64, state: TicketState) -> Result<TicketRow, sqlx::Error>;
    /// The place after the last one given.
    async fn next_place(&mut self, drop: DropId) -> Result<i64, sqlx::Error>;
    /// The waiting tickets (a draw's: entries) that have no place yet.
    async fn unplaced(&mut self, drop: DropId) -> Result<Vec<LineTicket>, sqlx::Error>;
    /// Names another beacon round for the drop (before its list is sealed), keeping the one
    /// named at creation.
    async fn rename_round(
        &mut self,
        drop: DropId,
        round: i64,
        round_at: i64,
    ) -> Result<(), sqlx::Error>;
    /// What the drop's order is drawn from (its seed, or its beacon round and sealed list).
    async fn commitment(&mut self, drop: DropId) -> Result<Commitment, sqlx::Error>;
    /// Seals the drop's entry list (beacon mode), now: its Merkle root and count, and every
    /// unplaced ticket in line that joined before `before` (a draw: `i64::MAX`) is in it.
    async fn seal(
        &mut self,
        drop: DropId,
        before: i64,
        root: &str,
        count: i64,
    ) -> Result<(), sqlx::Error>;
    /// The public ids of the drop's sealed tickets, in no order.
    async fn sealed_ids(&mut self, drop: DropId) -> Result<Vec<String>, sqlx::Error>;
    /// Keeps the drop's beacon round, checked, if it is the round the drop named and none is
    /// kept yet; answers whether it was kept.
    async fn keep_beacon(
        &mut self,
        drop: DropId,
        round: i64,
        signature: &str,
        randomness: &str,
    ) -> Result<bool, sqlx::Error>;
    /// The drops put in order before their audits were kept (by an earlier version), with
    /// their placed tickets: what their final audit shows.
    async fn unaudited(&mut self) -> Result<Vec<Unaudited>, sqlx::Error>;
    /// A drop's placed tickets, by place.
    async fn placed(&mut self, drop: DropId) -> Result<Vec<PlacedTicket>, sqlx::Error>;
    /// Notes that the line is in order; answers when (the database's clock, read under the
    /// drop's lock after every earlier write to its tickets).
    async fn mark_lined_up(&mut self, drop: DropId) -> Result<i64, sqlx::Error>;
    /// Keeps the final audit (`document`, which places `placed` tickets), made as the line
    /// was put in order.
    async fn save_final_audit(
        &mut self,
        drop: DropId,
        document: &str,
        placed: i64,
    ) -> Result<(), sqlx::Error>;
    /// Admissions whose time ran out become lapsed.
    async fn lapse(&mut self, drop: DropId) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// (admitted and unused, active holds, waitlisted).
    async fn counts(&mut self, drop: DropId) -> Result<(i64, i64, i64), sqlx::Error>;
    /// Admits the next `n` waiting tickets in order, for `ttl`.
    async fn admit(
        &mut self,
        drop: DropId,
        n: i64,
        ttl: Duration,
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// Over: every ticket still in one of `open` states takes state `to`, and the drop is
    /// closed.
    async fn close(
        &mut self,
        drop: DropId,
        open: [TicketState; 2],
        to: TicketState,
    ) -> Result<(), sqlx::Error>;
    /// Notes an admission pass: the smoothed admissions per second (x1000) and the highest
    /// place whose turn has come.
    async fn note_pass(
        &mut self,
        drop: DropId,
        rate_milli: i64,
        served_through: i64,
    ) -> Result<(), sqlx::Error>;
}

/// Expands to the [`QueueTx`] impl of a transaction type whose connection is `self.$conn`.
/// What each database says its own way is passed in (see `steps::dialect_steps!`), with the
/// steps it writes in SQL of its own (`own`).
macro_rules! queue_steps {
    (
        $tx:ty,
        conn: $conn:tt,
        now: [$($now:tt)+],
        ids: $ids:path,
        in_ids: ($in_ids:literal, $in_ids_end:literal),
        own: { $($own:tt)* }
    ) => {
        #[async_trait::async_trait]
        impl $crate::server::store::queue::QueueTx for $tx {
            $($own)*

            async fn tickets_of(
                &mut self,
                drop: $crate::model::DropId,
                users: &[$crate::model::UserId],
            ) -> Result<Vec<$crate::server::store::tickets::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::server::store::tickets::ticket_columns!(),
                    " FROM tickets WHERE drop_id = $1 AND rejoined_as IS NULL AND user_id ",
                    $in_ids, "$2", $in_ids_end
                ))
                .bind(drop)
                .bind($ids(users))
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn use_admissions(
                &mut self,
                drop: $crate::model::DropId,
                users: &[$crate::model::UserId],
            ) -> Result<Vec<$crate::server::store::tickets::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE tickets SET state = 'used', ended_at = ",
                    $($now)+,
                    " WHERE drop_id = $1 AND state = 'admitted' AND user_id ",
                    $in_ids, "$2", $in_ids_end,
                    " RETURNING ",
                    $crate::server::store::tickets::ticket_columns!()
                ))
                .bind(drop)
                .bind($ids(users))
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn ticket(
                &mut self,
                drop: $crate::model::DropId,
                user: $crate::model::UserId,
            ) -> Result<Option<$crate::server::store::tickets::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::server::store::tickets::ticket_columns!(),
                    " FROM tickets WHERE drop_id = $1 AND user_id = $2 AND rejoined_as IS NULL"
                ))
                .bind(drop)
                .bind(user)
                .fetch_optional(&mut *self.$conn)
                .await
            }

            async fn account_ages(
                &mut self,
                users: &[$crate::model::UserId],
            ) -> Result<Vec<($crate::model::UserId, i64)>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "SELECT id, created_at FROM users WHERE id ",
                    $in_ids, "$1", $in_ids_end
                ))
                .bind($ids(users))
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn retire(&mut self, ticket: i64, public_id: &str) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE tickets SET rejoined_as = $2 WHERE id = $1")
                    .bind(ticket)
                    .bind(public_id)
                    .execute(&mut *self.$conn)
                    .await?;
                Ok(())
            }

            async fn leave(
                &mut self,
                ticket: i64,
                state: $crate::model::TicketState,
            ) -> Result<$crate::server::store::tickets::TicketRow, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE tickets SET state = $2, left_at = ",
                    $($now)+,
                    " WHERE id = $1 RETURNING ",
                    $crate::server::store::tickets::ticket_columns!()
                ))
                .bind(ticket)
                .bind(state.as_str())
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn next_place(&mut self, drop: $crate::model::DropId) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar(
                    "SELECT COALESCE(MAX(place), 0) + 1 FROM tickets WHERE drop_id = $1",
                )
                .bind(drop)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn unplaced(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<$crate::server::store::tickets::LineTicket>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT id, public_id, joined_at FROM tickets \
                     WHERE drop_id = $1 AND state IN ('waiting', 'entered') AND place IS NULL",
                )
                .bind(drop)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn rename_round(
                &mut self,
                drop: $crate::model::DropId,
                round: i64,
                round_at: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "UPDATE drops SET beacon_named_round = COALESCE(beacon_named_round, \
                       beacon_round), beacon_round = $2, beacon_round_at = $3 \
                     WHERE id = $1 AND sealed_at IS NULL",
                )
                .bind(drop)
                .bind(round)
                .bind(round_at)
                .execute(&mut *self.$conn)
                .await?;
                Ok(())
            }

            async fn commitment(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<$crate::server::store::tickets::Commitment, sqlx::Error> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::server::store::tickets::commitment_columns!(),
                    " FROM drops WHERE id = $1"
                ))
                .bind(drop)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn seal(
                &mut self,
                drop: $crate::model::DropId,
                before: i64,
                root: &str,
                count: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "UPDATE tickets SET sealed = TRUE WHERE drop_id = $1 \
                     AND state IN ('waiting', 'entered') AND place IS NULL AND joined_at < $2",
                )
                .bind(drop)
                .bind(before)
                .execute(&mut *self.$conn)
                .await?;
                sqlx::query(concat!(
                    "UPDATE drops SET entry_root = $2, entry_count = $3, sealed_at = ",
                    $($now)+,
                    " WHERE id = $1 AND sealed_at IS NULL"
                ))
                .bind(drop)
                .bind(root)
                .bind(count)
                .execute(&mut *self.$conn)
                .await?;
                Ok(())
            }

            async fn sealed_ids(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<String>, sqlx::Error> {
                sqlx::query_scalar($crate::server::store::tickets::SEALED_IDS_SQL)
                .bind(drop)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn keep_beacon(
                &mut self,
                drop: $crate::model::DropId,
                round: i64,
                signature: &str,
                randomness: &str,
            ) -> Result<bool, sqlx::Error> {
                let kept = sqlx::query(
                    "UPDATE drops SET beacon_signature = $3, beacon_randomness = $4 \
                     WHERE id = $1 AND beacon_round = $2 AND beacon_randomness IS NULL",
                )
                .bind(drop)
                .bind(round)
                .bind(signature)
                .bind(randomness)
                .execute(&mut *self.$conn)
                .await?;
                Ok(kept.rows_affected() == 1)
            }

            async fn unaudited(
                &mut self,
            ) -> Result<Vec<$crate::server::store::tickets::Unaudited>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "SELECT id, sale_mode, starts_at, winners_drawn, ",
                    $crate::server::store::tickets::commitment_columns!(),
                    " FROM drops WHERE lined_up_at IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM final_audits f WHERE f.drop_id = drops.id) \
                     ORDER BY id"
                ))
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn placed(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<$crate::server::store::tickets::PlacedTicket>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT id, public_id, joined_at, place FROM tickets \
                     WHERE drop_id = $1 AND place IS NOT NULL ORDER BY place",
                )
                .bind(drop)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn mark_lined_up(&mut self, drop: $crate::model::DropId) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar(concat!(
                    "UPDATE drops SET lined_up_at = ",
                    $($now)+,
                    " WHERE id = $1 RETURNING lined_up_at"
                ))
                .bind(drop)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn save_final_audit(
                &mut self,
                drop: $crate::model::DropId,
                document: &str,
                placed: i64,
            ) -> Result<(), sqlx::Error> {
                // Written once: an instance that comes second keeps the first.
                sqlx::query(concat!(
                    "INSERT INTO final_audits (drop_id, document, placed, created_at) \
                     VALUES ($1, $2, $3, ",
                    $($now)+,
                    ") ON CONFLICT (drop_id) DO NOTHING"
                ))
                .bind(drop)
                .bind(document)
                .bind(placed)
                .execute(&mut *self.$conn)
                .await?;
                Ok(())
            }

            async fn lapse(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<$crate::server::store::tickets::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE tickets SET state = 'lapsed', ended_at = ",
                    $($now)+,
                    " WHERE drop_id = $1 AND state = 'admitted' AND admitted_until <= ",
                    $($now)+,
                    " RETURNING ",
                    $crate::server::store::tickets::ticket_columns!()
                ))
                .bind(drop)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn counts(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<(i64, i64, i64), sqlx::Error> {
                sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM tickets WHERE drop_id = $1 \
                       AND state = 'admitted'), \
                     (SELECT COUNT(*) FROM reservations WHERE drop_id = $1 AND status = 'ACTIVE'), \
                     (SELECT COUNT(*) FROM tickets WHERE drop_id = $1 AND state = 'waitlisted')",
                )
                .bind(drop)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn admit(
                &mut self,
                drop: $crate::model::DropId,
                n: i64,
                ttl: std::time::Duration,
            ) -> Result<Vec<$crate::server::store::tickets::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    // One moment for the whole pass: PostgreSQL's clock moves from row to row, and
                    // the audit orders admissions by it.
                    "UPDATE tickets SET state = 'admitted', admitted_at = (SELECT ",
                    $($now)+,
                    "), admitted_until = ",
                    $($now)+,
                    " + $3 WHERE id IN (SELECT id FROM tickets WHERE drop_id = $1 \
                       AND state = 'waiting' AND place IS NOT NULL ORDER BY place LIMIT $2) \
                     RETURNING ",
                    $crate::server::store::tickets::ticket_columns!()
                ))
                .bind(drop)
                .bind(n)
                .bind($crate::server::store::rows::ttl_ms(ttl))
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn close(
                &mut self,
                drop: $crate::model::DropId,
                open: [$crate::model::TicketState; 2],
                to: $crate::model::TicketState,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(concat!(
                    "UPDATE tickets SET state = $4, ended_at = ",
                    $($now)+,
                    " WHERE drop_id = $1 AND state IN ($2, $3)"
                ))
                .bind(drop)
                .bind(open[0].as_str())
                .bind(open[1].as_str())
                .bind(to.as_str())
                .execute(&mut *self.$conn)
                .await?;
                sqlx::query(concat!("UPDATE drops SET closed_at = ", $($now)+, " WHERE id = $1"))
                    .bind(drop)
                    .execute(&mut *self.$conn)
                    .await?;
                Ok(())
            }

            async fn note_pass(
                &mut self,
                drop: $crate::model::DropId,
                rate_milli: i64,
                served_through: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(concat!(
                    "UPDATE drops SET admitted_at = ",
                    $($now)+,
                    ", admit_rate_milli = $2, served_through = $3 WHERE id = $1"
                ))
                .bind(drop)
                .bind(rate_milli)
                .bind(served_through)
                .execute(&mut *self.$conn)
                .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use queue_steps;

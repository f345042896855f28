//! The steps only a draw takes inside one write transaction ([`DrawTx`]) — its winners, and
//! the next on its waitlist — and their SQL, written once for both databases
//! ([`draw_steps!`]).

use async_trait::async_trait;

use super::tickets::TicketRow;
use crate::model::DropId;

/// A draw's own steps inside one write transaction.
#[async_trait]
pub(crate) trait DrawTx: Send {
    /// The next `n` entries on a draw's waitlist, in the drawn order, win now.
    async fn win(&mut self, drop: DropId, n: i64) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// Notes the draw on the drop's row, in one statement: how many entries won at the draw
    /// itself, and that the line has been served through them.
    async fn note_draw(&mut self, drop: DropId, winners: i64) -> Result<(), sqlx::Error>;
}

/// Expands to the [`DrawTx`] impl of a transaction type whose connection is `self.$conn`,
/// given the database's "now".
macro_rules! draw_steps {
    ($tx:ty, conn: $conn:tt, now: [$($now:tt)+]) => {
        #[async_trait::async_trait]
        impl $crate::server::store::draw::DrawTx for $tx {
            async fn win(
                &mut self,
                drop: $crate::model::DropId,
                n: i64,
            ) -> Result<Vec<$crate::server::store::tickets::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    // One moment for every unit of the pass (see `admit`).
                    "UPDATE tickets SET state = 'won', won_at = (SELECT ",
                    $($now)+,
                    ") WHERE id IN (SELECT id FROM tickets WHERE drop_id = $1 \
                       AND state = 'waitlisted' ORDER BY place LIMIT $2) RETURNING ",
                    $crate::server::store::tickets::ticket_columns!()
                ))
                .bind(drop)
                .bind(n)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn note_draw(
                &mut self,
                drop: $crate::model::DropId,
                winners: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(concat!(
                    "UPDATE drops SET winners_drawn = $2, served_through = $2, \
                     admit_rate_milli = 0, admitted_at = ",
                    $($now)+,
                    " WHERE id = $1"
                ))
                    .bind(drop)
                    .bind(winners)
                    .execute(&mut *self.$conn)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use draw_steps;

//! The reads, written once for both databases.
//!
//! Their SQL is portable but for two phrases: how the database says "now" (its clock, in
//! milliseconds) and how it begins a consistent read. sqlx takes `$N` parameters on SQLite too,
//! so each store's [`Reads`](super::Reads) impl is this one body with its two phrases filled in,
//! plus one function of its own: `recent_purchasers_of(tx, drops)`, the feed of every drop.

/// Expands to the `Reads` impl of a store type with a `pool` field. `now` is the SQL for the
/// database clock in milliseconds (a string literal or a macro that gives one); `begin_read`
/// begins a read of one consistent snapshot.
macro_rules! reads {
    ($store:ty, now: [$($now:tt)+], begin_read: $begin_read:literal) => {
        #[async_trait::async_trait]
        impl $crate::server::store::Reads for $store {
        async fn ping(&self) -> Result<(), $crate::server::store::StoreError> {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        }

        async fn hold(
            &self,
            hold: $crate::model::ReservationId,
        ) -> Result<Option<$crate::server::store::rows::HoldCheck>, $crate::server::store::StoreError>
        {
            Ok(sqlx::query_as($crate::server::store::holds::hold_check_sql!($($now)+))
                .bind(hold)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn user(
            &self,
            id: $crate::model::UserId,
        ) -> Result<Option<$crate::model::User>, $crate::server::store::StoreError> {
            let name: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            Ok(name.map(|name| $crate::model::User { id, name }))
        }

        async fn account(
            &self,
            username: &str,
        ) -> Result<Option<$crate::server::store::Account>, $crate::server::store::StoreError> {
            let row: Option<($crate::model::UserId, String, Option<String>)> = sqlx::query_as(
                "SELECT id, name, password_hash FROM users WHERE username = $1",
            )
            .bind(username.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|(id, name, password_hash)| $crate::server::store::Account {
                user: $crate::model::User { id, name },
                password_hash,
            }))
        }

        async fn passkeys(
            &self,
            user: $crate::model::UserId,
        ) -> Result<Vec<String>, $crate::server::store::StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT passkey FROM passkeys WHERE user_id = $1 ORDER BY created_at",
            )
            .bind(user)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn list_drops(
            &self,
        ) -> Result<Vec<$crate::model::ProductDrop>, $crate::server::store::StoreError> {
            // One snapshot, so stock and feed are of the same moment.
            let mut tx = self.pool.begin_with($begin_read).await?;
            let drops: Vec<$crate::server::store::rows::DropRow> = sqlx::query_as(concat!(
                "SELECT ",
                $crate::server::store::rows::drop_columns!($($now)+),
                " FROM drops ORDER BY id"
            ))
            .fetch_all(&mut *tx)
            .await?;
            let purchasers = recent_purchasers_of(&mut tx, &drops).await?;
            let sizes: Vec<$crate::server::store::rows::SizeRow> = sqlx::query_as(concat!(
                "SELECT ",
                $crate::server::store::rows::size_columns!(),
                " FROM drop_sizes ORDER BY drop_id, position"
            ))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok($crate::server::store::rows::with_purchasers(drops, purchasers, sizes))
        }

        async fn get_drop(
            &self,
            id: $crate::model::DropId,
        ) -> Result<Option<$crate::model::ProductDrop>, $crate::server::store::StoreError> {
            let mut tx = self.pool.begin_with($begin_read).await?;
            let drop: Option<$crate::server::store::rows::DropRow> = sqlx::query_as(concat!(
                "SELECT ",
                $crate::server::store::rows::drop_columns!($($now)+),
                " FROM drops WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(drop) = drop else { return Ok(None) };
            let recent: Vec<$crate::server::store::rows::PurchaserRow> =
                sqlx::query_as($crate::server::store::rows::RECENT_PURCHASERS)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            let sizes = sqlx::query_as($crate::server::store::holds::SIZES_OF_DROP)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(
                drop.into_drop(recent.into_iter().map(Into::into).collect(), sizes),
            ))
        }

        async fn next_deadline(
            &self,
        ) -> Result<Option<std::time::Duration>, $crate::server::store::StoreError> {
            let ms: Option<i64> = sqlx::query_scalar(concat!(
                "SELECT MIN(expires_at) - ",
                $($now)+,
                " FROM reservations WHERE status = 'ACTIVE'"
            ))
            .fetch_one(&self.pool)
            .await?;
            Ok(ms.map($crate::server::store::rows::until))
        }

        async fn next_go_live(
            &self,
        ) -> Result<Option<std::time::Duration>, $crate::server::store::StoreError> {
            let ms: Option<i64> = sqlx::query_scalar(concat!(
                "SELECT MIN(starts_at) - ",
                $($now)+,
                " FROM drops WHERE sale_mode IN ('queue', 'draw') AND lined_up_at IS NULL"
            ))
            .fetch_one(&self.pool)
            .await?;
            Ok(ms.map($crate::server::store::rows::until))
        }

        async fn user_reservations(
            &self,
            user: $crate::model::UserId,
        ) -> Result<Vec<$crate::model::Reservation>, $crate::server::store::StoreError> {
            let rows: Vec<$crate::server::store::rows::ReservationRow> = sqlx::query_as(concat!(
                "SELECT ",
                $crate::server::store::rows::reservation_columns!(),
                " FROM reservations WHERE user_id = $1 \
                  ORDER BY created_at DESC, id DESC LIMIT 100"
            ))
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        }

        async fn audit(
            &self,
            drop: $crate::model::DropId,
        ) -> Result<$crate::server::store::StockAudit, $crate::server::store::StoreError> {
            // One snapshot, so the drop's sums and its sizes are of the same moment.
            let mut tx = self.pool.begin_with($begin_read).await?;
            let audit: Option<$crate::server::store::StockAudit> = sqlx::query_as(
                "SELECT total_stock AS total, available_stock AS available, \
                   (SELECT COUNT(*) FROM reservations WHERE drop_id = d.id \
                     AND status = 'ACTIVE') AS active_holds, \
                   (SELECT COUNT(*) FROM purchases WHERE drop_id = d.id) AS purchases \
                 FROM drops d WHERE d.id = $1",
            )
            .bind(drop)
            .fetch_optional(&mut *tx)
            .await?;
            let sizes = sqlx::query_as(
                "SELECT s.label, s.total_stock AS total, s.available_stock AS available, \
                   (SELECT COUNT(*) FROM reservations r WHERE r.drop_id = s.drop_id \
                     AND r.size = s.label AND r.status = 'ACTIVE') AS active_holds, \
                   (SELECT COUNT(*) FROM purchases p JOIN reservations r \
                     ON r.id = p.reservation_id WHERE p.drop_id = s.drop_id \
                     AND r.size = s.label) AS purchases \
                 FROM drop_sizes s WHERE s.drop_id = $1 ORDER BY s.position",
            )
            .bind(drop)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let audit = audit.ok_or($crate::server::store::StoreError::Refused(
                $crate::model::ErrorCode::DropNotFound,
            ))?;
            Ok($crate::server::store::StockAudit { sizes, ..audit })
        }

        async fn beacons_due(
            &self,
        ) -> Result<
            Vec<($crate::model::DropId, u64, String, String)>,
            $crate::server::store::StoreError,
        > {
            let rows: Vec<($crate::model::DropId, i64, String, String)> = sqlx::query_as(concat!(
                "SELECT id, beacon_round, beacon_chain, beacon_public_key FROM drops \
                 WHERE beacon_round IS NOT NULL \
                 AND beacon_randomness IS NULL AND sealed_at IS NOT NULL AND lined_up_at IS NULL \
                 AND beacon_round_at <= ",
                $($now)+,
                " ORDER BY id"
            ))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .filter_map(|(id, round, chain, key)| {
                    Some((id, u64::try_from(round).ok()?, chain, key))
                })
                .collect())
        }

        async fn queues_due(
            &self,
        ) -> Result<
            Vec<($crate::model::DropId, $crate::model::SaleMode, bool)>,
            $crate::server::store::StoreError,
        > {
            let rows: Vec<($crate::model::DropId, String, bool)> = sqlx::query_as(concat!(
                "SELECT id, sale_mode, lined_up_at IS NOT NULL FROM drops \
                 WHERE sale_mode IN ('queue', 'draw') AND closed_at IS NULL AND starts_at <= ",
                $($now)+,
                " ORDER BY id"
            ))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(id, mode, lined_up)| {
                    (id, $crate::model::SaleMode::parse(&mode).unwrap_or_default(), lined_up)
                })
                .collect())
        }

        async fn ticket(
            &self,
            drop: $crate::model::DropId,
            user: $crate::model::UserId,
        ) -> Result<Option<$crate::model::Ticket>, $crate::server::store::StoreError> {
            let row: Option<$crate::server::store::tickets::TicketInLine> = sqlx::query_as(concat!(
                "SELECT ",
                $crate::server::store::tickets::ticket_in_line_columns!(),
                " FROM tickets t JOIN drops d ON d.id = t.drop_id \
                  WHERE t.drop_id = $1 AND t.user_id = $2 AND t.rejoined_as IS NULL"
            ))
            .bind(drop)
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|row| row.ticket()))
        }

        async fn user_tickets(
            &self,
            user: $crate::model::UserId,
        ) -> Result<
            Vec<($crate::model::DropId, $crate::model::Ticket)>,
            $crate::server::store::StoreError,
        > {
            let rows: Vec<$crate::server::store::tickets::TicketInLine> = sqlx::query_as(concat!(
                "SELECT ",
                $crate::server::store::tickets::ticket_in_line_columns!(),
                " FROM tickets t JOIN drops d ON d.id = t.drop_id WHERE t.user_id = $1 \
                  AND t.rejoined_as IS NULL ORDER BY t.drop_id"
            ))
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|row| (row.ticket.drop_id, row.ticket())).collect())
        }

        async fn final_audit(
            &self,
            drop: $crate::model::DropId,
        ) -> Result<String, $crate::server::store::StoreError> {
            use $crate::{model::ErrorCode, server::store::StoreError};
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT d.sale_mode, f.document FROM drops d \
                 LEFT JOIN final_audits f ON f.drop_id = d.id WHERE d.id = $1",
            )
            .bind(drop)
            .fetch_optional(&self.pool)
            .await?;
            let (mode, document) = row.ok_or(StoreError::Refused(ErrorCode::DropNotFound))?;
            $crate::server::store::audited(&mode, document.is_some())?;
            Ok(document.unwrap_or_default())
        }

        async fn audit_later(
            &self,
            drop: $crate::model::DropId,
            after: i64,
            limit: i64,
        ) -> Result<$crate::model::AuditLater, $crate::server::store::StoreError> {
            use $crate::{model::SaleMode, server::store::{AuditRow, AuditStart}};
            let mut tx = self.pool.begin_with($begin_read).await?;
            let start: Option<AuditStart> = sqlx::query_as(AuditStart::SQL)
            .bind(drop)
            .fetch_optional(&mut *tx)
            .await?;
            let (mode, covered) = AuditStart::after(start)?;
            // A queue's later tickets were placed at joining; a draw's later part is the
            // entries given a unit from the waitlist.
            let rows: Vec<AuditRow> = sqlx::query_as(match mode {
                SaleMode::Draw => {
                    "SELECT public_id, joined_at, place, won_at, rejoined_as FROM tickets \
                     WHERE drop_id = $1 AND place > $2 AND won_at IS NOT NULL \
                     ORDER BY place LIMIT $3"
                }
                _ => {
                    "SELECT public_id, joined_at, place, won_at, rejoined_as FROM tickets \
                     WHERE drop_id = $1 AND place > $2 ORDER BY place LIMIT $3"
                }
            })
            .bind(drop)
            .bind(after.max(covered))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok($crate::server::store::later_page(mode, rows, limit))
        }

        async fn audit_history(
            &self,
            drop: $crate::model::DropId,
            after: i64,
            limit: i64,
        ) -> Result<$crate::model::AuditHistory, $crate::server::store::StoreError> {
            use $crate::server::store::{AuditStart, HistoryRow};
            let mut tx = self.pool.begin_with($begin_read).await?;
            let start: Option<AuditStart> = sqlx::query_as(AuditStart::SQL)
            .bind(drop)
            .fetch_optional(&mut *tx)
            .await?;
            AuditStart::after(start)?;
            let rows: Vec<HistoryRow> = sqlx::query_as(concat!(
                "SELECT ",
                $crate::server::store::history_columns!(),
                " FROM tickets WHERE drop_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(drop)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok($crate::server::store::history_page(rows, limit))
        }

        async fn sealed_entries(
            &self,
            drop: $crate::model::DropId,
        ) -> Result<$crate::model::SealedEntries, $crate::server::store::StoreError> {
            use $crate::{model::ErrorCode, server::store::StoreError};
            let mut tx = self.pool.begin_with($begin_read).await?;
            let row: Option<(String, Option<String>, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT sale_mode, entry_root, entry_count, sealed_at FROM drops WHERE id = $1",
            )
            .bind(drop)
            .fetch_optional(&mut *tx)
            .await?;
            let (mode, root, count, sealed_at) =
                row.ok_or(StoreError::Refused(ErrorCode::DropNotFound))?;
            $crate::server::store::audited(&mode, true)?;
            let (Some(root), Some(count), Some(sealed_at)) = (root, count, sealed_at) else {
                return Err(StoreError::Refused(ErrorCode::NotSealed));
            };
            let mut ids: Vec<String> =
                sqlx::query_scalar($crate::server::store::tickets::SEALED_IDS_SQL)
                    .bind(drop)
                    .fetch_all(&mut *tx)
                    .await?;
            tx.commit().await?;
            ids.sort_unstable();
            Ok($crate::model::SealedEntries {
                root,
                count,
                sealed_at: $crate::server::store::rows::from_ms(sealed_at),
                ids,
            })
        }

        async fn forget_keys(
            &self,
            older_than: std::time::Duration,
        ) -> Result<u64, $crate::server::store::StoreError> {
            // "Now" as a sub-select: evaluated once, so the index on `created_at` is used.
            let done = sqlx::query(concat!(
                "DELETE FROM idempotency_keys WHERE created_at < (SELECT ",
                $($now)+,
                ") - $1"
            ))
            .bind($crate::server::store::rows::ttl_ms(older_than))
            .execute(&self.pool)
            .await?;
            // A spent proof's challenge is refused once it has expired: no need to remember it.
            let now = chrono::Utc::now().timestamp();
            sqlx::query("DELETE FROM spent_proofs WHERE expires_at < $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
            // Passkey ceremonies nobody answered in time.
            sqlx::query(concat!("DELETE FROM passkey_ceremonies WHERE expires_at < (SELECT ", $($now)+, ")"))
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }

        async fn now_ms(&self) -> Result<i64, $crate::server::store::StoreError> {
            Ok(sqlx::query_scalar(concat!("SELECT ", $($now)+))
                .fetch_one(&self.pool)
                .await?)
        }

        async fn session(
            &self,
            id: $crate::server::store::SessionId,
        ) -> Result<Option<$crate::server::store::SessionRecord>, $crate::server::store::StoreError>
        {
            let row: Option<(i64, i64, bool, bool)> = sqlx::query_as(concat!(
                "SELECT user_id, expires_at, (revoked_at IS NULL AND expires_at > now), \
                   last_seen_at < now - 60000 \
                 FROM sessions, (SELECT ",
                $($now)+,
                " AS now) AS clock WHERE id = $1"
            ))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
            let Some((user, expires_at_ms, live, seen_long_ago)) = row else {
                return Ok(None);
            };
            // Seen again: noted at most once a minute, so reading a session is a read.
            if live && seen_long_ago {
                sqlx::query(concat!(
                    "UPDATE sessions SET last_seen_at = ",
                    $($now)+,
                    " WHERE id = $1"
                ))
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
            }
            Ok(Some($crate::server::store::SessionRecord {
                user: $crate::model::UserId(user),
                expires_at_ms,
                live,
            }))
        }

        async fn revoke_session(
            &self,
            id: $crate::server::store::SessionId,
        ) -> Result<(), $crate::server::store::StoreError> {
            sqlx::query(concat!(
                "UPDATE sessions SET revoked_at = ",
                $($now)+,
                " WHERE id = $1 AND revoked_at IS NULL"
            ))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn revoked_sessions_since(
            &self,
            since_ms: i64,
        ) -> Result<Vec<$crate::server::store::SessionId>, $crate::server::store::StoreError> {
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT id FROM sessions WHERE revoked_at >= $1")
                    .bind(since_ms)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
        }
        }
    };
}
pub(crate) use reads;

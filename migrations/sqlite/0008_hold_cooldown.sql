-- When a hold ended: bought or cancelled (the moment), or run out (its deadline). A buyer who
-- gave a hold back waits `hold_cooldown_seconds` from then before reserving the drop again.
-- Holds that ended before this column existed keep it empty (they count against
-- `max_released_holds`, not towards a cooldown long over).
ALTER TABLE reservations ADD COLUMN ended_at INTEGER;
-- What a reserve batch reads of each buyer under the drop's lock: how many holds of the drop
-- they gave back, and when the last one ended.
CREATE INDEX reservations_released ON reservations (drop_id, user_id, ended_at)
    WHERE status IN ('CANCELLED', 'EXPIRED');

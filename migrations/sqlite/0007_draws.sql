-- A draw's result: how many entries won at the draw itself (places 1 to winners_drawn), and
-- when each winning entry got its unit: at the draw, or later from the waitlist, when a
-- winner left theirs unused. The audit shows both, so anyone can check every move.
ALTER TABLE drops ADD COLUMN winners_drawn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN won_at INTEGER;

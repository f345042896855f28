-- How a drop is sold: 'first_come' (a reserve holds at once), 'queue' (a waiting room put in a
-- random order at go-live, admitted at the rate the stock absorbs) or 'draw' (entries, then
-- winners drawn at go-live). The order of a queue or a draw comes from a seed drawn when the drop
-- is created: only its SHA-256 is shown until go-live, then the seed itself, so anyone can check.
ALTER TABLE drops ADD COLUMN sale_mode TEXT NOT NULL DEFAULT 'first_come'
    CHECK (sale_mode IN ('first_come', 'queue', 'draw'));
-- When joining (queue) or entering (draw) opens.
ALTER TABLE drops ADD COLUMN opens_at BIGINT;
-- 64 lowercase hex digits, secret until starts_at; seed_sha256 is the SHA-256 of those digits.
ALTER TABLE drops ADD COLUMN seed TEXT;
ALTER TABLE drops ADD COLUMN seed_sha256 TEXT;
-- When the line was put in order (a queue) or the winners drawn (a draw): done exactly once.
ALTER TABLE drops ADD COLUMN lined_up_at BIGINT;
-- When a queue closed (sold out).
ALTER TABLE drops ADD COLUMN closed_at BIGINT;
-- A queue's admissions: when the last pass ran (it admits at most queue_admit_per_second over
-- the time since) and the admissions per second it has been managing, smoothed (x1000).
ALTER TABLE drops ADD COLUMN admitted_at BIGINT;
ALTER TABLE drops ADD COLUMN admit_rate_milli BIGINT NOT NULL DEFAULT 0;
-- The highest place whose turn has come (0: none yet).
ALTER TABLE drops ADD COLUMN served_through BIGINT NOT NULL DEFAULT 0;

-- A buyer's place in a queue or entry in a draw: one per buyer per drop. The public id is
-- random and says nothing of the buyer; the audit shows it, never the user.
CREATE TABLE tickets (
    id             BIGSERIAL PRIMARY KEY,
    public_id      TEXT    NOT NULL UNIQUE,
    drop_id        BIGINT  NOT NULL REFERENCES drops (id),
    user_id        BIGINT  NOT NULL REFERENCES users (id),
    joined_at      BIGINT  NOT NULL,
    -- 1 = first in line (or first drawn); set at go-live for the lobby, at joining after it.
    place          BIGINT,
    state          TEXT    NOT NULL CHECK (state IN ('waiting', 'admitted', 'used', 'lapsed', 'left',
                       'closed', 'entered', 'won', 'waitlisted', 'withdrawn', 'lost')),
    admitted_until BIGINT,
    UNIQUE (drop_id, user_id)
);
CREATE INDEX tickets_line ON tickets (drop_id, state, place);
CREATE UNIQUE INDEX tickets_place ON tickets (drop_id, place) WHERE place IS NOT NULL;

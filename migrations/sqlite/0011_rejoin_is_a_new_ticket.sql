-- A buyer who leaves a queue after go-live and joins again gets a new ticket at the back; the
-- old one keeps its place, as left, naming the new one (`rejoined_as`), so the places have no
-- gap and the audit shows both. One current ticket per (drop, user): the one not rejoined.
-- SQLite cannot drop a table constraint, so the table is rebuilt (no table references it).
CREATE TABLE tickets_rebuilt (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id      TEXT    NOT NULL UNIQUE,
    drop_id        INTEGER  NOT NULL REFERENCES drops (id),
    user_id        INTEGER  NOT NULL REFERENCES users (id),
    joined_at      INTEGER  NOT NULL,
    -- 1 = first in line (or first drawn); set at go-live for the lobby, at joining after it.
    place          INTEGER,
    state          TEXT    NOT NULL CHECK (state IN ('waiting', 'admitted', 'used', 'lapsed', 'left',
                       'closed', 'entered', 'won', 'waitlisted', 'withdrawn', 'lost')),
    admitted_until INTEGER,
    won_at         INTEGER,
    sealed         BOOLEAN NOT NULL DEFAULT FALSE,
    rejoined_as    TEXT
);
INSERT INTO tickets_rebuilt (id, public_id, drop_id, user_id, joined_at, place, state,
    admitted_until, won_at, sealed)
    SELECT id, public_id, drop_id, user_id, joined_at, place, state, admitted_until, won_at, sealed
    FROM tickets;
DROP TABLE tickets;
ALTER TABLE tickets_rebuilt RENAME TO tickets;
CREATE INDEX tickets_line ON tickets (drop_id, state, place);
CREATE UNIQUE INDEX tickets_place ON tickets (drop_id, place) WHERE place IS NOT NULL;
CREATE UNIQUE INDEX tickets_current ON tickets (drop_id, user_id) WHERE rejoined_as IS NULL;

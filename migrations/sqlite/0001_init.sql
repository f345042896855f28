-- Times are milliseconds since the Unix epoch (UTC). Money is integer cents.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE drops (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    image           TEXT    NOT NULL DEFAULT '',
    price_cents     INTEGER NOT NULL CHECK (price_cents >= 0),
    total_stock     INTEGER NOT NULL CHECK (total_stock >= 0),
    available_stock INTEGER NOT NULL,
    max_per_user    INTEGER NOT NULL DEFAULT 1 CHECK (max_per_user >= 1),
    starts_at       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL DEFAULT 0,
    CHECK (available_stock BETWEEN 0 AND total_stock)
);

CREATE TABLE reservations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    drop_id         INTEGER NOT NULL REFERENCES drops (id),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    status          TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'PURCHASED', 'CANCELLED', 'EXPIRED')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    idempotency_key TEXT
);

-- At most one live hold per buyer per drop.
CREATE UNIQUE INDEX reservations_one_active ON reservations (drop_id, user_id) WHERE status = 'ACTIVE';
-- The expiry worker's scan.
CREATE INDEX reservations_due ON reservations (status, expires_at);
CREATE INDEX reservations_user ON reservations (user_id, created_at DESC);

CREATE TABLE purchases (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    reservation_id INTEGER NOT NULL UNIQUE REFERENCES reservations (id),
    drop_id        INTEGER NOT NULL REFERENCES drops (id),
    user_id        INTEGER NOT NULL REFERENCES users (id),
    price_cents    INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);

-- The activity feed: newest purchases of a drop.
CREATE INDEX purchases_feed ON purchases (drop_id, created_at DESC, id DESC);
CREATE INDEX purchases_user ON purchases (drop_id, user_id);

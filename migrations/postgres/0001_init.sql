-- Times are milliseconds since the Unix epoch (UTC), read from the database clock so that every
-- instance agrees on "now". Money is integer cents.
CREATE FUNCTION dropline_now_ms() RETURNS BIGINT
    LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE drops (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT   NOT NULL,
    description     TEXT   NOT NULL DEFAULT '',
    image           TEXT   NOT NULL DEFAULT '',
    price_cents     BIGINT NOT NULL CHECK (price_cents >= 0),
    total_stock     BIGINT NOT NULL CHECK (total_stock >= 0),
    available_stock BIGINT NOT NULL,
    max_per_user    BIGINT NOT NULL DEFAULT 1 CHECK (max_per_user >= 1),
    starts_at       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 0,
    CHECK (available_stock BETWEEN 0 AND total_stock)
);

CREATE TABLE reservations (
    id              BIGSERIAL PRIMARY KEY,
    drop_id         BIGINT NOT NULL REFERENCES drops (id),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    status          TEXT   NOT NULL CHECK (status IN ('ACTIVE', 'PURCHASED', 'CANCELLED', 'EXPIRED')),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    idempotency_key TEXT
);

-- At most one live hold per buyer per drop.
CREATE UNIQUE INDEX reservations_one_active ON reservations (drop_id, user_id) WHERE status = 'ACTIVE';
-- The expiry worker's scan.
CREATE INDEX reservations_due ON reservations (status, expires_at);
CREATE INDEX reservations_user ON reservations (user_id, created_at DESC);

CREATE TABLE purchases (
    id             BIGSERIAL PRIMARY KEY,
    reservation_id BIGINT NOT NULL UNIQUE REFERENCES reservations (id),
    drop_id        BIGINT NOT NULL REFERENCES drops (id),
    user_id        BIGINT NOT NULL REFERENCES users (id),
    price_cents    BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- The activity feed: newest purchases of a drop.
CREATE INDEX purchases_feed ON purchases (drop_id, created_at DESC, id DESC);
CREATE INDEX purchases_user ON purchases (drop_id, user_id);

-- Outcomes of requests sent with an Idempotency-Key, so a retry returns the first outcome.
CREATE TABLE idempotency_keys (
    scope       TEXT   NOT NULL,  -- whose key: "user:<id>" or "admin"
    key         TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,  -- method, path and body of the first request
    status      INTEGER,          -- NULL while the first request is in flight
    response    TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

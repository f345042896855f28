-- Sessions live here, not in the cookie: the signed cookie carries only the random session id,
-- so signing out revokes the session and it ends at its expiry, on every instance.
CREATE TABLE sessions (
    id           TEXT    PRIMARY KEY,  -- 128 random bits as 32 hex digits
    user_id      INTEGER  NOT NULL REFERENCES users (id),
    created_at   INTEGER  NOT NULL,
    last_seen_at INTEGER  NOT NULL,
    expires_at   INTEGER  NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);
-- Every instance asks every few seconds which sessions were revoked since it last asked.
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

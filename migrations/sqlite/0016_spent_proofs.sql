-- Proof of work at the doors: the nonce of each challenge that has opened a door (made a
-- ticket or an entry), so a proof opens one door once, on every instance. A row is kept until
-- its challenge expires (Unix seconds); after that the challenge itself is refused, and the
-- hourly clean-up forgets it.
CREATE TABLE spent_proofs (
    nonce      TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX spent_proofs_expiry ON spent_proofs (expires_at);

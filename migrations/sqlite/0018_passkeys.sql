-- Passkeys (WebAuthn). An account may have several; each is webauthn-rs's `Passkey` as JSON
-- (the public key and its signature counter), named by its credential id (base64url), which
-- no two accounts share. Accounts made with a passkey have no password_hash.
CREATE TABLE passkeys (
    credential_id TEXT    PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    passkey       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX passkeys_user ON passkeys (user_id);
-- A ceremony between its two requests (options sent, the authenticator's answer awaited): its
-- state, kept server-side so that it is used once, on whichever instance the answer reaches.
-- A sign-up's names the username it will make; a sign-in's the account. Taken (deleted) by
-- the answer; the hourly clean-up forgets those that expired unanswered.
CREATE TABLE passkey_ceremonies (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER REFERENCES users (id),
    username   TEXT,
    state      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies (expires_at);

-- Real accounts: the username a buyer picks at sign-up, in lowercase (unique whatever its case;
-- `name` keeps it as typed, shown publicly), and their password's Argon2id hash (a PHC string).
-- Accounts made by the demo's sign-in by display name have neither.
ALTER TABLE users ADD COLUMN username TEXT;
ALTER TABLE users ADD COLUMN password_hash TEXT;
CREATE UNIQUE INDEX users_username ON users (username);

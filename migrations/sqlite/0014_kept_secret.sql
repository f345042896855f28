-- A lone server without a session secret (SQLite) draws one at its first start and keeps it
-- here, so what it signs (receipts, the receipt key its audits name) outlives a restart. One
-- row; a deployment with a session secret never writes it.
CREATE TABLE kept_secret (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    secret TEXT    NOT NULL
);

-- Beacon mode: a queue's lobby or a draw's entries ordered by a public drand round that is
-- published only after the entries are sealed, so neither the operator nor anyone who reads the
-- database knows the order early. Named at creation (the round, when it is published, the chain
-- and its key); its signature and randomness are kept once fetched and checked. Without a beacon
-- (all NULL) the drop is ordered by its committed seed, as before.
ALTER TABLE drops ADD COLUMN beacon_chain TEXT;
ALTER TABLE drops ADD COLUMN beacon_public_key TEXT;
ALTER TABLE drops ADD COLUMN beacon_round INTEGER;
ALTER TABLE drops ADD COLUMN beacon_round_at INTEGER;
ALTER TABLE drops ADD COLUMN beacon_signature TEXT;
ALTER TABLE drops ADD COLUMN beacon_randomness TEXT;
-- The sealed entry list, fixed at go-live (a draw: its draw time) before the round exists: the
-- RFC 6962 Merkle root (hex) over the sorted public ids of the tickets in it, how many, and when.
ALTER TABLE drops ADD COLUMN entry_root TEXT;
ALTER TABLE drops ADD COLUMN entry_count INTEGER;
ALTER TABLE drops ADD COLUMN sealed_at INTEGER;
-- Whether a ticket is in its drop's sealed entry list.
ALTER TABLE tickets ADD COLUMN sealed BOOLEAN NOT NULL DEFAULT FALSE;

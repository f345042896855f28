-- One person, one chance. A queue or draw may take only accounts created before
-- `accounts_before` (NULL: any), so accounts made in bulk for the drop get nothing; and each
-- ticket keeps the network it joined from (an IPv4 /24 or an IPv6 /64, never the address),
-- so a drop takes at most `join_cap_per_ipv4_24` / `join_cap_per_ipv6_64` tickets from one.
ALTER TABLE drops ADD COLUMN accounts_before BIGINT;
ALTER TABLE tickets ADD COLUMN network TEXT;
CREATE INDEX tickets_network ON tickets (drop_id, network) WHERE network IS NOT NULL;

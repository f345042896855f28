-- A buyer who leaves a queue after go-live and joins again gets a new ticket at the back; the
-- old one keeps its place, as left, naming the new one (`rejoined_as`), so the places have no
-- gap and the audit shows both. One current ticket per (drop, user): the one not rejoined.
ALTER TABLE tickets DROP CONSTRAINT tickets_drop_id_user_id_key;
ALTER TABLE tickets ADD COLUMN rejoined_as TEXT;
CREATE UNIQUE INDEX tickets_current ON tickets (drop_id, user_id) WHERE rejoined_as IS NULL;

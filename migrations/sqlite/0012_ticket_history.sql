-- Every ticket's whole story, so the audit can show each move and anyone can check them: when
-- it left the line (a draw: withdrew), when its turn came (a queue), and when it ended (used
-- its turn, let it lapse, or was closed or lost). Joined and won were kept already. Tickets
-- from before this migration have none of these (NULL): what happened to them was not kept.
ALTER TABLE tickets ADD COLUMN left_at INTEGER;
ALTER TABLE tickets ADD COLUMN admitted_at INTEGER;
ALTER TABLE tickets ADD COLUMN ended_at INTEGER;

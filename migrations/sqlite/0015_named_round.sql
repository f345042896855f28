-- A beacon drop whose list was sealed after the round it named was out (the server was down
-- past the margin) is ordered by a later round; this keeps the round named at creation, so the
-- audit shows both and anyone can check the change was forced.
ALTER TABLE drops ADD COLUMN beacon_named_round INTEGER;

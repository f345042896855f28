-- A stored answer is replayed as it was sent: a server function's form post is answered with a
-- redirect, a JSON call with JSON, so the headers a replay needs are kept beside the body.
ALTER TABLE idempotency_keys ADD COLUMN content_type TEXT;
ALTER TABLE idempotency_keys ADD COLUMN location TEXT;

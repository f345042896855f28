-- Old idempotency keys are deleted by age; find them without a full scan.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

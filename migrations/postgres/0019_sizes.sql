-- A drop is sold by size (EU 42, US 9, ...), each with its own stock and version; the drop's
-- own total_stock, available_stock and version stay the sums (and the count of changes) over
-- its sizes, which the queue and the draw count. Every drop so far becomes one size,
-- 'One size', with all its stock, and every hold so far names it: nothing is lost.
CREATE TABLE drop_sizes (
    drop_id         BIGINT  NOT NULL REFERENCES drops (id),
    label           TEXT    NOT NULL,
    position        BIGINT  NOT NULL,
    total_stock     BIGINT  NOT NULL CHECK (total_stock >= 0),
    available_stock BIGINT  NOT NULL,
    version         BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (drop_id, label),
    CHECK (available_stock BETWEEN 0 AND total_stock)
);

INSERT INTO drop_sizes (drop_id, label, position, total_stock, available_stock, version)
    SELECT id, 'One size', 0, total_stock, available_stock, version FROM drops;

-- The size a hold takes its unit from (its drop's `drop_sizes` row by label).
ALTER TABLE reservations ADD COLUMN size TEXT NOT NULL DEFAULT 'One size';

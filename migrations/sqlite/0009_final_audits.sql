-- A queue's or a draw's audit, final once its tickets are placed at go-live (the draw): built
-- once in that transaction as the document anyone downloads, and never changed. `placed` is how
-- many tickets it places; what comes after (later arrivals, waitlist moves) is read page by page.
CREATE TABLE final_audits (
    drop_id    INTEGER PRIMARY KEY REFERENCES drops (id),
    document   TEXT    NOT NULL,
    placed     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

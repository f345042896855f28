//! A database's whole store in one invocation: its write steps of every concept and its reads,
//! written once, with the phrases it says its own way and the few steps it writes in SQL of
//! its own passed in (`sqlite.rs`, `postgres.rs`).

/// Expands to every step of a database's write transactions and to its reads, written once:
/// each database passes the phrases it says its own way — its "now", a list of ids as a bound
/// value (`ids`), what tests a column against that list (`in_ids`: the text before and after
/// the parameter), what locks the rows a query
/// selects (`lock`) or skips those another transaction holds (`skip_locked`), how it begins a
/// consistent read (`begin_read`) — and the few steps it writes in SQL of its own, by
/// concept.
macro_rules! dialect_steps {
    (
        store: $store:ty,
        tx: $tx:ty,
        conn: $conn:tt,
        now: [$($now:tt)+],
        begin_read: $begin_read:literal,
        ids: $ids:path,
        in_ids: ($in_ids:literal, $in_ids_end:literal),
        lock: $lock:literal,
        skip_locked: $skip_locked:literal,
        holds: { $($holds:tt)* },
        queue: { $($queue:tt)* } $(,)?
    ) => {
        $crate::server::store::holds::hold_steps!(
            $tx,
            conn: $conn,
            now: [$($now)+],
            ids: $ids,
            in_ids: ($in_ids, $in_ids_end),
            lock: $lock,
            skip_locked: $skip_locked,
            own: { $($holds)* }
        );
        $crate::server::store::queue::queue_steps!(
            $tx,
            conn: $conn,
            now: [$($now)+],
            ids: $ids,
            in_ids: ($in_ids, $in_ids_end),
            own: { $($queue)* }
        );
        $crate::server::store::draw::draw_steps!($tx, conn: $conn, now: [$($now)+]);
        $crate::server::store::keys::key_steps!($tx, conn: $conn, now: [$($now)+]);
        $crate::server::store::accounts::account_steps!($tx, conn: $conn, now: [$($now)+]);
        $crate::server::store::proofs::proof_steps!($tx, conn: $conn);
        $crate::server::store::reads::reads!($store, now: [$($now)+], begin_read: $begin_read);
    };
}
pub(crate) use dialect_steps;

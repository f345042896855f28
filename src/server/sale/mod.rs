//! The sale's flows, each written once for every database over the store's steps: the writes
//! that move stock (`holds`), a queue's (`queue`) and a draw's (`draw`), and the events each
//! tells the screens (`notices`). Each reads top to bottom: lock the drop, read, let the rules
//! decide (`server::rules`), write, commit with the events. They implement the store's
//! operation traits (`store::ops`) for every database, so the rest of the server calls them
//! through `Arc<dyn Store>` and never names this module.

mod draw;
mod holds;
mod notices;
mod queue;

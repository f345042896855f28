//! The decisions of a sale, by flow: who of a batch of reserves gets a unit and why a hold is
//! refused (`reserve`), who may join a queue and in what order, how many it lets in
//! (`queue`), what a drawn draw does with a returned unit (`draw`). Plain functions of what
//! the store read under a drop's lock, with unit tests; the flows in `server::sale` call
//! them.

pub mod draw;
#[cfg(test)]
mod fixtures;
pub mod queue;
pub mod reserve;

pub use self::{
    draw::{hand_on, HandOn},
    queue::{
        admission, draw_order, entry_proof, entry_root, line_up, lobby_key, may_join, network_of,
        not_sold_by, order_source, refuse_joiners, room, Admission,
    },
    reserve::{distinct_users, hold_refusal, not_theirs, plan_batch, BatchPlan},
};

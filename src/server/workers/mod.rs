//! The workers every instance runs beside the requests: the expiry of holds at their deadlines
//! (`expiry`) and the queue's and draws' passes (`queue`).

pub mod expiry;
pub mod queue;

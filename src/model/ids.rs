//! Row ids, each its own type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a row id: its own type, so ids of different tables cannot be swapped by mistake
/// (`purchase(reservation, user)` with the arguments the other way round does not compile).
/// On the wire and in the database it is the plain integer.
macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        #[cfg_attr(
            feature = "ssr",
            derive(sqlx::Type, utoipa::ToSchema),
            sqlx(transparent)
        )]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

row_id!(
    /// Row id of a drop.
    DropId
);
row_id!(
    /// Row id of a user.
    UserId
);
row_id!(
    /// Row id of a reservation (a hold).
    ReservationId
);
row_id!(
    /// Row id of a purchase.
    PurchaseId
);

//! Buyers, their holds and their purchases.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{DropId, PurchaseId, ReservationId, UserId};

/// A signed-in buyer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct User {
    pub id: UserId,
    pub name: String,
}

/// Where a hold stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    Active,
    Purchased,
    Cancelled,
    Expired,
}

impl ReservationStatus {
    /// Reads the stored spelling back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(Self::Active),
            "PURCHASED" => Some(Self::Purchased),
            "CANCELLED" => Some(Self::Cancelled),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// A hold on one unit of a drop, owned by one user until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: ReservationId,
    pub drop_id: DropId,
    pub user_id: UserId,
    /// The size the unit is of (its drop's size label).
    #[serde(default)]
    pub size: String,
    pub status: ReservationStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A completed sale of one unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Purchase {
    pub id: PurchaseId,
    pub reservation_id: ReservationId,
    pub drop_id: DropId,
    pub user_id: UserId,
    pub price_cents: i64,
    pub created_at: DateTime<Utc>,
}

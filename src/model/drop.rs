//! A drop as everyone sees it: its stock and its newest buyers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    ids::DropId,
    sale::{QueueLine, SaleMode},
};

/// A limited-edition product on sale: its stock and its three most recent buyers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema), schema(as = Drop))]
pub struct ProductDrop {
    pub id: DropId,
    pub name: String,
    pub description: String,
    /// Path of the product image under the site root (`/images/...`), or empty.
    pub image: String,
    /// Price in integer cents.
    pub price_cents: i64,
    pub total_stock: i64,
    /// Units neither held nor sold.
    pub available_stock: i64,
    /// Most units one buyer may buy.
    pub max_per_user: i64,
    /// When reserving opens.
    pub starts_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Rises by one with every change of `available_stock`; clients keep the newest they saw.
    pub version: i64,
    /// The sizes on sale, in the order the card shows them; `total_stock`, `available_stock`
    /// are their sums. A drop created without sizes has one, `One size`.
    #[serde(default)]
    pub sizes: Vec<DropSize>,
    /// Newest first, at most three.
    #[serde(default)]
    pub recent_purchasers: Vec<Purchaser>,
    /// How the drop is sold.
    #[serde(default)]
    pub sale_mode: SaleMode,
    /// A queue: when buyers may start joining its lobby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_opens_at: Option<DateTime<Utc>>,
    /// A draw: when entries open (they close at `starts_at`, the draw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries_open_at: Option<DateTime<Utc>>,
    /// A queue or a draw: the SHA-256 (64 hex digits) of the seed that puts the lobby in order at
    /// go-live, published when the drop is created so the seed cannot change afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_sha256: Option<String>,
    /// The seed itself (64 lowercase hex digits), once the drop has gone live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// A queue or a draw ordered by a public beacon instead of a seed: the drand round, named
    /// at creation, whose randomness orders it; it is published only after the entries are
    /// sealed at go-live (a draw: its draw), so nobody can know the order before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beacon_round: Option<u64>,
    /// A queue: how far its line has moved. A draw: `live` once drawn, `served_through` the
    /// last place in the drawn order that has been given a unit, `closed` once no unit can
    /// pass on any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueLine>,
}

impl ProductDrop {
    /// True when a buyer must choose a size: the drop has more than one.
    pub fn sized(&self) -> bool {
        self.sizes.len() > 1
    }
}

/// One size of a drop and its own stock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DropSize {
    /// What a buyer picks and a reserve names, such as `EU 42`.
    pub label: String,
    pub total_stock: i64,
    /// Units of this size neither held nor sold.
    pub available_stock: i64,
    /// Rises by one with every change of this size's `available_stock`; a screen applies
    /// only a newer one.
    pub version: i64,
}

/// One line of a drop's activity feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Purchaser {
    pub name: String,
    pub purchased_at: DateTime<Utc>,
}

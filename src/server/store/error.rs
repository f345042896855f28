//! Why a store operation did not happen.

use crate::model::ErrorCode;

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An expected refusal (sold out, expired, ...): nothing was written.
    #[error("refused: {0:?}")]
    Refused(ErrorCode),
    /// The database failed; the transaction was rolled back.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A migration that does not run fails like any database error.
impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Self::Database(error.into())
    }
}

//! Spent proofs of work (`spent_proofs`): a challenge's nonce, written in the transaction that
//! writes what the proof opened (a ticket, an entry, an account), whose primary key refuses a
//! second spend on any instance. The SQL is the same for both databases ([`proof_steps!`]).

use async_trait::async_trait;

use super::tickets::Spend;

/// The spend inside one write transaction.
#[async_trait]
pub(crate) trait ProofTx: Send {
    /// Spends the challenge `nonce` (good until `expires_at`, Unix seconds): false if it was
    /// spent already.
    async fn spend_proof(&mut self, nonce: &str, expires_at: i64) -> Result<bool, sqlx::Error>;

    /// Spends `proof` if a door took one: false if it was spent already.
    async fn spend(&mut self, proof: Option<&Spend>) -> Result<bool, sqlx::Error> {
        match proof {
            Some(proof) => self.spend_proof(&proof.nonce, proof.expires_at).await,
            None => Ok(true),
        }
    }
}

/// Expands to the [`ProofTx`] impl of a transaction type whose connection is `self.$conn`.
macro_rules! proof_steps {
    ($tx:ty, conn: $conn:tt) => {
        #[async_trait::async_trait]
        impl $crate::server::store::proofs::ProofTx for $tx {
            async fn spend_proof(
                &mut self,
                nonce: &str,
                expires_at: i64,
            ) -> Result<bool, sqlx::Error> {
                let done = sqlx::query(
                    "INSERT INTO spent_proofs (nonce, expires_at) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(nonce)
                .bind(expires_at)
                .execute(&mut *self.$conn)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}
pub(crate) use proof_steps;

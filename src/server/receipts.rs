//! Signed receipts: joining a queue or entering a draw answers the ticket id, the drop and the
//! time, signed with the deployment's Ed25519 key, whose public key every final audit names.
//! A buyer holding a receipt for a ticket the audit leaves out can prove it was issued.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::model::{receipt_message, DropId, Receipt};

/// The key receipts are signed with.
#[derive(Clone)]
pub struct ReceiptKey(SigningKey);

impl ReceiptKey {
    /// The key of a deployment whose instances share `secret` (the session secret).
    pub fn derive(secret: &str) -> Self {
        let mut seed = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"dropline"), secret.as_bytes())
            .expand(b"receipts v1", &mut seed)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(SigningKey::from_bytes(&seed))
    }

    /// The public key, hex: what audits publish and receipts name.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().as_bytes())
    }

    /// The signature (hex) over a final audit `document` as served: Ed25519 over
    /// [`audit_message`]. Two different documents signed for one drop prove the server
    /// showed different audits to different people.
    pub fn sign_audit(&self, document: &[u8]) -> String {
        hex::encode(self.0.sign(&audit_message(document)).to_bytes())
    }

    /// A receipt for `ticket` of `drop`, issued at `at`.
    pub fn sign(&self, drop: DropId, ticket: &str, at: DateTime<Utc>) -> Receipt {
        let issued_at = at.timestamp_millis();
        let signature = self
            .0
            .sign(receipt_message(drop, ticket, issued_at).as_bytes());
        Receipt {
            drop_id: drop,
            ticket: ticket.to_string(),
            issued_at_ms: issued_at,
            public_key: self.public_hex(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// What an audit's signature signs: `dropline audit v1\n` followed by the document's bytes.
pub fn audit_message(document: &[u8]) -> Vec<u8> {
    [b"dropline audit v1\n".as_slice(), document].concat()
}

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptKey({})", self.public_hex())
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    use super::*;

    #[test]
    fn a_receipt_verifies_under_its_key_and_not_once_changed() {
        let key = ReceiptKey::derive("a session secret of thirty-two characters");
        let receipt = key.sign(DropId(7), "abc", Utc::now());
        let public: [u8; 32] = hex::decode(&receipt.public_key)
            .unwrap()
            .try_into()
            .unwrap();
        let public = VerifyingKey::from_bytes(&public).unwrap();
        let signature: [u8; 64] = hex::decode(&receipt.signature).unwrap().try_into().unwrap();
        let signature = Signature::from_bytes(&signature);
        let message = |ticket: &str| receipt_message(DropId(7), ticket, receipt.issued_at_ms);
        assert!(public.verify(message("abc").as_bytes(), &signature).is_ok());
        assert!(public
            .verify(message("abd").as_bytes(), &signature)
            .is_err());
        // The same secret, the same key on every instance; another secret, another key.
        assert_eq!(
            key.public_hex(),
            ReceiptKey::derive("a session secret of thirty-two characters").public_hex()
        );
        assert_ne!(
            key.public_hex(),
            ReceiptKey::derive("another secret").public_hex()
        );
    }
}

//! Runtime settings: every key with its default (`values`), how they are read and checked
//! (`load`), and what they mean to the parts that read them (`terms`).

mod load;
mod terms;
mod values;

pub use self::{
    load::{SettingsError, MIN_ADMIN_TOKEN_CHARS},
    terms::{AdmissionRule, BeaconChain, HoldTerms, NetworkCaps, Pace, ProofTerms, Timeouts},
    values::{
        CookieSecure, LogFormat, Settings, SqliteSync, QUICKNET_CHAIN_HASH, QUICKNET_PUBLIC_KEY,
    },
};

//! The hidden idempotency key a write form carries. It stays the same while one attempt is
//! retried (a resubmitted form, a reload of the POST) and is new for the next attempt, so the
//! server answers a retry with the first outcome and never reserves or buys twice.

use leptos::prelude::*;

/// `<input type="hidden" name="idempotency_key">`, renewed each time `attempts` changes (pass
/// the action's version: it rises when an attempt finishes).
#[component]
pub fn RetryKey(attempts: Signal<usize>) -> impl IntoView {
    let key = Memo::new(move |_| {
        attempts.track();
        fresh_key()
    });
    view! { <input type="hidden" name="idempotency_key" value=move || key.get() /> }
}

/// A new random key: unique per attempt, which is all a retry key needs.
fn fresh_key() -> String {
    #[cfg(feature = "ssr")]
    {
        format!("{:032x}", rand::random::<u128>())
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        // 2 × 52 random bits; Math.random works on plain-HTTP pages, unlike crypto.randomUUID.
        let part = || (js_sys::Math::random() * (1u64 << 52) as f64) as u64;
        format!("{:013x}{:013x}", part(), part())
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        String::new()
    }
}

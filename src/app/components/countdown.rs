//! A hold's remaining time, ticking on the server-corrected clock.

use leptos::prelude::*;

use crate::live::LiveStore;

/// `m:ss` left until `expires_ms` (milliseconds since the epoch, server clock).
#[component]
pub fn Countdown(expires_ms: i64) -> impl IntoView {
    let live = LiveStore::get();
    let seconds_left = Memo::new(move |_| ((expires_ms - live.now_ms()).max(0) + 999) / 1000);
    view! {
        <p class="countdown" role="timer" aria-live="polite" aria-atomic="true">
            "Held for you: "
            <strong data-testid="countdown">{move || format_remaining(seconds_left.get())}</strong>
        </p>
    }
}

/// Whole seconds as `m:ss`, or `h:mm:ss` from an hour up.
pub fn format_remaining(seconds: i64) -> String {
    if seconds >= 3600 {
        format!(
            "{}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )
    } else {
        format!("{}:{:02}", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::format_remaining;

    #[test]
    fn remaining_time_reads_as_minutes_and_seconds() {
        assert_eq!(format_remaining(60), "1:00");
        assert_eq!(format_remaining(59), "0:59");
        assert_eq!(format_remaining(5), "0:05");
        assert_eq!(format_remaining(3723), "1:02:03");
    }
}

//! Sign-in by display name, who is signed in, and the live connection indicator: two islands
//! of the top bar.

use leptos::{form::ActionForm, prelude::*};

use super::toasts::ToastQueue;
use crate::{
    api::{SignIn, SignOut},
    live::{Connection, LiveStore},
    model::User,
};

/// The top-right corner: a sign-in form, or who is signed in with a sign-out button. `user`
/// is who the page was rendered for.
#[island]
pub fn SessionBar(user: Option<User>) -> impl IntoView {
    let live = LiveStore::get();
    let toasts = ToastQueue::get();
    let sign_in = ServerAction::<SignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let user = RwSignal::new(user);
    // A new session means new owner-only events and other holds: the live feed reopens under
    // it and the cards reload what the viewer holds.
    Effect::new(move |_| {
        let Some(outcome) = sign_in.value().get() else {
            return;
        };
        toasts.outcome(&outcome, |user| format!("Welcome, {}.", user.name));
        if let Ok(signed_in) = outcome {
            user.set(Some(signed_in));
            session_changed(live);
        }
    });
    Effect::new(move |_| {
        let Some(outcome) = sign_out.value().get() else {
            return;
        };
        toasts.outcome(&outcome, |()| "Signed out.".into());
        if outcome.is_ok() {
            user.set(None);
            session_changed(live);
        }
    });
    view! {
        <Show
            when=move || user.with(Option::is_some)
            fallback=move || {
                view! {
                    <ActionForm action=sign_in attr:class="session sign-in">
                        <label for="sign-in-name" class="visually-hidden">
                            "Display name"
                        </label>
                        <input
                            id="sign-in-name"
                            name="name"
                            placeholder="Your display name"
                            autocomplete="nickname"
                            maxlength="80"
                            required
                        />
                        <button type="submit" class="btn" disabled=move || sign_in.pending().get()>
                            "Sign in"
                        </button>
                    </ActionForm>
                }
            }
        >
            <div class="session">
                <span class="session-name">
                    "Signed in as "
                    <strong data-testid="user-name">
                        {move || user.with(|u| u.as_ref().map(|u| u.name.clone()).unwrap_or_default())}
                    </strong>
                </span>
                <ActionForm action=sign_out>
                    <button type="submit" class="btn btn-ghost">
                        "Sign out"
                    </button>
                </ActionForm>
            </div>
        </Show>
    }
}

/// After a sign-in or sign-out: reopen the feed under the new session and reload the holds.
fn session_changed(live: LiveStore) {
    live.reconnect();
    #[cfg(feature = "hydrate")]
    crate::live::browser::reload_mine(live);
}

/// Whether stock on screen is live, or the feed is reconnecting.
#[island]
pub fn ConnectionBadge() -> impl IntoView {
    let live = LiveStore::get();
    let state = move || match live.connection() {
        Connection::Connecting => ("connecting", "Connecting…"),
        Connection::Live => ("live", "Live"),
        Connection::Reconnecting => ("reconnecting", "Reconnecting…"),
    };
    view! {
        <span class="connection" data-state=move || state().0 role="status" aria-live="polite">
            <span class="connection-dot" aria-hidden="true"></span>
            {move || state().1}
        </span>
    }
}

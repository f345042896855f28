//! Signing up and logging in with a username and a password or a passkey (and, on the demo's
//! server, signing in by display name alone), who is signed in, and the live connection indicator: two islands
//! of the top bar.

use leptos::{ev::SubmitEvent, form::ActionForm, prelude::*, server_fn::ServerFn};

use super::{passkey::PasskeyButton, proof::Check, toasts::ToastQueue};
#[cfg(feature = "hydrate")]
use crate::api::sign_up_challenge;
use crate::{
    api::{LogIn, PasskeySignIn, SignIn, SignOut, SignUp},
    live::{Connection, LiveStore},
    model::{SignInWays, User},
};

/// The top-right corner: the forms to log in or sign up, with a password or a passkey (and, on
/// the demo's server, to sign in by display name), or who is signed in with a sign-out button.
/// `user` is who the page was rendered for.
#[island]
pub fn SessionBar(user: Option<User>, ways: SignInWays) -> impl IntoView {
    let live = LiveStore::get();
    let toasts = ToastQueue::get();
    let sign_in = ServerAction::<SignIn>::new();
    let log_in = ServerAction::<LogIn>::new();
    let sign_up = ServerAction::<SignUp>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let passkey = ServerAction::<PasskeySignIn>::new();
    let user = RwSignal::new(user);
    // A new session means new owner-only events and other holds: the live feed reopens under
    // it and the cards reload what the viewer holds.
    let welcome = move |outcome: Option<Result<User, crate::model::ApiError>>| {
        let Some(outcome) = outcome else {
            return;
        };
        toasts.outcome(&outcome, |user| format!("Welcome, {}.", user.name));
        if let Ok(signed_in) = outcome {
            user.set(Some(signed_in));
            session_changed(live);
        }
    };
    Effect::new(move |_| welcome(sign_in.value().get()));
    Effect::new(move |_| welcome(log_in.value().get()));
    Effect::new(move |_| welcome(sign_up.value().get()));
    Effect::new(move |_| welcome(passkey.value().get()));
    // Signing up pays the shop's proof of work first (see `proof`); without JavaScript the
    // form posts as it stands.
    let sign_up_check = RwSignal::new(Check::default());
    let busy = move || {
        sign_in.pending().get()
            || log_in.pending().get()
            || sign_up.pending().get()
            || passkey.pending().get()
            || matches!(sign_up_check.get(), Check::Solving(_))
    };
    let on_sign_up = move |event: SubmitEvent| {
        event.prevent_default();
        #[cfg(feature = "hydrate")]
        if !busy() {
            use super::proof::browser::{form_field, solve_then};
            let username = form_field(&event, "username");
            let password = form_field(&event, "password");
            solve_then(sign_up_challenge(), sign_up_check, move |proof| {
                sign_up.dispatch(SignUp {
                    username,
                    password,
                    proof,
                });
            });
        }
    };
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
    let SignInWays {
        demo,
        passkey_origin,
    } = ways;
    view! {
        <Show
            when=move || user.with(Option::is_some)
            fallback=move || {
                let (log_in_origin, sign_up_origin) = (passkey_origin.clone(), passkey_origin.clone());
                view! {
                    <div class="session">
                        {demo
                            .then(|| {
                                view! {
                                    <ActionForm action=sign_in attr:class="session sign-in">
                                        <label for="sign-in-name" class="visually-hidden">
                                            "Display name"
                                        </label>
                                        <input
                                            id="sign-in-name"
                                            name="name"
                                            placeholder="Your display name (demo)"
                                            autocomplete="nickname"
                                            maxlength="80"
                                            required
                                        />
                                        <button type="submit" class="btn" disabled=busy>
                                            "Sign in"
                                        </button>
                                    </ActionForm>
                                }
                            })}
                        <details class="account">
                            <summary class="btn">"Log in / Sign up"</summary>
                            <div class="account-forms">
                                <ActionForm action=log_in attr:class="account-form">
                                    <h2>"Log in"</h2>
                                    <label for="log-in-username">"Username"</label>
                                    <input
                                        id="log-in-username"
                                        name="username"
                                        autocomplete="username"
                                        maxlength="20"
                                        required
                                    />
                                    <label for="log-in-password">"Password"</label>
                                    <input
                                        id="log-in-password"
                                        name="password"
                                        type="password"
                                        autocomplete="current-password"
                                        required
                                    />
                                    <button type="submit" class="btn btn-primary" disabled=busy>
                                        "Log in"
                                    </button>
                                    <PasskeyButton
                                        sign_up=false
                                        username_input="log-in-username"
                                        origin=log_in_origin
                                        check=sign_up_check
                                        action=passkey
                                    />
                                </ActionForm>
                                <form
                                    class="account-form"
                                    method="post"
                                    action=SignUp::PATH
                                    on:submit=on_sign_up
                                >
                                    <h2>"Create an account"</h2>
                                    <label for="sign-up-username">"Username (shown publicly)"</label>
                                    <input
                                        id="sign-up-username"
                                        name="username"
                                        autocomplete="username"
                                        minlength="3"
                                        maxlength="20"
                                        pattern="[A-Za-z0-9][A-Za-z0-9_\\-]*"
                                        title="3 to 20 letters, digits, _ or -"
                                        required
                                    />
                                    <label for="sign-up-password">"Password (10+ characters, hard to guess)"</label>
                                    <input
                                        id="sign-up-password"
                                        name="password"
                                        type="password"
                                        autocomplete="new-password"
                                        minlength="10"
                                        required
                                    />
                                    <button type="submit" class="btn btn-primary" disabled=busy>
                                        "Sign up"
                                    </button>
                                    <PasskeyButton
                                        sign_up=true
                                        username_input="sign-up-username"
                                        origin=sign_up_origin
                                        check=sign_up_check
                                        action=passkey
                                    />
                                    <p
                                        class="proof-status"
                                        data-testid="sign-up-proof"
                                        role="status"
                                        aria-live="polite"
                                    >
                                        {move || sign_up_check.with(Check::message)}
                                    </p>
                                </form>
                            </div>
                        </details>
                    </div>
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

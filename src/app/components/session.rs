//! Sign-in by display name, who is signed in, and the live connection indicator.

use leptos::{form::ActionForm, prelude::*};

use crate::{
    app::pages::home::Actions,
    live::{Connection, LiveStore},
    model::{ApiError, User},
};

/// The top-right corner: a sign-in form, or who is signed in with a sign-out button.
#[component]
pub fn SessionBar(user: Resource<Result<Option<User>, ApiError>>) -> impl IntoView {
    let actions = expect_context::<Actions>();
    view! {
        <Transition fallback=|| view! { <span class="session-loading">"…"</span> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(user)) => {
                        view! {
                            <div class="session">
                                <span class="session-name">
                                    "Signed in as "
                                    <strong data-testid="user-name">{user.name}</strong>
                                </span>
                                <ActionForm action=actions.sign_out>
                                    <button type="submit" class="btn btn-ghost">
                                        "Sign out"
                                    </button>
                                </ActionForm>
                            </div>
                        }
                            .into_any()
                    }
                    _ => {
                        view! {
                            <ActionForm action=actions.sign_in attr:class="session sign-in">
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
                                <button
                                    type="submit"
                                    class="btn"
                                    disabled=move || actions.sign_in.pending().get()
                                >
                                    "Sign in"
                                </button>
                            </ActionForm>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

/// Whether stock on screen is live, or the feed is reconnecting.
#[component]
pub fn ConnectionBadge() -> impl IntoView {
    let live = LiveStore::use_context();
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

//! Sign-in by display name, and the signed-in name with a sign-out button.

use leptos::{form::ActionForm, prelude::*};

use crate::{
    api::{SignIn, SignOut},
    model::{ApiError, User},
};

/// The top-right corner: a sign-in form, or who is signed in.
#[component]
pub fn SessionBar(
    user: Resource<Result<Option<User>, ApiError>>,
    sign_in: ServerAction<SignIn>,
    sign_out: ServerAction<SignOut>,
) -> impl IntoView {
    view! {
        <Transition fallback=|| view! { <span class="session-loading">"…"</span> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(user)) => {
                        view! {
                            <div class="session">
                                <span class="session-name">
                                    "Signed in as " <strong data-testid="user-name">{user.name}</strong>
                                </span>
                                <ActionForm action=sign_out>
                                    <button type="submit" class="btn btn-ghost">"Sign out"</button>
                                </ActionForm>
                            </div>
                        }
                            .into_any()
                    }
                    _ => {
                        view! {
                            <ActionForm action=sign_in attr:class="session sign-in">
                                <label for="sign-in-name" class="visually-hidden">"Display name"</label>
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
                                    disabled=move || sign_in.pending().get()
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

//! The passkey buttons of the log-in and sign-up forms. A click begins the ceremony on the
//! server (signing up pays the shop's proof of work first, as the password form does), hands
//! its options to the browser's `navigator.credentials` (the authenticator asks for a
//! fingerprint or a PIN), and sends the answer back. Passkeys need JavaScript and a page of
//! the shop's `public_origin`: the buttons appear once the page is hydrated, and on another
//! address they say where passkeys work.

use leptos::prelude::*;

use super::proof::Check;
use crate::api::PasskeySignIn;

/// Signing up or in with a passkey, for the account named in the input `username_input`
/// (an element id); `origin` is where passkeys work, `check` the sign-up's proof-of-work line,
/// and `action` signs in with the authenticator's answer.
#[component]
pub fn PasskeyButton(
    sign_up: bool,
    username_input: &'static str,
    origin: String,
    check: RwSignal<Check>,
    action: ServerAction<PasskeySignIn>,
) -> impl IntoView {
    let said = RwSignal::new(String::new());
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let busy = RwSignal::new(false);
    // A proof of work that failed says so in `check`; the button is free again.
    Effect::new(move |_| {
        if matches!(check.get(), Check::Failed(_)) {
            busy.set(false);
        }
    });
    let on_click = move |_| {
        #[cfg(feature = "hydrate")]
        if !busy.get_untracked() && !action.pending().get_untracked() {
            browser::begin(sign_up, username_input, &origin, check, said, busy, action);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&origin, check, username_input);
    };
    let label = if sign_up {
        "Sign up with a passkey"
    } else {
        "Log in with a passkey"
    };
    view! {
        <Show when=move || hydrated.get()>
            <button
                type="button"
                class="btn btn-passkey"
                on:click=on_click.clone()
                disabled=move || busy.get() || action.pending().get()
            >
                {label}
            </button>
            <p class="passkey-status" role="status" aria-live="polite">
                {move || said.get()}
            </p>
        </Show>
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use leptos::{prelude::*, task::spawn_local};
    use wasm_bindgen::{prelude::*, JsCast};
    use wasm_bindgen_futures::JsFuture;

    use super::super::proof::{browser::solve_then, Check};
    use crate::api::{begin_passkey, sign_up_challenge, PasskeySignIn};

    /// Runs a ceremony: the proof of work (signing up), the server's options, the
    /// authenticator, then `action` with its answer. What goes wrong is said in `said`.
    pub fn begin(
        sign_up: bool,
        username_input: &str,
        origin: &str,
        check: RwSignal<Check>,
        said: RwSignal<String>,
        busy: RwSignal<bool>,
        action: ServerAction<PasskeySignIn>,
    ) {
        let here = window().location().origin().unwrap_or_default();
        if here.trim_end_matches('/') != origin.trim_end_matches('/') {
            said.set(format!(
                "Passkeys work at {origin}: open the shop there to use one."
            ));
            return;
        }
        let username = document()
            .get_element_by_id(username_input)
            .and_then(|input| input.dyn_into::<web_sys::HtmlInputElement>().ok())
            .map(|input| input.value())
            .unwrap_or_default();
        if username.trim().is_empty() {
            said.set("Type your username first.".into());
            return;
        }
        said.set(String::new());
        busy.set(true);
        let run = move |proof: Option<String>| {
            spawn_local(async move {
                let outcome = async {
                    let begun = begin_passkey(username, sign_up, proof)
                        .await
                        .map_err(|error| error.message)?;
                    let credential = ceremony(sign_up, &begun.options).await?;
                    Ok::<_, String>((begun.ceremony, credential))
                };
                match outcome.await {
                    Ok((ceremony, credential)) => {
                        action.dispatch(PasskeySignIn {
                            ceremony,
                            credential,
                            sign_up,
                        });
                    }
                    Err(why) => said.set(why),
                }
                busy.set(false);
            });
        };
        if sign_up {
            solve_then(sign_up_challenge(), check, run);
        } else {
            run(None);
        }
    }

    /// Hands `options` (the server's JSON) to the authenticator, through the browser's own
    /// JSON forms of WebAuthn (`parseCreationOptionsFromJSON`, `toJSON`), and answers its
    /// credential as JSON.
    async fn ceremony(create: bool, options: &str) -> Result<String, String> {
        let unsupported = || "This browser has no passkeys: use a password.".to_string();
        let options = js_sys::JSON::parse(options).map_err(|_| unsupported())?;
        let public_key =
            js_sys::Reflect::get(&options, &"publicKey".into()).map_err(|_| unsupported())?;
        let class = js_sys::Reflect::get(&window(), &"PublicKeyCredential".into())
            .ok()
            .filter(|class| !class.is_undefined())
            .ok_or_else(unsupported)?;
        let parser = if create {
            "parseCreationOptionsFromJSON"
        } else {
            "parseRequestOptionsFromJSON"
        };
        let parse = js_sys::Reflect::get(&class, &parser.into())
            .ok()
            .and_then(|parse| parse.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(unsupported)?;
        let parsed = parse
            .call1(&class, &public_key)
            .map_err(|error| said_by_browser(&error))?;
        let request = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&request, &"publicKey".into(), &parsed);
        let credentials = window().navigator().credentials();
        let asked = if create {
            credentials.create_with_options(request.unchecked_ref())
        } else {
            credentials.get_with_options(request.unchecked_ref())
        }
        .map_err(|error| said_by_browser(&error))?;
        let credential = JsFuture::from(asked)
            .await
            .map_err(|error| said_by_browser(&error))?;
        let to_json = js_sys::Reflect::get(&credential, &"toJSON".into())
            .ok()
            .and_then(|to_json| to_json.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(unsupported)?;
        let json = to_json
            .call0(&credential)
            .map_err(|error| said_by_browser(&error))?;
        js_sys::JSON::stringify(&json)
            .map(String::from)
            .map_err(|_| unsupported())
    }

    /// A browser's refusal in words: a cancelled or timed-out prompt says so.
    fn said_by_browser(error: &JsValue) -> String {
        let name = js_sys::Reflect::get(error, &"name".into())
            .ok()
            .and_then(|name| name.as_string())
            .unwrap_or_default();
        match name.as_str() {
            "NotAllowedError" => "The passkey prompt was closed or timed out: try again.".into(),
            "InvalidStateError" => "This device has a passkey for that account already.".into(),
            _ => format!("The passkey did not work ({name}): try again, or use a password."),
        }
    }
}

//! The doors' proof of work in the page: a queue's or a draw's join (or enter) button, which
//! pays it first, and the solver the sign-up form uses too. With JavaScript a click fetches a challenge, solves it in a Web Worker
//! (`/proof-worker.js`) while the card says "Checking you're human… 0.8 s", then joins with the
//! proof. Without JavaScript it is the plain form, posted as it stands: a shop that asks a
//! proof answers it with `PROOF_REQUIRED`.

use leptos::{ev::SubmitEvent, prelude::*, server_fn::ServerFn};

#[cfg(feature = "hydrate")]
use crate::api::proof_challenge;
use crate::{
    api::JoinQueue,
    model::{DropId, SaleMode},
};

/// Where the viewer's proof of work stands (only the browser moves it past `Idle`).
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum Check {
    #[default]
    /// Nothing asked yet (or the shop asks no proof).
    Idle,
    /// Solving, this many seconds in.
    Solving(f64),
    /// Solved in this many seconds.
    Solved(f64),
    /// The browser could not solve it.
    Failed(String),
}

impl Check {
    /// The card's line about it (empty while nothing was asked).
    pub fn message(&self) -> String {
        match self {
            Self::Idle => String::new(),
            Self::Solving(seconds) => format!("Checking you're human… {seconds:.1} s"),
            Self::Solved(seconds) => format!("Checked you're human in {seconds:.1} s"),
            Self::Failed(why) => format!("Could not check you're human: {why}"),
        }
    }
}

/// The join (`mode` queue) or enter (`mode` draw) button of drop `id`, dispatching `action`
/// once the proof of work, if the shop asks one, is solved; `check` says how that goes (the
/// card shows it, also once the button is gone).
#[component]
pub fn DoorButton(
    id: DropId,
    mode: SaleMode,
    action: ServerAction<JoinQueue>,
    label: &'static str,
    check: RwSignal<Check>,
) -> impl IntoView {
    let pending = action.pending();
    let busy = move || pending.get() || matches!(check.get(), Check::Solving(_));
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        #[cfg(feature = "hydrate")]
        if !busy() {
            browser::solve_then(proof_challenge(id), check, move |proof| {
                action.dispatch(JoinQueue {
                    drop_id: id,
                    mode,
                    proof,
                });
            });
        }
    };
    view! {
        <form method="post" action=JoinQueue::PATH on:submit=on_submit>
            <input type="hidden" name="drop_id" value=id.0.to_string() />
            <input type="hidden" name="mode" value=mode.as_str() />
            <button
                type="submit"
                class="btn btn-primary"
                disabled=busy
                aria-busy=move || busy().to_string()
            >
                {label}
            </button>
        </form>
    }
}

#[cfg(feature = "hydrate")]
pub mod browser {
    use std::time::Duration;

    use leptos::{prelude::*, task::spawn_local};
    use wasm_bindgen::{prelude::*, JsCast};
    use wasm_bindgen_futures::JsFuture;

    use super::Check;
    use crate::model::ApiError;

    /// Fetches a challenge (`None`: the shop asks no proof), solves it off the page's thread
    /// with the seconds shown in `check` as they pass, then hands the proof to `then`. A
    /// failure is said in `check`, and `then` is not called.
    pub fn solve_then(
        challenge: impl std::future::Future<Output = Result<Option<String>, ApiError>> + 'static,
        check: RwSignal<Check>,
        then: impl FnOnce(Option<String>) + 'static,
    ) {
        spawn_local(async move {
            let challenge = match challenge.await {
                Ok(challenge) => challenge,
                Err(error) => {
                    check.set(Check::Failed(error.message));
                    return;
                }
            };
            let proof = match challenge {
                None => None,
                Some(challenge) => {
                    let started = js_sys::Date::now();
                    let seconds = move || (js_sys::Date::now() - started) / 1000.0;
                    check.set(Check::Solving(0.0));
                    let ticking = set_interval_with_handle(
                        move || check.set(Check::Solving(seconds())),
                        Duration::from_millis(100),
                    )
                    .ok();
                    let solved = solve(&challenge).await;
                    if let Some(ticking) = ticking {
                        ticking.clear();
                    }
                    match solved {
                        Ok(proof) => {
                            check.set(Check::Solved(seconds()));
                            Some(proof)
                        }
                        Err(why) => {
                            check.set(Check::Failed(why));
                            return;
                        }
                    }
                }
            };
            then(proof);
        });
    }

    /// The value of the field `name` of the form a submit event came from.
    pub fn form_field(event: &leptos::ev::SubmitEvent, name: &str) -> String {
        event
            .target()
            .and_then(|target| target.dyn_into::<web_sys::HtmlFormElement>().ok())
            .and_then(|form| web_sys::FormData::new_with_form(&form).ok())
            .and_then(|data| data.get(name).as_string())
            .unwrap_or_default()
    }

    /// The proof of `challenge` (ALTCHA's JSON), solved by `/proof-worker.js`.
    async fn solve(challenge: &str) -> Result<String, String> {
        let worker = web_sys::Worker::new("/proof-worker.js")
            .map_err(|_| "this browser cannot run the check".to_string())?;
        let answer = js_sys::Promise::new(&mut |resolve, reject| {
            let reply = Closure::once_into_js(move |event: web_sys::MessageEvent| {
                let _ = resolve.call1(&JsValue::NULL, &event.data());
            });
            worker.set_onmessage(Some(reply.unchecked_ref()));
            let failed = Closure::once_into_js(move |event: web_sys::Event| {
                let _ = reject.call1(&JsValue::NULL, &event);
            });
            worker.set_onerror(Some(failed.unchecked_ref()));
        });
        let sent = worker.post_message(&JsValue::from_str(challenge));
        let answer = match sent {
            Ok(()) => JsFuture::from(answer).await,
            Err(error) => Err(error),
        };
        worker.terminate();
        let answer = answer.map_err(|_| "the check stopped; try again".to_string())?;
        let field = |name: &str| {
            js_sys::Reflect::get(&answer, &JsValue::from_str(name))
                .ok()
                .and_then(|value| value.as_string())
        };
        match (field("proof"), field("error")) {
            (Some(proof), _) => Ok(proof),
            (None, why) => Err(why.unwrap_or_else(|| "no answer".into())),
        }
    }
}

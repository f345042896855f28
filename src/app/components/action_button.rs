//! The one form every button of the page that writes is: the fields its server function
//! reads, an idempotency key, and a button that says when it is busy.

use leptos::{
    form::ActionForm,
    prelude::*,
    server_fn::{client::Client, codec::PostUrl, request::ClientReq, Http, ServerFn},
    web_sys::FormData,
};
use serde::de::DeserializeOwned;

/// A fresh idempotency key: 128 random bits as hex.
pub fn fresh_key() -> String {
    #[cfg(feature = "hydrate")]
    {
        (0..4)
            .map(|_| {
                format!(
                    "{:08x}",
                    (js_sys::Math::random() * f64::from(u32::MAX)) as u32
                )
            })
            .collect()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        format!("{:032x}", rand::random::<u128>())
    }
}

/// The idempotency key of an action's form, starting from `first` (rendered by the server, so
/// both sides render the same) and renewed in the browser each time the action completes: a
/// form sent twice (a double click, a retry after a lost answer, a reload of the post) acts
/// once and gets the first answer, and the next click acts again.
pub fn renewed_key<ServFn>(action: ServerAction<ServFn>, first: String) -> RwSignal<String>
where
    ServFn: ServerFn + Clone + Send + Sync + 'static,
    ServFn::Output: Send + Sync + 'static,
    ServFn::Error: Send + Sync + 'static,
{
    let key = RwSignal::new(first);
    // Effects run only in the browser, after hydration.
    Effect::new(move |seen: Option<usize>| {
        let done = action.version().get();
        if seen.is_some_and(|seen| seen != done) {
            key.set(fresh_key());
        }
        done
    });
    key
}

/// A button that runs `action` with `fields` (name, value) as its form, and `key` (see
/// [`renewed_key`]) as its `idempotency_key` when given; `children` are more of the form's
/// fields a buyer fills in (a size picker), before the button. The button is disabled while
/// the action is pending and whenever `disabled` says.
#[component]
pub fn ActionButton<ServFn, OutputProtocol>(
    action: ServerAction<ServFn>,
    fields: Vec<(&'static str, String)>,
    #[prop(optional)] key: Option<RwSignal<String>>,
    class: &'static str,
    #[prop(into)] label: Signal<String>,
    #[prop(optional, into)] disabled: Signal<bool>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView
where
    ServFn: DeserializeOwned
        + ServerFn<Protocol = Http<PostUrl, OutputProtocol>>
        + Clone
        + Send
        + Sync
        + 'static,
    <<ServFn::Client as Client<ServFn::Error>>::Request as ClientReq<ServFn::Error>>::FormData:
        From<FormData>,
    ServFn::Output: Send + Sync + 'static,
    ServFn::Error: Send + Sync + 'static,
    <ServFn as ServerFn>::Client: Client<<ServFn as ServerFn>::Error>,
{
    let pending = action.pending();
    view! {
        <ActionForm action>
            {fields
                .into_iter()
                .map(|(name, value)| view! { <input type="hidden" name=name value=value /> })
                .collect_view()}
            {key
                .map(|key| {
                    view! { <input type="hidden" name="idempotency_key" value=move || key.get() /> }
                })}
            {children.map(|children| children())}
            <button
                type="submit"
                class=class
                disabled=move || disabled.get() || pending.get()
                aria-busy=move || pending.get().to_string()
            >
                {move || label.get()}
            </button>
        </ActionForm>
    }
}

//! Dropline: limited-edition product drops with live stock, timed holds and no oversell.
//!
//! One crate, two faces: with `ssr` it is the server (axum + sqlx, in [`server`]); with
//! `hydrate` it is the browser app (WASM), entered through [`hydrate`].

// A card's view type is deep; the compiler needs room to lay it out.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod live;
pub mod model;
#[cfg(feature = "ssr")]
pub mod server;

/// The browser entry point. The page is server-rendered HTML; Leptos's loader calls this, then
/// wakes each island (`#[island]`) where it stands. The tab's live store and toast queue are
/// made first, under the root owner, so every island shares them. Once every island is awake
/// the live feed opens, and the page says it is ready (`<body data-hydrated>`).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
    let store = live::LiveStore::get();
    app::components::toasts::ToastQueue::get();
    // The islands wake in the microtasks after this returns; a timer runs after all of them.
    gloo_timers::callback::Timeout::new(0, move || {
        live::browser::start(store);
        if let Some(body) = leptos::prelude::document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    })
    .forget();
}

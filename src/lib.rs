//! Dropline: limited-edition product drops with live stock, timed holds and no oversell.
//!
//! One crate, two faces: with `ssr` it is the server (axum + sqlx, in [`server`]); with
//! `hydrate` it is the browser app (WASM), entered through [`hydrate`].

pub mod api;
pub mod app;
pub mod live;
pub mod model;
#[cfg(feature = "ssr")]
pub mod server;

/// The browser entry point: attaches the app to the server-rendered HTML.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}

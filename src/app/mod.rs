//! The UI: the HTML shell, the router and the pages.

mod components;
mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

use self::{components::toasts::Toasts, pages::home::HomePage};
use crate::live::LiveStore;

/// The document around the app: head, hydration scripts, body.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="description" content="Limited-edition drops with live stock." />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The application root: metadata, toasts and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let toasts = components::toasts::provide_toasts();
    let live = LiveStore::provide();
    // Effects run only in the browser, once the WASM has taken over the page.
    Effect::new(move |_| {
        live.connect();
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/dropline.css" />
        <Title text="Dropline" />
        <Router>
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    // Async: the page is sent once its data is read, so the HTML is complete
                    // without JavaScript (no streamed fragments to swap in).
                    <Route path=path!("/") view=HomePage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
        <Toasts toasts />
    }
}

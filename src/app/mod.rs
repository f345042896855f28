//! The UI: the HTML shell, the router and the pages.

pub(crate) mod components;
mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

use self::{components::toasts::ToastQueue, pages::home::HomePage};
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
                <HashedStylesheet options=options.clone() id="leptos" />
                <AutoReload options=options.clone() />
                // Only the islands hydrate; the rest of the page stays server-rendered HTML.
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The application root, rendered on the server only: the page's live store and toast queue
/// (the islands read them while rendering), metadata and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    LiveStore::provide();
    ToastQueue::provide();
    view! {
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
    }
}

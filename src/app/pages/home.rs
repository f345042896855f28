//! The dashboard: every drop with its stock, and the buyer's session.

use leptos::prelude::*;

use crate::{
    api::{current_user, list_drops, ReserveUnit, SignIn, SignOut},
    app::components::{
        drop_card::DropCard,
        session::SessionBar,
        toasts::{use_toasts, ToastKind},
    },
};

/// `/`: the drop dashboard.
#[component]
pub fn HomePage() -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let reserve = ServerAction::<ReserveUnit>::new();
    let user = Resource::new(
        move || (sign_in.version().get(), sign_out.version().get()),
        |_| current_user(),
    );
    let drops = Resource::new(move || reserve.version().get(), |_| list_drops());

    let toasts = use_toasts();
    Effect::new(move |_| match sign_in.value().get() {
        Some(Ok(user)) => toasts.push(ToastKind::Success, format!("Welcome, {}.", user.name)),
        Some(Err(e)) => toasts.push(ToastKind::Error, e.message),
        None => {}
    });
    Effect::new(move |_| match reserve.value().get() {
        Some(Ok(_)) => toasts.push(
            ToastKind::Success,
            "Reserved. It is yours until the timer runs out.",
        ),
        Some(Err(e)) => toasts.push(ToastKind::Error, e.message),
        None => {}
    });

    view! {
        <header class="topbar">
            <a class="brand" href="/">"Dropline"</a>
            <SessionBar user sign_in sign_out />
        </header>
        <section class="hero">
            <h1>"Live drops"</h1>
            <p>"Reserve a pair and it is held for you while the timer runs. Stock moves live."</p>
        </section>
        <Transition fallback=|| view! { <p class="empty">"Loading drops…"</p> }>
            {move || Suspend::new(async move {
                match drops.await {
                    Ok(list) if list.is_empty() => {
                        view! { <p class="empty">"No drops yet."</p> }.into_any()
                    }
                    Ok(list) => {
                        view! {
                            <div class="grid">
                                {list
                                    .into_iter()
                                    .map(|drop| view! { <DropCard drop reserve /> })
                                    .collect_view()}
                            </div>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="empty error">{e.message}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

//! The dashboard: every drop with live stock, the buyer's holds and session, and the admin's
//! create-drop panel.

use leptos::{prelude::*, server_fn::ServerFn};

use crate::{
    api::{
        current_user, list_drops, my_reservations, CancelHold, CreateDrop, PurchaseHold,
        ReserveUnit, SignIn, SignOut,
    },
    app::components::{
        create_drop::CreateDropPanel,
        drop_card::DropCard,
        session::{ConnectionBadge, SessionBar},
        toasts::{use_toasts, ToastKind},
    },
    live::LiveStore,
    model::{ApiError, ReservationStatus},
};

/// The page's mutations, shared with the cards through context.
#[derive(Clone, Copy)]
pub struct Actions {
    pub sign_in: ServerAction<SignIn>,
    pub sign_out: ServerAction<SignOut>,
    pub reserve: ServerAction<ReserveUnit>,
    pub purchase: ServerAction<PurchaseHold>,
    pub cancel: ServerAction<CancelHold>,
    pub create: ServerAction<CreateDrop>,
}

/// Shows a toast for each finished action: `ok` words on success, the refusal otherwise.
fn toast_outcome<S>(action: ServerAction<S>, ok: impl Fn(&S::Output) -> String + 'static)
where
    S: ServerFn<Error = ApiError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let toasts = use_toasts();
    // Without JavaScript a refused form post comes back as a page whose action already holds
    // the error: show it while rendering, so the server's HTML carries the toast too.
    if let Some(Err(e)) = action.value().get_untracked() {
        toasts.push(ToastKind::Error, e.message);
    }
    Effect::new(move |first: Option<()>| {
        let outcome = action.value().get();
        if first.is_none() {
            return; // Already shown above.
        }
        match outcome {
            Some(Ok(done)) => toasts.push(ToastKind::Success, ok(&done)),
            Some(Err(e)) => toasts.push(ToastKind::Error, e.message),
            None => {}
        }
    });
}

/// `/`: the drop dashboard.
#[component]
pub fn HomePage() -> impl IntoView {
    let live = LiveStore::use_context();
    let actions = Actions {
        sign_in: ServerAction::new(),
        sign_out: ServerAction::new(),
        reserve: ServerAction::new(),
        purchase: ServerAction::new(),
        cancel: ServerAction::new(),
        create: ServerAction::new(),
    };
    provide_context(actions);

    let user = Resource::new(
        move || {
            (
                actions.sign_in.version().get(),
                actions.sign_out.version().get(),
            )
        },
        |_| current_user(),
    );
    let drops = Resource::new(|| (), |_| list_drops());
    let holds = Resource::new(
        move || {
            (
                actions.sign_in.version().get(),
                actions.sign_out.version().get(),
                actions.reserve.version().get(),
                actions.purchase.version().get(),
                actions.cancel.version().get(),
                live.private_changes(),
            )
        },
        |_| my_reservations(),
    );

    toast_outcome(actions.sign_in, |user| format!("Welcome, {}.", user.name));
    toast_outcome(actions.sign_out, |_| "Signed out.".into());
    toast_outcome(actions.reserve, |_| {
        "Reserved. It is yours until the timer runs out.".into()
    });
    toast_outcome(actions.purchase, |_| "Purchased. Enjoy your pair!".into());
    toast_outcome(actions.cancel, |_| {
        "Hold cancelled; the unit is back on sale.".into()
    });
    // A new session means new owner-only events: reopen the live feed under it.
    Effect::new(move |_| {
        let signed_in = actions.sign_in.version().get();
        let signed_out = actions.sign_out.version().get();
        if signed_in + signed_out > 0 {
            live.reconnect();
        }
    });

    view! {
        <header class="topbar">
            <a class="brand" href="/">"Dropline"</a>
            <ConnectionBadge />
            <SessionBar user />
        </header>
        <section class="hero">
            <h1>"Live drops"</h1>
            <p>
                "Reserve a pair and it is held for you while the timer runs. Stock moves live on every screen."
            </p>
        </section>
        <Transition fallback=|| view! { <p class="empty">"Loading drops…"</p> }>
            {move || Suspend::new(async move {
                let rendered = match drops.await {
                    Ok(list) => list,
                    Err(e) => return view! { <p class="empty error">{e.message}</p> }.into_any(),
                };
                let holds = StoredValue::new(holds.await.unwrap_or_default());
                let all = Memo::new(move |_| live.with_created(&rendered));
                view! {
                    <Show
                        when=move || all.with(|a| !a.is_empty())
                        fallback=|| view! { <p class="empty">"No drops yet."</p> }
                    >
                        <div class="grid">
                            <For each=move || all.get() key=|d| d.id let:drop>
                                {
                                    let hold = holds
                                        .with_value(|list| {
                                            list.iter()
                                                .find(|h| {
                                                    h.drop_id == drop.id
                                                        && h.status == ReservationStatus::Active
                                                })
                                                .cloned()
                                        });
                                    view! { <DropCard drop hold /> }
                                }
                            </For>
                        </div>
                    </Show>
                }
                    .into_any()
            })}
        </Transition>
        <CreateDropPanel />
    }
}

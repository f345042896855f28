//! One drop: picture, price, live stock, the hold controls and the activity feed.

use leptos::{form::ActionForm, prelude::*};

use super::{
    countdown::{format_remaining, Countdown},
    format_price,
};
use crate::{
    app::pages::home::Actions,
    live::LiveStore,
    model::{DropId, ProductDrop, Purchaser, Reservation},
};

/// A drop on the dashboard. `hold` is the viewer's live hold on it, if any.
#[component]
pub fn DropCard(drop: ProductDrop, hold: Option<Reservation>) -> impl IntoView {
    let live = LiveStore::use_context();
    let actions = expect_context::<Actions>();
    let id = drop.id;
    let stock = {
        let drop = drop.clone();
        Memo::new(move |_| live.stock(&drop))
    };
    let recent = {
        let drop = drop.clone();
        Memo::new(move |_| live.activity(&drop))
    };
    let sold_out = move || stock.get().available <= 0;
    let expires_ms = hold.as_ref().map(|h| h.expires_at.timestamp_millis());
    // Held until the countdown reaches zero; then the card turns back by itself.
    let held = Memo::new(move |_| expires_ms.is_some_and(|ms| ms > live.now_ms()));
    let image = if drop.image.is_empty() {
        "/images/placeholder.svg".to_string()
    } else {
        drop.image.clone()
    };
    let hold_id = hold.as_ref().map(|h| h.id).unwrap_or_default();
    // Seconds until the drop goes live (0 once it has): the button opens by itself.
    let starts_ms = drop.starts_at.timestamp_millis();
    let opens_in = Memo::new(move |_| ((starts_ms - live.now_ms()).max(0) + 999) / 1000);

    view! {
        <article
            class="card"
            class:sold-out=sold_out
            class:held=move || held.get()
            data-drop-id=id.0
            aria-label=drop.name.clone()
        >
            <img class="card-image" src=image alt="" width="480" height="360" />
            <div class="card-body">
                <h2 class="card-title">{drop.name.clone()}</h2>
                <p class="card-description">{drop.description.clone()}</p>
                <p class="card-price">{format_price(drop.price_cents)}</p>
                <div class="stock">
                    <div
                        class="stock-bar"
                        role="progressbar"
                        aria-label="Stock left"
                        aria-valuemin="0"
                        aria-valuemax=move || stock.get().total
                        aria-valuenow=move || stock.get().available
                    >
                        <span style=move || {
                            let s = stock.get();
                            format!("width: {}%", s.available * 100 / s.total.max(1))
                        }></span>
                    </div>
                    <p class="stock-label" data-testid="stock">
                        <span class="stock-left">{move || stock.get().available}</span>
                        " of "
                        <span class="stock-total">{move || stock.get().total}</span>
                        " left"
                    </p>
                </div>
                <Show
                    when=move || held.get()
                    fallback=move || {
                        view! {
                            <ReserveForm id sold_out=Signal::derive(sold_out) opens_in=opens_in.into() />
                        }
                    }
                >
                    <div class="hold">
                        <Countdown expires_ms=expires_ms.unwrap_or_default() />
                        <div class="hold-actions">
                            <ActionForm action=actions.purchase>
                                <input type="hidden" name="reservation_id" value=hold_id.0 />
                                <button
                                    type="submit"
                                    class="btn btn-primary"
                                    disabled=move || actions.purchase.pending().get()
                                >
                                    "Purchase"
                                </button>
                            </ActionForm>
                            <ActionForm action=actions.cancel>
                                <input type="hidden" name="reservation_id" value=hold_id.0 />
                                <button
                                    type="submit"
                                    class="btn btn-ghost"
                                    disabled=move || actions.cancel.pending().get()
                                >
                                    "Cancel"
                                </button>
                            </ActionForm>
                        </div>
                    </div>
                </Show>
                <ActivityFeed recent=recent.into() />
            </div>
        </article>
    }
    // Erase the (deep) view type: it keeps release builds within the compiler's type limits.
    .into_any()
}

/// The Reserve button; pending while this card's request is in flight, so it cannot double-submit,
/// and closed with a countdown until the drop goes live.
#[component]
fn ReserveForm(id: DropId, sold_out: Signal<bool>, opens_in: Signal<i64>) -> impl IntoView {
    let reserve = expect_context::<Actions>().reserve;
    let not_open = move || opens_in.get() > 0;
    let pending = move || {
        reserve.pending().get()
            && reserve
                .input()
                .with(|i| i.as_ref().is_some_and(|i| i.drop_id == id))
    };
    view! {
        <ActionForm action=reserve>
            <input type="hidden" name="drop_id" value=id.0 />
            <button
                type="submit"
                class="btn btn-primary"
                disabled=move || sold_out.get() || not_open() || reserve.pending().get()
                aria-busy=move || pending().to_string()
            >
                {move || {
                    if sold_out.get() {
                        "Sold out".to_string()
                    } else if not_open() {
                        format!("Opens in {}", format_remaining(opens_in.get()))
                    } else if pending() {
                        "Reserving…".to_string()
                    } else {
                        "Reserve".to_string()
                    }
                }}
            </button>
        </ActionForm>
    }
}

/// The drop's most recent buyers, newest first.
#[component]
pub fn ActivityFeed(recent: Signal<Vec<Purchaser>>) -> impl IntoView {
    view! {
        <section class="activity" aria-label="Recent buyers" aria-live="polite">
            <h3>"Recent buyers"</h3>
            <Show
                when=move || recent.with(|r| !r.is_empty())
                fallback=|| view! { <p class="activity-empty">"No purchases yet."</p> }
            >
                <ol class="activity-list" data-testid="activity">
                    {move || {
                        recent.get().into_iter().map(|p| view! { <li>{p.name}</li> }).collect_view()
                    }}
                </ol>
            </Show>
        </section>
    }
}

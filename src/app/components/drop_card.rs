//! One drop: picture, price, stock left, the Reserve button and its activity feed.

use leptos::{form::ActionForm, prelude::*};

use super::format_price;
use crate::{
    api::ReserveUnit,
    model::{ProductDrop, Purchaser},
};

/// A drop on the dashboard.
#[component]
pub fn DropCard(drop: ProductDrop, reserve: ServerAction<ReserveUnit>) -> impl IntoView {
    let percent_left = if drop.total_stock > 0 {
        drop.available_stock * 100 / drop.total_stock
    } else {
        0
    };
    let sold_out = drop.sold_out();
    let image = if drop.image.is_empty() {
        "/images/placeholder.svg".to_string()
    } else {
        drop.image.clone()
    };
    view! {
        <article class="card" class:sold-out=sold_out data-drop-id=drop.id>
            <img class="card-image" src=image alt=drop.name.clone() width="480" height="360" />
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
                        aria-valuemax=drop.total_stock
                        aria-valuenow=drop.available_stock
                    >
                        <span style=format!("width: {percent_left}%")></span>
                    </div>
                    <p class="stock-label">
                        <span class="stock-left">{drop.available_stock}</span>
                        " of "
                        <span class="stock-total">{drop.total_stock}</span>
                        " left"
                    </p>
                </div>
                <ActionForm action=reserve>
                    <input type="hidden" name="drop_id" value=drop.id />
                    <button
                        type="submit"
                        class="btn btn-primary"
                        disabled=move || sold_out || reserve.pending().get()
                    >
                        {if sold_out { "Sold out" } else { "Reserve" }}
                    </button>
                </ActionForm>
                <ActivityFeed recent=drop.recent_purchasers />
            </div>
        </article>
    }
}

/// The drop's most recent buyers, newest first.
#[component]
pub fn ActivityFeed(recent: Vec<Purchaser>) -> impl IntoView {
    view! {
        <section class="activity" aria-label="Recent buyers">
            <h3>"Recent buyers"</h3>
            {if recent.is_empty() {
                view! { <p class="activity-empty">"No purchases yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="activity-list">
                        {recent
                            .into_iter()
                            .map(|p| view! { <li>{p.name}</li> })
                            .collect_view()}
                    </ol>
                }
                    .into_any()
            }}
        </section>
    }
}

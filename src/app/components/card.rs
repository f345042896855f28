//! One drop: picture, price, live stock, the hold controls and the activity feed — an island,
//! since nearly all of it moves. Drops created after the page was rendered appear through the
//! `NewDrops` island, with the same card.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    action_button::{fresh_key, renewed_key, ActionButton},
    countdown::{format_remaining, Countdown},
    format_price,
    queue::{QueueData, QueuePanel, Standing},
    toasts::{ToastKind, ToastQueue},
};
use crate::{
    api::{CancelHold, JoinQueue, LeaveQueue, PurchaseHold, ReserveUnit},
    live::{HoldView, LiveStore, Stock},
    model::{ApiError, DropId, DropSize, ErrorCode, ProductDrop, SaleMode, Ticket},
};

/// Everything a card shows, as the server rendered it (an island's props: plain data, times
/// as milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardData {
    pub id: DropId,
    pub name: String,
    pub description: String,
    /// Path of the product image, or empty.
    pub image: String,
    pub price_cents: i64,
    pub stock: Stock,
    /// A drop of several sizes: each with its stock (a buyer picks one); empty for one size.
    pub sizes: Vec<DropSize>,
    /// When reserving opens, in milliseconds since the epoch.
    pub starts_ms: i64,
    /// The newest buyers' names, newest first.
    pub recent: Vec<String>,
    /// The viewer's live hold on the drop.
    pub hold: Option<HoldView>,
    /// Idempotency keys of the Reserve and Purchase forms.
    pub reserve_key: String,
    pub purchase_key: String,
    /// A drop sold through a queue or by draw: the line and the viewer's place in it.
    pub queue: Option<QueueData>,
}

impl CardData {
    /// A drop's card for a viewer with this hold on it and this ticket in its queue.
    pub fn new(drop: &ProductDrop, hold: Option<HoldView>, ticket: Option<Ticket>) -> Self {
        Self {
            id: drop.id,
            name: drop.name.clone(),
            description: drop.description.clone(),
            image: drop.image.clone(),
            price_cents: drop.price_cents,
            stock: Stock::of(drop),
            sizes: if drop.sized() {
                drop.sizes.clone()
            } else {
                Vec::new()
            },
            starts_ms: drop.starts_at.timestamp_millis(),
            recent: drop
                .recent_purchasers
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            hold,
            reserve_key: fresh_key(),
            purchase_key: fresh_key(),
            queue: (drop.sale_mode != SaleMode::FirstCome).then(|| QueueData {
                line: drop.queue.unwrap_or_default(),
                ticket,
                opens_ms: drop
                    .queue_opens_at
                    .or(drop.entries_open_at)
                    .map(|at| at.timestamp_millis()),
                seed_sha256: drop.seed_sha256.clone().unwrap_or_default(),
                beacon_round: drop.beacon_round,
                mode: drop.sale_mode,
            }),
        }
    }
}

/// A drop's card, hydrated on its own.
#[island]
pub fn Card(data: CardData) -> impl IntoView {
    view! { <CardView data /> }
}

/// The drops created since the page was rendered (`rendered` are the ones it shows), as cards,
/// and "No drops yet." while there are none at all.
#[island]
pub fn NewDrops(rendered: Vec<DropId>) -> impl IntoView {
    let live = LiveStore::get();
    let created = {
        let rendered = rendered.clone();
        Memo::new(move |_| live.created_since(&rendered))
    };
    let none = move || rendered.is_empty() && created.with(Vec::is_empty);
    view! {
        <Show when=none>
            <p class="empty">"No drops yet."</p>
        </Show>
        <For each=move || created.get() key=|drop| drop.id let:drop>
            <CardView data=CardData::new(&drop, None, None) />
        </For>
    }
}

/// A card's markup and behaviour. It renders first from `data` (what the server rendered, so
/// hydration matches), then follows the live store.
#[component]
fn CardView(data: CardData) -> impl IntoView {
    let live = LiveStore::get();
    let toasts = ToastQueue::get();
    let CardData {
        id,
        name,
        description,
        image,
        price_cents,
        stock: rendered_stock,
        sizes: rendered_sizes,
        starts_ms,
        recent,
        hold: rendered_hold,
        reserve_key,
        purchase_key,
        queue,
    } = data;
    let stock = Memo::new(move |_| live.stock(id, rendered_stock));
    let sized = !rendered_sizes.is_empty();
    let sizes = Memo::new(move |_| live.sizes(id, &rendered_sizes));
    let sold_out = Signal::derive(move || stock.get().available <= 0);
    // The viewer's hold: as rendered, then as the feed and this card's own actions say.
    let hold = RwSignal::new(rendered_hold);
    Effect::new(move |_| {
        if let Some(known) = live.hold(id) {
            hold.set(known);
        }
    });
    // Held until the countdown reaches zero; then the card turns back by itself. The clock
    // moves it only after hydration, so both sides render the hold as the server saw it.
    let expired = RwSignal::new(false);
    Effect::new(move |_| {
        let ran_out = hold.with(|h| h.as_ref().is_some_and(|h| live.now_ms() >= h.expires_ms));
        if expired.get_untracked() != ran_out {
            expired.set(ran_out);
        }
    });
    let held = Memo::new(move |_| hold.with(Option::is_some) && !expired.get());

    // A queue or draw drop: where the viewer stands, as rendered, then as the feed says.
    let join = ServerAction::<JoinQueue>::new();
    let leave = ServerAction::<LeaveQueue>::new();
    let queued = queue.is_some();
    let (line, ticket, opens_ms, seed_sha256, beacon_round, mode) = match queue {
        Some(q) => (
            q.line,
            q.ticket,
            q.opens_ms,
            Some(q.seed_sha256),
            q.beacon_round,
            q.mode,
        ),
        None => Default::default(),
    };
    let ticket = RwSignal::new(ticket);
    Effect::new(move |_| {
        if let Some(known) = live.ticket(id) {
            ticket.set(known);
        }
    });
    let line = Memo::new(move |_| live.line(id).unwrap_or(line));
    let total = rendered_stock.total;
    let standing = Memo::new(move |_| {
        let line = line.get();
        let now = live.now_ms();
        ticket.with(|t| match mode {
            SaleMode::Draw => {
                let hold_ms = hold.with(|h| h.as_ref().map(|h| h.expires_ms));
                Standing::of_draw(&line, t.as_ref(), opens_ms, starts_ms, now, total, hold_ms)
            }
            _ => Standing::of(&line, t.as_ref(), opens_ms, starts_ms, now),
        })
    });
    for action in [QueueMove::Join(join), QueueMove::Leave(leave)] {
        Effect::new(move |_| {
            let Some(outcome) = action.outcome() else {
                return;
            };
            match outcome {
                Ok(now) => live.set_ticket(id, Some(now)),
                Err(error) => toasts.push(ToastKind::Error, error.message),
            }
        });
    }
    // A queue drop takes a reserve only from a buyer whose turn it is; a draw takes none.
    let may_reserve =
        Memo::new(move |_| !queued || matches!(standing.get(), Standing::Admitted { .. }));

    let reserve = ServerAction::<ReserveUnit>::new();
    let purchase = ServerAction::<PurchaseHold>::new();
    let cancel = ServerAction::<CancelHold>::new();
    let reserve_key = renewed_key(reserve, reserve_key);
    let purchase_key = renewed_key(purchase, purchase_key);
    Effect::new(move |_| {
        let Some(outcome) = reserve.value().get() else {
            return;
        };
        toasts.outcome(&outcome, |_| {
            "Reserved. It is yours until the timer runs out.".into()
        });
        if let Ok(held) = &outcome {
            live.set_hold(id, Some(HoldView::from(held)));
        }
    });
    for (action, done) in [
        (
            FinishedHold::Purchase(purchase),
            "Purchased. Enjoy your pair!",
        ),
        (
            FinishedHold::Cancel(cancel),
            "Hold cancelled; the unit is given back.",
        ),
    ] {
        Effect::new(move |_| {
            let Some(outcome) = action.outcome() else {
                return;
            };
            toasts.outcome(&outcome, |_| done.into());
            if hold_is_over(&outcome) {
                live.set_hold(id, None);
            }
        });
    }

    // Seconds until the drop opens (0 once it has): the button opens by itself.
    let opens_in = Memo::new(move |_| ((starts_ms - live.now_ms()).max(0) + 999) / 1000);
    let reserve_label = Signal::derive(move || {
        if sold_out.get() {
            "Sold out".to_string()
        } else if opens_in.get() > 0 {
            format!("Opens in {}", format_remaining(opens_in.get()))
        } else if reserve.pending().get() {
            "Reserving…".to_string()
        } else {
            "Reserve".to_string()
        }
    });
    let label = name.clone();
    let image = if image.is_empty() {
        "/images/placeholder.svg".to_string()
    } else {
        image
    };

    view! {
        <article
            class="card"
            class:sold-out=move || sold_out.get()
            class:held=move || held.get()
            data-drop-id=id.0
            aria-label=label
        >
            <img class="card-image" src=image alt="" width="480" height="360" />
            <div class="card-body">
                <h2 class="card-title">{name}</h2>
                <p class="card-description">{description}</p>
                <p class="card-price">{format_price(price_cents)}</p>
                <StockBar stock=stock.into() />
                {sized.then(|| view! { <SizesLeft sizes=sizes.into() /> })}
                <Show
                    when=move || held.get()
                    fallback=move || {
                        view! {
                            <Show when=move || may_reserve.get()>
                                <ActionButton
                                    action=reserve
                                    fields=vec![("drop_id", id.0.to_string())]
                                    key=reserve_key
                                    class="btn btn-primary"
                                    label=reserve_label
                                    disabled=Signal::derive(move || {
                                        sold_out.get() || opens_in.get() > 0
                                    })
                                >
                                    {sized.then(|| view! { <SizePicker sizes=sizes.into() /> })}
                                </ActionButton>
                            </Show>
                        }
                    }
                >
                    {move || {
                        hold.get()
                            .map(|hold| {
                                let fields = vec![("reservation_id", hold.id.0.to_string())];
                                let size = sized.then(|| {
                                    view! {
                                        <p class="hold-size">
                                            "Size " <strong data-testid="held-size">{hold.size}</strong>
                                        </p>
                                    }
                                });
                                view! {
                                    <div class="hold">
                                        {size}
                                        <Countdown expires_ms=hold.expires_ms />
                                        <div class="hold-actions">
                                            <ActionButton
                                                action=purchase
                                                fields=fields.clone()
                                                key=purchase_key
                                                class="btn btn-primary"
                                                label="Purchase".to_string()
                                            />
                                            <ActionButton
                                                action=cancel
                                                fields
                                                class="btn btn-ghost"
                                                label="Cancel".to_string()
                                            />
                                        </div>
                                    </div>
                                }
                            })
                    }}
                </Show>
                {seed_sha256
                    .map(|seed_sha256| {
                        let revealed = Signal::derive(move || line.get().live);
                        view! {
                            <QueuePanel
                                id
                                standing
                                revealed
                                join
                                leave
                                seed_sha256
                                beacon_round
                                ticket
                                mode
                            />
                        }
                    })}
                <ActivityFeed id recent />
            </div>
        </article>
    }
}

/// The two actions that end a hold, so one effect shows what became of either.
#[derive(Clone, Copy)]
enum FinishedHold {
    Purchase(ServerAction<PurchaseHold>),
    Cancel(ServerAction<CancelHold>),
}

impl FinishedHold {
    /// The latest outcome, with the success's details dropped.
    fn outcome(self) -> Option<Result<(), ApiError>> {
        match self {
            Self::Purchase(action) => action.value().get().map(|o| o.map(|_| ())),
            Self::Cancel(action) => action.value().get().map(|o| o.map(|_| ())),
        }
    }
}

/// The two actions that move the viewer in or out of a queue, so one effect shows either.
#[derive(Clone, Copy)]
enum QueueMove {
    Join(ServerAction<JoinQueue>),
    Leave(ServerAction<LeaveQueue>),
}

impl QueueMove {
    /// The latest outcome: the viewer's ticket as it now stands.
    fn outcome(self) -> Option<Result<Ticket, ApiError>> {
        match self {
            Self::Join(action) => action.value().get(),
            Self::Leave(action) => action.value().get(),
        }
    }
}

/// True when, after this outcome of a purchase or cancel, the viewer holds nothing.
fn hold_is_over(outcome: &Result<(), ApiError>) -> bool {
    match outcome {
        Ok(()) => true,
        Err(error) => matches!(
            error.code,
            ErrorCode::ReservationExpired
                | ErrorCode::ReservationNotActive
                | ErrorCode::ReservationNotFound
        ),
    }
}

/// "N of M left", and a bar.
#[component]
fn StockBar(stock: Signal<Stock>) -> impl IntoView {
    view! {
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
    }
}

/// How many sizes are left, and the moment one sells out, which ("US 9 is sold out; 3 sizes
/// left"): what a buyer waiting in a queue or watching the card needs to hear at once. A
/// polite live region, so a screen reader says it too.
#[component]
fn SizesLeft(sizes: Signal<Vec<DropSize>>) -> impl IntoView {
    let news = RwSignal::new(None::<String>);
    // Effects run only after hydration: the first render is the count, on both sides.
    Effect::new(move |before: Option<Vec<i64>>| {
        let now: Vec<i64> = sizes.with(|all| all.iter().map(|s| s.available_stock).collect());
        if let Some(before) = before {
            let left = now.iter().filter(|&&n| n > 0).count();
            let gone = sizes.with(|all| {
                all.iter()
                    .zip(&before)
                    .rev()
                    .find(|(size, &was)| was > 0 && size.available_stock <= 0)
                    .map(|(size, _)| size.label.clone())
            });
            let back = now.iter().zip(&before).any(|(&n, &was)| was <= 0 && n > 0);
            if back {
                news.set(None);
            } else if let Some(label) = gone {
                news.set(Some(match left {
                    0 => format!("{label} is sold out; no sizes left"),
                    1 => format!("{label} is sold out; 1 size left"),
                    n => format!("{label} is sold out; {n} sizes left"),
                }));
            }
        }
        now
    });
    let count = move || {
        sizes.with(|all| {
            let left = all.iter().filter(|s| s.available_stock > 0).count();
            format!("{left} of {} sizes left", all.len())
        })
    };
    view! {
        <p class="sizes-left" role="status" data-testid="sizes-left">
            {move || news.get().unwrap_or_else(count)}
        </p>
    }
}

/// The sizes of a drop as radio buttons of the reserve form (`size`): each with its stock
/// live, a sold-out one disabled but shown. A native radio group, so arrow keys move through
/// it and a screen reader reads "EU 42, 3 left" as one choice; `required`, so a reserve
/// without a size is stopped before it is sent, also without JavaScript. A picked size that
/// sells out is unpicked (a disabled radio would not be sent, and the buyer would be told to
/// choose a size instead of that it sold out).
#[component]
fn SizePicker(sizes: Signal<Vec<DropSize>>) -> impl IntoView {
    let labels: Vec<String> =
        sizes.with_untracked(|all| all.iter().map(|s| s.label.clone()).collect());
    let picked = RwSignal::new(None::<usize>);
    view! {
        <fieldset class="sizes">
            <legend>"Size"</legend>
            {labels
                .into_iter()
                .enumerate()
                .map(|(at, label)| {
                    let left = move || sizes.with(|all| all.get(at).map_or(0, |s| s.available_stock));
                    view! {
                        <label class="size" class:size-out=move || left() <= 0>
                            <input
                                type="radio"
                                name="size"
                                value=label.clone()
                                required=true
                                disabled=move || left() <= 0
                                prop:checked=move || picked.get() == Some(at) && 0 < left()
                                on:change=move |_| picked.set(Some(at))
                            />
                            <span class="size-label">{label}</span>
                            <span class="size-left">
                                {move || match left() {
                                    0 => "sold out".to_string(),
                                    n => format!("{n} left"),
                                }}
                            </span>
                        </label>
                    }
                })
                .collect_view()}
        </fieldset>
    }
}

/// The drop's most recent buyers, newest first: as rendered, then as the feed says.
#[component]
fn ActivityFeed(id: DropId, recent: Vec<String>) -> impl IntoView {
    let live = LiveStore::get();
    let names = RwSignal::new(recent);
    Effect::new(move |_| {
        if let Some(buyers) = live.activity(id) {
            names.set(buyers.into_iter().map(|p| p.name).collect());
        }
    });
    view! {
        <section class="activity" aria-label="Recent buyers" aria-live="polite">
            <h3>"Recent buyers"</h3>
            <Show
                when=move || names.with(|n| !n.is_empty())
                fallback=|| view! { <p class="activity-empty">"No purchases yet."</p> }
            >
                <ol class="activity-list" data-testid="activity">
                    {move || {
                        names.get().into_iter().map(|name| view! { <li>{name}</li> }).collect_view()
                    }}
                </ol>
            </Show>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purchase_or_cancel_ends_the_hold_unless_it_failed_otherwise() {
        assert!(hold_is_over(&Ok(())));
        assert!(hold_is_over(&Err(ApiError::refusal(
            ErrorCode::ReservationExpired
        ))));
        assert!(!hold_is_over(&Err(ApiError::refusal(
            ErrorCode::Unavailable
        ))));
    }
}

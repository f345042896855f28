//! The dashboard: every drop with live stock, the buyer's holds and session, and the admin's
//! create-drop panel. It is rendered on the server with the data in hand; the parts that move
//! are islands (see `components`), each given what it shows as props.

use leptos::{
    prelude::*,
    server::ServerActionError,
    server_fn::{error::ServerFnUrlError, ServerFn},
};
use serde::{Deserialize, Serialize};

use crate::{
    api::{current_user, list_drops, my_reservations, my_tickets, ways_to_sign_in, CreateDrop},
    app::components::{
        action_button::fresh_key,
        card::{Card, CardData, NewDrops},
        create_drop::CreateDropPanel,
        session::{ConnectionBadge, SessionBar},
        toasts::Toasts,
    },
    live::HoldView,
    model::{
        ApiError, DropId, ProductDrop, Reservation, ReservationStatus, SignInWays, Ticket, User,
    },
};

/// What the page shows, read in one go.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Page {
    user: Option<User>,
    /// How this server signs buyers in besides a password.
    ways: SignInWays,
    drops: Result<Vec<ProductDrop>, ApiError>,
    holds: Vec<Reservation>,
    tickets: Vec<(DropId, Ticket)>,
}

/// `/`: the drop dashboard.
#[component]
pub fn HomePage() -> impl IntoView {
    let page = Resource::new(
        || (),
        |_| async {
            Page {
                user: current_user().await.ok().flatten(),
                ways: ways_to_sign_in().await.unwrap_or_default(),
                drops: list_drops().await,
                holds: my_reservations().await.unwrap_or_default(),
                tickets: my_tickets().await.unwrap_or_default(),
            }
        },
    );
    view! {
        <Suspense fallback=|| view! { <p class="empty">"Loading drops…"</p> }>
            {move || Suspend::new(async move {
                let Page {
                    user,
                    ways,
                    drops,
                    holds,
                    tickets,
                } = page.await;
                let refused = refusal();
                let (panel_refusal, toasts) = match refused {
                    Some((path, error)) if path == CreateDrop::PATH && error.field.is_some() => {
                        (Some(error), Vec::new())
                    }
                    Some((_, error)) => (None, vec![error.message]),
                    None => (None, Vec::new()),
                };
                view! {
                    <TopBar user ways />
                    <Hero />
                    <DropGrid drops holds tickets />
                    <CreateDropPanel key=fresh_key() refused=panel_refusal />
                    <Toasts initial=toasts />
                }
            })}
        </Suspense>
    }
}

/// The refusal a form sent without JavaScript came back with (the server function's redirect
/// carries it in the address), and the path of the server function that refused.
fn refusal() -> Option<(String, ApiError)> {
    let refused = use_context::<ServerActionError>()?;
    let error = ServerFnUrlError::<ApiError>::decode_err(refused.err());
    Some((refused.path().to_string(), error))
}

/// The brand, the connection indicator and the session corner.
#[component]
fn TopBar(user: Option<User>, ways: SignInWays) -> impl IntoView {
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                "Dropline"
            </a>
            <ConnectionBadge />
            <SessionBar user ways />
        </header>
    }
}

#[component]
fn Hero() -> impl IntoView {
    view! {
        <section class="hero">
            <h1>"Live drops"</h1>
            <p>
                "Reserve a pair and it is held for you while the timer runs. Stock moves live on every screen."
            </p>
        </section>
    }
}

/// Every drop as a card, the viewer's live hold and queue ticket on each, and room for drops
/// created later.
#[component]
fn DropGrid(
    drops: Result<Vec<ProductDrop>, ApiError>,
    holds: Vec<Reservation>,
    tickets: Vec<(DropId, Ticket)>,
) -> impl IntoView {
    let drops = match drops {
        Ok(drops) => drops,
        Err(e) => return view! { <p class="empty error">{e.message}</p> }.into_any(),
    };
    let hold_on = |drop: &ProductDrop| {
        holds
            .iter()
            .find(|h| h.drop_id == drop.id && h.status == ReservationStatus::Active)
            .map(HoldView::from)
    };
    let ticket_on = |drop: &ProductDrop| {
        tickets
            .iter()
            .find(|(id, _)| *id == drop.id)
            .map(|(_, ticket)| ticket.clone())
    };
    let rendered = drops.iter().map(|drop| drop.id).collect();
    let cards = drops
        .iter()
        .map(|drop| view! { <Card data=CardData::new(drop, hold_on(drop), ticket_on(drop)) /> })
        .collect_view();
    view! {
        <div class="grid">
            {cards}
            <NewDrops rendered />
        </div>
    }
    .into_any()
}

//! A queue or draw drop's part of its card: where the viewer stands in line or in the draw, in
//! plain words, with the buttons to join or leave (enter or withdraw), and what anyone can
//! check of the order.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    action_button::ActionButton,
    countdown::format_remaining,
    proof::{Check, DoorButton},
};
use crate::{
    api::{JoinQueue, LeaveQueue},
    model::{DropId, QueueLine, SaleMode, Ticket, TicketState},
};

/// What a queue drop's card shows of its queue, as the server rendered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueData {
    pub line: QueueLine,
    /// The viewer's ticket.
    pub ticket: Option<Ticket>,
    /// When joining opens, in milliseconds since the epoch.
    pub opens_ms: Option<i64>,
    pub seed_sha256: String,
    /// Beacon mode: the public drand round the order is drawn from (then no seed).
    pub beacon_round: Option<u64>,
    /// Queue or draw.
    pub mode: SaleMode,
}

/// Where the viewer stands, decided from the line, their ticket and the clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Joining opens in this many seconds.
    NotOpen { opens_in: i64 },
    /// Not in line; `live` once go-live has put the lobby in order (a joiner goes to the back).
    Outside { live: bool },
    /// In the lobby: places are drawn at go-live, in this many seconds (0: any moment now).
    Lobby { draw_in: i64 },
    /// In line.
    Waiting {
        place: i64,
        ahead: i64,
        eta_seconds: Option<i64>,
    },
    /// Their turn: reserve within this many seconds.
    Admitted { left: i64 },
    /// They reserved with their turn.
    Used,
    /// Their turn passed unused.
    Lapsed,
    /// Sold out: the queue is over.
    Closed,
    /// A draw takes entries; it is drawn in this many seconds.
    MayEnter { draw_in: i64 },
    /// Entered; drawn in this many seconds (0: any moment now).
    Entered { draw_in: i64 },
    /// Won a unit: `left` seconds to buy while the hold lasts; `came_back` when it came from
    /// the waitlist.
    Won { left: Option<i64>, came_back: bool },
    /// On the waitlist, this far down it.
    Waitlisted { position: i64 },
    /// No unit came to this entry (or, drawn without one, it is over).
    NotThisTime,
    /// The entry was taken back after the draw.
    Withdrawn,
    /// Drawn already; the viewer has no entry.
    Drawn,
}

impl Standing {
    /// Decides where the viewer stands at `now_ms`.
    pub fn of(
        line: &QueueLine,
        ticket: Option<&Ticket>,
        opens_ms: Option<i64>,
        starts_ms: i64,
        now_ms: i64,
    ) -> Self {
        let seconds_until = |at: i64| ((at - now_ms).max(0) + 999) / 1000;
        // Out of line before their turn: as if never in it.
        let state = ticket
            .filter(|t| t.state != TicketState::Left || t.admitted_until.is_some())
            .map(|t| t.state);
        match (state, ticket) {
            (Some(TicketState::Used | TicketState::Left), _) => Self::Used,
            (Some(TicketState::Closed), _) => Self::Closed,
            (_, _) if line.closed => Self::Closed,
            (Some(TicketState::Lapsed), _) => Self::Lapsed,
            (Some(TicketState::Admitted), Some(ticket)) => {
                let until = ticket
                    .admitted_until
                    .map_or(now_ms, |at| at.timestamp_millis());
                match seconds_until(until) {
                    0 => Self::Lapsed,
                    left => Self::Admitted { left },
                }
            }
            (Some(TicketState::Waiting), Some(ticket)) => match ticket.place {
                Some(place) if line.live => Self::Waiting {
                    place,
                    ahead: line.ahead_of(place),
                    eta_seconds: line.eta_seconds(place),
                },
                _ => Self::Lobby {
                    draw_in: seconds_until(starts_ms),
                },
            },
            _ => match opens_ms.map(seconds_until) {
                Some(opens_in) if opens_in > 0 => Self::NotOpen { opens_in },
                _ => Self::Outside { live: line.live },
            },
        }
    }

    /// Decides where the viewer stands in a draw at `now_ms`: `total` units were on sale and
    /// `hold_ms` is the deadline of the viewer's live hold, if any.
    pub fn of_draw(
        line: &QueueLine,
        ticket: Option<&Ticket>,
        opens_ms: Option<i64>,
        starts_ms: i64,
        now_ms: i64,
        total: i64,
        hold_ms: Option<i64>,
    ) -> Self {
        let seconds_until = |at: i64| ((at - now_ms).max(0) + 999) / 1000;
        let drawn = line.live;
        match ticket.map(|t| (t.state, t)) {
            Some((TicketState::Won, ticket)) => Self::Won {
                left: hold_ms.map(seconds_until).filter(|left| *left > 0),
                came_back: ticket.place.is_some_and(|place| place > total),
            },
            Some((TicketState::Lost, _)) => Self::NotThisTime,
            Some((TicketState::Waitlisted, _)) if line.closed => Self::NotThisTime,
            Some((TicketState::Waitlisted, ticket)) => Self::Waitlisted {
                position: ticket.place.map_or(0, |place| line.ahead_of(place)) + 1,
            },
            Some((TicketState::Entered, _)) => Self::Entered {
                draw_in: seconds_until(starts_ms),
            },
            Some((TicketState::Withdrawn, _)) if drawn => Self::Withdrawn,
            _ if drawn => Self::Drawn,
            _ => match opens_ms.map(seconds_until) {
                Some(opens_in) if opens_in > 0 => Self::NotOpen { opens_in },
                _ => Self::MayEnter {
                    draw_in: seconds_until(starts_ms),
                },
            },
        }
    }

    /// What the card says.
    pub fn message(&self) -> String {
        match self {
            Self::NotOpen { opens_in } => {
                format!("The queue opens in {}.", format_remaining(*opens_in))
            }
            Self::Outside { live: false } => {
                "Join the lobby: at go-live everyone in it gets a random place in line.".into()
            }
            Self::Outside { live: true } => {
                "The line is moving. Join and you go to the back of it.".into()
            }
            Self::Lobby { draw_in: 0 } => "You're in the lobby. Drawing places…".into(),
            Self::Lobby { draw_in } => format!(
                "You're in the lobby. Places are drawn at go-live, in {}.",
                format_remaining(*draw_in)
            ),
            Self::Waiting {
                place,
                ahead,
                eta_seconds,
            } => {
                let wait = match eta_seconds {
                    Some(seconds) => format!(", {}", format_wait(*seconds)),
                    None => String::new(),
                };
                let ahead = match ahead {
                    0 => "you're next".to_string(),
                    1 => "1 ahead of you".to_string(),
                    n => format!("{n} ahead of you"),
                };
                format!("You're number {place} in line: {ahead}{wait}.")
            }
            Self::Admitted { left } => {
                format!("Your turn — reserve within {}.", format_remaining(*left))
            }
            Self::Used => "You've had your turn.".into(),
            Self::Lapsed => "Your turn passed without a reserve.".into(),
            Self::Closed => "Sold out — the queue has closed.".into(),
            Self::MayEnter { draw_in: 0 } => "Drawing the winners…".into(),
            Self::MayEnter { draw_in } => format!(
                "Enter the draw: winners are picked at random in {}. Speed makes no difference.",
                format_remaining(*draw_in)
            ),
            Self::Entered { draw_in: 0 } => "Entered — drawing the winners…".into(),
            Self::Entered { draw_in } => {
                format!("Entered — draw in {}", format_remaining(*draw_in))
            }
            Self::Won {
                left: Some(left),
                came_back: true,
            } => format!(
                "A pair came back: it is yours for {}",
                format_remaining(*left)
            ),
            Self::Won {
                left: Some(left), ..
            } => {
                format!("You won — buy within {}", format_remaining(*left))
            }
            Self::Won { left: None, .. } => "You won this draw.".into(),
            Self::Waitlisted { position } => format!(
                "Not this time — you are {} on the waitlist",
                ordinal(*position)
            ),
            Self::NotThisTime => "Not this time — the draw is over.".into(),
            Self::Withdrawn => "You withdrew from this draw.".into(),
            Self::Drawn => "The winners have been drawn.".into(),
        }
    }

    /// True when the viewer may join (enter) now.
    pub fn can_join(&self) -> bool {
        matches!(self, Self::Outside { .. })
            || matches!(self, Self::MayEnter { draw_in } if *draw_in > 0)
    }

    /// True when the viewer is in line (in the draw) and may leave it (withdraw).
    pub fn can_leave(&self) -> bool {
        matches!(
            self,
            Self::Lobby { .. }
                | Self::Waiting { .. }
                | Self::Admitted { .. }
                | Self::Entered { .. }
                | Self::Waitlisted { .. }
        )
    }
}

/// 1st, 2nd, 3rd, 4th, 11th, 21st, ...
pub fn ordinal(n: i64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// An estimate of a wait, in words that do not pretend to precision.
pub fn format_wait(seconds: i64) -> String {
    match seconds {
        ..60 => "under a minute".into(),
        60..120 => "about a minute".into(),
        _ => format!("about {} minutes", (seconds + 30) / 60),
    }
}

/// The queue part of a card: the viewer's standing, join and leave, and the order's proof
/// (sealed before go-live, open to checking from it on).
#[component]
pub fn QueuePanel(
    id: DropId,
    standing: Memo<Standing>,
    #[prop(into)] revealed: Signal<bool>,
    join: ServerAction<JoinQueue>,
    leave: ServerAction<LeaveQueue>,
    seed_sha256: String,
    beacon_round: Option<u64>,
    /// The viewer's ticket, if they have one.
    #[prop(into)]
    ticket: Signal<Option<Ticket>>,
    mode: SaleMode,
) -> impl IntoView {
    // In the sealed entry list (beacon mode): its id, for the proof.
    let sealed = Signal::derive(move || {
        ticket.with(|t| t.as_ref().filter(|t| t.sealed).map(|t| t.id.clone()))
    });
    let ticketed = Signal::derive(move || ticket.with(Option::is_some));
    let check = RwSignal::new(Check::default());
    let fields = move || {
        vec![
            ("drop_id", id.0.to_string()),
            ("mode", mode.as_str().to_string()),
        ]
    };
    let (join_label, leave_label) = match mode {
        SaleMode::Draw => ("Enter the draw", "Withdraw"),
        _ => ("Join the queue", "Leave the queue"),
    };
    let hash = short(&seed_sha256);
    view! {
        <div class="queue">
            <p class="queue-status" data-testid="queue-status" role="status" aria-live="polite">
                {move || standing.with(Standing::message)}
            </p>
            <Show when=move || standing.with(Standing::can_join)>
                <DoorButton id mode action=join label=join_label check />
            </Show>
            <p class="proof-status" data-testid="proof-status" role="status" aria-live="polite">
                {move || check.with(Check::message)}
            </p>
            <Show when=move || standing.with(Standing::can_leave)>
                <ActionButton
                    action=leave
                    fields=fields()
                    class="btn btn-ghost"
                    label=leave_label.to_string()
                />
            </Show>
            <Show when=move || ticketed.get()>
                <p class="queue-receipt">
                    <a
                        data-testid="queue-receipt"
                        href=format!("/api/v1/drops/{id}/receipt")
                        download=format!("dropline-receipt-{id}.json")
                    >
                        "Keep your receipt"
                    </a>
                    " — signed proof that your "
                    {match mode {
                        SaleMode::Draw => "entry",
                        _ => "place",
                    }}
                    " was issued."
                </p>
            </Show>
            {match beacon_round {
                Some(round) => {
                    view! {
                        <p class="queue-proof">
                            <Show
                                when=move || revealed.get()
                                fallback=move || {
                                    format!(
                                        "The entries are sealed at the start; the order comes from public drand round {round}, drawn after."
                                    )
                                }
                            >
                                <a href=format!("/api/v1/drops/{id}/audit")>"Check the order"</a>
                                {format!(" drawn from public drand round {round}")}
                            </Show>
                            {move || {
                                sealed
                                    .get()
                                    .map(|ticket| {
                                        view! {
                                            " "
                                            <a
                                                data-testid="queue-sealed"
                                                href=format!("/api/v1/drops/{id}/entries/{ticket}/proof")
                                            >
                                                "Your entry is in the sealed list."
                                            </a>
                                        }
                                    })
                            }}
                        </p>
                    }
                        .into_any()
                }
                None => {
                    view! {
                        <p class="queue-proof">
                            <Show
                                when=move || revealed.get()
                                fallback=|| "The order is sealed in advance: SHA-256 "
                            >
                                <a href=format!("/api/v1/drops/{id}/audit")>"Check the order"</a>
                                " drawn from the seed behind SHA-256 "
                            </Show>
                            <code title=seed_sha256>{hash}</code>
                        </p>
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

/// The first 12 hex digits of a hash, enough to compare by eye.
fn short(hash: &str) -> String {
    format!("{}…", hash.get(..12).unwrap_or(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000_000;

    fn ticket(state: TicketState, place: Option<i64>) -> Ticket {
        Ticket {
            id: "t".into(),
            state,
            place,
            ahead: None,
            eta_seconds: None,
            admitted_until: None,
            sealed: false,
        }
    }

    fn live_line(served_through: i64, per_minute: i64) -> QueueLine {
        QueueLine {
            live: true,
            served_through,
            per_minute,
            closed: false,
        }
    }

    #[test]
    fn before_go_live_the_lobby_waits_for_the_draw() {
        let lobby = QueueLine::default();
        let not_yet = Standing::of(&lobby, None, Some(NOW + 5_000), NOW + 60_000, NOW);
        assert_eq!(not_yet, Standing::NotOpen { opens_in: 5 });
        assert!(!not_yet.can_join());
        let open = Standing::of(&lobby, None, Some(NOW), NOW + 60_000, NOW);
        assert!(open.can_join());
        let waiting = ticket(TicketState::Waiting, None);
        let inside = Standing::of(&lobby, Some(&waiting), Some(NOW), NOW + 60_000, NOW);
        assert_eq!(inside, Standing::Lobby { draw_in: 60 });
        assert!(inside.can_leave());
        assert_eq!(
            inside.message(),
            "You're in the lobby. Places are drawn at go-live, in 1:00."
        );
    }

    #[test]
    fn a_place_counts_down_as_the_line_moves() {
        let waiting = ticket(TicketState::Waiting, Some(12));
        let standing = Standing::of(&live_line(2, 60), Some(&waiting), None, NOW, NOW);
        assert_eq!(
            standing,
            Standing::Waiting {
                place: 12,
                ahead: 9,
                eta_seconds: Some(9)
            }
        );
        assert_eq!(
            standing.message(),
            "You're number 12 in line: 9 ahead of you, under a minute."
        );
        let stalled = Standing::of(&live_line(11, 0), Some(&waiting), None, NOW, NOW);
        assert_eq!(stalled.message(), "You're number 12 in line: you're next.");
    }

    #[test]
    fn a_turn_has_a_deadline_and_a_closed_queue_says_sold_out() {
        let mut admitted = ticket(TicketState::Admitted, Some(1));
        admitted.admitted_until = chrono::DateTime::from_timestamp_millis(NOW + 118_000);
        let turn = Standing::of(&live_line(1, 60), Some(&admitted), None, NOW, NOW);
        assert_eq!(turn.message(), "Your turn — reserve within 1:58.");
        let later = Standing::of(&live_line(1, 60), Some(&admitted), None, NOW, NOW + 118_000);
        assert_eq!(later, Standing::Lapsed);
        let closed = QueueLine {
            closed: true,
            ..live_line(5, 0)
        };
        let waiting = ticket(TicketState::Waiting, Some(9));
        assert_eq!(
            Standing::of(&closed, Some(&waiting), None, NOW, NOW).message(),
            "Sold out — the queue has closed."
        );
        // Whoever reserved keeps their own answer.
        let used = ticket(TicketState::Used, Some(1));
        assert_eq!(
            Standing::of(&closed, Some(&used), None, NOW, NOW),
            Standing::Used
        );
    }

    #[test]
    fn a_draw_says_entered_won_waitlisted_or_passed_on() {
        let open = QueueLine::default();
        let draw = |line: &QueueLine, ticket: Option<&Ticket>, hold_ms| {
            Standing::of_draw(line, ticket, None, NOW + 201_000, NOW, 1, hold_ms)
        };
        let outside = draw(&open, None, None);
        assert!(outside.can_join());
        let entered = ticket(TicketState::Entered, None);
        let waiting = draw(&open, Some(&entered), None);
        assert_eq!(waiting.message(), "Entered — draw in 3:21");
        assert!(waiting.can_leave() && !waiting.can_join());

        // Drawn: one pair, so place 1 won it and the others wait their turn.
        let drawn = live_line(1, 0);
        let won = ticket(TicketState::Won, Some(1));
        assert_eq!(
            draw(&drawn, Some(&won), Some(NOW + 599_000)).message(),
            "You won — buy within 9:59"
        );
        let fourteenth = ticket(TicketState::Waitlisted, Some(15));
        assert_eq!(
            draw(&drawn, Some(&fourteenth), None).message(),
            "Not this time — you are 14th on the waitlist"
        );
        // Two units passed on: the same entry moves up, and a pair that came back says so.
        assert_eq!(
            draw(&live_line(3, 0), Some(&fourteenth), None).message(),
            "Not this time — you are 12th on the waitlist"
        );
        let passed_on = ticket(TicketState::Won, Some(3));
        assert_eq!(
            draw(&live_line(3, 0), Some(&passed_on), Some(NOW + 599_000)).message(),
            "A pair came back: it is yours for 9:59"
        );
        // Over: whoever still waited has lost; a latecomer cannot enter.
        let over = QueueLine {
            closed: true,
            ..live_line(3, 0)
        };
        assert_eq!(draw(&over, Some(&fourteenth), None), Standing::NotThisTime);
        assert!(!draw(&drawn, None, None).can_join());
    }

    #[test]
    fn ordinals_read_as_words_do() {
        let words: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            words,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
                "111th"
            ]
        );
    }

    #[test]
    fn waits_read_in_rough_minutes() {
        assert_eq!(format_wait(20), "under a minute");
        assert_eq!(format_wait(75), "about a minute");
        assert_eq!(format_wait(290), "about 5 minutes");
    }
}

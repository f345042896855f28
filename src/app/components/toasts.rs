//! Short messages for the buyer: what worked, and refusals in plain words. Any island pushes
//! to the page's one queue; the `Toasts` island shows it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Whether a toast reports a success or a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToastKind {
    Success,
    Error,
}

/// One message on screen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toast {
    pub id: u64,
    pub kind: ToastKind,
    pub text: String,
}

/// The page's toast list. `Copy`: it is a bundle of signals.
#[derive(Clone, Copy)]
pub struct ToastQueue {
    toasts: RwSignal<Vec<Toast>>,
    next_id: StoredValue<u64>,
}

impl ToastQueue {
    fn new() -> Self {
        Self {
            toasts: RwSignal::new(Vec::new()),
            next_id: StoredValue::new(0),
        }
    }

    /// Creates the queue of one page render and provides it to everything below (server).
    pub fn provide() -> Self {
        let queue = Self::new();
        provide_context(queue);
        queue
    }

    /// The page's queue: the tab's (browser), or the render's (server).
    pub fn get() -> Self {
        #[cfg(feature = "hydrate")]
        {
            QUEUE.with(|queue| *queue.get_or_init(Self::new))
        }
        #[cfg(not(feature = "hydrate"))]
        {
            expect_context::<Self>()
        }
    }

    /// Shows a message (at most four stay on screen). In the browser it goes by itself after a
    /// few seconds (a refusal stays longer), so messages never pile up over the buttons.
    pub fn push(&self, kind: ToastKind, text: impl Into<String>) {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        #[cfg(feature = "hydrate")]
        {
            let queue = *self;
            let shown_ms = match kind {
                ToastKind::Success => 4_000,
                ToastKind::Error => 8_000,
            };
            gloo_timers::callback::Timeout::new(shown_ms, move || queue.dismiss(id)).forget();
        }
        self.toasts.update(|list| {
            list.push(Toast {
                id,
                kind,
                text: text.into(),
            });
            if list.len() > 4 {
                list.remove(0);
            }
        });
    }

    /// Shows the outcome of an action: `ok` words on success, the refusal otherwise.
    pub fn outcome<T>(
        &self,
        outcome: &Result<T, crate::model::ApiError>,
        ok: impl FnOnce(&T) -> String,
    ) {
        match outcome {
            Ok(done) => self.push(ToastKind::Success, ok(done)),
            Err(error) => self.push(ToastKind::Error, error.message.clone()),
        }
    }

    /// Removes a message.
    pub fn dismiss(&self, id: u64) {
        self.toasts.update(|list| list.retain(|t| t.id != id));
    }
}

#[cfg(feature = "hydrate")]
thread_local! {
    /// The tab's one queue.
    static QUEUE: std::cell::OnceCell<ToastQueue> = const { std::cell::OnceCell::new() };
}

/// The toast region; screen readers announce new messages. `initial` are the messages the
/// server has for this page (a refused form sent without JavaScript).
#[island]
pub fn Toasts(initial: Vec<String>) -> impl IntoView {
    let queue = ToastQueue::get();
    for text in initial {
        queue.push(ToastKind::Error, text);
    }
    view! {
        <div class="toasts" role="status" aria-live="polite">
            <For each=move || queue.toasts.get() key=|t| t.id let:toast>
                <div class="toast" class:toast-error=toast.kind == ToastKind::Error>
                    <span>{toast.text.clone()}</span>
                    <button
                        class="toast-close"
                        aria-label="Dismiss"
                        on:click=move |_| queue.dismiss(toast.id)
                    >
                        "×"
                    </button>
                </div>
            </For>
        </div>
    }
}

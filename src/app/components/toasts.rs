//! Short messages for the buyer: what worked, and refusals in plain words.

use leptos::prelude::*;

/// Whether a toast reports a success or a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToastKind {
    Success,
    Error,
}

/// One message on screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toast {
    pub id: u64,
    pub kind: ToastKind,
    pub text: String,
}

/// The toast list, shared through context.
#[derive(Clone, Copy)]
pub struct ToastQueue {
    toasts: RwSignal<Vec<Toast>>,
    next_id: StoredValue<u64>,
}

impl ToastQueue {
    /// Shows a message (at most four stay on screen).
    pub fn push(&self, kind: ToastKind, text: impl Into<String>) {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
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

    /// Removes a message.
    pub fn dismiss(&self, id: u64) {
        self.toasts.update(|list| list.retain(|t| t.id != id));
    }
}

/// Creates the queue and provides it to every component below.
pub fn provide_toasts() -> ToastQueue {
    let queue = ToastQueue {
        toasts: RwSignal::new(Vec::new()),
        next_id: StoredValue::new(0),
    };
    provide_context(queue);
    queue
}

/// The queue provided by [`provide_toasts`].
pub fn use_toasts() -> ToastQueue {
    expect_context::<ToastQueue>()
}

/// The toast region; screen readers announce new messages.
#[component]
pub fn Toasts(toasts: ToastQueue) -> impl IntoView {
    view! {
        <div class="toasts" role="status" aria-live="polite">
            <For each=move || toasts.toasts.get() key=|t| t.id let:toast>
                <div class="toast" class:toast-error=toast.kind == ToastKind::Error>
                    <span>{toast.text.clone()}</span>
                    <button
                        class="toast-close"
                        aria-label="Dismiss"
                        on:click=move |_| toasts.dismiss(toast.id)
                    >
                        "×"
                    </button>
                </div>
            </For>
        </div>
    }
}

//! The admin's create-drop panel, an island: validation errors appear next to their fields,
//! and the new drop reaches every open dashboard through the live feed.

use leptos::{form::ActionForm, prelude::*};

use super::{
    action_button::renewed_key,
    toasts::{ToastKind, ToastQueue},
};
use crate::{api::CreateDrop, model::ApiError};

/// A collapsible form for creating a drop with the admin token. `key` is the form's first
/// idempotency key (a form sent twice creates one drop); `refused` is the refusal of a form
/// sent without JavaScript, shown next to its field.
#[island]
pub fn CreateDropPanel(key: String, refused: Option<ApiError>) -> impl IntoView {
    let toasts = ToastQueue::get();
    let create = ServerAction::<CreateDrop>::new();
    let key = renewed_key(create, key);
    let refusal = RwSignal::new(refused);
    Effect::new(move |_| {
        let Some(outcome) = create.value().get() else {
            return;
        };
        match &outcome {
            Ok(drop) => toasts.push(ToastKind::Success, format!("Drop created: {}.", drop.name)),
            Err(e) if e.field.is_none() => toasts.push(ToastKind::Error, e.message.clone()),
            Err(_) => {}
        }
        refusal.set(outcome.err());
    });
    // Always a text node (empty when the field is fine), so server and browser render the same.
    let error_for = move |field: &'static str| {
        Signal::derive(move || {
            refusal.with(|r| {
                r.as_ref()
                    .filter(|e| e.field.as_deref() == Some(field))
                    .map(|e| e.message.clone())
            })
        })
    };
    view! {
        <details class="admin-panel">
            <summary>"Create a drop"</summary>
            <ActionForm action=create attr:class="create-form">
                <input type="hidden" name="idempotency_key" value=move || key.get() />
                <Field
                    name="admin_token"
                    label="Admin token"
                    kind="password"
                    error=error_for("admin_token")
                />
                <Field name="name" label="Name" kind="text" error=error_for("name") />
                <Field
                    name="price"
                    label="Price (USD)"
                    kind="text"
                    error=error_for("price_cents")
                    placeholder="180.00"
                />
                <Field
                    name="total_stock"
                    label="Units"
                    kind="number"
                    error=error_for("total_stock")
                    placeholder="100"
                />
                <Field
                    name="sizes"
                    label="Size run (optional)"
                    kind="text"
                    error=error_for("sizes")
                    placeholder="EU 40-46: 5, US 13: 2"
                />
                <Field
                    name="description"
                    label="Description"
                    kind="text"
                    error=error_for("description")
                />
                <div class="field" class:field-invalid=move || error_for("sale_mode").with(Option::is_some)>
                    <label for="create-sale_mode">"Sold"</label>
                    <select id="create-sale_mode" name="sale_mode">
                        <option value="first_come">"First come, first served"</option>
                        <option value="queue">"Through a queue (random order at go-live)"</option>
                        <option value="draw">"By draw (winners drawn at go-live)"</option>
                    </select>
                    <p class="field-error" aria-live="polite">
                        {move || error_for("sale_mode").get().unwrap_or_default()}
                    </p>
                </div>
                <Field
                    name="starts_in_minutes"
                    label="Goes live in (minutes)"
                    kind="number"
                    error=error_for("starts_at")
                    placeholder="0"
                />
                <Field
                    name="lobby_minutes"
                    label="Lobby or entries open (minutes before go-live)"
                    kind="number"
                    error=error_for("queue_opens_at")
                    placeholder="15"
                />
                <button
                    type="submit"
                    class="btn btn-primary"
                    disabled=move || create.pending().get()
                >
                    "Create drop"
                </button>
            </ActionForm>
        </details>
    }
}

/// A labelled input with its validation message under it.
#[component]
fn Field(
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    error: Signal<Option<String>>,
    #[prop(optional)] placeholder: &'static str,
) -> impl IntoView {
    let id = format!("create-{name}");
    let error_id = format!("{id}-error");
    view! {
        <div class="field" class:field-invalid=move || error.with(Option::is_some)>
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type=kind
                placeholder=placeholder
                aria-invalid=move || error.with(Option::is_some).to_string()
                aria-describedby=error_id.clone()
            />
            <p class="field-error" id=error_id aria-live="polite">
                {move || error.get().unwrap_or_default()}
            </p>
        </div>
    }
}

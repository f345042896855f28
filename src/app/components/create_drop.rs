//! The admin's create-drop panel: validation errors appear next to their fields, and the new
//! drop reaches every open dashboard through the live feed.

use leptos::{form::ActionForm, prelude::*};

use crate::app::{
    components::toasts::{use_toasts, ToastKind},
    pages::home::Actions,
};

/// A collapsible form for creating a drop with the admin token.
#[component]
pub fn CreateDropPanel() -> impl IntoView {
    let create = expect_context::<Actions>().create;
    let toasts = use_toasts();
    Effect::new(move |_| match create.value().get() {
        Some(Ok(drop)) => toasts.push(ToastKind::Success, format!("Drop created: {}.", drop.name)),
        Some(Err(e)) if e.field.is_none() => toasts.push(ToastKind::Error, e.message),
        _ => {}
    });
    let error_for = move |field: &'static str| {
        Signal::derive(move || {
            create
                .value()
                .get()
                .and_then(Result::err)
                .filter(|e| e.field.as_deref() == Some(field))
                .map(|e| e.message)
        })
    };
    view! {
        <details class="admin-panel">
            <summary>"Create a drop"</summary>
            <ActionForm action=create attr:class="create-form">
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
                    name="description"
                    label="Description"
                    kind="text"
                    error=error_for("description")
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
                {move || error.get()}
            </p>
        </div>
    }
}

//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! It is generated, not written: the operations come from the handlers' `#[utoipa::path]`
//! descriptions (the same ones their routes are registered from), the schemas from the types the
//! handlers send and read, what the rules of a route group may answer (rate limits, idempotency
//! keys) from the same [`Rules`] that put the group behind its layers, and what every request may
//! meet (same-origin check, body limit) from the method and body that those layers look at.

use axum::http::Method;
use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::{Operation, ParameterBuilder, ParameterIn, PathItem},
        response::ResponseBuilder,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
        ContentBuilder, Object, OpenApi, Ref, RefOr, Required, Type,
    },
    OpenApi as _,
};

use super::{
    error::ErrorBody,
    groups::{Rules, REST_PREFIX},
    idempotency::MAX_KEY_CHARS,
    protect::MAX_BODY_BYTES,
};
use crate::server::auth::SESSION_COOKIE;

/// The parts of the document that belong to no handler.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Dropline API",
        description = "Limited-edition product drops: live stock, timed holds, no oversell. \
            Buyers sign in with a display name and act through the session cookie; creating \
            drops needs the admin token. Every error answers `{\"error\":{\"code\",\"message\"}}` \
            (plus `field` for bad input) with a stable `code`.",
    ),
    tags(
        (name = "session", description = "Sign in and out."),
        (name = "drops", description = "Drops, their stock and their newest buyers."),
        (name = "reservations", description = "Holds on one unit: reserve, purchase, cancel."),
        (name = "queue", description = "A drop sold through a queue: join its line, see your \
            place, and check the order it was put in."),
        (name = "draw", description = "A drop sold by draw: enter before the draw, see whether \
            you won or where you stand on the waitlist."),
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// Builds the whole document from the REST router's `paths` (relative to [`REST_PREFIX`]).
pub fn document(paths: OpenApi) -> OpenApi {
    let mut doc = ApiDoc::openapi().nest(REST_PREFIX, paths);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            SESSION_COOKIE,
            "The signed session cookie that `POST /api/v1/session` sets.",
        ))),
    );
    components.add_security_scheme(
        "admin_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The server's `ADMIN_TOKEN` (logged at start when it was not set).",
                ))
                .build(),
        ),
    );
    for item in doc.paths.paths.values_mut() {
        for (method, operation) in operations(item) {
            add_edge_answers(&method, operation);
        }
    }
    doc
}

/// Adds to every operation of a route group what its rules' layers may answer.
pub fn describe(paths: &mut OpenApi, rules: Rules) {
    for item in paths.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            if rules.rate_limited {
                add_rate_limit(operation);
            }
            if rules.admin {
                add_error(
                    operation,
                    "429",
                    "`RATE_LIMITED`: too many wrong admin tokens from this address; wait \
                     `Retry-After` seconds.",
                );
                add_retry_after(operation);
            }
            if rules.idempotent {
                add_idempotency(operation);
            }
        }
    }
}

/// Every operation of a path, with its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::POST, &mut item.post),
        (Method::PUT, &mut item.put),
        (Method::PATCH, &mut item.patch),
        (Method::DELETE, &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|op| (method, op)))
}

/// Adds what every operation of its kind may answer: what the layers in front of every route
/// answer for `method`, a failing database, an `{id}` that does not parse, a missing session.
fn add_edge_answers(method: &Method, operation: &mut Operation) {
    let has_id = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.name == "id"));
    if has_id {
        add_error(
            operation,
            "400",
            "`MALFORMED_REQUEST`: the id is not an integer.",
        );
    }
    // A requirement serializes as `{"<scheme>": [scopes]}`.
    let needs_session = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement).is_ok_and(|v| v.get("session").is_some())
    });
    if needs_session {
        add_error(operation, "401", "`UNAUTHENTICATED`: no valid session.");
    }
    add_error(operation, "500", "`INTERNAL`");
    add_error(
        operation,
        "503",
        "`UNAVAILABLE`: the database is briefly unreachable; retry.",
    );
    if method != Method::GET {
        add_error(
            operation,
            "403",
            "`FORBIDDEN`: a browser sent this from another site (`Origin` / `Sec-Fetch-Site`).",
        );
    }
    if operation.request_body.is_some() {
        add_body_limit(operation);
        add_error(
            operation,
            "408",
            "`REQUEST_TIMEOUT`: the body did not arrive in time; the connection is closed.",
        );
    }
}

/// The body limit's answer.
fn add_body_limit(operation: &mut Operation) {
    let limit = format!("`TOO_LARGE`: the body is over {MAX_BODY_BYTES} bytes.");
    add_error(operation, "413", &limit);
}

/// The rate limiter's answer.
fn add_rate_limit(operation: &mut Operation) {
    add_error(
        operation,
        "429",
        "`RATE_LIMITED`: too many tries from this session or address; wait `Retry-After` \
         seconds.",
    );
    add_retry_after(operation);
}

/// The `Retry-After` header of a 429.
fn add_retry_after(operation: &mut Operation) {
    add_header(
        operation,
        "429",
        "Retry-After",
        seconds(),
        "Seconds to wait before trying again.",
    );
}

/// The `Idempotency-Key` header and its answers (the layer reads the body, so it has the
/// body limit's answer too).
fn add_idempotency(operation: &mut Operation) {
    if operation.request_body.is_none() {
        add_body_limit(operation);
    }
    let mut key = Object::with_type(Type::String);
    key.min_length = Some(1);
    key.max_length = Some(MAX_KEY_CHARS);
    key.pattern = Some("^[!-~]+$".into());
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes the request safe to retry: a retry with the same key and body (by the \
                     same caller) answers the first outcome again and changes nothing. Only an \
                     outcome that changed something is kept: after a refusal the key is free \
                     again.",
                ))
                .schema(Some(key))
                .build(),
        ));
    add_error(
        operation,
        "400",
        &format!(
            "`MALFORMED_REQUEST`: the `Idempotency-Key` is not 1 to {MAX_KEY_CHARS} visible \
             ASCII characters."
        ),
    );
    add_error(
        operation,
        "429",
        "`RATE_LIMITED`: the caller holds as many live `Idempotency-Key`s as one may; wait \
         `Retry-After` seconds.",
    );
    add_retry_after(operation);
    add_error(
        operation,
        "409",
        "`CONFLICT`: the first request with this `Idempotency-Key` is still running; retry \
         shortly.",
    );
    add_error(
        operation,
        "422",
        "`INVALID_INPUT` (`field`: `idempotency_key`): this key was used for a different request.",
    );
    let successes: Vec<String> = operation
        .responses
        .responses
        .keys()
        .filter(|status| status.starts_with('2'))
        .cloned()
        .collect();
    for status in successes {
        let mut replayed = Object::with_type(Type::String);
        replayed.enum_values = Some(vec!["true".into()]);
        add_header(
            operation,
            &status,
            "Idempotent-Replayed",
            replayed,
            "`true` when this is the stored outcome of an earlier request with the same key.",
        );
    }
}

/// Adds an error answer to `status`, or its reason to the answer the handler already declares.
fn add_error(operation: &mut Operation, status: &str, reason: &str) {
    let responses = &mut operation.responses.responses;
    match responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            response.description = format!("{} Or {reason}", response.description);
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let response = ResponseBuilder::new()
                .description(reason)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            responses.insert(status.to_string(), RefOr::T(response));
        }
    }
}

/// Declares a header on the answer with `status`.
fn add_header(
    operation: &mut Operation,
    status: &str,
    name: &str,
    schema: Object,
    description: &str,
) {
    if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
        response.headers.insert(
            name.to_string(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(schema))
                    .description(Some(description))
                    .build(),
            ),
        );
    }
}

/// A whole number of seconds, at least one.
fn seconds() -> Object {
    let mut seconds = Object::with_type(Type::Integer);
    seconds.minimum = Some(1.into());
    seconds
}

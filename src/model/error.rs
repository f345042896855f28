//! The stable refusal codes, and a refusal or failure as clients see it.

use serde::{Deserialize, Serialize};

/// Declares [`ErrorCode`] from one table: each code with its wire spelling, the HTTP status the
/// REST API answers it with, and the words a buyer reads. One row per code, so a new code
/// cannot miss any of them, and [`ErrorCode::ALL`] lets tests go over every one.
macro_rules! error_codes {
    ($($code:ident = ($wire:literal, $status:literal, $message:literal),)+) => {
        /// Stable reason codes. Clients branch on these, so a code never changes its meaning.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ErrorCode {
            $($code,)+
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code,)+];

            /// The code as clients see it (the serde spelling), e.g. for a metric label.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$code => $wire,)+
                }
            }

            /// The HTTP status the REST API answers with for this code.
            pub fn http_status(self) -> u16 {
                match self {
                    $(Self::$code => $status,)+
                }
            }

            /// What the refusal says to a buyer.
            pub fn message(self) -> &'static str {
                match self {
                    $(Self::$code => $message,)+
                }
            }
        }
    };
}

error_codes! {
    OutOfStock = ("OUT_OF_STOCK", 409, "Sold out: every unit (of that size) is taken."),
    SizeRequired = ("SIZE_REQUIRED", 422, "Choose a size first."),
    SizeNotFound = ("SIZE_NOT_FOUND", 404, "This drop has no such size."),
    AlreadyReserved = ("ALREADY_RESERVED", 409, "You already hold one of these."),
    NotStarted = ("NOT_STARTED", 409, "This drop has not started yet."),
    NotAdmitted = ("NOT_ADMITTED", 409, "Wait for your turn in the queue before reserving."),
    QueueNotOpen = ("QUEUE_NOT_OPEN", 409, "The queue for this drop is not open yet."),
    NotAQueue = ("NOT_A_QUEUE", 409, "This drop is not sold through a queue."),
    NotADraw = ("NOT_A_DRAW", 409, "This drop is not sold by draw."),
    BeaconNotDue = ("BEACON_NOT_DUE", 409, "This drop is not waiting for a beacon round: it has none, its entry list is not sealed, its round is not published yet, or it is kept already."),
    AccountTooNew = ("ACCOUNT_TOO_NEW", 403, "This drop takes only accounts made before its cutoff."),
    UsernameTaken = ("USERNAME_TAKEN", 409, "That username is taken: choose another."),
    WrongPassword = ("WRONG_PASSWORD", 401, "That username and password do not match an account."),
    NoPasskey = ("NO_PASSKEY", 404, "That username has no passkey here: log in with its password, or sign up."),
    PasskeyRefused = ("PASSKEY_REFUSED", 401, "That passkey did not check out: try again, or log in with your password."),
    CeremonyExpired = ("CEREMONY_EXPIRED", 409, "That passkey request has expired or was answered already: start again."),
    DemoSignInOff = ("DEMO_SIGN_IN_OFF", 403, "Signing in by display name alone is for the demo: sign up with a username and a password."),
    ProofRequired = ("PROOF_REQUIRED", 403, "This door asks for a proof of work: fetch a challenge (GET /api/v1/drops/{id}/challenge), solve it, and send the proof in the Dropline-Proof header. In a browser, turn JavaScript on."),
    ProofInvalid = ("PROOF_INVALID", 403, "That proof of work does not open this door: it is used already, expired, for another drop or buyer, or not a solution. Fetch a new challenge and solve it."),
    NetworkCapReached = ("NETWORK_CAP_REACHED", 409, "This drop has taken as many entries from your network as one network may have."),
    NotSealed = ("NOT_SEALED", 409, "This drop's entry list is not sealed: a drop ordered by a public beacon seals it at go-live."),
    EntriesNotOpen = ("ENTRIES_NOT_OPEN", 409, "Entries for this draw are not open yet."),
    EntriesClosed = ("ENTRIES_CLOSED", 409, "The draw has been made: entries are closed."),
    SoldByDraw = ("SOLD_BY_DRAW", 409, "This drop is sold by draw: only the entries drawn get a unit."),
    LimitReached = ("LIMIT_REACHED", 409, "You have bought as many of these as one buyer may."),
    CoolingDown = ("COOLING_DOWN", 409, "You gave a hold of this drop back; wait a moment before reserving it again."),
    HoldLimitReached = ("HOLD_LIMIT_REACHED", 409, "You have given back as many holds of this drop as one buyer may."),
    RateLimited = ("RATE_LIMITED", 429, "Too many tries at once; wait a moment and try again."),
    ReservationExpired = ("RESERVATION_EXPIRED", 409, "Your hold expired; the unit went back on sale."),
    ReservationNotActive = ("RESERVATION_NOT_ACTIVE", 409, "This hold is no longer active."),
    Conflict = ("CONFLICT", 409, "Another request is changing this; try again."),
    NotYourReservation = ("NOT_YOUR_RESERVATION", 403, "That hold belongs to someone else."),
    DropNotFound = ("DROP_NOT_FOUND", 404, "No such drop."),
    ReservationNotFound = ("RESERVATION_NOT_FOUND", 404, "No such hold."),
    TicketNotFound = ("TICKET_NOT_FOUND", 404, "You are not in this drop's queue or draw."),
    InvalidInput = ("INVALID_INPUT", 422, "The request is not valid."),
    MalformedRequest = ("MALFORMED_REQUEST", 400, "The request could not be read."),
    TooLarge = ("TOO_LARGE", 413, "The request is too large."),
    Unauthenticated = ("UNAUTHENTICATED", 401, "Sign in first."),
    Forbidden = ("FORBIDDEN", 403, "You are not allowed to do that."),
    NotFound = ("NOT_FOUND", 404, "Not found."),
    MethodNotAllowed = ("METHOD_NOT_ALLOWED", 405, "This path does not take that method."),
    Unavailable = ("UNAVAILABLE", 503, "The service is briefly unavailable; try again."),
    RequestTimeout = ("REQUEST_TIMEOUT", 408, "The request took too long to arrive."),
    Internal = ("INTERNAL", 500, "Something went wrong on our side."),
}

/// A refusal as a rule decides it: its code and, for one that ends by itself (a cooldown),
/// how long until it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    /// Milliseconds until asking again can succeed.
    pub retry_after_ms: Option<i64>,
}

impl From<ErrorCode> for Refusal {
    fn from(code: ErrorCode) -> Self {
        Self {
            code,
            retry_after_ms: None,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let Some(wait_ms) = refusal.retry_after_ms else {
            return ApiError::refusal(refusal.code);
        };
        // Whole seconds, rounded up: asking again after them succeeds.
        let seconds = u64::try_from((wait_ms + 999) / 1000).unwrap_or(0).max(1);
        let message = match refusal.code {
            ErrorCode::CoolingDown => format!(
                "You gave a hold of this drop back; you may reserve it again in {seconds} s."
            ),
            code => code.message().to_string(),
        };
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(refusal.code, message)
        }
    }
}

/// A refusal or failure as clients see it: a stable code and words for a person. It reads
/// back from either shape the server sends it in: bare (a server function's error) or inside
/// `{"error": ...}` (the REST shape, which a route's rules — a rate limit, an idempotency key
/// still in flight — answer with on `/rpc` too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(from = "ErrorWire")]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The input field at fault, for validation errors a form shows next to the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ssr", schema(nullable = false))]
    pub field: Option<String>,
    /// For `RATE_LIMITED`: whole seconds until the caller may try again, sent as the
    /// `Retry-After` header rather than in the body.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// The two shapes an [`ApiError`] arrives in.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorWire {
    Wrapped { error: ErrorFields },
    Bare(ErrorFields),
}

#[derive(Deserialize)]
struct ErrorFields {
    code: ErrorCode,
    message: String,
    #[serde(default)]
    field: Option<String>,
}

impl From<ErrorWire> for ApiError {
    fn from(wire: ErrorWire) -> Self {
        let (ErrorWire::Wrapped { error: fields } | ErrorWire::Bare(fields)) = wire;
        Self {
            field: fields.field,
            ..Self::new(fields.code, fields.message)
        }
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Bad input in `field`; the message starts with the field's name and says why.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_string()),
            ..Self::new(ErrorCode::InvalidInput, message)
        }
    }

    /// The caller must sign in first.
    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "Sign in first.")
    }

    /// The refusal for a given code, in words a buyer understands.
    pub fn refusal(code: ErrorCode) -> Self {
        Self::new(code, code.message())
    }
}

impl leptos::server_fn::error::FromServerFnError for ApiError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        Self::new(ErrorCode::Internal, value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_screaming() {
        let json = serde_json::to_string(&ErrorCode::OutOfStock).unwrap();
        assert_eq!(json, "\"OUT_OF_STOCK\"");
    }

    #[test]
    fn every_code_is_named_as_on_the_wire_and_has_words() {
        for &code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!((400..600).contains(&code.http_status()), "{code:?}");
            assert!(code.message().ends_with('.'), "{code:?}");
        }
    }

    #[test]
    fn an_error_reads_back_from_either_shape() {
        let error = ApiError::invalid("name", "name is empty");
        let bare = serde_json::to_value(&error).unwrap();
        let wrapped = serde_json::json!({ "error": bare });
        assert_eq!(serde_json::from_value::<ApiError>(bare).unwrap(), error);
        assert_eq!(serde_json::from_value::<ApiError>(wrapped).unwrap(), error);
    }

    #[test]
    fn a_cooldown_says_how_long_it_lasts() {
        let refusal = Refusal {
            code: ErrorCode::CoolingDown,
            retry_after_ms: Some(58_001),
        };
        let error = ApiError::from(refusal);
        assert_eq!(error.retry_after, Some(59));
        assert!(error.message.contains("59 s"), "{}", error.message);
        let plain = ApiError::from(Refusal::from(ErrorCode::OutOfStock));
        assert_eq!(plain.retry_after, None);
    }
}

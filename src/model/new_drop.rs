//! What an admin sends to create a drop, and the checks every name and field passes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{error::ApiError, sale::SaleMode};

/// What an admin sends to create a drop. Optional fields take sensible defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewDrop {
    /// 1 to 80 characters after trimming, no control characters.
    #[cfg_attr(
        feature = "ssr",
        schema(min_length = 1, max_length = 80, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")
    )]
    pub name: String,
    /// At most 1000 characters, no control characters but line breaks and tabs; empty when
    /// left out.
    #[serde(default)]
    #[cfg_attr(
        feature = "ssr",
        schema(
            max_length = 1000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )
    )]
    pub description: Option<String>,
    /// A path under the site root, such as `/images/shoe.svg` (at most 200 characters, no
    /// control characters); none when left out.
    #[serde(default)]
    #[cfg_attr(
        feature = "ssr",
        schema(max_length = 200, pattern = r"^(/[^\x00-\x1f\x7f-\x9f]*)?$")
    )]
    pub image: Option<String>,
    /// Price in integer cents.
    #[cfg_attr(feature = "ssr", schema(minimum = 0, maximum = 100_000_000))]
    pub price_cents: i64,
    /// Units on sale.
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 1_000_000))]
    pub total_stock: i64,
    /// Most units one buyer may buy, at most `total_stock`; 1 when left out.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 1_000_000))]
    pub max_per_user: Option<i64>,
    /// When reserving opens (a queue: go-live, when the lobby is put in order); now when left
    /// out.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// How the drop is sold; `first_come` when left out.
    #[serde(default)]
    pub sale_mode: Option<SaleMode>,
    /// A queue: when joining its lobby opens, at or before `starts_at`; 15 minutes before it
    /// when left out.
    #[serde(default)]
    pub queue_opens_at: Option<DateTime<Utc>>,
    /// A draw: when entries open, before `starts_at` (the draw, which a draw must give);
    /// at once when left out.
    #[serde(default)]
    pub entries_open_at: Option<DateTime<Utc>>,
    /// A queue or a draw: only accounts created before this time may join or enter (accounts
    /// made in bulk for the drop get nothing); any account when left out.
    #[serde(default)]
    pub accounts_before: Option<DateTime<Utc>>,
}

/// How long before go-live a queue's lobby opens, unless the drop says.
pub const QUEUE_LOBBY_MINUTES: i64 = 15;

/// Longest accepted drop or user name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// Longest accepted drop description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Most units one drop may have.
pub const MAX_STOCK: i64 = 1_000_000;
/// Highest price, in cents.
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

/// Checks a display name (user or drop) and returns it trimmed, in Unicode's composed normal
/// form (NFC: an accent typed as its own mark is stored as the one accented letter). A name is
/// shown to everyone (a drop's card, the purchases feed), so it may hold no control characters
/// and no format characters: no bidi overrides that would show "NIMDA" as "ADMIN", no
/// zero-width joiners or spaces that would make two names look the same, no blank fillers or
/// line separators. (Server only: the browser sends names, the server decides.)
#[cfg(feature = "ssr")]
pub fn validate_name(field: &str, raw: &str) -> Result<String, ApiError> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

    let name: String = raw.trim().nfc().collect();
    if name.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    // Letters and symbols that draw nothing: Hangul fillers, the blank braille pattern.
    const BLANK: [char; 5] = ['\u{115f}', '\u{1160}', '\u{3164}', '\u{ffa0}', '\u{2800}'];
    let invisible = |c: char| {
        BLANK.contains(&c)
            || matches!(
                c.general_category(),
                GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            )
    };
    if name.chars().any(invisible) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} must not contain invisible or direction-changing characters \
                 (zero-width spaces or joiners, bidi overrides)"
            ),
        ));
    }
    Ok(name)
}

impl NewDrop {
    /// When joining (a queue) or entering (a draw) opens.
    pub fn opens_at(&self) -> Option<DateTime<Utc>> {
        self.queue_opens_at.or(self.entries_open_at)
    }

    /// Checks every field and fills the defaults; the error names the first bad field.
    #[cfg(feature = "ssr")]
    pub fn validate(mut self) -> Result<NewDrop, ApiError> {
        self.name = validate_name("name", &self.name)?;
        let description = self.description.take().unwrap_or_default();
        let description = description.trim().to_string();
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ApiError::invalid(
                "description",
                format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if description
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ApiError::invalid(
                "description",
                "description must not contain control characters other than line breaks and tabs",
            ));
        }
        self.description = Some(description);
        let image = self.image.take().unwrap_or_default().trim().to_string();
        let site_path = image.starts_with('/')
            && image.chars().count() <= 200
            && !image.chars().any(char::is_control);
        if !image.is_empty() && !site_path {
            return Err(ApiError::invalid(
                "image",
                "image must be a site path starting with / (at most 200 characters, no control \
                 characters)",
            ));
        }
        self.image = Some(image);
        if !(0..=MAX_PRICE_CENTS).contains(&self.price_cents) {
            return Err(ApiError::invalid(
                "price_cents",
                format!("price_cents must be between 0 and {MAX_PRICE_CENTS}"),
            ));
        }
        if !(1..=MAX_STOCK).contains(&self.total_stock) {
            return Err(ApiError::invalid(
                "total_stock",
                format!("total_stock must be between 1 and {MAX_STOCK}"),
            ));
        }
        let max_per_user = self.max_per_user.unwrap_or(1);
        if !(1..=self.total_stock).contains(&max_per_user) {
            return Err(ApiError::invalid(
                "max_per_user",
                "max_per_user must be between 1 and total_stock",
            ));
        }
        self.max_per_user = Some(max_per_user);
        let mode = self.sale_mode.unwrap_or_default();
        self.sale_mode = Some(mode);
        match mode {
            _ if mode != SaleMode::Queue && self.queue_opens_at.is_some() => {
                return Err(ApiError::invalid(
                    "queue_opens_at",
                    "queue_opens_at is only for a drop sold through a queue (sale_mode queue)",
                ))
            }
            _ if mode != SaleMode::Draw && self.entries_open_at.is_some() => {
                return Err(ApiError::invalid(
                    "entries_open_at",
                    "entries_open_at is only for a drop sold by draw (sale_mode draw)",
                ))
            }
            SaleMode::FirstCome if self.accounts_before.is_some() => {
                return Err(ApiError::invalid(
                    "accounts_before",
                    "accounts_before is only for a drop sold through a queue or by draw",
                ))
            }
            SaleMode::FirstCome => {}
            SaleMode::Draw => match (self.entries_open_at, self.starts_at) {
                (_, None) => {
                    return Err(ApiError::invalid(
                        "starts_at",
                        "starts_at (the draw) is required for a drop sold by draw",
                    ))
                }
                (Some(opens), Some(draw)) if opens >= draw => {
                    return Err(ApiError::invalid(
                        "entries_open_at",
                        "entries_open_at must be before starts_at (the draw)",
                    ))
                }
                _ => {}
            },
            SaleMode::Queue => {
                let starts_at = self.starts_at;
                let opens_at = self.queue_opens_at.or_else(|| {
                    starts_at.map(|at| at - chrono::Duration::minutes(QUEUE_LOBBY_MINUTES))
                });
                match (opens_at, starts_at) {
                    (Some(opens), Some(starts)) if opens > starts => {
                        return Err(ApiError::invalid(
                            "queue_opens_at",
                            "queue_opens_at must be at or before starts_at",
                        ));
                    }
                    (Some(_), None) => {
                        return Err(ApiError::invalid(
                            "queue_opens_at",
                            "queue_opens_at needs starts_at (the go-live it comes before)",
                        ));
                    }
                    _ => {}
                }
                self.queue_opens_at = opens_at;
            }
        }
        Ok(self)
    }
}

/// Reads a price a person typed (`180`, `180.5`, `$180.00`) as integer cents.
pub fn parse_price(raw: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid("price_cents", "price must be an amount like 180 or 180.00");
    let text = raw.trim().trim_start_matches('$').trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.len() > 2 || !whole.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let cents: i64 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .ok_or_else(bad)
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use crate::model::error::ErrorCode;

    fn drop_input() -> NewDrop {
        NewDrop {
            name: "  Air Test  ".into(),
            price_cents: 1999,
            total_stock: 10,
            ..NewDrop::default()
        }
    }

    #[test]
    fn validation_trims_and_fills_defaults() {
        let d = drop_input().validate().unwrap();
        assert_eq!(d.name, "Air Test");
        assert_eq!(d.max_per_user, Some(1));
        assert_eq!(d.description.as_deref(), Some(""));
    }

    #[test]
    fn validation_names_the_bad_field() {
        let cases = [
            (
                NewDrop {
                    name: " ".into(),
                    ..drop_input()
                },
                "name",
            ),
            (
                NewDrop {
                    name: "x".repeat(2048),
                    ..drop_input()
                },
                "name",
            ),
            (
                NewDrop {
                    total_stock: -1,
                    ..drop_input()
                },
                "total_stock",
            ),
            (
                NewDrop {
                    total_stock: 0,
                    ..drop_input()
                },
                "total_stock",
            ),
            (
                NewDrop {
                    price_cents: -5,
                    ..drop_input()
                },
                "price_cents",
            ),
            (
                NewDrop {
                    max_per_user: Some(11),
                    ..drop_input()
                },
                "max_per_user",
            ),
            (
                NewDrop {
                    image: Some("http://evil".into()),
                    ..drop_input()
                },
                "image",
            ),
            (
                NewDrop {
                    image: Some("/a\0b.svg".into()),
                    ..drop_input()
                },
                "image",
            ),
            (
                NewDrop {
                    description: Some("nul \0 inside".into()),
                    ..drop_input()
                },
                "description",
            ),
        ];
        for (input, field) in cases {
            let err = input.validate().unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidInput);
            assert!(err.message.starts_with(field), "{}", err.message);
            assert_eq!(err.field.as_deref(), Some(field));
        }
    }

    #[test]
    fn typed_prices_become_cents() {
        assert_eq!(parse_price("180").unwrap(), 18_000);
        assert_eq!(parse_price(" $180.5 ").unwrap(), 18_050);
        assert_eq!(parse_price("0.99").unwrap(), 99);
        for bad in ["", "abc", "1.999", "-5", "1.-5", "99999999999999999999"] {
            assert_eq!(
                parse_price(bad).unwrap_err().field.as_deref(),
                Some("price_cents"),
                "{bad}"
            );
        }
    }
}

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
    /// Units on sale. With `sizes`, their sum: it may be left out, and if given must match.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 1_000_000))]
    pub total_stock: i64,
    /// The size run, in the order the card shows it, each with its own stock (at most
    /// 30 sizes, labels distinct); one size, "One size", with all of `total_stock` when left
    /// out. A draw sells one size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<NewSize>,
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

/// One size of a new drop and its stock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewSize {
    /// 1 to 20 characters after trimming, such as `EU 42` or `US 9.5`; no control characters.
    #[cfg_attr(
        feature = "ssr",
        schema(min_length = 1, max_length = 20, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")
    )]
    pub label: String,
    /// Units of this size on sale.
    #[cfg_attr(feature = "ssr", schema(minimum = 0, maximum = 1_000_000))]
    pub stock: i64,
}

/// The label of a drop's only size when it was created without sizes.
pub const ONE_SIZE: &str = "One size";
/// Most sizes one drop may have.
pub const MAX_SIZES: usize = 30;
/// Longest accepted size label, in characters.
pub const MAX_SIZE_CHARS: usize = 20;

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
    /// The sizes to create: those given, or one size, `One size`, of all the stock.
    pub fn size_run_or_one(&self) -> Vec<NewSize> {
        if !self.sizes.is_empty() {
            return self.sizes.clone();
        }
        vec![NewSize {
            label: ONE_SIZE.into(),
            stock: self.total_stock,
        }]
    }

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
        self.sizes = self.size_run()?;
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
            SaleMode::Draw if self.sizes.len() > 1 => {
                return Err(ApiError::invalid(
                    "sizes",
                    "a drop sold by draw sells one size: give it no sizes, or one",
                ))
            }
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

#[cfg(feature = "ssr")]
impl NewDrop {
    /// The checked size run, with `total_stock` set to its sum.
    fn size_run(&mut self) -> Result<Vec<NewSize>, ApiError> {
        if self.sizes.is_empty() {
            return Ok(self.size_run_or_one());
        }
        let sizes = std::mem::take(&mut self.sizes);
        if sizes.len() > MAX_SIZES {
            return Err(ApiError::invalid(
                "sizes",
                format!("a drop may have at most {MAX_SIZES} sizes"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut run = Vec::with_capacity(sizes.len());
        let mut sum: i64 = 0;
        for size in sizes {
            if size.label.trim().is_empty() {
                return Err(ApiError::invalid(
                    "sizes",
                    "a size's label must not be empty",
                ));
            }
            let label = validate_name("sizes", &size.label)?;
            if label.chars().count() > MAX_SIZE_CHARS {
                return Err(ApiError::invalid(
                    "sizes",
                    format!("a size's label must be at most {MAX_SIZE_CHARS} characters"),
                ));
            }
            if !seen.insert(label.to_lowercase()) {
                return Err(ApiError::invalid(
                    "sizes",
                    format!("the size {label} is listed twice"),
                ));
            }
            if !(0..=MAX_STOCK).contains(&size.stock) {
                return Err(ApiError::invalid(
                    "sizes",
                    format!("the stock of {label} must be between 0 and {MAX_STOCK}"),
                ));
            }
            sum = sum.saturating_add(size.stock);
            run.push(NewSize {
                label,
                stock: size.stock,
            });
        }
        if sum > MAX_STOCK {
            return Err(ApiError::invalid(
                "sizes",
                format!("the sizes add up to {sum} units; a drop may have at most {MAX_STOCK}"),
            ));
        }
        if self.total_stock != 0 && self.total_stock != sum {
            return Err(ApiError::invalid(
                "total_stock",
                format!(
                    "total_stock ({}) is not the sizes' sum ({sum})",
                    self.total_stock
                ),
            ));
        }
        self.total_stock = sum;
        Ok(run)
    }
}

/// Reads a size run a person typed: entries split by commas or line breaks, each `LABEL: UNITS`
/// (`EU 42: 5`), where a label ending in a range of whole numbers (`EU 40-46: 5`, or with an en
/// dash) is one size per number, each with those units. Empty text is no sizes.
pub fn parse_size_run(raw: &str) -> Result<Vec<NewSize>, ApiError> {
    let bad = |entry: &str| {
        ApiError::invalid(
            "sizes",
            format!("sizes must be entries like \"EU 42: 5\" or \"EU 40-46: 5\"; not \"{entry}\""),
        )
    };
    let mut run = Vec::new();
    for entry in raw
        .split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (label, units) = entry.rsplit_once(':').ok_or_else(|| bad(entry))?;
        let stock: i64 = units.trim().parse().map_err(|_| bad(entry))?;
        let label = label.trim();
        match size_range(label).map_err(|()| bad(entry))? {
            Some((prefix, from, to)) => {
                if to < from || to - from >= MAX_SIZES as u32 {
                    return Err(bad(entry));
                }
                run.extend((from..=to).map(|n| NewSize {
                    label: format!("{prefix}{n}"),
                    stock,
                }));
            }
            None => run.push(NewSize {
                label: label.to_string(),
                stock,
            }),
        }
        if run.len() > MAX_SIZES {
            return Err(ApiError::invalid(
                "sizes",
                format!("a drop may have at most {MAX_SIZES} sizes"),
            ));
        }
    }
    Ok(run)
}

/// A label ending in `A-B` (or `A–B`), whole numbers written plainly: its prefix and the two
/// ends. `US 9.5-10` is no range of whole sizes (nor is `S01-03`): it is refused, not read as
/// `US 9.5` to `US 9.10`.
fn size_range(label: &str) -> Result<Option<(&str, u32, u32)>, ()> {
    let Some((head, to)) = label.rsplit_once(['-', '\u{2013}']) else {
        return Ok(None);
    };
    let head = head.trim_end();
    let prefix = head.trim_end_matches(|c: char| c.is_ascii_digit());
    let (from, to) = (&head[prefix.len()..], to.trim());
    let digits = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit());
    if !digits(from) || !digits(to) {
        // A hyphen inside a label ("Kids' one-size") is no range.
        return Ok(None);
    }
    let plain = |n: &str| n == "0" || !n.starts_with('0');
    if !plain(from) || !plain(to) || prefix.ends_with(['.', ',']) {
        return Err(());
    }
    match (from.parse(), to.parse()) {
        (Ok(from), Ok(to)) => Ok(Some((prefix, from, to))),
        _ => Err(()),
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

    #[test]
    fn a_size_run_is_read_as_typed_and_ranges_expand() {
        let run = parse_size_run("EU 40-42: 5, US 13: 2\nXL:0").unwrap();
        let got: Vec<(&str, i64)> = run.iter().map(|s| (s.label.as_str(), s.stock)).collect();
        assert_eq!(
            got,
            vec![
                ("EU 40", 5),
                ("EU 41", 5),
                ("EU 42", 5),
                ("US 13", 2),
                ("XL", 0)
            ]
        );
        assert_eq!(parse_size_run(" ").unwrap(), Vec::new());
        // A hyphen that is no range of numbers is part of the label.
        let kids = parse_size_run("Kids-one: 2").unwrap();
        assert_eq!(kids[0].label, "Kids-one");
        for bad in [
            "EU 42",
            "EU 42: many",
            "EU 46-40: 1",
            "EU 1-100: 1",
            "US 9.5-10: 3",
            "S01-03: 1",
            "EU 1-99999999999: 1",
        ] {
            let error = parse_size_run(bad).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("sizes"), "{bad}");
        }
    }

    #[test]
    fn sizes_are_checked_and_their_sum_is_the_stock() {
        let size = |label: &str, stock| NewSize {
            label: label.into(),
            stock,
        };
        let sized = NewDrop {
            total_stock: 0,
            sizes: vec![size(" EU 42 ", 3), size("EU 43", 4)],
            ..drop_input()
        }
        .validate()
        .unwrap();
        assert_eq!(sized.total_stock, 7);
        assert_eq!(sized.sizes[0].label, "EU 42");
        // Without sizes: one size of all the stock.
        let plain = drop_input().validate().unwrap();
        assert_eq!(plain.sizes, vec![size(ONE_SIZE, 10)]);
        let refused = |sizes: Vec<NewSize>, total_stock| {
            NewDrop {
                total_stock,
                sizes,
                ..drop_input()
            }
            .validate()
            .unwrap_err()
            .field
        };
        assert_eq!(
            refused(vec![size("EU 42", 3)], 5).as_deref(),
            Some("total_stock")
        );
        let twice = refused(vec![size("eu 42", 1), size("EU 42", 1)], 0);
        assert_eq!(twice.as_deref(), Some("sizes"));
        assert_eq!(refused(vec![size("", 1)], 0).as_deref(), Some("sizes"));
        assert_eq!(
            refused(vec![size("EU 42", -1)], 0).as_deref(),
            Some("sizes")
        );
        let bidi = refused(vec![size("EU 42\u{202e}", 1)], 0);
        assert_eq!(bidi.as_deref(), Some("sizes"));
        let many = (0..31).map(|n| size(&format!("S{n}"), 1)).collect();
        assert_eq!(refused(many, 0).as_deref(), Some("sizes"));
        assert_eq!(
            refused(vec![size("EU 42", 0)], 0).as_deref(),
            Some("total_stock")
        );
        // A draw sells one size.
        let draw = NewDrop {
            total_stock: 0,
            sizes: vec![size("A", 1), size("B", 1)],
            sale_mode: Some(SaleMode::Draw),
            starts_at: Some(Utc::now()),
            ..drop_input()
        };
        assert_eq!(draw.validate().unwrap_err().field.as_deref(), Some("sizes"));
    }

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

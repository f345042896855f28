//! Building blocks of the pages. The parts that move are islands (`#[island]`): only they are
//! hydrated in the browser; the rest of the page is server-rendered HTML.

pub mod action_button;
pub mod card;
pub mod countdown;
pub mod create_drop;
pub mod passkey;
pub mod proof;
pub mod queue;
pub mod session;
pub mod toasts;

/// Integer cents as a price a buyer reads (`$180.00`).
pub fn format_price(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::format_price;

    #[test]
    fn prices_read_as_dollars_and_cents() {
        assert_eq!(format_price(18_000), "$180.00");
        assert_eq!(format_price(5), "$0.05");
        assert_eq!(format_price(14_599), "$145.99");
    }
}

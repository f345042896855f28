//! What a drawn draw does with a unit a winner left unused. A plain function, tested without a
//! database; the draw's flow (`sale::draw`) calls it under the drop's lock.

/// What one pass over a drawn draw does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandOn {
    /// Give this many units that came back to the next entries on the waitlist (maybe none).
    Give(i64),
    /// Nothing can pass on any more: every unit is sold, or nobody is left on the waitlist.
    /// Whoever is still waiting has lost, and a unit still unsold stays unsold.
    Close,
}

/// Decides a pass over a drawn draw from its `available` units (left unused by a winner, or
/// never drawn), its live `holds` and the entries still `waitlisted`.
pub fn hand_on(available: i64, holds: i64, waitlisted: i64) -> HandOn {
    if waitlisted == 0 || (available <= 0 && holds == 0) {
        HandOn::Close
    } else {
        HandOn::Give(available.clamp(0, waitlisted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_pass_down_the_waitlist_until_nobody_waits() {
        // Two came back, five wait: the next two get them.
        assert_eq!(hand_on(2, 3, 5), HandOn::Give(2));
        // More came back than wait: as many as wait.
        assert_eq!(hand_on(4, 0, 3), HandOn::Give(3));
        // Winners still deciding: wait for them.
        assert_eq!(hand_on(0, 3, 5), HandOn::Give(0));
        // Every unit sold: the waitlist has lost.
        assert_eq!(hand_on(0, 0, 5), HandOn::Close);
        // Nobody left to give to: what is left stays unsold.
        assert_eq!(hand_on(2, 1, 0), HandOn::Close);
    }
}

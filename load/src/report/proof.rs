//! The doors' proof of work: what a solve costs a script at the floor and at the ceiling, and
//! what a farm got at a queue's door next to the real buyers.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    format::{at_least, at_most, thousands},
    Report,
};
use crate::measure::median;

/// Entries the cost rows are priced for.
pub(super) const ENTRIES: usize = 10_000;
/// What 10,000 entries must cost one script at the floor, in CPU-seconds (a quiet door: a
/// farm of 10,000 accounts pays half an hour of a core).
pub(super) const TARGET_FLOOR_CPU_S: f64 = 1_800.0;
/// ... and at the ceiling (a door under pressure: five hours of a core).
pub(super) const TARGET_CEILING_CPU_S: f64 = 18_000.0;
/// One solve at the floor, for a person: the median of a throttled phone's browser.
pub(super) const TARGET_PHONE_SOLVE_S: f64 = 1.5;

impl Report {
    pub(super) fn render_proof(&self, out: &mut String) {
        let Some(proof) = &self.proof else {
            return;
        };
        let _ = writeln!(
            out,
            "## Proof of work at the doors\n\n\
             What a join costs a script: challenges from a release server on SQLite, solved by \
             ALTCHA's own crate (`altcha::solve_challenge`, PBKDF2-SHA256) on one core of this \
             box, each proof then sent with a join that the server let in. At the floor the \
             doors are quiet; at the ceiling they are under full pressure (a server started \
             with `PROOF_FLOOR` = `PROOF_CEILING`). A buyer's browser solves the same challenge \
             with WebCrypto in a Web Worker.\n\n\
             | doors | mean tries × iterations | solves | mean solve | CPU-s for {} entries |\n\
             | --- | ---: | ---: | ---: | ---: |",
            thousands(ENTRIES as f64)
        );
        for (name, solves) in [("floor", &proof.floor), ("ceiling", &proof.ceiling)] {
            let _ = writeln!(
                out,
                "| {name} | {} × {} | {} | {:.3} s | {} |",
                thousands(f64::from(solves.mean_tries)),
                thousands(f64::from(solves.cost)),
                solves.seconds.len(),
                solves.mean_s(),
                thousands(solves.cpu_s_for(ENTRIES)),
            );
        }
        let phone = match &proof.phone {
            Ok(seconds) => median(seconds),
            Err(_) => None,
        };
        match (&proof.phone, phone) {
            (Ok(seconds), Some(median)) => {
                let _ = writeln!(
                    out,
                    "\nA phone's browser at the floor (`end2end/perf/solve.mjs`: the page's own \
                     worker, CPU slowed 4× as in the phone load above; WebCrypto's PBKDF2 is \
                     native code, which the slow-down reaches less than script): median \
                     {median:.2} s over {} solves ({}).",
                    seconds.len(),
                    seconds
                        .iter()
                        .map(|s| format!("{s:.2} s"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            (Err(why), _) => {
                let _ = writeln!(
                    out,
                    "\nA phone's browser at the floor: not measured ({why})."
                );
            }
            _ => {}
        }
        let farm = &proof.farm;
        let _ = writeln!(
            out,
            "\nA farm at one queue's door: {} accounts ({} made before the drop's \
             `accounts_before`, the rest after) from {} IPv4 /24s, against a drop that takes \
             {} tickets per /24, beside {} real buyers who each joined once from a network of \
             their own with accounts made before the cutoff. Each farm account tried without a \
             proof, with the previous account's proof, and with its own.\n\n\
             | try | answers |\n| --- | --- |",
            thousands(farm.accounts as f64),
            thousands(farm.aged as f64),
            farm.networks,
            farm.cap,
            farm.real_buyers,
        );
        let answers = |counts: &BTreeMap<String, usize>| {
            counts
                .iter()
                .map(|(what, n)| format!("{what} {}", thousands(*n as f64)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "| without a proof | {} |",
            answers(&farm.without_proof)
        );
        let _ = writeln!(
            out,
            "| with another account's proof | {} |",
            answers(&farm.with_anothers_proof)
        );
        let _ = writeln!(
            out,
            "| with its own proof | {} |",
            answers(&farm.with_own_proof)
        );
        let _ = writeln!(
            out,
            "| real buyers, each with their own | joined {} of {} |\n",
            farm.real_joined, farm.real_buyers
        );
        let farm_tickets = farm.with_own_proof.get("joined").copied().unwrap_or(0)
            + farm.with_anothers_proof.get("joined").copied().unwrap_or(0)
            + farm.without_proof.get("joined").copied().unwrap_or(0);
        let most = (farm.networks as u32 * farm.cap).min(farm.aged as u32);
        let _ = writeln!(
            out,
            "| target | verdict |\n| --- | --- |\n\
             | {} entries cost one script ≥ {} CPU-s at the floor | {} |\n\
             | ... and ≥ {} CPU-s at the ceiling | {} |\n\
             | a phone's solve at the floor ≤ {:.1} s (median) | {} |\n\
             | the farm gets ≤ {most} tickets (its aged accounts, at most the cap per network) | {} |\n\
             | every real buyer gets in | {} |\n",
            thousands(ENTRIES as f64),
            thousands(TARGET_FLOOR_CPU_S),
            at_least(proof.floor.cpu_s_for(ENTRIES), TARGET_FLOOR_CPU_S, " CPU-s"),
            thousands(TARGET_CEILING_CPU_S),
            at_least(proof.ceiling.cpu_s_for(ENTRIES), TARGET_CEILING_CPU_S, " CPU-s"),
            TARGET_PHONE_SOLVE_S,
            match phone {
                Some(median) => at_most(median, TARGET_PHONE_SOLVE_S, " s"),
                None => "not measured".into(),
            },
            at_most(farm_tickets as f64, most as f64, " tickets"),
            if farm.real_joined == farm.real_buyers {
                format!("met: {} of {}", farm.real_joined, farm.real_buyers)
            } else {
                format!("**missed**: {} of {}", farm.real_joined, farm.real_buyers)
            },
        );
    }
}

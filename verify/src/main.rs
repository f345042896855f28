//! `dropline-verify BASE_URL DROP_ID [FILE.json ...]`: fetches drop `DROP_ID`'s audit from the
//! Dropline server at `BASE_URL` and checks it (see the library) against drand's quicknet,
//! with whatever was kept of the drop: each FILE is a receipt (as joining or
//! `GET .../receipt` answered it) or a proof of entry (`GET .../entries/{ticket}/proof`'s
//! `proof`). `--seed-sha256 HEX` and `--round N` give what the drop published at creation.
//! Prints `ok: ...` and exits 0, or prints every fault and exits 1 (2 when it could not fetch
//! or read its input).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(base), Some(drop)) = (args.first(), args.get(1).and_then(|d| d.parse().ok())) else {
        eprintln!(
            "usage: dropline-verify BASE_URL DROP_ID [--seed-sha256 HEX] [--round N] [FILE.json ...]"
        );
        return ExitCode::from(2);
    };
    let mut evidence = dropline_verify::Evidence::default();
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        match (arg.as_str(), rest.clone().next()) {
            ("--seed-sha256", Some(hash)) => {
                evidence.seed_sha256 = Some(hash.clone());
                rest.next();
            }
            ("--round", Some(round)) => {
                let Ok(round) = round.parse() else {
                    eprintln!("--round takes a round number, not {round}");
                    return ExitCode::from(2);
                };
                evidence.beacon_round = Some(round);
                rest.next();
            }
            (path, _) => {
                let read = std::fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
                    });
                let kept = read.and_then(|value| {
                    if value.get("path").is_some() {
                        serde_json::from_value(value).map(|p| evidence.proofs.push(p))
                    } else {
                        serde_json::from_value(value).map(|r| evidence.receipts.push(r))
                    }
                    .map_err(|e| e.to_string())
                });
                if let Err(error) = kept {
                    eprintln!("{path}: {error}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    let (audit, tickets) = match dropline_verify::fetch(base, drop).await {
        Ok(fetched) => fetched,
        Err(error) => {
            eprintln!("could not fetch the audit: {error}");
            return ExitCode::from(2);
        }
    };
    let chain = dropline_verify::Chain::quicknet();
    match dropline_verify::verify(drop, &audit, &tickets, &chain, &evidence) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(faults) => {
            for fault in faults {
                println!("FAIL: {fault}");
            }
            ExitCode::FAILURE
        }
    }
}

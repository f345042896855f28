#!/usr/bin/env bash
# Fuzzes /api/v1 with schemathesis against the release server on a throwaway SQLite database:
# no answer may be a 5xx, and every answer must match the OpenAPI document the server serves
# (status, content type, headers, body schema). The server is stopped whatever the outcome.
#
# usage: fuzz/run.sh SERVER_BINARY SCHEMATHESIS_CLI [more `st run` options, e.g.
#        --report har --report-dir /an/absolute/path]
# env:   FUZZ_PORT (3110), FUZZ_EXAMPLES per operation (300), FUZZ_SEED (1)

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
server=${1:?usage: fuzz/run.sh SERVER_BINARY SCHEMATHESIS_CLI}
st=${2:?usage: fuzz/run.sh SERVER_BINARY SCHEMATHESIS_CLI}
shift 2
port=${FUZZ_PORT:-3110}
examples=${FUZZ_EXAMPLES:-300}
seed=${FUZZ_SEED:-1}
base=http://127.0.0.1:$port
token=fuzz-admin-token-fuzz-admin-token

[ -x "$server" ] || { echo "fuzz: no server binary at $server (run make build)" >&2; exit 2; }
absolute() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
server=$(absolute "$server")
st=$(absolute "$st")

work=$(mktemp -d)
pid=
stop() {
    status=$?
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -s "$work/server.log" ]; then
        echo "fuzz: last server log lines:" >&2
        tail -n 30 "$work/server.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap stop EXIT
trap 'exit 130' INT TERM

# The rate limits would answer 429 to most of the fuzzer's requests; lift them far out of reach
# so the handlers get exercised (429 itself stays in the document and in the Rust tests).
env DATABASE_URL="sqlite://$work/fuzz.db?mode=rwc" \
    SITE_ADDR="127.0.0.1:$port" LEPTOS_SITE_ADDR="127.0.0.1:$port" \
    ADMIN_TOKEN="$token" SESSION_SECRET="fuzz-session-secret-fuzz-session-secret" \
    SEED_DEMO=true RUST_LOG=warn \
    RATE_LIMIT_SESSION_PER_SECOND=1000000 RATE_LIMIT_SESSION_BURST=1000000 \
    RATE_LIMIT_IP_PER_SECOND=1000000 RATE_LIMIT_IP_BURST=1000000 \
    RATE_LIMIT_ADMIN_FAILURES_PER_MINUTE=1000000 \
    "$server" >"$work/server.log" 2>&1 &
pid=$!

for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "fuzz: the server exited at start" >&2; exit 1; }
    sleep 0.25
done
curl -fsS -o /dev/null "$base/readyz" || { echo "fuzz: the server never became ready" >&2; exit 1; }

# A session for the buyer routes: a real account (the demo's sign-in by name is off here), made
# as any script makes one, solving the sign-up door's proof of work (ALTCHA PoW v2: the counter
# whose PBKDF2-SHA256 key starts with keyPrefix); the admin token for creating drops.
proof=$(curl -fsS "$base/api/v1/accounts/challenge" | python3 -c '
import base64, hashlib, json, sys
challenge = json.load(sys.stdin)["challenge"]
p = challenge["parameters"]
nonce, salt = bytes.fromhex(p["nonce"]), bytes.fromhex(p["salt"])
counter = 0
while True:
    key = hashlib.pbkdf2_hmac("sha256", nonce + counter.to_bytes(4, "big"), salt, p["cost"], p["keyLength"]).hex()
    if key.startswith(p["keyPrefix"]):
        break
    counter += 1
solution = {"counter": counter, "derivedKey": key}
print(base64.b64encode(json.dumps({"challenge": challenge, "solution": solution}).encode()).decode())
')
cookie=$(curl -fsS -D - -o /dev/null -H 'content-type: application/json' -H "Dropline-Proof: $proof" \
    -d '{"username":"fuzzer","password":"violet kettle drums at noon"}' "$base/api/v1/accounts" |
    sed -n 's/^[Ss]et-[Cc]ookie: dropline_session=\([^;]*\).*/\1/p')
[ -n "$cookie" ] || { echo "fuzz: sign-in set no session cookie" >&2; exit 1; }

# Run from the scratch directory: schemathesis keeps caches in its working directory.
cd "$work"
FUZZ_SESSION="$cookie" FUZZ_ADMIN_TOKEN="$token" \
    "$st" --config-file "$here/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --seed "$seed" \
    --max-examples "$examples" \
    --workers 1 \
    --no-color \
    "$@"

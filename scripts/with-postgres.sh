#!/usr/bin/env bash
# Usage: scripts/with-postgres.sh CMD [ARG...]
#
# Runs CMD with POSTGRES_URL set to a PostgreSQL server on which it may create databases:
#   1. POSTGRES_URL itself when it is set and not empty;
#   2. else the server at 127.0.0.1:5432 as postgres://postgres@127.0.0.1:5432/postgres;
#   3. else, when nothing answers there (or it refuses that login), a throwaway cluster: Debian's
#      postgresql is installed if missing, initdb'd under target/pg/run-<pid>/ with trust auth,
#      listening on 127.0.0.1 only, on a free port from 55432 up; it is stopped and deleted when
#      CMD ends, also when CMD fails or the run is interrupted. Clusters left by a run that died
#      (kill -9, a crash) are stopped and deleted by the next run that starts one.
# Exits with CMD's status. CMD runs in the foreground, so Ctrl-C reaches it directly; a TERM or
# HUP sent to this script alone takes effect (stopping the cluster) when CMD has ended.
#
# PG_PROBE_PORT (default 5432) moves the port of step 2; it exists to test step 3 on a machine
# whose own server answers at 5432.
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
probe_port=${PG_PROBE_PORT:-5432}

say() { echo "with-postgres: $*" >&2; }

# Does anything accept TCP connections at 127.0.0.1:$1? (Bash's /dev/tcp: no client needed.)
answers() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Does the server at URL $1 take our login? Debian's own cluster, once installed, answers at
# 5432 but wants a password over TCP. Without psql there is no telling: assume it does.
accepts() {
	! command -v psql >/dev/null \
		|| PGCONNECT_TIMEOUT=5 psql "$1" -qAtc 'select 1' >/dev/null 2>&1
}

if [ -n "${POSTGRES_URL:-}" ]; then
	exec "$@"
fi
url=postgres://postgres@127.0.0.1:$probe_port/postgres
if answers "$probe_port"; then
	if accepts "$url"; then
		export POSTGRES_URL=$url
		exec "$@"
	fi
	say "127.0.0.1:$probe_port answers but refuses $url; starting a throwaway server instead"
fi

# --- The throwaway cluster. ---

# initdb and postgres refuse to run as root: as root they run as the package's postgres user.
if [ "$(id -u)" = 0 ]; then
	sudo=
	as_server() { (cd / && runuser -u postgres -- "$@"); }
else
	sudo=sudo
	as_server() { "$@"; }
fi

newest_bin() { printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1; }
bin=$(newest_bin)
if [ ! -x "$bin/initdb" ]; then
	say "installing Debian's postgresql"
	$sudo apt-get update
	$sudo apt-get install -y postgresql
	bin=$(newest_bin)
	[ -x "$bin/initdb" ] || { say "no initdb under /usr/lib/postgresql after the install"; exit 1; }
fi

# The postgres user must be able to reach the data dir; a repository under /root (mode 700)
# is out of its reach, and then the clusters live in /tmp instead.
base=$root/target/pg
mkdir -p "$base" && chmod 755 "$base"
if [ "$(id -u)" = 0 ] && ! as_server test -x "$base"; then
	base=/tmp/dropline-pg
	mkdir -p "$base" && chmod 755 "$base"
	[ -O "$base" ] || { say "$base belongs to someone else"; exit 1; }
fi

# Stops the cluster in run dir $1 if its postmaster runs, then deletes the dir. The pid file is
# trusted only if that process was started on this data dir: after a crash or a reboot it can
# name an unrelated process.
remove_cluster() {
	local data=$1/data pid
	pid=$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$data"; then
		as_server "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null \
			|| as_server "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null || true
	fi
	rm -rf "$1"
}

# A run dir is named after its script's pid; is that script still running? (A dead one's pid
# may since belong to another process, or to a zombie.)
run_alive() { grep -qsa with-postgres "/proc/${1##*-}/cmdline"; }

for dir in "$base"/run-*; do
	[ -d "$dir" ] || continue
	! run_alive "$dir" || continue
	say "removing the cluster of a run that died: $dir"
	remove_cluster "$dir"
done

run=$base/run-$$
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	trap '' INT TERM HUP # a second Ctrl-C must not cut the stop short (pg_ctl inherits this)
	remove_cluster "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

remove_cluster "$run" # a dead run with our pid may have left it
mkdir -m 700 "$run"
[ "$(id -u)" != 0 ] || chown postgres: "$run"
as_server "$bin/initdb" -D "$run/data" -U postgres -A trust --encoding=UTF8 --locale=C.UTF-8 \
	--no-sync >"$run/initdb.log" 2>&1 || { cat "$run/initdb.log" >&2; exit 1; }

# The unix socket goes into the run dir too (not the system's /var/run/postgresql), unless the
# path is too long for a socket (108 bytes); the URL uses TCP anyway.
socket_dir=$run
[ ${#run} -lt 90 ] || socket_dir=
cat >>"$run/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$socket_dir'
EOF

# A port nothing answers on; should another process take it between the probe and the start,
# the next one is tried.
port=
for candidate in $(seq 55432 55531); do
	[ "$candidate" != "$probe_port" ] || continue
	! answers "$candidate" || continue
	log=$run/server-$candidate.log
	if out=$(as_server "$bin/pg_ctl" -D "$run/data" -l "$log" -o "-p $candidate" -w -t 60 start 2>&1)
	then
		port=$candidate
		break
	fi
	grep -qs 'already in use' "$log" || { { echo "$out"; cat "$log"; } >&2 || true; exit 1; }
done
[ -n "$port" ] || { say "no free port in 55432-55531"; exit 1; }

export POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres
say "throwaway PostgreSQL at $POSTGRES_URL ($run)"
status=0
"$@" || status=$?
exit "$status"
